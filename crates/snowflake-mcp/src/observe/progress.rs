//! Progress of a tool call, for clients that asked for it with `_meta.progressToken`: a long
//! `run_query` reports `queued` → `running` → `fetching rows`, so a client shows where the call
//! is instead of a frozen spinner.
//!
//! The stages are reported from deep in the request path (the scheduler's gateway, the
//! backends), which know nothing about MCP. Each call's stages are therefore scoped to the
//! call's task with [`scope`], and [`report`] is a no-op outside one. The furthest stage reached
//! is kept whether or not the client asked for notifications: a [`Tracker`] tells quota
//! settlement whether a cancelled call ever reached Snowflake. Sending never blocks the
//! call: stages go through a small channel to one sender that writes them in order, and each
//! stage is sent at most once, in increasing order (MCP requires progress to increase). The
//! sender is polled beside the call in the call's own task ([`scope`]): a task of its own cost
//! a spawn and a wake-up on every call, most of which send nothing (see below).
//!
//! A call that answers within [`QUIET`] sends no stages at all: three notifications for a
//! statement that took a few milliseconds show the person nothing, yet cost as much to send as
//! the answer (serialised, buffered for resumption, written). Until then the reporter only
//! notes the latest stage — queuing it would wake the sender (often on the other worker
//! thread) for nothing — and the sender takes it when `QUIET` is over; an update with news in
//! it (a queue length, Snowflake's status, an agent's step) is sent at once, after the stage it
//! belongs to. After `QUIET`, a stage is sent once it has lasted [`SETTLE`], and dropped if a
//! later stage or the answer comes first: after a long wait in the queue, `running` and
//! `fetching rows` a millisecond before the answer tell the person nothing either.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Waiting for its turn on the pool.
    Queued = 1,
    /// Holding a Snowflake session; the statement runs.
    Running = 2,
    /// The statement finished; rows are being read.
    Fetching = 3,
}

impl Stage {
    fn message(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Running => "running",
            Stage::Fetching => "fetching rows",
        }
    }
}

/// How long a call may take before its stages are sent.
const QUIET: Duration = Duration::from_millis(200);
/// How long a stage reported after [`QUIET`] waits before it is sent: a later stage replaces it
/// and the answer makes it moot. After a long wait in the queue, a statement that takes a
/// millisecond would otherwise send `running` and `fetching rows` a millisecond before its
/// answer: two notifications nobody sees, each serialised, buffered for resumption and written.
const SETTLE: Duration = Duration::from_millis(50);

/// One update to send: progress, message, and whether it is a stage (which may wait, replaced
/// by a later one) or news (sent at once).
type Update = (f64, String, Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Stage,
    News,
}

/// One call's progress: the [`Reporter`] the call's task reports to, and the sender of the
/// notifications, polled by [`scope`] beside the call.
pub struct Progress {
    reporter: Arc<Reporter>,
    sender: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Progress {
    /// Progress for the call that carried `token`, sent through `peer`.
    pub fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Progress {
        Progress::sending(QUIET, SETTLE, move |progress, message| {
            let (peer, token) = (peer.clone(), token.clone());
            async move {
                let param = ProgressNotificationParam::new(token, progress)
                    .with_total(Stage::Fetching as u8 as f64)
                    .with_message(message);
                peer.notify_progress(param).await.is_ok()
            }
        })
    }

    /// Progress whose notifications go out through `send`: stages held back for `quiet`, and
    /// after it each stage for `settle`.
    fn sending<F, Fut>(quiet: Duration, settle: Duration, send: F) -> Progress
    where
        F: FnMut(f64, String) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let (stages, receiver) = mpsc::channel::<Update>(4);
        let reporter = Arc::new(Reporter::new(stages, true));
        let sender = Box::pin(forward(receiver, quiet, settle, reporter.clone(), send));
        Progress { reporter, sender }
    }
}

/// What the sender does next.
enum Next {
    /// The quiet period is over: send the stage the reporter held.
    QuietOver,
    /// The pending stage lasted `settle`: send it.
    Settled,
    /// Something was queued, or (`None`) the call answered.
    Update(Option<Update>),
}

/// Sends what `reporter` queues on `updates` with `send`, in order, until the channel closes or
/// `send` fails (the client is gone; the call notices on its own). For the first `quiet` the
/// reporter holds stages instead of queuing them, so a call that answers in time costs no
/// wake-up of this sender; when `quiet` is over, the stage held is sent. After it, news is sent
/// at once (after the stage it belongs to), and a stage once it has lasted `settle`. A stage
/// not sent when the call answers is dropped: the answer says more.
async fn forward<F, Fut>(
    mut updates: mpsc::Receiver<Update>,
    quiet: Duration,
    settle: Duration,
    reporter: Arc<Reporter>,
    mut send: F,
) where
    F: FnMut(f64, String) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut next = tokio::select! {
        update = updates.recv() => Next::Update(update),
        () = tokio::time::sleep(quiet) => Next::QuietOver,
    };
    let mut pending = None;
    loop {
        let out = match next {
            Next::QuietOver => reporter.end_quiet().into_iter().collect(),
            Next::Settled => pending.take().into_iter().collect(),
            Next::Update(None) => return,
            Next::Update(Some((progress, message, Kind::Stage))) => {
                pending = Some((progress, message));
                Vec::new()
            }
            Next::Update(Some((progress, message, Kind::News))) => {
                let news = Some((progress, message));
                pending.take().into_iter().chain(news).collect()
            }
        };
        for (progress, message) in out {
            if !send(progress, message).await {
                return;
            }
        }
        next = match pending {
            None => Next::Update(updates.recv().await),
            Some(_) => tokio::select! {
                update = updates.recv() => Next::Update(update),
                () = tokio::time::sleep(settle) => Next::Settled,
            },
        };
    }
}

/// Takes a call's stages, each once and in increasing order, and while it is queued, updates
/// between `queued` (1) and `running` (2) — progress must always increase.
struct Reporter {
    /// Taken when the call answered: a statement it left running reports no more under its
    /// progress token (MCP allows progress only while the request is open), and the sender
    /// ends.
    stages: std::sync::Mutex<Option<mpsc::Sender<Update>>>,
    last: std::sync::Mutex<Last>,
}

/// The stage reached, the progress last reported, and whether stages are still held back
/// (the quiet period): held, a stage is only noted here, and queuing nothing wakes nobody.
struct Last {
    stage: Option<Stage>,
    progress: f64,
    quiet: bool,
}

impl Reporter {
    fn new(stages: mpsc::Sender<Update>, quiet: bool) -> Reporter {
        Reporter {
            stages: std::sync::Mutex::new(Some(stages)),
            last: std::sync::Mutex::new(Last {
                stage: None,
                progress: 0.0,
                quiet,
            }),
        }
    }

    fn send(&self, update: Update) {
        if let Some(stages) = crate::lock(&self.stages).as_ref() {
            let _ = stages.try_send(update);
        }
    }

    fn close(&self) {
        crate::lock(&self.stages).take();
    }

    fn report(&self, stage: Stage) {
        let mut last = crate::lock(&self.last);
        if last.stage.is_some_and(|l| l >= stage) {
            return;
        }
        last.stage = Some(stage);
        last.progress = stage as u8 as f64;
        if !last.quiet {
            self.send((last.progress, stage.message().to_string(), Kind::Stage));
        }
    }

    /// An update within the current stage (`queued` or `running`): creeps towards the next
    /// stage without reaching it. It is news: it ends the quiet period, after its stage.
    fn waiting(&self, stage: Stage, message: String) {
        let mut last = crate::lock(&self.last);
        if last.stage != Some(stage) {
            return;
        }
        if std::mem::take(&mut last.quiet) {
            self.send((last.progress, stage.message().to_string(), Kind::Stage));
        }
        let next = stage as u8 as f64 + 1.0;
        last.progress += (next - last.progress) / 10.0;
        self.send((last.progress, message, Kind::News));
    }

    /// End the quiet period; the stage held, if any, to send first. Under the same lock as a
    /// report, so every stage is either held and returned here or queued after it.
    fn end_quiet(&self) -> Option<(f64, String)> {
        let mut last = crate::lock(&self.last);
        if !std::mem::take(&mut last.quiet) {
            return None;
        }
        last.stage.map(|s| (last.progress, s.message().to_string()))
    }
}

/// The furthest stage one call reached, the session-time its statements held, and the query id
/// of its statement once the database named it.
#[derive(Clone, Debug, Default)]
pub struct Tracker(Arc<Tracked>);

#[derive(Debug, Default)]
struct Tracked {
    stage: AtomicU8,
    held_us: std::sync::atomic::AtomicU64,
    query_id: QueryIdCell,
}

/// Where a backend reports the query id of a statement as soon as it is known (the type
/// `snowflake_client::QueryOptions::query_id` takes).
pub type QueryIdCell = Arc<std::sync::OnceLock<String>>;

impl Tracker {
    pub fn reached(&self, stage: Stage) -> bool {
        self.0.stage.load(Ordering::SeqCst) >= stage as u8
    }

    /// Session-time held so far, milliseconds.
    pub fn held_ms(&self) -> u64 {
        self.0.held_us.load(Ordering::SeqCst) / 1000
    }

    /// The query id of the call's statement, once the database named it.
    pub fn query_id(&self) -> Option<String> {
        self.0.query_id.get().cloned()
    }
}

/// What a call's task carries.
struct Call {
    reached: Tracker,
    notify: Option<Arc<Reporter>>,
}

tokio::task_local! {
    static CALL: Call;
}

/// Run `call` with `progress` (if any) receiving its stages, sending them while the call runs.
/// Before the output is returned, the stages reported are sent (waiting at most 200 ms):
/// progress must reach the client before the call's result, after which the stream closes.
pub async fn scope<F: Future>(progress: Option<Progress>, call: F) -> F::Output {
    let progress = progress.map(|Progress { reporter, sender }| (reporter, sender));
    let state = Call {
        reached: Tracker::default(),
        notify: progress.as_ref().map(|(notify, _)| notify.clone()),
    };
    let call = CALL.scope(state, call);
    let Some((notify, mut sender)) = progress else {
        return call.await;
    };
    tokio::pin!(call);
    let mut sent_all = false;
    let output = loop {
        tokio::select! {
            biased;
            output = &mut call => break output,
            () = &mut sender, if !sent_all => sent_all = true,
        }
    };
    notify.close();
    if !sent_all {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), sender).await;
    }
    output
}

/// What a statement the current call hands to a task of its own ([`forked`]) keeps of the
/// call's progress: its notifications, for as long as the call is open.
pub struct Fork(Option<Arc<Reporter>>);

/// The current call's [`Fork`].
pub fn fork() -> Fork {
    Fork(CALL.try_with(|c| c.notify.clone()).ok().flatten())
}

/// Run `work` (in a task of its own) with its own tracker, reporting through `fork` while the
/// call it came from is open.
pub async fn forked<F: Future>(fork: Fork, work: F) -> F::Output {
    let state = Call {
        reached: Tracker::default(),
        notify: fork.0,
    };
    CALL.scope(state, work).await
}

/// Report that the current call reached `stage` (nothing happens outside a [`scope`]).
pub fn report(stage: Stage) {
    let _ = CALL.try_with(|c| {
        c.reached.0.stage.fetch_max(stage as u8, Ordering::SeqCst);
        if let Some(r) = &c.notify {
            r.report(stage);
        }
    });
}

/// Adds the time from [`Holding::start`] to its drop to the current call's session-time.
pub struct Holding(std::time::Instant);

impl Holding {
    pub fn start() -> Holding {
        Holding(std::time::Instant::now())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        held(self.0.elapsed());
    }
}

/// Whether the current call's client still hears progress (asked for it, and not answered yet).
pub fn wanted() -> bool {
    CALL.try_with(|c| {
        c.notify
            .as_ref()
            .is_some_and(|r| crate::lock(&r.stages).is_some())
    })
    .unwrap_or(false)
}

/// The current call is still queued (`message` says where it stands).
pub fn waiting(message: String) {
    still(Stage::Queued, message)
}

/// The current call's statement still runs (`message` says for how long).
pub fn running(message: String) {
    still(Stage::Running, message)
}

fn still(stage: Stage, message: String) {
    let _ = CALL.try_with(|c| {
        if let Some(r) = &c.notify {
            r.waiting(stage, message);
        }
    });
}

/// The current call held a Snowflake session for `held` more (cost quotas charge it).
pub fn held(held: std::time::Duration) {
    let _ = CALL.try_with(|c| {
        let us = held.as_micros().min(u128::from(u64::MAX)) as u64;
        c.reached.0.held_us.fetch_add(us, Ordering::SeqCst);
    });
}

/// Where the current call's statement reports its query id (outside a [`scope`]: nowhere
/// anyone reads).
pub fn query_id_cell() -> QueryIdCell {
    CALL.try_with(|c| c.reached.0.query_id.clone())
        .unwrap_or_default()
}

/// The current call's stage tracker (outside a [`scope`]: a fresh one, which reached nothing).
pub fn tracker() -> Tracker {
    CALL.try_with(|c| c.reached.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests;

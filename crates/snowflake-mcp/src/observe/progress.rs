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
//! belongs to.

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

/// One update to send: its progress and its message.
type Update = (f64, String);

/// One call's progress: the [`Reporter`] the call's task reports to, and the sender of the
/// notifications, polled by [`scope`] beside the call.
pub struct Progress {
    reporter: Arc<Reporter>,
    sender: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Progress {
    /// Progress for the call that carried `token`, sent through `peer`.
    pub fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Progress {
        Progress::sending(QUIET, move |progress, message| {
            let (peer, token) = (peer.clone(), token.clone());
            async move {
                let param = ProgressNotificationParam::new(token, progress)
                    .with_total(Stage::Fetching as u8 as f64)
                    .with_message(message);
                peer.notify_progress(param).await.is_ok()
            }
        })
    }

    /// Progress whose notifications go out through `send`, stages held back for `quiet`.
    fn sending<F, Fut>(quiet: Duration, send: F) -> Progress
    where
        F: FnMut(f64, String) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let (stages, receiver) = mpsc::channel::<Update>(4);
        let reporter = Arc::new(Reporter::new(stages, true));
        let sender = Box::pin(forward(receiver, quiet, reporter.clone(), send));
        Progress { reporter, sender }
    }
}

/// Sends what `reporter` queues on `updates` with `send`, in order, until the channel closes or
/// `send` fails (the client is gone; the call notices on its own). For the first `quiet` the
/// reporter holds stages instead of queuing them, so a call that answers in time costs no
/// wake-up of this sender; when `quiet` is over, the stage held is sent, then everything queued.
/// News within `quiet` ends it at once (the reporter queues its stage before it).
async fn forward<F, Fut>(
    mut updates: mpsc::Receiver<Update>,
    quiet: Duration,
    reporter: Arc<Reporter>,
    mut send: F,
) where
    F: FnMut(f64, String) -> Fut,
    Fut: Future<Output = bool>,
{
    let held = tokio::select! {
        update = updates.recv() => match update {
            None => return, // answered within `quiet`: nothing to say
            Some(update) => Some(update),
        },
        () = tokio::time::sleep(quiet) => reporter.end_quiet(),
    };
    if let Some((progress, message)) = held {
        if !send(progress, message).await {
            return;
        }
    }
    while let Some((progress, message)) = updates.recv().await {
        if !send(progress, message).await {
            break;
        }
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
            self.send((last.progress, stage.message().to_string()));
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
            self.send((last.progress, stage.message().to_string()));
        }
        let next = stage as u8 as f64 + 1.0;
        last.progress += (next - last.progress) / 10.0;
        self.send((last.progress, message));
    }

    /// End the quiet period; the stage held, if any, to send first. Under the same lock as a
    /// report, so every stage is either held and returned here or queued after it.
    fn end_quiet(&self) -> Option<Update> {
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_are_sent_once_in_increasing_order() {
        let (stages, mut receiver) = mpsc::channel(8);
        let progress = Progress {
            reporter: Arc::new(Reporter::new(stages, false)),
            sender: Box::pin(async {}),
        };
        scope(Some(progress), async {
            assert!(!tracker().reached(Stage::Queued));
            report(Stage::Queued);
            report(Stage::Queued);
            waiting("queued: 3 waiting".into());
            waiting("queued: 2 waiting".into());
            report(Stage::Running);
            waiting("too late".into());
            running("running for 5 s".into());
            report(Stage::Queued);
            report(Stage::Fetching);
            running("too late as well".into());
            assert!(tracker().reached(Stage::Running));
        })
        .await;
        report(Stage::Running); // outside a scope: ignored
        let mut got = Vec::new();
        while let Ok(s) = receiver.try_recv() {
            got.push(s);
        }
        let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            messages,
            [
                "queued",
                "queued: 3 waiting",
                "queued: 2 waiting",
                "running",
                "running for 5 s",
                "fetching rows"
            ]
        );
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "progress always increases: {got:?}"
        );
    }

    /// What a call reports, in [`forwarded`].
    enum Step {
        Stage(Stage),
        News(Stage, &'static str),
    }
    use Step::News;

    fn stage(s: Stage) -> Step {
        Step::Stage(s)
    }

    /// Reports `steps` (each after its delay) with a quiet period of 100 ms, then answers;
    /// returns what was sent.
    async fn forwarded(steps: Vec<(u64, Step)>) -> Vec<String> {
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = sent.clone();
        let Progress { reporter, sender } =
            Progress::sending(Duration::from_millis(100), move |_, m| {
                log.lock().unwrap().push(m);
                async { true }
            });
        let sender = tokio::spawn(sender);
        for (after_ms, step) in steps {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            match step {
                Step::Stage(s) => reporter.report(s),
                News(s, m) => reporter.waiting(s, m.into()),
            }
        }
        reporter.close();
        sender.await.unwrap();
        let sent = sent.lock().unwrap().clone();
        sent
    }

    #[test]
    fn stages_within_the_quiet_period_queue_nothing_to_wake_the_sender_for() {
        let (stages, mut receiver) = mpsc::channel(8);
        let reporter = Reporter::new(stages, true);
        reporter.report(Stage::Queued);
        reporter.report(Stage::Running);
        assert!(receiver.try_recv().is_err(), "a held stage was queued");
        assert_eq!(reporter.end_quiet().map(|u| u.1), Some("running".into()));
        assert!(reporter.end_quiet().is_none(), "the quiet period ends once");
        reporter.report(Stage::Fetching);
        assert_eq!(
            receiver.try_recv().map(|u| u.1).ok(),
            Some("fetching rows".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_answered_within_the_quiet_period_sends_nothing() {
        let sent = forwarded(vec![
            (0, stage(Stage::Queued)),
            (10, stage(Stage::Running)),
            (10, stage(Stage::Fetching)),
        ])
        .await;
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_call_hears_its_latest_stage_when_the_quiet_period_ends_then_everything() {
        let sent = forwarded(vec![
            (0, stage(Stage::Queued)),
            (10, stage(Stage::Running)),
            (200, News(Stage::Running, "running for 5 s")),
            (10, stage(Stage::Fetching)),
        ])
        .await;
        assert_eq!(sent, ["running", "running for 5 s", "fetching rows"]);
    }

    #[tokio::test(start_paused = true)]
    async fn news_within_the_quiet_period_goes_out_at_once_after_its_stage() {
        let sent = forwarded(vec![
            (0, stage(Stage::Running)),
            (5, News(Stage::Running, "agent: Planning the next steps")),
            (5, News(Stage::Running, "agent: using search")),
        ])
        .await;
        assert_eq!(
            sent,
            [
                "running",
                "agent: Planning the next steps",
                "agent: using search"
            ]
        );
    }
}

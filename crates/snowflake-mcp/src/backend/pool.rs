//! The pool: a bounded set of Snowflake sessions, each lent to one statement at a time.
//!
//! At most `max_sessions` sessions exist **on Snowflake**, counted from the moment a login is
//! sent until its logout has finished: each session carries a *slot* (a semaphore permit) that
//! is taken before it logs in and given back only once it is logged out (or its login failed),
//! whatever path it takes — idle, lent, retired, evicted to make room, abandoned by a cancelled
//! caller mid-login, or closed at shutdown. Separately, at most `max_sessions` leases are out at
//! once (a waiting request keeps its place in line).
//!
//! Sessions are created on demand (and `min_idle` kept warm by [`Pool::maintain`]), kept alive
//! with heartbeats, and retired after errors or after `max_lifetime` — replaced transparently by
//! the next lease. A [`Lease`] hands one session to one request with the request's context
//! applied, using only the `USE` statements that differ (see `context`), and prefers an idle
//! session whose context already matches, so a steady mix of clients rarely pays a switch.
//! Every wait in a lease — for a turn, a slot, a login, the `USE` statements — ends at the
//! caller's deadline.
//!
//! Once [`Pool::shutdown`] starts, nothing new logs in and every session that comes back (a
//! lease dropped late, a login finishing for a caller that went away) is logged out; shutdown
//! waits until every slot is back, i.e. every login was logged out.
//!
//! The pool is generic over [`Connector`] so the scheduler-and-pool tests can drive it with a
//! scripted backend on a paused clock; production uses `snowflake_client`. The lock on the idle
//! list is only held to push or pick a session, never across an `.await`.

use crate::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use snowflake_client::Error as SfError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::breaker::Breaker;
use super::Context;
use crate::error::ToolError;

pub(crate) use client::AbortOnDrop;
use context::can_switch;

/// Time allowed for one `USE` statement.
const USE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens sessions.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    type Session: PooledSession;
    /// The context the connection's settings ask for.
    fn default_context(&self) -> &Context;
    async fn connect(&self, ctx: &Context) -> Result<Self::Session, SfError>;
}

/// What the pool needs of a session.
#[async_trait]
pub trait PooledSession: Send + 'static {
    fn context(&self) -> &Context;
    fn record_context(&mut self, known: &Context);
    fn is_poisoned(&self) -> bool;
    /// Run a statement whose result is not needed (`USE ...`), giving up at `deadline`.
    async fn execute(&mut self, sql: &str, deadline: Instant) -> Result<(), SfError>;
    /// Keep the session alive; bounded by the session itself.
    async fn heartbeat(&mut self) -> Result<(), SfError>;
    /// Log out; bounded by the session itself.
    async fn close(self);
}

/// Pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_sessions: usize,
    pub min_idle: usize,
    pub max_lifetime: Duration,
    pub heartbeat_every: Duration,
    /// Run `USE SECONDARY ROLES NONE` on every new session (see `login`).
    pub secondary_roles_none: bool,
    /// Longest a login may take, waiting for a login slot included.
    pub login_timeout: Duration,
    /// Logins in flight at once: a burst of new sessions is not a login storm.
    pub max_concurrent_logins: usize,
}

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub logins: AtomicU64,
    pub context_switches: AtomicU64,
    pub retired: AtomicU64,
    pub heartbeats: AtomicU64,
    pub login_failures: AtomicU64,
}

/// A bounded set of sessions.
pub struct Pool<C: Connector> {
    inner: Arc<Inner<C>>,
}

impl<C: Connector> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C: Connector> {
    connector: C,
    limits: PoolLimits,
    idle: Mutex<Vec<Idle<C::Session>>>,
    /// Leases out at once.
    permits: Arc<Semaphore>,
    /// Sessions on Snowflake, from login sent to logout done (see the module's doc).
    slots: Arc<Semaphore>,
    /// Woken when a session joins the idle list: a lease waiting for a slot may use it.
    idle_added: Notify,
    /// Set by [`Pool::shutdown`]: no new logins, sessions coming back are logged out.
    closing: AtomicBool,
    stats: PoolStats,
    logins: Semaphore,
    breaker: Breaker,
    probing: AtomicBool,
    /// Logins, logouts and aborts of dropped statements: shutdown waits for them.
    tasks: TaskTracker,
}

struct Idle<S> {
    session: S,
    slot: OwnedSemaphorePermit,
    born: Instant,
    used: Instant,
}

impl<S> Idle<S> {
    /// A session just logged in, holding its slot.
    fn fresh(session: S, slot: OwnedSemaphorePermit) -> Idle<S> {
        let now = Instant::now();
        Idle {
            session,
            slot,
            born: now,
            used: now,
        }
    }
}

/// Slots for `n` sessions (a semaphore's permits fit in a `u32`).
fn slot_count(n: usize) -> usize {
    n.clamp(1, u32::MAX as usize >> 4)
}

impl<C: Connector> Pool<C> {
    pub fn new(connector: C, limits: PoolLimits) -> Self {
        let max = slot_count(limits.max_sessions);
        Pool {
            inner: Arc::new(Inner {
                connector,
                limits,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max)),
                slots: Arc::new(Semaphore::new(max)),
                idle_added: Notify::new(),
                closing: AtomicBool::new(false),
                stats: PoolStats::default(),
                logins: Semaphore::new(limits.max_concurrent_logins.max(1)),
                breaker: Breaker::default(),
                probing: AtomicBool::new(false),
                tasks: TaskTracker::new(),
            }),
        }
    }

    pub fn connector(&self) -> &C {
        &self.inner.connector
    }

    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    /// Background work shutdown must wait for (aborts, logouts).
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// The circuit breaker in front of Snowflake.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    pub fn idle_count(&self) -> usize {
        lock(&self.inner.idle).len()
    }

    /// Sessions lent out right now.
    pub fn in_use(&self) -> usize {
        slot_count(self.inner.limits.max_sessions) - self.inner.permits.available_permits()
    }

    /// Sessions that exist on Snowflake right now, or may: logged in, logging in or logging out.
    pub fn sessions_open(&self) -> usize {
        slot_count(self.inner.limits.max_sessions) - self.inner.slots.available_permits()
    }

    /// Lend a session with `ctx` applied, within the time a login and the `USE` statements
    /// may take.
    pub async fn lease(&self, ctx: &Context) -> Result<Lease<C>, ToolError> {
        let deadline = Instant::now() + self.inner.limits.login_timeout + USE_TIMEOUT;
        self.lease_by(ctx, deadline).await
    }

    /// Lend a session with `ctx` applied, giving up at `deadline`. Waits while every session is
    /// busy.
    pub async fn lease_by(&self, ctx: &Context, deadline: Instant) -> Result<Lease<C>, ToolError> {
        self.inner.check_open()?;
        self.inner.breaker.check()?;
        let permit =
            match tokio::time::timeout_at(deadline, self.inner.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(shutting_down()),
                Err(_) => return Err(out_of_time()),
            };
        let (session, slot, born) = loop {
            // Registered before looking, so a session returned meanwhile is not missed.
            let returned = self.inner.idle_added.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            self.inner.check_open()?;
            if let Some(idle) = self.pick_idle(ctx) {
                break (idle.session, idle.slot, idle.born);
            }
            // A new login needs a slot: a free one; else an idle session that does not fit is
            // logged out to make room (its slot comes back once Snowflake forgot it); else
            // wait for a slot, or for a session to come back.
            let slot = match self.inner.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => match self.inner.least_recently_used() {
                    Some(victim) => self.inner.evict(victim).await?,
                    None => tokio::select! {
                        slot = self.inner.slots.clone().acquire_owned() => {
                            slot.map_err(|_| shutting_down())?
                        }
                        _ = &mut returned => continue,
                        _ = tokio::time::sleep_until(deadline) => return Err(out_of_time()),
                    },
                },
            };
            // Log in where the settings say and move with `USE`, so a context that does not
            // exist fails as a statement, not as a login (which emulators satisfy by creating
            // what was asked for).
            let default = self.inner.connector.default_context();
            let start = if can_switch(default, ctx) {
                default
            } else {
                ctx
            };
            let (session, slot) = self.inner.open_owned(start.clone(), slot, deadline).await?;
            break (session, slot, Instant::now());
        };
        let mut lease = Lease {
            session: Some(session),
            slot: Some(slot),
            born,
            pool: self.inner.clone(),
            _permit: permit,
        };
        // On failure the lease is dropped: a healthy session goes back to the idle list, a
        // broken one was already retired by `apply`.
        lease.apply(ctx, deadline).await?;
        Ok(lease)
    }

    /// Best idle session for `ctx`: same context, else one that can switch to it. Sessions past
    /// `max_lifetime` are retired on the way.
    fn pick_idle(&self, ctx: &Context) -> Option<Idle<C::Session>> {
        let mut idle = lock(&self.inner.idle);
        let max_lifetime = self.inner.limits.max_lifetime;
        let mut expired = Vec::new();
        let mut i = 0;
        while i < idle.len() {
            if idle[i].born.elapsed() >= max_lifetime {
                expired.push(idle.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // Same context; else one already on the same warehouse and role (only the schema
        // moves, and the warehouse stays warm); else any that can switch.
        let pick = idle
            .iter()
            .position(|s| s.session.context() == ctx)
            .or_else(|| {
                idle.iter().position(|s| {
                    let c = s.session.context();
                    c.warehouse == ctx.warehouse && c.role == ctx.role && can_switch(c, ctx)
                })
            })
            .or_else(|| {
                idle.iter()
                    .position(|s| can_switch(s.session.context(), ctx))
            });
        let chosen = pick.map(|i| idle.swap_remove(i));
        drop(idle);
        for old in expired {
            self.inner.retire(old.session, old.slot);
        }
        chosen
    }

    /// Log out every idle session and wait for it.
    pub async fn close_idle(&self) {
        let idle: Vec<Idle<C::Session>> = std::mem::take(&mut *lock(&self.inner.idle));
        let logouts: Vec<_> = idle
            .into_iter()
            .map(|s| {
                self.inner.tasks.spawn(async move {
                    s.session.close().await;
                    drop(s.slot);
                })
            })
            .collect();
        for logout in logouts {
            let _ = logout.await;
        }
    }

    /// Shutdown: no new logins; log out the idle sessions, and every session that comes back
    /// from now on (leases dropped late, logins finishing for callers that went away); wait (at
    /// most `deadline`) until every slot is back — every login logged out — and every abort
    /// was sent.
    pub async fn shutdown(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        self.inner.closing.store(true, Ordering::SeqCst);
        // Wakes leases waiting for a session; they see `closing`.
        self.inner.idle_added.notify_waiters();
        self.close_idle().await;
        self.inner.tasks.close();
        let all = slot_count(self.inner.limits.max_sessions) as u32;
        match tokio::time::timeout_at(until, self.inner.slots.acquire_many(all)).await {
            // Kept: nothing may log in after shutdown.
            Ok(Ok(slots)) => slots.forget(),
            _ => tracing::warn!(
                sessions = self.sessions_open(),
                "some Snowflake sessions were not logged out before exit"
            ),
        }
        if tokio::time::timeout_at(until, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some Snowflake aborts did not finish before exit");
        }
    }

    /// Keep the pool healthy: heartbeat sessions idle for `heartbeat_every`, retire those past
    /// `max_lifetime`, and log in until `min_idle` sessions wait. Call it periodically.
    pub async fn maintain(&self) {
        let (stale, old): (Vec<_>, Vec<_>) = {
            let mut idle = lock(&self.inner.idle);
            let limits = self.inner.limits;
            let taken: Vec<Idle<C::Session>> = std::mem::take(&mut *idle);
            let (keep, rest): (Vec<_>, Vec<_>) = taken.into_iter().partition(|s| {
                s.used.elapsed() < limits.heartbeat_every && s.born.elapsed() < limits.max_lifetime
            });
            *idle = keep;
            rest.into_iter()
                .partition(|s| s.born.elapsed() < limits.max_lifetime)
        };
        for s in old {
            self.inner.retire(s.session, s.slot);
        }
        // A session out of the idle list keeps its slot, so a lease meanwhile cannot log in
        // one session too many.
        for mut s in stale {
            self.inner.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            match s.session.heartbeat().await {
                Ok(()) => {
                    s.used = Instant::now();
                    self.inner.shelve(s);
                }
                Err(_) => self.inner.retire(s.session, s.slot),
            }
        }
        let wanted = self
            .inner
            .limits
            .min_idle
            .min(self.inner.limits.max_sessions);
        while self.idle_count() < wanted && self.inner.check_open().is_ok() {
            let Ok(slot) = self.inner.slots.clone().try_acquire_owned() else {
                break;
            };
            let ctx = self.inner.connector.default_context().clone();
            let deadline = Instant::now() + self.inner.limits.login_timeout + USE_TIMEOUT;
            if let Err(e) = self
                .inner
                .open_owned(ctx, slot, deadline)
                .await
                .map(|(session, slot)| self.inner.shelve(Idle::fresh(session, slot)))
            {
                tracing::warn!(error = %e, "cannot warm the pool");
                break;
            }
        }
    }
}

fn shutting_down() -> ToolError {
    ToolError::new("unavailable", "the server is shutting down")
}

fn out_of_time() -> ToolError {
    let mut e = ToolError::new(
        "busy",
        "no Snowflake session became ready in time; retry in a moment",
    );
    e.retry_after_ms = Some(1_000);
    e
}

impl<C: Connector> Inner<C> {
    fn check_open(&self) -> Result<(), ToolError> {
        if self.closing.load(Ordering::SeqCst) {
            Err(shutting_down())
        } else {
            Ok(())
        }
    }

    /// The idle session used least recently, taken out of the list (to make room).
    fn least_recently_used(&self) -> Option<Idle<C::Session>> {
        let mut idle = lock(&self.idle);
        let oldest = (0..idle.len()).min_by_key(|&i| idle[i].used)?;
        Some(idle.swap_remove(oldest))
    }

    /// Put a healthy session back in the idle list — or log it out when shutting down.
    fn shelve(&self, idle: Idle<C::Session>) {
        if self.closing.load(Ordering::SeqCst) {
            self.retire(idle.session, idle.slot);
            return;
        }
        lock(&self.idle).push(idle);
        self.idle_added.notify_waiters();
    }

    /// Log `session` out in the background; its `slot` is given back once the logout is done,
    /// so no new login can take its place on Snowflake before it is gone.
    fn retire(&self, session: C::Session, slot: OwnedSemaphorePermit) {
        self.stats.retired.fetch_add(1, Ordering::Relaxed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tasks.spawn_on(
                async move {
                    session.close().await;
                    drop(slot);
                },
                &rt,
            );
        }
    }

    /// Log `victim` out to make room, and hand its slot over once Snowflake forgot it. The
    /// logout runs in a task: a caller that goes away meanwhile does not cut it short, and the
    /// slot then comes back to the pool after it.
    async fn evict(&self, victim: Idle<C::Session>) -> Result<OwnedSemaphorePermit, ToolError> {
        self.stats.retired.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks.spawn(async move {
            victim.session.close().await;
            let _ = tx.send(victim.slot);
        });
        rx.await
            .map_err(|_| ToolError::internal("a logout ended without an answer"))
    }

    /// [`Inner::open`] in a task of its own that holds the session's `slot`. If the caller goes
    /// away meanwhile (its call was cancelled, its client disconnected, its deadline passed),
    /// the login still completes and the session joins the idle list — or is logged out when
    /// the pool is shutting down: Snowflake made it when the login arrived, and it must be
    /// logged out some day like any other.
    async fn open_owned(
        self: &Arc<Self>,
        ctx: Context,
        slot: OwnedSemaphorePermit,
        deadline: Instant,
    ) -> Result<(C::Session, OwnedSemaphorePermit), ToolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = self.clone();
        self.tasks.spawn(async move {
            let opened = inner.open(&ctx).await.map(|session| (session, slot));
            if let Err(Ok((session, slot))) = tx.send(opened) {
                inner.shelve(Idle::fresh(session, slot));
            }
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(_)) => Err(ToolError::internal("a login ended without an answer")),
            Err(_) => Err(out_of_time()),
        }
    }
}

pub use lease::Lease;

mod client;
mod context;
mod lease;
mod login;

#[cfg(test)]
mod tests;

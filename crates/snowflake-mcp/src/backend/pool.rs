//! The pool: a bounded set of Snowflake sessions, each lent to one statement at a time.
//!
//! At most `max_sessions` sessions exist; they are created on demand (and `min_idle` kept warm
//! by [`Pool::maintain`]), kept alive with heartbeats, and retired after errors or after
//! `max_lifetime` — replaced transparently by the next lease. A [`Lease`] hands one session to
//! one request with the request's context applied, using only the `USE` statements that differ
//! (`USE ROLE`, `USE WAREHOUSE`, `USE SCHEMA db.schema`), and prefers an idle session whose
//! context already matches, so a steady mix of clients rarely pays a switch.
//!
//! Isolation: a session can only be switched *to* a context, never *away from* a database,
//! warehouse or role into "none" (Snowflake has no `UNUSE`), so a request without a database
//! never gets a session another request pointed at one.
//!
//! The pool is generic over [`Connector`] so the scheduler-and-pool tests can drive it with a
//! scripted backend on a paused clock; production uses `snowflake_client`. The lock on the idle
//! list is only held to push or pick a session, never across an `.await`.

use crate::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use snowflake_client::{Error as SfError, ErrorKind, QueryOptions, RowLimits};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::breaker::Breaker;
use super::Context;
use crate::error::ToolError;
use crate::ident::Ident;

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
    /// Run a statement whose result is not needed (`USE ...`).
    async fn execute(&mut self, sql: &str, timeout: Duration) -> Result<(), SfError>;
    async fn heartbeat(&mut self) -> Result<(), SfError>;
    async fn close(self);
}

#[async_trait]
impl Connector for snowflake_client::Client {
    type Session = snowflake_client::Session;
    fn default_context(&self) -> &Context {
        snowflake_client::Client::default_context(self)
    }
    async fn connect(&self, ctx: &Context) -> Result<Self::Session, SfError> {
        self.login_with(ctx).await
    }
}

#[async_trait]
impl PooledSession for snowflake_client::Session {
    fn context(&self) -> &Context {
        snowflake_client::Session::context(self)
    }
    fn record_context(&mut self, known: &Context) {
        snowflake_client::Session::record_context(self, known)
    }
    fn is_poisoned(&self) -> bool {
        snowflake_client::Session::is_poisoned(self)
    }
    async fn execute(&mut self, sql: &str, timeout: Duration) -> Result<(), SfError> {
        // `USE` statements switching the context for a call are that call's, tagged as such.
        let options = QueryOptions {
            timeout: Some(timeout),
            query_tag: Some(crate::attribution::current()),
        };
        let result = self.query_with(sql, &options).await?;
        result
            .collect(RowLimits {
                max_rows: 1,
                max_bytes: 4096,
            })
            .await
            .map(|_| ())
    }
    async fn heartbeat(&mut self) -> Result<(), SfError> {
        snowflake_client::Session::heartbeat(self).await
    }
    async fn close(self) {
        let _ = snowflake_client::Session::close(self).await;
    }
}

/// Aborts the running statement on Snowflake when dropped before [`AbortOnDrop::disarm`]:
/// the future that owns it was dropped because its call was cancelled, its MCP session closed,
/// or a timeout fired.
pub(crate) struct AbortOnDrop {
    handle: Option<snowflake_client::SessionHandle>,
    tasks: TaskTracker,
}

impl AbortOnDrop {
    /// Arm for the statement `handle` runs; the abort runs on `tasks` (the pool's, so shutdown
    /// waits for it).
    pub(crate) fn new(handle: snowflake_client::SessionHandle, tasks: &TaskTracker) -> Self {
        AbortOnDrop {
            handle: Some(handle),
            tasks: tasks.clone(),
        }
    }

    pub(crate) fn disarm(mut self) {
        self.handle = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let (Some(handle), Ok(rt)) = (self.handle.take(), tokio::runtime::Handle::try_current())
        {
            // The statement's id is captured here, at drop time: by the time the spawned task
            // runs, the session may carry another client's statement.
            let abort = handle.abort_running();
            self.tasks.spawn_on(
                async move {
                    if let Err(e) = abort.await {
                        tracing::warn!(error = %e, "could not abort a cancelled statement");
                    }
                },
                &rt,
            );
        }
    }
}

/// Pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_sessions: usize,
    pub min_idle: usize,
    pub max_lifetime: Duration,
    pub heartbeat_every: Duration,
    /// Run `USE SECONDARY ROLES NONE` on every new session (see [`Inner::login`]).
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
    permits: Arc<Semaphore>,
    stats: PoolStats,
    logins: Semaphore,
    breaker: Breaker,
    probing: AtomicBool,
    /// Logouts of retired sessions and aborts of dropped statements: shutdown waits for them.
    tasks: TaskTracker,
}

struct Idle<S> {
    session: S,
    born: Instant,
    used: Instant,
}

impl<C: Connector> Pool<C> {
    pub fn new(connector: C, limits: PoolLimits) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                limits,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(limits.max_sessions.max(1))),
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
        self.inner.limits.max_sessions.max(1) - self.inner.permits.available_permits()
    }

    /// Lend a session with `ctx` applied. Waits while every session is busy.
    pub async fn lease(&self, ctx: &Context) -> Result<Lease<C>, ToolError> {
        self.inner.breaker.check()?;
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ToolError::new("unavailable", "the server is shutting down"))?;
        let (picked, expired) = self.pick_idle(ctx);
        let (session, born, permit) = match picked {
            Some(idle) => {
                for old in expired {
                    self.inner.retire(old, None);
                }
                (idle.session, idle.born, permit)
            }
            None => {
                // Sessions making room are logged out before the new one logs in, so Snowflake
                // never sees more than `max_sessions` at once (in tasks: a cancelled call
                // must not cut a logout short).
                let closing: Vec<_> = expired
                    .into_iter()
                    .map(|old| {
                        self.inner.stats.retired.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(old.close())
                    })
                    .collect();
                for logout in closing {
                    let _ = logout.await;
                }
                // Log in where the settings say and move with `USE`, so a context that does
                // not exist fails as a statement, not as a login (which emulators satisfy by
                // creating what was asked for).
                let default = self.inner.connector.default_context();
                let start = if can_switch(default, ctx) {
                    default
                } else {
                    ctx
                };
                let (session, permit) = self.inner.open_owned(start.clone(), permit).await?;
                (session, Instant::now(), permit)
            }
        };
        let mut lease = Lease {
            session: Some(session),
            born,
            pool: self.inner.clone(),
            permit: Some(permit),
        };
        // On failure the lease is dropped: a healthy session goes back to the idle list, a
        // broken one was already retired by `apply`.
        lease.apply(ctx).await?;
        Ok(lease)
    }

    /// Best idle session for `ctx`: same context, else one that can switch to it; and the idle
    /// sessions to retire — those past `max_lifetime`, and, when none fits, one to make room for
    /// a fresh login.
    fn pick_idle(&self, ctx: &Context) -> (Option<Idle<C::Session>>, Vec<C::Session>) {
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
        let chosen = match pick {
            Some(i) => Some(idle.swap_remove(i)),
            None => {
                if let Some(stale) = idle.pop() {
                    expired.push(stale);
                }
                None
            }
        };
        drop(idle);
        (chosen, expired.into_iter().map(|old| old.session).collect())
    }

    /// Log out every idle session and wait for it (shutdown). Leased sessions are closed by
    /// their leases' owners.
    pub async fn close_idle(&self) {
        let idle: Vec<Idle<C::Session>> = std::mem::take(&mut *lock(&self.inner.idle));
        for s in idle {
            s.session.close().await;
        }
    }

    /// Shutdown: log out the idle sessions, then wait (at most `deadline`) until every abort
    /// and every logout of a retired session has been sent — also those of statements aborted
    /// by the shutdown itself.
    pub async fn shutdown(&self, deadline: Duration) {
        self.close_idle().await;
        self.inner.tasks.close();
        if tokio::time::timeout(deadline, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some Snowflake logouts or aborts did not finish before exit");
        }
        // Sessions retired while we waited went back through `retire`; close any idle ones left.
        self.close_idle().await;
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
            self.inner.retire(s.session, None);
        }
        for mut s in stale {
            // A session out of the idle list holds a permit like any lent one, so a lease
            // meanwhile cannot log in one session too many.
            let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                lock(&self.inner.idle).push(s);
                continue;
            };
            self.inner.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            match s.session.heartbeat().await {
                Ok(()) => {
                    s.used = Instant::now();
                    lock(&self.inner.idle).push(s);
                }
                Err(_) => self.inner.retire(s.session, None),
            }
            drop(permit);
        }
        while self.idle_count()
            < self
                .inner
                .limits
                .min_idle
                .min(self.inner.limits.max_sessions)
        {
            let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                break;
            };
            let ctx = self.inner.connector.default_context().clone();
            match self.inner.open(&ctx).await {
                Ok(session) => {
                    let now = Instant::now();
                    lock(&self.inner.idle).push(Idle {
                        session,
                        born: now,
                        used: now,
                    });
                    drop(permit);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot warm the pool");
                    break;
                }
            }
        }
    }
}

impl<C: Connector> Inner<C> {
    /// Log `session` out in the background. A leased session's `permit` is held until the
    /// logout is done, so no new login can take its place on Snowflake before it is gone.
    fn retire(&self, session: C::Session, permit: Option<OwnedSemaphorePermit>) {
        self.stats.retired.fetch_add(1, Ordering::Relaxed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tasks.spawn_on(
                async move {
                    session.close().await;
                    drop(permit);
                },
                &rt,
            );
        }
    }

    /// [`Inner::open`] in a task of its own that holds the lease's `permit`. If the caller goes
    /// away meanwhile (its call was cancelled, its client disconnected), the login still
    /// completes and the session joins the idle list: Snowflake made it when the login
    /// arrived, and it must be logged out some day like any other.
    async fn open_owned(
        self: &Arc<Self>,
        ctx: Context,
        permit: OwnedSemaphorePermit,
    ) -> Result<(C::Session, OwnedSemaphorePermit), ToolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = self.clone();
        tokio::spawn(async move {
            let opened = inner.open(&ctx).await.map(|session| (session, permit));
            if let Err(Ok((session, _permit))) = tx.send(opened) {
                let now = Instant::now();
                lock(&inner.idle).push(Idle {
                    session,
                    born: now,
                    used: now,
                });
            }
        });
        rx.await
            .map_err(|_| ToolError::internal("a login ended without an answer"))?
    }
}

/// A session can move to `to` only where `to` names something: it cannot forget a database,
/// warehouse or role it has. A schema is forgotten by moving to another database (`USE
/// DATABASE` selects that database's default schema, which is what "no schema" asks for).
fn can_switch(from: &Context, to: &Context) -> bool {
    let schema_ok = from.schema == to.schema
        || to.schema.is_some()
        || (to.database.is_some() && to.database != from.database);
    schema_ok
        && [
            (&from.database, &to.database),
            (&from.warehouse, &to.warehouse),
            (&from.role, &to.role),
        ]
        .iter()
        .all(|(f, t)| f == t || t.is_some())
}

/// One session lent to one request. Dropping it returns the session to the pool, unless it was
/// interrupted mid-statement or retired.
pub struct Lease<C: Connector> {
    session: Option<C::Session>,
    born: Instant,
    pool: Arc<Inner<C>>,
    /// Held while the session exists: released when it goes back to the idle list, or once a
    /// retired session is logged out.
    permit: Option<OwnedSemaphorePermit>,
}

impl<C: Connector> Lease<C> {
    pub fn session(&mut self) -> &mut C::Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }

    /// Do not return this session to the pool.
    pub fn retire(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.retire(s, self.permit.take());
        }
    }

    /// A statement on this session worked: Snowflake answers.
    pub fn succeeded(&self) {
        self.pool.breaker.success();
    }

    /// Retire the session if `e` suggests it is no longer healthy; a network failure also
    /// counts towards opening the circuit.
    pub fn retire_if_broken(&mut self, e: &SfError) {
        if e.kind() == ErrorKind::Network {
            self.pool.failed();
        }
        if matches!(
            e.kind(),
            ErrorKind::Network
                | ErrorKind::Protocol
                | ErrorKind::SessionExpired
                | ErrorKind::Timeout
        ) {
            self.retire();
        }
    }

    /// Run the `USE` statements that differ between the session's context and `ctx`.
    async fn apply(&mut self, ctx: &Context) -> Result<(), ToolError> {
        for sql in switch_statements(self.session().context(), ctx) {
            self.pool
                .stats
                .context_switches
                .fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.session().execute(&sql, USE_TIMEOUT).await {
                self.retire_if_broken(&e);
                return Err(context_error(&sql, e));
            }
        }
        let known = Context {
            warehouse: ctx.warehouse.clone(),
            role: ctx.role.clone(),
            ..Default::default()
        };
        self.session().record_context(&known);
        Ok(())
    }
}

/// The `USE` statements that take a session from `current` to `wanted`, fewest first.
fn switch_statements(current: &Context, wanted: &Context) -> Vec<String> {
    let q = |name: &String| Ident::exact(name.clone()).quoted();
    let mut statements = Vec::new();
    if let Some(role) = wanted
        .role
        .as_ref()
        .filter(|r| current.role.as_ref() != Some(*r))
    {
        statements.push(format!("USE ROLE {}", q(role)));
    }
    if let Some(wh) = wanted
        .warehouse
        .as_ref()
        .filter(|w| current.warehouse.as_ref() != Some(*w))
    {
        statements.push(format!("USE WAREHOUSE {}", q(wh)));
    }
    let place_differs = wanted.database != current.database
        || (wanted.schema.is_some() && wanted.schema != current.schema);
    match (&wanted.database, &wanted.schema) {
        (Some(db), Some(schema)) if place_differs => {
            statements.push(format!("USE SCHEMA {}.{}", q(db), q(schema)))
        }
        (Some(db), None) if place_differs => statements.push(format!("USE DATABASE {}", q(db))),
        _ => {}
    }
    statements
}

impl<C: Connector> Drop for Lease<C> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if session.is_poisoned() || self.born.elapsed() >= self.pool.limits.max_lifetime {
                self.pool.retire(session, self.permit.take());
            } else {
                lock(&self.pool.idle).push(Idle {
                    session,
                    born: self.born,
                    used: Instant::now(),
                });
            }
        }
    }
}

fn context_error(sql: &str, e: SfError) -> ToolError {
    if e.kind() != ErrorKind::Sql {
        return e.into();
    }
    let what = sql
        .trim_start_matches("USE ")
        .split_whitespace()
        .next()
        .unwrap_or("object")
        .to_ascii_lowercase();
    let mut t = ToolError::from(e);
    t.kind = "not_found";
    t.message = format!(
        "cannot use that {what}: it does not exist or the role may not use it ({}). Check the name with list_databases / list_schemas.",
        t.message.split(" Fix the SQL").next().unwrap_or_default()
    );
    t
}

mod login;

#[cfg(test)]
mod tests;

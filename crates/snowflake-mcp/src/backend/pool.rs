//! The pool: a bounded set of Snowflake sessions, each lent to one statement at a time.
//!
//! At most `max_sessions` sessions exist; they are created on demand. A [`Lease`] hands one
//! session to one request with the request's context applied, using only the `USE` statements
//! that differ (`USE ROLE`, `USE WAREHOUSE`, `USE SCHEMA db.schema`), and prefers an idle
//! session whose context already matches. A request that finds every session busy waits for a
//! permit — it is never refused with "pool exhausted".
//!
//! Isolation: a session can only be switched *to* a context, never *away from* a database or
//! schema into "none" (Snowflake has no `UNUSE`), so a request without a database never gets a
//! session another request pointed at one; it gets a fresh session instead.
//!
//! The lock on the idle list is only ever held to push or pick a session, never across an
//! `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snowflake_client::{Client, ErrorKind, QueryOptions, RowLimits, Session};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Context;
use crate::error::ToolError;
use crate::ident::Ident;

/// Time allowed for one `USE` statement.
const USE_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub logins: AtomicU64,
    pub context_switches: AtomicU64,
    pub retired: AtomicU64,
}

/// A bounded set of Snowflake sessions.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    idle: Mutex<Vec<Session>>,
    permits: Arc<Semaphore>,
    stats: PoolStats,
}

impl Pool {
    pub fn new(client: Client, max_sessions: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                client,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_sessions.max(1))),
                stats: PoolStats::default(),
            }),
        }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    /// Sessions idle right now.
    pub fn idle_count(&self) -> usize {
        lock(&self.inner.idle).len()
    }

    /// Lend a session with `ctx` applied. Waits while every session is busy.
    pub async fn lease(&self, ctx: &Context) -> Result<Lease, ToolError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ToolError::new("unavailable", "the server is shutting down"))?;
        let picked = self.pick_idle(ctx);
        let session = match picked {
            Some(s) => s,
            None => {
                // Log in where the connection's settings say and move with `USE`, so a
                // context that does not exist fails as a statement (not as a login, which
                // Snowflake refuses and emulators silently satisfy by creating it).
                self.inner.stats.logins.fetch_add(1, Ordering::Relaxed);
                let default = self.inner.client.default_context();
                let start = if can_switch(default, ctx) {
                    default
                } else {
                    ctx
                };
                self.inner.client.login_with(start).await?
            }
        };
        let mut lease = Lease {
            session: Some(session),
            pool: self.inner.clone(),
            _permit: permit,
        };
        // On failure the lease is dropped: a healthy session goes back to the idle list, a
        // broken one was already retired by `apply`.
        lease.apply(ctx).await?;
        Ok(lease)
    }

    /// Best idle session for `ctx`: same context, else one that can switch to it. An idle
    /// session that can do neither is retired to make room for a fresh login.
    fn pick_idle(&self, ctx: &Context) -> Option<Session> {
        let mut idle = lock(&self.inner.idle);
        if let Some(i) = idle.iter().position(|s| s.context() == ctx) {
            return Some(idle.swap_remove(i));
        }
        if let Some(i) = idle.iter().position(|s| can_switch(s.context(), ctx)) {
            return Some(idle.swap_remove(i));
        }
        if let Some(stale) = idle.pop() {
            drop(idle);
            self.inner.retire(stale);
        }
        None
    }
}

impl Inner {
    fn retire(&self, session: Session) {
        self.stats.retired.fetch_add(1, Ordering::Relaxed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = session.close().await;
            });
        }
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One session lent to one request. Dropping it returns the session to the pool (unless it
/// was interrupted mid-statement, in which case it is retired).
pub struct Lease {
    session: Option<Session>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    pub fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }

    /// Do not return this session to the pool (after errors that may have broken it).
    pub fn retire(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.retire(s);
        }
    }

    /// Retire the session if `e` suggests it is no longer healthy.
    pub fn retire_if_broken(&mut self, e: &snowflake_client::Error) {
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
        let current = self.session().context().clone();
        let mut statements = Vec::new();
        if let Some(role) = ctx
            .role
            .as_ref()
            .filter(|r| current.role.as_ref() != Some(*r))
        {
            statements.push(format!("USE ROLE {}", Ident::exact(role.clone()).quoted()));
        }
        if let Some(wh) = ctx
            .warehouse
            .as_ref()
            .filter(|w| current.warehouse.as_ref() != Some(*w))
        {
            statements.push(format!(
                "USE WAREHOUSE {}",
                Ident::exact(wh.clone()).quoted()
            ));
        }
        let place_differs = ctx.database != current.database
            || (ctx.schema.is_some() && ctx.schema != current.schema);
        match (&ctx.database, &ctx.schema) {
            (Some(db), Some(schema)) if place_differs => statements.push(format!(
                "USE SCHEMA {}.{}",
                Ident::exact(db.clone()).quoted(),
                Ident::exact(schema.clone()).quoted()
            )),
            (Some(db), None) if place_differs => statements.push(format!(
                "USE DATABASE {}",
                Ident::exact(db.clone()).quoted()
            )),
            _ => {}
        }
        let options = QueryOptions {
            timeout: Some(USE_TIMEOUT),
            ..Default::default()
        };
        for sql in statements {
            self.pool
                .stats
                .context_switches
                .fetch_add(1, Ordering::Relaxed);
            let session = self.session();
            match session.query_with(&sql, &options).await {
                Ok(result) => {
                    result
                        .collect(RowLimits {
                            max_rows: 1,
                            max_bytes: 4096,
                        })
                        .await?;
                }
                Err(e) => {
                    self.retire_if_broken(&e);
                    return Err(context_error(&sql, e));
                }
            }
        }
        let known = Context {
            database: None,
            schema: None,
            warehouse: ctx.warehouse.clone(),
            role: ctx.role.clone(),
        };
        self.session().record_context(&known);
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if session.is_poisoned() {
                self.pool.retire(session);
            } else {
                lock(&self.pool.idle).push(session);
            }
        }
    }
}

fn context_error(sql: &str, e: snowflake_client::Error) -> ToolError {
    if e.kind() == ErrorKind::Sql {
        let what = sql.trim_start_matches("USE ").to_ascii_lowercase();
        let what = what
            .split_whitespace()
            .next()
            .unwrap_or("object")
            .to_string();
        let mut t = ToolError::from(e);
        t.kind = "not_found";
        t.message = format!(
            "cannot use that {what}: it does not exist or the role may not use it ({}). Check the name with list_databases / list_schemas.",
            t.message.split(" Fix the SQL").next().unwrap_or_default()
        );
        t
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(db: Option<&str>, schema: Option<&str>) -> Context {
        Context {
            database: db.map(Into::into),
            schema: schema.map(Into::into),
            warehouse: None,
            role: None,
        }
    }

    #[test]
    fn sessions_never_switch_away_from_a_database_into_none() {
        assert!(can_switch(&ctx(None, None), &ctx(Some("A"), None)));
        assert!(can_switch(
            &ctx(Some("A"), Some("S")),
            &ctx(Some("B"), Some("T"))
        ));
        assert!(!can_switch(&ctx(Some("A"), None), &ctx(None, None)));
        assert!(!can_switch(
            &ctx(Some("A"), Some("S")),
            &ctx(Some("A"), None)
        ));
    }
}

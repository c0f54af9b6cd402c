//! Logging in: the pool's new sessions, each within a deadline and a small cap on logins in
//! flight, and the circuit breaker's side of it — failures counted, the background probe that
//! closes the circuit again once a login works.
//!
//! A login is never cut short once sent: the connect itself is bounded (a login that got no
//! answer left no token to log out with), and what follows it — `USE SECONDARY ROLES NONE`,
//! the logout of a session where that failed — is bounded by the session's own deadlines, so
//! every session that got a token is either handed over or logged out.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Connector, Idle, Inner, PooledSession, USE_TIMEOUT};
use crate::backend::breaker::Tripped;
use crate::error::ToolError;
use crate::Context;

impl<C: Connector> Inner<C> {
    /// Log in a new session, within `login_timeout` (waiting for one of the few login slots
    /// included), unless the circuit is open. Failures feed the [`Breaker`]; the one that opens
    /// it starts the background probe. The caller holds the session's slot.
    pub(super) async fn open(self: &Arc<Self>, ctx: &Context) -> Result<C::Session, ToolError> {
        self.breaker.check()?;
        match self.login(ctx).await {
            Ok(session) => {
                self.breaker.success();
                Ok(session)
            }
            Err(e) => {
                self.failed();
                Err(e)
            }
        }
    }

    /// One login. Only the role `USE ROLE` names may be active on the session: Snowflake users
    /// created today have `DEFAULT_SECONDARY_ROLES = ('ALL')`, which would make every role
    /// granted to the service user active whatever the client's role, so secondary roles are
    /// switched off before the session is used — and a session where that fails is logged out,
    /// never used.
    pub(super) async fn login(&self, ctx: &Context) -> Result<C::Session, ToolError> {
        let connect = async {
            let _turn = self
                .logins
                .acquire()
                .await
                .map_err(|_| ToolError::new("unavailable", "the server is shutting down"))?;
            self.stats.logins.fetch_add(1, Ordering::Relaxed);
            self.connector.connect(ctx).await.map_err(ToolError::from)
        };
        let mut session = match tokio::time::timeout(self.limits.login_timeout, connect).await {
            Ok(connected) => connected?,
            Err(_) => {
                let mut e = ToolError::new(
                    "unavailable",
                    format!(
                        "Snowflake did not complete a login within {} s; retry shortly",
                        self.limits.login_timeout.as_secs()
                    ),
                );
                e.retry_after_ms = Some(2_000);
                return Err(e);
            }
        };
        if self.limits.secondary_roles_none {
            let deadline = Instant::now() + USE_TIMEOUT.min(self.limits.login_timeout);
            if let Err(e) = session.execute("USE SECONDARY ROLES NONE", deadline).await {
                session.close().await;
                return Err(ToolError::from(e));
            }
        }
        Ok(session)
    }

    /// Snowflake could not be reached once more.
    pub(super) fn failed(self: &Arc<Self>) {
        self.stats.login_failures.fetch_add(1, Ordering::Relaxed);
        if self.breaker.failure() == Tripped::Now {
            tracing::warn!("Snowflake is not answering: failing calls fast until it is back");
            self.spawn_probe();
        }
    }

    /// Probe in the background, with growing pauses, until a login works; then close the
    /// circuit, keeping the session. The probe's session needs a slot like any other: a free
    /// one, else an idle session is logged out to make room; with every session lent out, the
    /// probe waits for its next turn.
    pub(super) fn spawn_probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::SeqCst);
            return;
        };
        let inner = self.clone();
        rt.spawn(async move {
            loop {
                let pause = inner.breaker.next_probe_in().unwrap_or_default();
                tokio::time::sleep(pause).await;
                if !inner.breaker.is_open() || inner.check_open().is_err() {
                    break;
                }
                let slot = match inner.slots.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => match inner.least_recently_used() {
                        Some(victim) => inner.evict(victim).await.ok(),
                        None => None,
                    },
                };
                let outcome = match slot {
                    Some(slot) => {
                        let ctx = inner.connector.default_context().clone();
                        inner.login(&ctx).await.map(|session| (session, slot))
                    }
                    None => Err(ToolError::new("busy", "every session is lent out")),
                };
                match outcome {
                    Ok((session, slot)) => {
                        inner.breaker.success();
                        tracing::info!("Snowflake answers again");
                        inner.shelve(Idle::fresh(session, slot));
                        break;
                    }
                    Err(_) => {
                        inner.stats.login_failures.fetch_add(1, Ordering::Relaxed);
                        let pause = inner.breaker.probe_failed();
                        tracing::warn!(
                            next_in_s = pause.as_secs(),
                            "Snowflake still not answering"
                        );
                    }
                }
            }
            inner.probing.store(false, Ordering::SeqCst);
        });
    }
}

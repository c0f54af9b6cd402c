//! Logging in: the pool's new sessions, each within a deadline and a small cap on logins in
//! flight, and the circuit breaker's side of it — failures counted, the background probe that
//! closes the circuit again once a login works.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use snowflake_client::Error as SfError;
use tokio::time::Instant;

use super::{Connector, Idle, Inner, PooledSession, USE_TIMEOUT};
use crate::backend::breaker::Tripped;
use crate::backend::Context;
use crate::error::ToolError;
use crate::lock;

impl<C: Connector> Inner<C> {
    /// Log in a new session, within `login_timeout` (waiting for one of the few login slots
    /// included), unless the circuit is open. Failures feed the [`Breaker`]; the one that opens
    /// it starts the background probe.
    pub(super) async fn open(self: &Arc<Self>, ctx: &Context) -> Result<C::Session, ToolError> {
        self.breaker.check()?;
        let attempt = async {
            let _slot = self
                .logins
                .acquire()
                .await
                .map_err(|_| ToolError::new("unavailable", "the server is shutting down"))?;
            self.stats.logins.fetch_add(1, Ordering::Relaxed);
            self.login(ctx).await.map_err(ToolError::from)
        };
        match tokio::time::timeout(self.limits.login_timeout, attempt).await {
            Ok(Ok(session)) => {
                self.breaker.success();
                Ok(session)
            }
            Ok(Err(e)) => {
                self.failed();
                Err(e)
            }
            Err(_) => {
                self.failed();
                let mut e = ToolError::new(
                    "unavailable",
                    format!(
                        "Snowflake did not complete a login within {} s; retry shortly",
                        self.limits.login_timeout.as_secs()
                    ),
                );
                e.retry_after_ms = Some(2_000);
                Err(e)
            }
        }
    }

    /// One login. Only the role `USE ROLE` names may be active on the session: Snowflake users
    /// created today have `DEFAULT_SECONDARY_ROLES = ('ALL')`, which would make every role
    /// granted to the service user active whatever the client's role, so secondary roles are
    /// switched off before the session is used — and a session where that fails is not used.
    pub(super) async fn login(&self, ctx: &Context) -> Result<C::Session, SfError> {
        let mut session = self.connector.connect(ctx).await?;
        if self.limits.secondary_roles_none {
            if let Err(e) = session
                .execute("USE SECONDARY ROLES NONE", USE_TIMEOUT)
                .await
            {
                self.retire(session, None);
                return Err(e);
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
    /// circuit (keeping the session when there is room for it).
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
                if !inner.breaker.is_open() {
                    break;
                }
                let ctx = inner.connector.default_context().clone();
                inner.stats.logins.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(inner.limits.login_timeout, inner.login(&ctx)).await {
                    Ok(Ok(session)) => {
                        inner.breaker.success();
                        tracing::info!("Snowflake answers again");
                        match inner.permits.clone().try_acquire_owned() {
                            Ok(_permit) => {
                                let now = Instant::now();
                                lock(&inner.idle).push(Idle {
                                    session,
                                    born: now,
                                    used: now,
                                });
                            }
                            Err(_) => inner.retire(session, None),
                        }
                        break;
                    }
                    _ => {
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

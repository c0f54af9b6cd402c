//! The pool's side of `snowflake_client`: its sessions as [`PooledSession`]s, and the guard that
//! aborts a statement whose call went away.

use async_trait::async_trait;
use snowflake_client::{Error as SfError, QueryOptions, RowLimits};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::{Connector, PooledSession, USE_TIMEOUT};
use crate::Context;

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
    async fn execute(&mut self, sql: &str, deadline: Instant) -> Result<(), SfError> {
        // `USE` statements switching the context for a call are that call's, tagged as such.
        let left = deadline.saturating_duration_since(Instant::now());
        let options = QueryOptions {
            timeout: Some(left.min(USE_TIMEOUT)),
            query_tag: Some(crate::observe::attribution::current()),
            deadline: Some(deadline),
            ..Default::default()
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

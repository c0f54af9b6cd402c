//! The [`SessionHandle`]: what may be done to a session from other tasks while it runs a
//! statement — aborting that statement and sending heartbeats.
//!
//! A handle shares the session's tokens and the request id of the statement in flight, but
//! never renews a token itself (only the [`Session`](super::Session) does, between
//! statements), so it cannot race the statement it may abort.

use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;

use super::client::ClientInner;
use super::{lock, Shared, ABORT_WAIT, CONTROL_WAIT};
use crate::error::Result;
use crate::http::Retry;

/// Aborts the running statement and sends heartbeats, from any task, while the [`Session`] is
/// busy. Never renews tokens (only the session does, between statements).
///
/// [`Session`]: super::Session
#[derive(Clone)]
pub struct SessionHandle {
    pub(super) client: Arc<ClientInner>,
    pub(super) shared: Arc<Shared>,
}

impl SessionHandle {
    /// Abort the statement in flight, if any. Returns whether one was running. The statement
    /// then fails with [`ErrorKind::Cancelled`].
    ///
    /// [`ErrorKind::Cancelled`]: crate::ErrorKind::Cancelled
    pub async fn abort(&self) -> Result<bool> {
        self.abort_running().await
    }

    /// Abort the statement running **now**: its request id is read when this is called, not when
    /// the returned future first runs. A caller that gives up on a statement (and spawns the
    /// abort) thereby never aborts a later statement that reused the session meanwhile.
    pub fn abort_running(
        &self,
    ) -> impl std::future::Future<Output = Result<bool>> + Send + 'static {
        let running = lock(&self.shared.running).clone();
        let handle = self.clone();
        async move {
            match running {
                Some(request_id) => handle
                    .abort_request(&request_id, Instant::now() + ABORT_WAIT)
                    .await
                    .map(|_| true),
                None => Ok(false),
            }
        }
    }

    pub(super) async fn abort_request(&self, request_id: &str, deadline: Instant) -> Result<()> {
        let url = self.client.transport.url(
            "queries/v1/abort-request",
            &[("requestId", uuid::Uuid::new_v4().to_string().as_str())],
        )?;
        let body = json!({"sqlText": "", "requestId": request_id});
        let env = self
            .client
            .transport
            .post(
                url,
                Some(&self.shared.session_token()),
                &body,
                Retry::Always,
                deadline,
            )
            .await?;
        // 000605: the statement already finished; nothing left to abort.
        if env.success || env.code.as_deref() == Some("000605") {
            Ok(())
        } else {
            Err(env.error())
        }
    }

    /// Keep the session alive. Fails with [`ErrorKind::SessionExpired`] once the session was
    /// closed or expired (the session itself renews on its next statement).
    ///
    /// [`ErrorKind::SessionExpired`]: crate::ErrorKind::SessionExpired
    pub async fn heartbeat(&self) -> Result<()> {
        let url = self.client.transport.url("session/heartbeat", &[])?;
        let env = self
            .client
            .transport
            .post(
                url,
                Some(&self.shared.session_token()),
                &json!({}),
                Retry::Always,
                Instant::now() + CONTROL_WAIT,
            )
            .await?;
        if env.success {
            Ok(())
        } else {
            Err(env.error())
        }
    }

    /// Where statement `query_id` stands, from Snowflake's monitoring
    /// (`GET /monitoring/queries/<id>`, as gosnowflake's `monitoring.go` and the Python
    /// connector's `get_query_status` read it): `None` while Snowflake has nothing yet.
    pub async fn query_status(&self, query_id: &str) -> Result<Option<QueryStatus>> {
        if !super::is_query_id(query_id) {
            return Err(crate::error::Error::protocol("not a query id"));
        }
        let url = self
            .client
            .transport
            .url(&format!("monitoring/queries/{query_id}"), &[])?;
        let env = self
            .client
            .transport
            .get(
                url,
                Some(&self.shared.session_token()),
                Instant::now() + CONTROL_WAIT,
            )
            .await?;
        if !env.success {
            return Err(env.error());
        }
        let first = &env.data["queries"][0];
        Ok(first["status"].as_str().map(|status| QueryStatus {
            status: status.to_string(),
            produced_rows: first["stats"]["producedRows"].as_u64(),
        }))
    }
}

/// A running statement's state as Snowflake's monitoring reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryStatus {
    /// `QUEUED`, `RESUMING_WAREHOUSE`, `RUNNING`, `BLOCKED`, `SUCCESS`, `FAILED_WITH_ERROR`...
    pub status: String,
    pub produced_rows: Option<u64>,
}

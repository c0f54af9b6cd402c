//! Resumption: MCP sessions that outlive the process.
//!
//! rmcp's Streamable HTTP server asks a [`SessionStore`] for a session id it does not know and,
//! when the store has it, replays the client's original `initialize` so the session carries on
//! without a 404 or a new handshake. [`McpSessionStore`] implements that hook on our
//! [`StateStore`], which also keeps each session's client and context (written by the handler
//! in the server module). Sessions idle longer than `sessions.idle_timeout` are not restored and
//! are swept from the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use crate::store::{StateStore, StoredSession};

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// rmcp's session-restore hook, backed by the state store.
pub struct McpSessionStore {
    store: Arc<dyn StateStore>,
    idle_timeout: Duration,
}

impl McpSessionStore {
    pub fn new(store: Arc<dyn StateStore>, idle_timeout: Duration) -> Self {
        McpSessionStore {
            store,
            idle_timeout,
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for McpSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(stored) = self
            .store
            .load_session(session_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        if stored.last_seen < unix_now() - self.idle_timeout.as_secs() as i64 {
            let _ = self.store.delete_session(session_id).await;
            return Ok(None);
        }
        let Some(params) = stored.init_params else {
            return Ok(None);
        };
        let params: InitializeRequestParams = serde_json::from_str(&params)?;
        Ok(Some(SessionState::new(params)))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let now = unix_now();
        let session = StoredSession {
            id: session_id.to_string(),
            client_name: Some(state.initialize_params.client_info.name.clone()),
            client_version: Some(state.initialize_params.client_info.version.clone()),
            init_params: Some(serde_json::to_string(&state.initialize_params)?),
            created: now,
            last_seen: now,
            ..Default::default()
        };
        self.store
            .save_session(&session)
            .await
            .map_err(|e| e.to_string().into())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.store
            .delete_session(session_id)
            .await
            .map_err(|e| e.to_string().into())
    }
}

//! Resumption: MCP sessions that outlive the process.
//!
//! rmcp's Streamable HTTP server asks a [`SessionStore`] for a session id it does not know and,
//! when the store has it, replays the client's original `initialize` so the session carries on
//! without a 404 or a new handshake. [`McpSessionStore`] implements that hook on our
//! [`StateStore`], which also keeps each session's client and context (written by the handler
//! in the server module). Sessions idle longer than `sessions.idle_timeout` are not restored and
//! are swept from the store.
//!
//! What is stored is bounded ([`StoredLimits`]): a session's `initialize` parameters (client
//! info and capabilities) up to `sessions.max_client_info_bytes` — a larger `initialize` is
//! refused before anything is kept — and sessions per client and for all anonymous clients
//! together, live or parked.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use crate::error::ToolError;
use crate::sessions::SessionState as LiveSession;
use crate::state::{owner_group, StateStore, StoredSession, ANONYMOUS_GROUP};
use crate::unix_now;

/// Bounds on what the state store keeps of MCP sessions (`[sessions]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredLimits {
    pub max_per_client: usize,
    pub max_anonymous: usize,
    pub max_init_bytes: usize,
}

impl StoredLimits {
    /// Refuse `initialize` parameters larger than what is stored per session.
    pub fn check_size(&self, params: &InitializeRequestParams) -> Result<String, ToolError> {
        let json = serde_json::to_string(params)
            .map_err(|e| ToolError::new("invalid_argument", e.to_string()))?;
        if json.len() > self.max_init_bytes {
            return Err(ToolError::new(
                "invalid_argument",
                format!(
                    "the initialize request's client info and capabilities take {} bytes; at most {} are accepted",
                    json.len(),
                    self.max_init_bytes
                ),
            ));
        }
        Ok(json)
    }

    /// Refuse a new session for `client` when its group already has its maximum stored.
    pub async fn check_room(
        &self,
        store: &dyn StateStore,
        client: &str,
        idle_timeout: Duration,
    ) -> Result<(), ToolError> {
        let group = owner_group(client);
        let max = if group == ANONYMOUS_GROUP {
            self.max_anonymous
        } else {
            self.max_per_client
        };
        let since = unix_now() - idle_timeout.as_secs() as i64;
        let counted =
            tokio::time::timeout(Duration::from_secs(3), store.count_sessions(group, since)).await;
        let n = match counted {
            Ok(Ok(n)) => n,
            // A store that cannot count cannot record the new session's owner either: the door
            // answers 503 then, so nothing unbounded is kept. Not refused here, so the client
            // gets that retryable 503 rather than a JSON-RPC error.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not count stored sessions");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!("the state store did not count stored sessions in time");
                return Ok(());
            }
        };
        if n >= max {
            let whose = if group == ANONYMOUS_GROUP {
                "anonymous clients together have".to_string()
            } else {
                format!("client '{client}' has")
            };
            return Err(ToolError::new(
                "too_many_sessions",
                format!(
                    "{whose} the maximum of {max} stored sessions; close sessions you no longer use (DELETE) or wait for idle ones to expire"
                ),
            ));
        }
        Ok(())
    }
}

/// rmcp's session-restore hook, backed by the state store.
pub struct McpSessionStore {
    store: Arc<dyn StateStore>,
    idle_timeout: Duration,
    limits: StoredLimits,
}

impl McpSessionStore {
    pub fn new(store: Arc<dyn StateStore>, idle_timeout: Duration, limits: StoredLimits) -> Self {
        McpSessionStore {
            store,
            idle_timeout,
            limits,
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
        // The handler refused an oversized `initialize` already (and the door drops its
        // session); it is not written even for that moment.
        let init_params = self
            .limits
            .check_size(&state.initialize_params)
            .map_err(|e| e.message)?;
        let now = unix_now();
        let session = StoredSession {
            id: session_id.to_string(),
            client_name: Some(state.initialize_params.client_info.name.clone()),
            client_version: Some(state.initialize_params.client_info.version.clone()),
            init_params: Some(init_params),
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

/// Write the session to the state store: at once when its context changed (an answer the
/// client saw must survive a crash), otherwise at most once a minute to refresh `last_seen`.
pub(super) async fn persist(
    store: &Arc<dyn StateStore>,
    session: &LiveSession,
    context_changed: bool,
) {
    let Some(id) = session.mcp_session_id() else {
        return;
    };
    if !session.due_for_persist(Duration::from_secs(60)) && !context_changed {
        return;
    }
    let created = session
        .created
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let stored = StoredSession {
        id,
        client_id: Some(session.client.id.to_string()),
        client_name: session.client_info.as_ref().map(|i| i.name.clone()),
        client_version: session.client_info.as_ref().map(|i| i.version.clone()),
        context: session.context(),
        init_params: None,
        created,
        last_seen: unix_now(),
    };
    // Bounded: a locked state store must not hold up the call's answer.
    match tokio::time::timeout(Duration::from_secs(1), store.save_session(&stored)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not persist a session"),
        Err(_) => tracing::error!("the state store did not persist a session within 1 s"),
    }
}

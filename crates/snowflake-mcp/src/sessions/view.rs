//! The live sessions as the operator's console shows them: who owns each, with which client
//! software, in which context, how old and how idle. A session's id is never shown whole: the
//! console names it by the first hex digits of its id's SHA-256, which can end it from the
//! console and is no use at `/mcp`.

use std::time::SystemTime;

use super::{Registry, SessionState};
use crate::lock;

/// Hex digits of the id's digest the console names a session by.
const SHOWN: usize = 16;

/// One live session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionView {
    /// First hex digits of the SHA-256 of its `Mcp-Session-Id`; `None` for a client's
    /// sessionless (2026-07-28) state.
    pub id: Option<String>,
    pub client: String,
    /// The signed-in person's name, for a person's session.
    pub person: Option<String>,
    /// The MCP client software (`name version`), from `initialize`.
    pub software: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    pub age_s: u64,
    pub idle_s: u64,
    pub in_flight: usize,
}

fn view(s: &SessionState, id: Option<String>) -> SessionView {
    let context = s.context().unwrap_or_default();
    SessionView {
        id,
        client: s.client.id.to_string(),
        person: s.policy().person.as_ref().map(|p| p.name.to_string()),
        software: s
            .client_info
            .as_ref()
            .map(|i| format!("{} {}", i.name, i.version)),
        database: context.database,
        schema: context.schema,
        warehouse: context.warehouse,
        role: context.role,
        age_s: SystemTime::now()
            .duration_since(s.created)
            .map_or(0, |d| d.as_secs()),
        idle_s: s.idle_for().as_secs(),
        in_flight: s.in_flight(),
    }
}

/// How the console names the session whose transport id is `mcp_session_id`.
fn shown_id(mcp_session_id: &str) -> String {
    crate::sha256_hex(mcp_session_id)[..SHOWN].to_string()
}

impl Registry {
    /// Every live session on this replica, oldest first (sessionless states last).
    pub fn list(&self) -> Vec<SessionView> {
        let state = lock(&self.state);
        let mut sessions: Vec<(SystemTime, SessionView)> = state
            .live
            .values()
            .map(|s| {
                (
                    s.created,
                    view(s, s.mcp_session_id().map(|id| shown_id(&id))),
                )
            })
            .collect();
        sessions.sort_by_key(|(created, _)| *created);
        let mut list: Vec<SessionView> = sessions.into_iter().map(|(_, v)| v).collect();
        list.extend(state.sessionless.values().map(|s| view(s, None)));
        list
    }

    /// The live session the console names `shown` (see [`SessionView::id`]): its transport id
    /// and how the console shows it.
    pub fn find_shown(&self, shown: &str) -> Option<(String, SessionView)> {
        if shown.len() != SHOWN {
            return None;
        }
        let state = lock(&self.state);
        state.live.values().find_map(|s| {
            let id = s.mcp_session_id()?;
            let shown_here = shown_id(&id);
            (shown_here == shown).then(|| (id, view(s, Some(shown_here))))
        })
    }
}

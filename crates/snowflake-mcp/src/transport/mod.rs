//! Transport: the door every call comes through, and the MCP handler behind it.
//!
//! Owns everything that knows about bytes on a socket and about the MCP protocol: the HTTP
//! router ([`server`]) with `/mcp`, `/healthz`, `/readyz` and `/metrics` ([`ops`]); the
//! connection guard ([`conn`], [`peers`]: connection, header and per-address limits); TLS
//! ([`tls`]); Host/Origin checks and body bounds ([`http`]); SSE event buffering and resumption
//! ([`events`]); the session door that keeps every MCP session to the principal that opened it
//! ([`ownership`]) and stores sessions for other replicas ([`resume`]); stdio; and the
//! `connect` bridge from stdio to a remote server ([`bridge`]).
//!
//! It turns a request into `(caller, tool, arguments)` and hands it to [`crate::tools`]; it
//! must not decide policy, build SQL, or talk to the backend except through the tools (health
//! probes excepted). Every input is bounded here, before any other stage sees it.

pub mod apps;
pub mod bridge;
mod confirm;
pub mod conn;
pub mod console;
mod door;
pub mod events;
pub mod handler;
pub mod http;
pub mod ops;
pub mod ownership;
pub mod peers;
pub mod resources;
pub mod resume;
pub mod server;
pub mod shutdown;
pub mod stdio;
mod tasks;
pub mod tls;

use std::sync::Arc;

use rmcp::model::Tool;
use tokio_util::sync::CancellationToken;

use crate::identity::Clients;
use crate::sessions::Registry;
use crate::tools::Tools;

/// What every session handler shares.
pub struct App {
    pub tools: std::sync::Arc<Tools>,
    pub registry: Arc<Registry>,
    pub clients: Arc<Clients>,
    pub tool_list: Vec<Tool>,
    /// Tool calls being served right now (graceful shutdown waits for them).
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Cancelled when the shutdown grace period is over: calls still running give up.
    pub stopping: CancellationToken,
    /// What the state store keeps of MCP sessions.
    pub stored: crate::transport::resume::StoredLimits,
    /// Who may use the operator's console; no console without it.
    pub console: Option<crate::identity::operators::ConsoleAccess>,
}

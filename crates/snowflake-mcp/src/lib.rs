//! snowflake-mcp: a Model Context Protocol server for Snowflake that many AI clients share.
//!
//! The path of one tool call, module by module:
//!
//! 1. [`server`] — the transport (stdio or Streamable HTTP) and the per-MCP-session handler;
//! 2. [`identity`] — bearer token → client and its [`policy`] (everything one client may do); [`ownership`] — the HTTP door that
//!    keeps every MCP session to the principal that opened it; [`sessions`] — the registry of MCP
//!    sessions with their context;
//! 3. [`tools`] — argument checks, the read-only [`guard`], identifier quoting ([`ident`]),
//!    and result rendering ([`render`]);
//! 4. [`gateway`] — metadata cache and coalescing, then the fair [`scheduler`];
//! 5. [`backend`] — the database behind the tools: Snowflake through a [`backend::pool`] of
//!    sessions (the `snowflake-client` crate speaks the protocol), or the offline demo;
//! 6. [`error`] — how a failure reads to the model.
//!
//! [`config`] holds the settings and [`check`] the `snowflake-mcp check` command.

pub mod admission;
pub mod attribution;
pub mod audit;
pub mod backend;
pub mod bridge;
pub mod check;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod error;
pub mod events;
pub mod gateway;
pub mod guard;
pub mod http;
pub mod ident;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod ownership;
pub mod parking;
pub mod peers;
pub mod policy;
pub mod progress;
pub mod redact;
pub mod render;
pub mod resume;
pub mod scheduler;
pub mod server;
pub mod sessions;
pub mod store;
pub mod tls;
pub mod token_exchange;
pub mod tools;

/// Lock a mutex, carrying on after a panic elsewhere: every guarded value here stays consistent
/// between statements, so a poisoned lock holds nothing half-written.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `job` every `period` in the background, for the life of the process (upkeep: pool
/// heartbeats, expiry sweeps, audit pruning).
pub fn spawn_every<F, Fut>(period: std::time::Duration, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            job().await;
        }
    });
}

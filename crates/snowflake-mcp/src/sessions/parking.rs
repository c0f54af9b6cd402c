//! Parking idle MCP sessions: out of memory, still alive.
//!
//! Each MCP session held by rmcp costs a worker task, a service task and seven channels whether
//! or not it is used — about 65 KiB of resident memory (measured in BENCHMARKS.md; our own
//! session state is a few hundred bytes). A session without a tool call for
//! `[sessions] park_after_secs`, and none running, is parked: its rmcp worker is closed (and
//! its registration released, as on any close) while its record in the state store — owner,
//! client info, the `initialize` to replay, context — stays. Its next request, POST, GET or
//! DELETE, restores it on the path a restart uses (see [`crate::transport::resume`]); the client sees no
//! difference, except that a standalone GET stream it held open ends (servers may close streams
//! at any time), and a GET to reopen it is answered 405 until a call has brought the session
//! back (see [`crate::transport::ownership`]) — otherwise every idle client holding such a stream would
//! restore its session a few seconds after it was parked. This server never sends anything on
//! that stream. Parked sessions still expire after `idle_timeout_secs`.
//!
//! Memory given back by many sessions stays with the allocator for a while: jemalloc returns
//! freed pages only after its decay time, and only while it is busy. After a sweep during which
//! sessions were parked or ended, it is asked to return them at once
//! ([`crate::release_free_memory`]).

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;

use crate::sessions::Registry;

/// Park sessions idle for `after` (never when `None`), checking every quarter of it, at least
/// every 30 s; and give freed memory back after sessions ended.
pub fn spawn(registry: Arc<Registry>, sessions: Arc<LocalSessionManager>, after: Option<Duration>) {
    let period = after.map_or(Duration::from_secs(30), |after| {
        (after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    });
    let ended_before = std::sync::atomic::AtomicU64::new(registry.ended());
    crate::spawn_every(period, move || {
        let (registry, sessions) = (registry.clone(), sessions.clone());
        let ended = registry.ended();
        let churn = ended != ended_before.swap(ended, std::sync::atomic::Ordering::Relaxed);
        async move {
            let idle = after.map_or_else(Vec::new, |after| registry.idle_sessions(after));
            let parked = idle.len();
            for id in idle {
                if let Err(e) = sessions.close_session(&id.into()).await {
                    tracing::debug!(error = %e, "could not park a session");
                }
            }
            if parked > 0 {
                tracing::info!(sessions = parked, "parked idle sessions");
            }
            if parked > 0 || churn {
                let _ = tokio::task::spawn_blocking(crate::release_free_memory).await;
            }
        }
    });
}

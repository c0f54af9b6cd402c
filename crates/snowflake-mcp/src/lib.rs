//! snowflake-mcp: a Model Context Protocol server for Snowflake that many AI clients share.
//!
//! # The path of one tool call
//!
//! The folders are the stages a call passes through, outermost first:
//!
//! 1. [`transport`] — the door: Streamable HTTP (router, connection guard, TLS, SSE events and
//!    resumption, session ownership) or stdio, and the MCP handler that turns a request into
//!    a tool call;
//! 2. [`sessions`] — the MCP sessions this replica serves, each with its owner and context;
//! 3. [`tools`] — the tools themselves: arguments, the read-only guard, rendering, audit;
//! 4. [`scheduling`] — the gateway layers around the backend: metadata cache, coalescing, and
//!    the fair scheduler that shares the pool by weight in session-time;
//! 5. [`backend`] — the database: Snowflake through a pool of sessions (the `snowflake-client`
//!    crate speaks the protocol), or the offline demo;
//!
//! and beside the path, the stages it consults:
//!
//! * [`identity`] — who is calling: bearer tokens, OAuth, token exchange;
//! * [`policy`] — what that caller may do: its policy, rate limits and quotas (admission), and
//!   the limits that hold across replicas (cluster);
//! * [`observe`] — what is recorded about the call: metrics, audit, attribution, progress;
//! * [`state`] — what outlives the process and is shared by replicas, behind one interface.
//!
//! At the bottom, shared vocabulary that any stage may use: [`error`] (how a failure reads to
//! the model), [`ident`] (Snowflake identifiers), [`principal`] (how client ids are spelled),
//! [`config`] (the settings), and the few helpers below.
//!
//! # Layers
//!
//! A stage may use the stages listed **below** it here, never one above; the list is the
//! allowed direction, and `tests/architecture.rs` fails the build's tests when a module
//! imports upward (doc links do not count) or when modules import each other in a circle:
//!
//! ```text
//! transport    the door and the MCP handler (uses everything below)
//! sessions     MCP sessions and their context
//! tools        tool definitions, arguments, guard, rendering
//! scheduling   gateway layers and the fair scheduler
//! backend      Snowflake (pool, people's sessions) and the demo
//! identity     tokens, OAuth, token exchange
//! policy       client policy, admission, cluster-wide limits
//! observe      metrics, audit, attribution, progress, log redaction
//! state        the state store (SQLite, Redis) and replica coordination
//! vocabulary   error, ident, principal, config, and this file's helpers
//! ```
//!
//! `main.rs` (the binary) wires the stages together and may use any of them.

pub mod backend;
pub mod config;
pub mod error;
pub mod ident;
pub mod identity;
pub mod observe;
pub mod policy;
pub mod principal;
pub mod scheduling;
pub mod sessions;
pub mod state;
pub mod tools;
pub mod transport;

/// The database, schema, warehouse and role a statement runs in: one per MCP session, checked
/// against the client's policy at every call.
pub use snowflake_client::SessionContext as Context;

/// The allocator: jemalloc. With glibc's malloc, a fifth of the server's CPU per call went to
/// the allocator, a quarter of that waiting on arena locks (memory freed on another worker
/// thread than the one that allocated it); with jemalloc's per-thread caches the server spends
/// 20–35 % less CPU per call under load (BENCHMARKS.md, "What grew with the clients, the
/// allocator, and the relay floor"). Declared here rather than in `main.rs` because
/// [`release_free_memory`] must know which allocator holds the memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hand the allocator's free pages back to the system now rather than after its decay time:
/// after many MCP sessions were parked or ended (see [`sessions::parking`]).
pub fn release_free_memory() {
    #[cfg(not(target_env = "msvc"))]
    {
        // `arena.<i>.purge` for every arena (MALLCTL_ARENAS_ALL is 4096); see jemalloc(3).
        let name = c"arena.4096.purge";
        let (null, no_len) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: a void mallctl, called by a NUL-terminated name with no old or new value;
        // it only releases pages jemalloc holds free, from any thread at any time.
        unsafe {
            tikv_jemalloc_sys::mallctl(name.as_ptr(), null, no_len, null, 0);
        }
    }
}

/// Lock a mutex, carrying on after a panic elsewhere: every guarded value here stays consistent
/// between statements, so a poisoned lock holds nothing half-written.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The SHA-256 of `text`, in hex: how the state store names what must not be kept usable
/// (result handles, confirmation tokens) and how statements are compared.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Written digit by digit: a `format!` per byte was 32 allocations, and this runs on every
    // call (a result handle's digest).
    let mut hex = String::with_capacity(64);
    for b in sha2::Sha256::digest(text.as_bytes()) {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    hex
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

/// Unix seconds now.
pub fn unix_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_hex_is_the_lowercase_hex_digest() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            super::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(super::sha256_hex("").len(), 64);
    }
}

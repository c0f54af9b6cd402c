//! Replicas behind a load balancer: snowflake-mcp on a shared Redis (Valkey) state store, alone
//! and as two replicas behind a real HAProxy, against the same server on SQLite.
//!
//! Needs `haproxy` on `PATH` (`apt-get install -y haproxy`) and a `valkey-server` (or
//! `redis-server`): `$MCP_VALKEY`, the one `scripts/test-env.sh` installs in the cache, or one
//! on `PATH`. Everything runs on loopback; the HAProxy config is generated in a temporary
//! directory and removed at the end.
//!
//! Two configured clients with tokens, a large `queries_per_day`, a rate limit and a
//! `max_concurrent` none of which binds, so every call goes through each shared-store path:
//! the session check, the GCRA rate limit, the cluster-wide concurrency lease (taken, renewed,
//! released), and the quota reservation and its settlement. At the end each client's
//! `get_context` says how many queries the store counted, to compare with the successful calls
//! the load generator saw over the whole run (warm-up included).
//!
//! Rows (one run, so their ratios compare): under load (backend delay 20 ms, pool 8 per
//! replica), one replica on SQLite, one on Redis, one on Redis behind HAProxy, two on Redis
//! behind HAProxy hashing on `Mcp-Session-Id` (without and with a stick table), and two behind
//! plain round robin (no affinity: every request of a session may land on either replica).
//! Then the added latency per call (backend delay 0, sequential calls of one session) against
//! SQLite, and the Valkey commands one call costs (MONITOR).
//!
//! This file holds the setups and writes the report; `cluster` brings a setup up (replicas,
//! their config, HAProxy's balance lines) and `workload` is the load and the counting.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::external::{haproxy_path, valkey_path, Valkey};
use crate::harness::start_responder;
use crate::load::{percentile_ms, sorted};

mod cluster;
mod workload;

use cluster::Env;
use workload::{drive, open, round_trips, sequential, store_counts};

/// Snowflake sessions per replica.
const POOL: usize = 8;
/// Backend delay of the load runs.
const DELAY: Duration = Duration::from_millis(20);
const CLIENTS: [&str; 2] = ["team-a", "team-b"];
/// MCP sessions per client, and calls each keeps in flight.
const SESSIONS: usize = 8;
const IN_FLIGHT: usize = 4;
const WARMUP: Duration = Duration::from_secs(2);
const OVERHEAD_CALLS: usize = 2000;

#[derive(Clone, Copy, PartialEq)]
enum Store {
    Sqlite,
    Redis,
}

#[derive(Clone, Copy, PartialEq)]
enum Front {
    Direct,
    /// HAProxy, `balance hdr(Mcp-Session-Id)`.
    Hash,
    /// The same, and a stick table learning each session's replica from the response that
    /// creates it.
    HashStick,
    /// HAProxy, `balance roundrobin`: no session affinity.
    RoundRobin,
}

#[derive(Clone, Copy)]
struct Setup {
    replicas: usize,
    store: Store,
    front: Front,
}

impl Setup {
    fn label(&self) -> String {
        let store = match self.store {
            Store::Sqlite => "SQLite",
            Store::Redis => "Redis",
        };
        let front = match self.front {
            Front::Direct => "direct",
            Front::Hash => "HAProxy, hash on Mcp-Session-Id",
            Front::HashStick => "HAProxy, hash + stick table",
            Front::RoundRobin => "HAProxy, round robin (no affinity)",
        };
        let s = if self.replicas == 1 { "" } else { "s" };
        format!("{} replica{s}, {store}, {front}", self.replicas)
    }
}

const fn setup(replicas: usize, store: Store, front: Front) -> Setup {
    Setup {
        replicas,
        store,
        front,
    }
}

/// The scenario.
pub async fn replicas(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let haproxy = haproxy_path()?;
    let valkey = Valkey::start(&valkey_path()?).await?;
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-bench-lb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = run(bin, secs, &haproxy, &valkey, &dir, out).await;
    // This scenario runs alone: the servers' configs and SQLite stores can go too.
    let servers = std::env::temp_dir().join(format!("snowflake-mcp-bench-{}", std::process::id()));
    for d in [&dir, &servers] {
        let _ = std::fs::remove_dir_all(d);
    }
    result
}

async fn run(
    bin: &str,
    secs: Duration,
    haproxy: &Path,
    valkey: &Valkey,
    dir: &Path,
    out: &mut String,
) -> Result<(), String> {
    let env = Env {
        bin,
        haproxy,
        valkey,
        dir,
    };
    let (port, stats) = start_responder(DELAY).await;
    let _ = writeln!(
        out,
        "## Replicas behind a load balancer (backend delay {} ms, pool {POOL} per replica, {} clients x {SESSIONS} sessions x {IN_FLIGHT} calls in flight, {} s per row)\n",
        DELAY.as_millis(),
        CLIENTS.len(),
        secs.as_secs()
    );
    let _ = writeln!(out, "| setup | calls/s | ideal (replicas x pool / delay) | ratio | p50 ms | p99 ms | errors | MCP sessions held per replica | `run_query` calls per replica (whole run) | queries counted by the store / calls that succeeded |\n|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for s in [
        setup(1, Store::Sqlite, Front::Direct),
        setup(1, Store::Redis, Front::Direct),
        setup(1, Store::Redis, Front::Hash),
        setup(2, Store::Redis, Front::Hash),
        setup(2, Store::Redis, Front::HashStick),
        setup(2, Store::Redis, Front::RoundRobin),
    ] {
        let cluster = env.bring_up(s, port).await?;
        let (sessions, mut o) = open(&cluster.url).await;
        let held = cluster.per_replica("snowflake_mcp_sessions{", "").await;
        drive(sessions, secs, &mut o).await;
        let counted = store_counts(&cluster.url).await;
        let calls = cluster
            .per_replica("snowflake_mcp_tool_calls_total{", "tool=\"run_query\"")
            .await;
        let lat = sorted(o.window.clone());
        let rate = lat.len() as f64 / secs.as_secs_f64();
        let ideal = (s.replicas * POOL) as f64 / DELAY.as_secs_f64();
        let errors: usize = o.errors.values().sum();
        let ok: usize = o.ok.iter().sum();
        let counted = match counted {
            Ok(c) => format!("{} / {ok}{}", c, if c == ok as u64 { "" } else { " **≠**" }),
            Err(e) => format!("get_context failed: {e}"),
        };
        let _ = writeln!(
            out,
            "| {} | {rate:.1} | {ideal:.0} | {:.3} | {:.1} | {:.1} | {errors} | {held} | {calls} | {counted} |",
            s.label(),
            rate / ideal,
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
        );
        if errors > 0 {
            let kinds: Vec<String> = o.errors.iter().map(|(k, n)| format!("{k} x{n}")).collect();
            notes.push(format!(
                "- {}: {} — first: `{}`",
                s.label(),
                kinds.join(", "),
                o.first_error.unwrap_or_default()
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nErrors by kind:\n\n{}", notes.join("\n"));
    }
    let _ = writeln!(
        out,
        "\nStatements overlapping on one Snowflake session: {}.\n",
        stats.overlaps.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Added latency per call: delay 0, one session's sequential calls.
    let (port0, _) = start_responder(Duration::ZERO).await;
    let _ = writeln!(
        out,
        "### Added latency per call (backend delay 0, {OVERHEAD_CALLS} sequential calls of one session)\n"
    );
    let _ = writeln!(
        out,
        "| setup | p50 ms | p99 ms | p50 − SQLite | p99 − SQLite |\n|---|---|---|---|---|"
    );
    let mut base = None;
    let mut commands = String::new();
    for s in [
        setup(1, Store::Sqlite, Front::Direct),
        setup(1, Store::Redis, Front::Direct),
        setup(1, Store::Redis, Front::Hash),
        setup(2, Store::Redis, Front::HashStick),
    ] {
        let cluster = env.bring_up(s, port0).await?;
        let count = s.store == Store::Redis && s.front == Front::Direct;
        let lat = sequential(&cluster.url).await?;
        let (a, b) = (percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99));
        let (a0, b0) = *base.get_or_insert((a, b));
        let _ = writeln!(
            out,
            "| {} | {a:.3} | {b:.3} | {:+.3} | {:+.3} |",
            s.label(),
            a - a0,
            b - b0
        );
        if count {
            commands = round_trips(&cluster.url, valkey).await?;
        }
    }
    let _ = writeln!(out, "\n{commands}\n");
    Ok(())
}

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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::process::Child;

use crate::external::{haproxy_path, start_haproxy, valkey_path, Valkey};
use crate::load::{self, percentile_ms};
use crate::{sha, sorted, start_responder, start_server_with_state, Server};

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

/// What the scenario runs with.
struct Env<'a> {
    bin: &'a str,
    haproxy: &'a Path,
    valkey: &'a Valkey,
    dir: &'a Path,
}

/// Replicas and, in front of them, HAProxy if the setup has one.
struct Cluster {
    servers: Vec<Server>,
    _lb: Option<Child>,
    url: String,
}

impl Env<'_> {
    async fn bring_up(&self, s: Setup, responder: u16) -> Result<Cluster, String> {
        let state = match s.store {
            Store::Sqlite => None,
            Store::Redis => {
                // A clean store per setup: quotas counted from zero, no stale heartbeats.
                let ok = self.valkey.command(&["FLUSHALL"]).await?;
                if ok != "+OK" {
                    return Err(format!("FLUSHALL answered {ok}"));
                }
                Some(self.valkey.url())
            }
        };
        let mut servers = Vec::new();
        for _ in 0..s.replicas {
            servers.push(
                start_server_with_state(self.bin, responder, &config(), state.as_deref()).await?,
            );
        }
        let (lb, url) = match s.front {
            Front::Direct => (None, servers[0].url.clone()),
            front => {
                let backends: Vec<&str> = servers.iter().map(|s| host_port(&s.url)).collect();
                let (child, url) =
                    start_haproxy(self.haproxy, self.dir, &backends, balance(front)).await?;
                (Some(child), url)
            }
        };
        Ok(Cluster {
            servers,
            _lb: lb,
            url,
        })
    }
}

impl Cluster {
    /// Each replica's sum of the `/metrics` samples starting with `prefix` and containing
    /// `filter`, e.g. `2104 + 1987`.
    async fn per_replica(&self, prefix: &str, filter: &str) -> String {
        let http = reqwest::Client::new();
        let mut counts = Vec::new();
        for s in &self.servers {
            let url = s.url.replace("/mcp", "/metrics");
            let page = match http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let n: f64 = page
                .lines()
                .filter(|l| l.starts_with(prefix) && l.contains(filter))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            counts.push(format!("{n:.0}"));
        }
        counts.join(" + ")
    }
}

/// The backend lines of `front`.
fn balance(front: Front) -> &'static str {
    match front {
        // A session's requests all carry its id, so they all hash to one replica: its SSE
        // streams, the progress of its calls in flight and its resumable events stay there.
        // A request without the header (`initialize`, which creates the id, and stateless
        // requests) is balanced round robin, HAProxy's documented fallback for `hdr()`: so
        // about half the sessions are created on one replica and then move, once, to the one
        // their id hashes to (the shared store carries them). Consistent hashing moves only
        // the sessions of a replica that comes or goes.
        Front::Hash => "balance hdr(Mcp-Session-Id)\n    hash-type consistent",
        // The stick table learns the replica from the `Mcp-Session-Id` of the response that
        // created the session, so no session moves; the hash decides for ids it does not know
        // (after an HAProxy restart, or on another HAProxy instance).
        Front::HashStick => {
            "balance hdr(Mcp-Session-Id)\n    hash-type consistent\n    \
             stick-table type string len 128 size 1m expire 2h\n    \
             stick on req.hdr(Mcp-Session-Id)\n    \
             stick store-response res.hdr(Mcp-Session-Id)"
        }
        // No affinity: each request to any replica; sessions come from the shared store.
        Front::RoundRobin | Front::Direct => "balance roundrobin",
    }
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT/mcp`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Every replica's config: two clients whose quota, rate limit and concurrency cap never bind
/// but are all checked (and, on Redis, kept in the shared store) on every call.
fn config() -> String {
    let mut c = format!("[pool]\nmax_sessions = {POOL}\n[scheduler]\nqueue_timeout_secs = 120\n");
    for id in CLIENTS {
        let _ = write!(
            c,
            "[[clients]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = {}\n\
             rate_per_minute = 600000\nburst = 1000\nqueries_per_day = 1000000000\n",
            sha(id),
            2 * POOL
        );
    }
    c
}

/// What the load generator saw.
#[derive(Default)]
struct Outcome {
    /// Latencies of the successful calls that completed inside the measured window.
    window: Vec<Duration>,
    /// Successful calls per client over the whole run, warm-up included.
    ok: Vec<usize>,
    /// Failed calls (and sessions that could not connect) by kind, over the whole run.
    errors: BTreeMap<String, usize>,
    first_error: Option<String>,
}

impl Outcome {
    fn error(&mut self, kind: &str, text: String) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
        self.first_error.get_or_insert(text);
    }
}

type Sessions = Vec<(usize, Arc<load::Client>)>;

/// Every client's [`SESSIONS`]; failures to connect are errors of kind `connect`.
async fn open(url: &str) -> (Sessions, Outcome) {
    let mut o = Outcome {
        ok: vec![0; CLIENTS.len()],
        ..Outcome::default()
    };
    let mut sessions = Vec::new();
    for (ci, id) in CLIENTS.iter().enumerate() {
        for _ in 0..SESSIONS {
            match load::connect(url, Some(id)).await {
                Ok(c) => sessions.push((ci, Arc::new(c))),
                Err(e) => o.error("connect", format!("connect: {e}")),
            }
        }
    }
    (sessions, o)
}

/// The sessions calling `run_query` in a closed loop for the warm-up and `secs`.
async fn drive(sessions: Sessions, secs: Duration, o: &mut Outcome) {
    let start = Instant::now() + WARMUP;
    let end = start + secs;
    let mut tasks = Vec::new();
    for (ci, client) in &sessions {
        for _ in 0..IN_FLIGHT {
            let (ci, client) = (*ci, client.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Outcome {
                    ok: vec![0; CLIENTS.len()],
                    ..Outcome::default()
                };
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let r = load::call_tool(&client, "run_query", json!({"sql": "SELECT 1"})).await;
                    let t1 = Instant::now();
                    match r {
                        Ok(r) if r.is_error != Some(true) => {
                            mine.ok[ci] += 1;
                            if t1 >= start && t1 <= end {
                                mine.window.push(t1 - t0);
                            }
                        }
                        failed => {
                            let text = match failed {
                                Ok(r) => load::text(&r),
                                Err(e) => format!("transport: {e}"),
                            };
                            let kind = text.split(':').next().unwrap_or("").to_string();
                            mine.error(&kind, text);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                mine
            }));
        }
    }
    for t in tasks {
        let Ok(mine) = t.await else { continue };
        o.window.extend(mine.window);
        for (a, b) in o.ok.iter_mut().zip(mine.ok) {
            *a += b;
        }
        for (k, n) in mine.errors {
            *o.errors.entry(k).or_default() += n;
        }
        o.first_error = o.first_error.take().or(mine.first_error);
    }
    for (_, c) in sessions {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
}

/// Queries the store counted for all clients today (`get_context`, a new session per client).
async fn store_counts(url: &str) -> Result<u64, String> {
    let mut total = 0;
    for id in CLIENTS {
        let c = load::connect(url, Some(id)).await?;
        let r = load::call_tool(&c, "get_context", json!({})).await;
        let _ = c.cancel().await;
        let content = r?.structured_content.unwrap_or_default();
        total += content["limits"]["quotas"]["queries_per_day"]["used"]
            .as_u64()
            .ok_or_else(|| format!("no queries_per_day in {content}"))?;
    }
    Ok(total)
}

/// Latencies of [`OVERHEAD_CALLS`] sequential calls of one session, after a warm-up.
async fn sequential(url: &str) -> Result<Vec<Duration>, String> {
    let client = load::connect(url, Some(CLIENTS[0])).await?;
    for _ in 0..50 {
        load::call(&client, "SELECT 1").await?;
    }
    let mut l = Vec::with_capacity(OVERHEAD_CALLS);
    for _ in 0..OVERHEAD_CALLS {
        let t = Instant::now();
        load::call(&client, "SELECT 1").await?;
        l.push(t.elapsed());
    }
    let _ = client.cancel().await;
    Ok(sorted(l))
}

/// The Valkey commands one call costs: MONITOR over [`MONITORED`] sequential calls.
async fn round_trips(url: &str, valkey: &Valkey) -> Result<String, String> {
    const MONITORED: usize = 200;
    let client = load::connect(url, Some(CLIENTS[0])).await?;
    load::call(&client, "SELECT 1").await?;
    let monitor = valkey.monitor().await?;
    for _ in 0..MONITORED {
        load::call(&client, "SELECT 1").await?;
    }
    // MONITOR lines arrive after the commands ran.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let [sent, scripted] = monitor.finish();
    let _ = client.cancel().await;
    let per = |m: &BTreeMap<String, u64>| {
        let total = m.values().sum::<u64>() as f64 / MONITORED as f64;
        let each: Vec<String> = m
            .iter()
            .map(|(c, n)| format!("{c} {:.2}", *n as f64 / MONITORED as f64))
            .collect();
        format!("**{total:.2}** ({})", each.join(", "))
    };
    Ok(format!(
        "Valkey commands per `run_query` call (one replica on Redis, MONITOR over {MONITORED} \
         sequential calls): sent by the replica {}; run inside its Lua scripts {}.",
        per(&sent),
        per(&scripted)
    ))
}

//! `snowflake-mcp-bench`: measure snowflake-mcp against a fixed-delay Snowflake responder.
//!
//! `snowflake-mcp-bench all --server target/release/snowflake-mcp` runs every scenario of
//! BENCHMARKS.md and prints the report as Markdown; the subcommands run one scenario each.
//! Everything runs on loopback: the responder in this process, the server as a child process.

mod cost;
mod external;
mod load;
mod mixed;
mod replicas;
mod responder;
mod soak;

use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use load::{jain, percentile_ms, Class, ClassReport};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(
    name = "snowflake-mcp-bench",
    about = "Load generator for snowflake-mcp"
)]
struct Cli {
    /// The snowflake-mcp binary to measure (build it with --release).
    #[arg(long, global = true, default_value = "target/release/snowflake-mcp")]
    server: String,
    /// Seconds each measured load runs (default 10; for `soak`, 300).
    #[arg(long, global = true)]
    seconds: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario, as a Markdown report.
    All,
    /// The server's own added latency per call.
    Overhead,
    /// Throughput against pool size at a fixed backend delay.
    Throughput,
    /// Fairness with equal weights and with weights 1:2:4.
    Fairness,
    /// Light clients' latency while two heavy clients flood.
    Isolation,
    /// Server memory with 10,000 idle MCP sessions.
    Memory,
    /// Session-time fairness with mixed statement lengths (weights 1:1 and 1:2:4).
    Mixed,
    /// A light client beside two clients flooding 2-second statements.
    LightHeavy,
    /// Two warehouses, one flooded against its cap.
    Warehouses,
    /// Cost quotas: session-time and estimated credits per client, and a neighbour without.
    CostQuota,
    /// mixed, light-heavy, warehouses and cost-quota.
    SessionTime,
    /// Replicas on a shared Redis (Valkey) store, alone and behind HAProxy, against SQLite
    /// (needs `haproxy` on PATH and a valkey-server; not part of `all`).
    Replicas,
    /// Many sessions for minutes with queries, catalogue calls, cancellations, disconnects and
    /// reconnects: errors, RSS over time, Snowflake sessions, logins against logouts.
    Soak(soak::Options),
    /// Only the responder, for manual runs: SNOWFLAKE_HOST=127.0.0.1 SNOWFLAKE_PORT=<port>.
    Responder {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
    },
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let secs = Duration::from_secs(cli.seconds.unwrap_or(10));
    let mut out = String::new();
    let result = match cli.command {
        Command::All => {
            async {
                overhead(&cli.server, &mut out).await?;
                throughput(&cli.server, secs, &mut out).await?;
                fairness(&cli.server, secs, &mut out).await?;
                isolation(&cli.server, secs, &mut out).await?;
                memory(&cli.server, &mut out).await
            }
            .await
        }
        Command::Overhead => overhead(&cli.server, &mut out).await,
        Command::Throughput => throughput(&cli.server, secs, &mut out).await,
        Command::Fairness => fairness(&cli.server, secs, &mut out).await,
        Command::Isolation => isolation(&cli.server, secs, &mut out).await,
        Command::Memory => memory(&cli.server, &mut out).await,
        Command::Mixed => mixed::mixed(&cli.server, secs, &mut out).await,
        Command::LightHeavy => mixed::light_heavy(&cli.server, secs, &mut out).await,
        Command::Warehouses => mixed::warehouses(&cli.server, secs, &mut out).await,
        Command::CostQuota => cost::cost_quota(&cli.server, secs, &mut out).await,
        Command::SessionTime => {
            async {
                mixed::mixed(&cli.server, secs, &mut out).await?;
                mixed::light_heavy(&cli.server, secs, &mut out).await?;
                mixed::warehouses(&cli.server, secs, &mut out).await?;
                cost::cost_quota(&cli.server, secs, &mut out).await
            }
            .await
        }
        Command::Replicas => replicas::replicas(&cli.server, secs, &mut out).await,
        Command::Soak(ref o) => {
            soak::soak(&cli.server, cli.seconds.unwrap_or(300), o, &mut out).await
        }
        Command::Responder { port, delay_ms } => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            eprintln!(
                "responder on 127.0.0.1:{}",
                listener.local_addr().unwrap().port()
            );
            responder::run(listener, Duration::from_millis(delay_ms), Arc::default()).await;
            Ok(())
        }
    };
    print!("{out}");
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A responder with `delay`, on a free port.
async fn start_responder(delay: Duration) -> (u16, Arc<responder::ResponderStats>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind responder");
    let port = listener.local_addr().unwrap().port();
    let stats: Arc<responder::ResponderStats> = Arc::default();
    tokio::spawn(responder::run(listener, delay, stats.clone()));
    (port, stats)
}

/// A running server process.
struct Server {
    url: String,
    pid: u32,
    child: tokio::process::Child,
}

async fn start_server(bin: &str, responder_port: u16, config: &str) -> Result<Server, String> {
    start_server_with_state(bin, responder_port, config, None).await
}

/// `config` with the per-address and stored-session bounds raised out of the way: every
/// benchmark client connects from 127.0.0.1 (directly or through the load balancer), and the
/// scenarios open thousands of sessions on purpose. A scenario's own values stand.
fn on_one_machine(config: &str) -> String {
    let mut config = config.to_string();
    for (section, key, value) in [
        ("server", "max_connections_per_ip", "1000000"),
        ("sessions", "max_stored_per_client", "1000000"),
        ("sessions", "max_stored_anonymous", "1000000"),
    ] {
        if config.contains(&format!("\n{key} =")) || config.starts_with(&format!("{key} =")) {
            continue;
        }
        let header = format!("[{section}]\n");
        let line = format!("{key} = {value}\n");
        match config.find(&header) {
            Some(at) => config.insert_str(at + header.len(), &line),
            None => config = format!("{header}{line}{config}"),
        }
    }
    config
}

/// A server on `state` (a `redis://` URL shared by replicas), or on a SQLite store of its own.
async fn start_server_with_state(
    bin: &str,
    responder_port: u16,
    config: &str,
    state: Option<&str>,
) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!(
        "config-{}.toml",
        Instant::now().elapsed().as_nanos() ^ rand_suffix()
    ));
    std::fs::write(&path, on_one_machine(config)).map_err(|e| e.to_string())?;
    // Each server its own state store, never the user's.
    let state = state.map_or_else(
        || path.with_extension("db").into_os_string(),
        std::ffi::OsString::from,
    );
    let mut child = tokio::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--state")
        .arg(&state)
        .env("SNOWFLAKE_ACCOUNT", "bench")
        .env("SNOWFLAKE_USER", "bench")
        .env("SNOWFLAKE_PASSWORD", "bench")
        .env("SNOWFLAKE_HOST", "127.0.0.1")
        .env("SNOWFLAKE_PORT", responder_port.to_string())
        .env("SNOWFLAKE_PROTOCOL", "http")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e} (build it with cargo build --release)"))?;
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return Ok(rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string());
            }
        }
        Err("the server exited before listening".to_string())
    })
    .await
    .map_err(|_| "the server did not start in 30 s".to_string())??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { url, pid, child })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn sha(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sorted(mut l: Vec<Duration>) -> Vec<Duration> {
    l.sort();
    l
}

async fn overhead(bin: &str, out: &mut String) -> Result<(), String> {
    const CALLS: usize = 2000;
    let (port, _) = start_responder(Duration::ZERO).await;
    let settings = snowflake_client::ConnectionSettings {
        account: Some("bench".into()),
        user: Some("bench".into()),
        password: Some(snowflake_client::Secret::new("bench")),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        protocol: Some("http".into()),
        ..Default::default()
    };
    let mut session = snowflake_client::Client::new(&settings)
        .map_err(|e| e.to_string())?
        .login()
        .await
        .map_err(|e| e.to_string())?;
    let mut direct = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = session.query("SELECT 1").await.map_err(|e| e.to_string())?;
        r.collect(snowflake_client::RowLimits::default())
            .await
            .map_err(|e| e.to_string())?;
        direct.push(t.elapsed());
    }
    let server = start_server(bin, port, "[pool]\nmax_sessions = 4\n").await?;
    let client = load::connect(&server.url, None).await?;
    load::call(&client, "SELECT 1").await?;
    let mut via = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        load::call(&client, "SELECT 1").await?;
        via.push(t.elapsed());
    }
    let (direct, via) = (sorted(direct), sorted(via));
    let _ = writeln!(
        out,
        "## Added latency per call (backend delay 0, {CALLS} sequential calls)\n"
    );
    let _ = writeln!(out, "| path | p50 ms | p99 ms |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| direct snowflake-client call to the responder | {:.3} | {:.3} |",
        percentile_ms(&direct, 0.5),
        percentile_ms(&direct, 0.99)
    );
    let _ = writeln!(
        out,
        "| MCP `run_query` through snowflake-mcp (HTTP, rmcp client) | {:.3} | {:.3} |",
        percentile_ms(&via, 0.5),
        percentile_ms(&via, 0.99)
    );
    let _ = writeln!(
        out,
        "\nAdded by the server and the MCP round trip at p50: **{:.3} ms**.\n",
        percentile_ms(&via, 0.5) - percentile_ms(&direct, 0.5)
    );
    Ok(())
}

fn summarize(reports: &[ClassReport], seconds: f64) -> Vec<(String, f64, f64, f64, f64, usize)> {
    reports
        .iter()
        .map(|r| {
            let l = sorted(r.latencies.clone());
            (
                r.name.clone(),
                r.completed as f64 / seconds,
                percentile_ms(&l, 0.5),
                percentile_ms(&l, 0.95),
                percentile_ms(&l, 0.99),
                r.errors,
            )
        })
        .collect()
}

async fn throughput(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let delay = Duration::from_millis(50);
    let (port, stats) = start_responder(delay).await;
    let _ = writeln!(
        out,
        "## Throughput against pool size (backend delay 50 ms, {} s per row)\n",
        secs.as_secs()
    );
    let mut first_errors = Vec::new();
    let _ = writeln!(out, "| pool | concurrent clients | calls/s | ideal (pool / delay) | ratio | p50 ms | p99 ms | errors | Jain's index over clients |\n|---|---|---|---|---|---|---|---|---|");
    for (pool, clients) in [(4usize, 100usize), (16, 200), (64, 400), (64, 1000)] {
        // Every session is its own anonymous client; their group cap must not be the limit, nor
        // the cap on connections (each session holds about two: its calls and its SSE stream).
        let config = format!("[server]\nmax_connections = 4096\n[pool]\nmax_sessions = {pool}\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_total = 100000\n[anonymous]\nmax_concurrent_total = {clients}\n");
        let server = start_server(bin, port, &config).await?;
        let classes = [Class {
            name: "all".into(),
            sessions: clients,
            token: None,
            in_flight: 1,
        }];
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        let s = &summarize(&reports, secs.as_secs_f64())[0];
        let ideal = pool as f64 / delay.as_secs_f64();
        let per_client: Vec<f64> = reports[0].per_session.iter().map(|&n| n as f64).collect();
        if let Some(e) = &reports[0].first_error {
            first_errors.push(format!("- pool {pool}, {clients} clients: `{e}`"));
        }
        let _ = writeln!(
            out,
            "| {pool} | {clients} | {:.1} | {ideal:.0} | {:.3} | {:.1} | {:.1} | {} | {:.4} |",
            s.1,
            s.1 / ideal,
            s.2,
            s.4,
            s.5,
            jain(&per_client)
        );
    }
    if !first_errors.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst error of each row with errors:\n\n{}",
            first_errors.join("\n")
        );
    }
    let _ = writeln!(
        out,
        "\nStatements overlapping on one Snowflake session during these runs: {}.\n",
        stats.overlaps.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn fairness(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(20)).await;
    let _ = writeln!(out, "## Fairness (pool 6, backend delay 20 ms, each client 4 sessions x 8 calls in flight, {} s)\n", secs.as_secs());
    for weights in [[1u32, 1, 1], [1, 2, 4]] {
        let mut config =
            String::from("[pool]\nmax_sessions = 6\n[scheduler]\nqueue_timeout_secs = 120\n");
        let mut classes = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            let token = format!("bench-token-{i}");
            let _ = write!(config, "[[clients]]\nid = \"c{i}\"\ntoken_sha256 = \"{}\"\nweight = {w}\nmax_concurrent = 6\n", sha(&token));
            classes.push(Class {
                name: format!("c{i} (weight {w})"),
                sessions: 4,
                token: Some(token),
                in_flight: 8,
            });
        }
        let server = start_server(bin, port, &config).await?;
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        let total: usize = reports.iter().map(|r| r.completed).sum();
        let weight_sum: u32 = weights.iter().sum();
        let _ = writeln!(out, "Weights {weights:?}:\n\n| client | calls | share | weight share | p50 ms | p99 ms |\n|---|---|---|---|---|---|");
        let mut normalized = Vec::new();
        for ((r, s), w) in reports
            .iter()
            .zip(summarize(&reports, secs.as_secs_f64()))
            .zip(weights)
        {
            let share = r.completed as f64 / total.max(1) as f64;
            let target = w as f64 / weight_sum as f64;
            normalized.push(share / target);
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.1} | {:.1} |",
                r.name, r.completed, share, target, s.2, s.4
            );
        }
        let _ = writeln!(
            out,
            "\nJain's index of throughput normalized by weight: **{:.4}**\n",
            jain(&normalized)
        );
    }
    Ok(())
}

async fn isolation(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(20)).await;
    let mut config = String::from("[pool]\nmax_sessions = 8\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_per_client = 1000\n");
    for name in ["light", "heavy1", "heavy2"] {
        let _ = write!(
            config,
            "[[clients]]\nid = \"{name}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = 8\n",
            sha(name)
        );
    }
    // Light: two calls in flight, below its fair third of the pool; heavy: far above it.
    let light = Class {
        name: "light".into(),
        sessions: 2,
        token: Some("light".into()),
        in_flight: 1,
    };
    let heavy = |n: &str| Class {
        name: n.into(),
        sessions: 4,
        token: Some(n.into()),
        in_flight: 32,
    };
    let _ = writeln!(
        out,
        "## Light clients while heavy clients flood (pool 8, backend delay 20 ms, {} s)\n",
        secs.as_secs()
    );
    let _ = writeln!(
        out,
        "| run | class | calls/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|"
    );
    for (label, classes) in [
        ("light alone", vec![light.clone()]),
        (
            "light + 2 heavy",
            vec![light.clone(), heavy("heavy1"), heavy("heavy2")],
        ),
    ] {
        let server = start_server(bin, port, &config).await?;
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        for s in summarize(&reports, secs.as_secs_f64()) {
            let _ = writeln!(
                out,
                "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.0, s.1, s.2, s.3, s.4
            );
        }
    }
    let _ = writeln!(out);
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// POST one JSON-RPC message (to session `id` when given); the session id answered and the body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    id: Option<&str>,
    body: &'static str,
) -> Option<(Option<String>, String)> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(id) = id {
        request = request
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let r = request.send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Some((id, r.text().await.ok()?))
}

async fn memory(bin: &str, out: &mut String) -> Result<(), String> {
    const SESSIONS: usize = 10_000;
    // Default [sessions] park_after_secs (60) plus a sweep period (15).
    const PARKED_AFTER: Duration = Duration::from_secs(80);
    let (port, _) = start_responder(Duration::ZERO).await;
    let server = start_server(
        bin,
        port,
        "[sessions]\nmax_total = 20000\nmax_per_client = 20000\n",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(server.pid);
    let http = reqwest::Client::new();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let (http, url, sem) = (http.clone(), server.url.clone(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let id = post(&http, &url, None, init).await?.0?;
            let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
            post(&http, &url, Some(&id), initialized).await?;
            Some(id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        if let Ok(Some(id)) = t.await {
            ids.push(id);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = rss_kib(server.pid);
    tokio::time::sleep(PARKED_AFTER).await;
    let parked = rss_kib(server.pid);
    // Parked sessions must still answer: every hundredth lists its tools.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let mut resumed = 0;
    for id in ids.iter().step_by(100) {
        if let Some((_, body)) = post(&http, &server.url, Some(id), list).await {
            resumed += usize::from(body.contains("run_query"));
        }
    }
    let opened = ids.len().max(1) as f64;
    let per = |kib: u64| kib.saturating_sub(before) as f64 / opened;
    let _ = writeln!(out, "## Memory with idle MCP sessions\n");
    let _ = writeln!(
        out,
        "| sessions open | server RSS before | just opened (live) | per session | after {} s idle (parked) | per session | parked sessions that answered `tools/list` |\n|---|---|---|---|---|---|---|",
        PARKED_AFTER.as_secs()
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        out,
        "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.2} KiB | {resumed} of {} |\n",
        ids.len(),
        mib(before),
        mib(live),
        per(live),
        mib(parked),
        per(parked),
        ids.len().div_ceil(100)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_are_raised_without_repeating_a_section_or_overriding_a_scenario() {
        let c = super::on_one_machine(
            "[server]\nmax_connections = 4096\n[sessions]\nmax_stored_anonymous = 5\n",
        );
        let parsed: toml::Table = toml::from_str(&c).expect(&c);
        let int = |s: &str, k: &str| parsed[s][k].as_integer();
        assert_eq!(int("server", "max_connections_per_ip"), Some(1_000_000));
        assert_eq!(int("server", "max_connections"), Some(4096));
        assert_eq!(int("sessions", "max_stored_anonymous"), Some(5));
        let parsed: toml::Table = toml::from_str(&super::on_one_machine("")).unwrap();
        assert_eq!(
            parsed["sessions"]["max_stored_per_client"].as_integer(),
            Some(1_000_000)
        );
    }
}

//! Faults, as an operator meets them: Snowflake unreachable (a host that accepts TCP and never
//! answers) — for new sessions, and under sessions already open — then back. Every call answers
//! within its bounds with `unavailable` (or `timeout`) and a retry hint, and the server recovers
//! by itself.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use testkit::{Fault, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_pulled_away_fails_fast_and_comes_back_without_a_restart() {
    let proxy = FaultProxy::start(testkit::fakesnow().port).await;
    proxy.set(Fault::BlackHole);
    let config = write_config(
        "faults",
        &format!(
            "[pool]\nlogin_timeout_secs = 2\n[scheduler]\nqueue_timeout_secs = 5\n\
             [console]\ntoken_sha256 = \"{}\"\n",
            sha("admin-token")
        ),
    );
    let server = Server::start(&["--config", &config], &env_with_port(proxy.port)).await;
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let client = server.client().await;
        calls.spawn(async move {
            let r = call(&client, "run_query", json!({"sql": "SELECT 1"})).await;
            let e = error_of(&r);
            (
                e["kind"].as_str().unwrap().to_string(),
                e["retry_after_ms"].as_u64(),
            )
        });
    }
    for (kind, retry) in calls.join_all().await {
        assert_eq!(kind, "unavailable");
        assert!(retry.is_some(), "a retry hint");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "five clients answered in {:?}, not minutes",
        started.elapsed()
    );
    // The circuit is open: a new call fails at once, and readiness says so.
    let client = server.client().await;
    let t = Instant::now();
    let r = call(&client, "list_databases", json!({})).await;
    assert_eq!(error_of(&r)["kind"], "unavailable");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(http_get(&server.base, "/readyz").await.0, 503);
    // The operator's console says so in plain words.
    let overview = || async {
        let auth = [("Authorization", "Bearer admin-token")];
        let (_, _, body) = raw_http(&server.base, "GET", "/console/api/overview", &auth, "").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(overview().await["snowflake"]["circuit_open"], true);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_snowflake-mcp"))
        .args(["status", &server.base])
        .env("SNOWFLAKE_MCP_CONSOLE_TOKEN", "admin-token")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        said.contains("Snowflake: UNREACHABLE (circuit open)"),
        "{said}"
    );

    // The network is back: the server recovers by itself.
    proxy.set(Fault::None);
    let mut recovered = false;
    for _ in 0..60 {
        let r = call(&client, "run_query", json!({"sql": "SELECT 1"})).await;
        if r.is_error != Some(true) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        recovered,
        "calls succeed again within 30 s of Snowflake coming back"
    );
    assert_eq!(overview().await["snowflake"]["circuit_open"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_black_holed_under_an_open_session_answers_within_bounds_and_recovers() {
    let proxy = FaultProxy::start(testkit::fakesnow().port).await;
    // Short timeouts so the test takes seconds; the bound is the statement timeout plus the
    // call's margin (15 s), far below the minutes a request could hang before.
    let config = write_config(
        "silent",
        "[query]\nstatement_timeout_secs = 2\n[pool]\nmax_sessions = 2\nlogin_timeout_secs = 2\n[scheduler]\nqueue_timeout_secs = 5\n",
    );
    let server = Server::start(&["--config", &config], &env_with_port(proxy.port)).await;
    let client = server.client().await;
    ok(&client, "run_query", json!({"sql": "SELECT 1"})).await;
    proxy.set(Fault::BlackHole);
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(40),
        call(&client, "run_query", json!({"sql": "SELECT 2"})),
    )
    .await
    .expect("a call on an open session answers, it does not hang");
    let e = error_of(&r);
    let kind = e["kind"].as_str().unwrap_or_default().to_string();
    assert!(kind == "timeout" || kind == "unavailable", "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2 + 15),
        "answered in {:?}",
        t.elapsed()
    );
    // That session was retired and counted: two more failures (logins that get no answer)
    // open the circuit, and calls fail at once.
    for _ in 0..2 {
        let r = call(&client, "run_query", json!({"sql": "SELECT 3"})).await;
        assert_eq!(error_of(&r)["kind"], "unavailable", "{r:?}");
    }
    let t = Instant::now();
    let r = call(&client, "run_query", json!({"sql": "SELECT 4"})).await;
    assert_eq!(error_of(&r)["kind"], "unavailable");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The network is back: the server recovers by itself.
    proxy.set(Fault::None);
    let mut recovered = false;
    for _ in 0..60 {
        let r = call(&client, "run_query", json!({"sql": "SELECT 5"})).await;
        if r.is_error != Some(true) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(recovered, "calls succeed again once Snowflake answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_state_store_fails_quota_calls_clearly_and_stalls_nobody() {
    let state = temp_state();
    let config = write_config(
        "locked",
        &format!(
            "[[clients]]\nid = \"q\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 100\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("q-token"),
            sha("free-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo", "--state", &state], &[]).await;
    let (q, free) = (
        server.client_with_token("q-token").await,
        server.client_with_token("free-token").await,
    );
    ok(&q, "run_query", json!({"sql": "SELECT 1"})).await;
    ok(&free, "get_context", json!({})).await;
    // Another process takes the database's write lock and keeps it.
    let locker = rusqlite::Connection::open(&state).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t = Instant::now();
    let r = call(&q, "run_query", json!({"sql": "SELECT 2"})).await;
    assert_eq!(error_of(&r)["kind"], "unavailable", "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let t = Instant::now();
    ok(&free, "run_query", json!({"sql": "SELECT 3"})).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a call without quotas is not held up by the audit: {:?}",
        t.elapsed()
    );
    locker.execute_batch("ROLLBACK").unwrap();
    ok(&q, "run_query", json!({"sql": "SELECT 4"})).await;
    let history = ok(&free, "query_history", json!({})).await.to_string();
    assert!(
        history.contains("SELECT 3"),
        "the delayed record was written: {history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_twenty_clients_loses_no_answered_call() {
    let state = temp_state();
    let config = write_config(
        "kill9",
        &format!(
            // The audit's promise that a kill -9 loses no answered call is made with
            // `wait_for_commit` (by default records are committed within 20 ms after the
            // answer: docs/operations.md); quota usage is exact either way.
            "[audit]\nwait_for_commit = true\n[[clients]]\nid = \"k\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 1000000\n",
            sha("k-token")
        ),
    );
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let args = [
        "--config",
        config.as_str(),
        "--demo",
        "--state",
        state.as_str(),
    ];
    let server = Server::start_on(&listen, &args, &[]).await;
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..20 {
        let client = server.client_with_token("k-token").await;
        let answered = answered.clone();
        clients.spawn(async move {
            for i in 0.. {
                let sql = format!("SELECT {c} AS C, {i} AS I");
                let args = json!({"sql": sql});
                let params = rmcp::model::CallToolRequestParams::new("run_query")
                    .with_arguments(args.as_object().unwrap().clone());
                match tokio::time::timeout(Duration::from_secs(5), client.call_tool(params)).await {
                    Ok(Ok(r)) if r.is_error != Some(true) => answered.lock().unwrap().push(sql),
                    _ => break,
                }
            }
        });
    }
    // Kill the server once every client has had answers (not after a guessed time).
    wait_for("forty answered calls", || {
        let answered = answered.clone();
        async move { answered.lock().unwrap().len() >= 40 }
    })
    .await;
    server.kill_hard().await;
    clients.join_all().await;
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 20,
        "the clients were busy: {}",
        answered.len()
    );

    let _server = Server::start_on(&listen, &args, &[]).await;
    let db = rusqlite::Connection::open(&state).unwrap();
    let used: i64 = db
        .query_row("SELECT COALESCE(SUM(queries), 0) FROM usage WHERE client_id = 'k' AND window LIKE 'd:%'", [], |r| r.get(0))
        .unwrap();
    assert!(
        used as usize >= answered.len(),
        "quota usage {used} < {} answered calls",
        answered.len()
    );
    let mut audited = db
        .prepare("SELECT statement FROM audit WHERE client_id = 'k' AND status = 'ok'")
        .unwrap();
    let audited: std::collections::HashSet<String> = audited
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|s| !audited.contains(*s)).collect();
    assert!(missing.is_empty(), "answered but not audited: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_silent_or_slow_sockets_do_not_starve_a_real_client() {
    let config = write_config(
        "conns",
        "[server]\nmax_connections = 32\nheader_read_timeout_secs = 2\nconnection_idle_timeout_secs = 5\n",
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let host = server.base.trim_start_matches("http://").to_string();
    let mut hostile = Vec::new();
    for i in 0..400 {
        let Ok(mut s) = tokio::net::TcpStream::connect(&host).await else {
            continue;
        };
        if i % 2 == 0 {
            // slowloris: a request head that never ends
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n").await;
        }
        hostile.push(s);
    }
    let t = Instant::now();
    let client = server.client().await;
    ok(&client, "get_context", json!({})).await;
    ok(&client, "run_query", json!({"sql": "SELECT 1"})).await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the real client was served in {:?}",
        t.elapsed()
    );
    let (_, metrics) = http_get(&server.base, "/metrics").await;
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("snowflake_mcp_http_connections_open "))
        .expect("connections gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(open <= 40.0, "open connections stay near the cap: {open}");
    // Every hostile socket is closed by the server: cut off, evicted or refused.
    use tokio::io::AsyncReadExt;
    for s in hostile.iter_mut().take(50) {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "a silent socket is closed within the header deadline: {closed:?}"
        );
    }
}

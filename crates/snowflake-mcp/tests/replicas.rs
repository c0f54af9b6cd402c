//! Several replicas on one shared store: two `snowflake-mcp serve` processes against one real
//! Valkey server and one emulator. A session moves between replicas with its context and
//! owner, limits hold across the cluster, history is whole, and killing a replica or Redis
//! degrades as the README says and recovers on its own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testkit::{Fault, FaultProxy, Valkey};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn config(name: &str, extra: &str) -> String {
    write_config(
        name,
        &format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n{extra}\n\
             [[clients]]\nid = \"b\"\ntoken_sha256 = \"{}\"\n",
            sha("token-a"),
            sha("token-b")
        ),
    )
}

/// Two replicas sharing `redis`, and the emulator reached directly or through `port`.
async fn replicas(config: &str, redis: &Valkey, port: Option<u16>) -> (Server, Server) {
    let env = port.map_or_else(fakesnow_env, env_with_port);
    let url = redis.url();
    let args = ["--config", config, "--state", url.as_str()];
    let a = Server::start(&args, &env).await;
    let b = Server::start(&args, &env).await;
    (a, b)
}

/// One JSON-RPC message to a replica: (status, response head, the JSON-RPC answer if any).
async fn post(
    base: &str,
    token: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, String, Option<Value>) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(s) = session {
        headers.push(("mcp-session-id", s));
        headers.push(("mcp-protocol-version", "2025-06-18"));
    }
    let (status, head, body) = raw_http(base, "POST", "/mcp", &headers, body).await;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    let answer = body
        .lines()
        .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("id").is_some());
    (status, head, answer)
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Open a session on `base` as `token`; its id.
async fn open(base: &str, token: &str) -> String {
    let (status, head, _) = post(base, token, None, INIT).await;
    assert_eq!(status, 200, "{head}");
    let id = session_of(&head);
    let (status, _, _) = post(base, token, Some(&id), INITIALIZED).await;
    assert_eq!(status, 202);
    id
}

/// Open a session of client `a` on `base` with its context set to `REPLICA_DB.PUBLIC`.
async fn open_in_replica_db(base: &str) -> String {
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS REPLICA_DB".into(),
        "CREATE SCHEMA IF NOT EXISTS REPLICA_DB.PUBLIC".into(),
    ])
    .await;
    let id = open(base, "token-a").await;
    let set = call_on(
        base,
        "token-a",
        &id,
        "set_context",
        json!({"database": "REPLICA_DB", "schema": "PUBLIC"}),
    )
    .await;
    assert_eq!(kind(&set), "ok", "{set}");
    id
}

/// Call `tool` in session `id` on replica `base`: the `tools/call` result.
async fn call_on(base: &str, token: &str, id: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let (status, head, answer) = post(base, token, Some(id), &body.to_string()).await;
    assert_eq!(status, 200, "{tool} on {base}: {head}");
    answer.unwrap_or_else(|| panic!("a JSON-RPC answer: {head}"))["result"].clone()
}

/// The error kind of a failed call result, or "ok".
fn kind(result: &Value) -> String {
    if result["isError"] == true {
        result["_meta"]["error"]["kind"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    } else {
        "ok".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_replicas_with_its_context_and_owner() {
    let redis = Valkey::start();
    let (a, b) = replicas(&config("move", ""), &redis, None).await;
    let id = open_in_replica_db(&a.base).await;
    // The next call lands on the other replica: the session and its context are there.
    let ctx = call_on(&b.base, "token-a", &id, "get_context", json!({})).await;
    assert_eq!(ctx["structuredContent"]["database"], "REPLICA_DB", "{ctx}");
    // Another client naming it gets 404 on either replica.
    for base in [&a.base, &b.base] {
        let (status, _, _) = post(base, "token-b", Some(&id), INITIALIZED).await;
        assert_eq!(status, 404);
    }
    // A call on B, then history on A shows both replicas' calls.
    let r = call_on(
        &b.base,
        "token-a",
        &id,
        "run_query",
        json!({"sql": "SELECT 41"}),
    )
    .await;
    assert_eq!(kind(&r), "ok", "{r}");
    let r = call_on(
        &a.base,
        "token-a",
        &id,
        "run_query",
        json!({"sql": "SELECT 42"}),
    )
    .await;
    assert_eq!(kind(&r), "ok", "{r}");
    // The audit writer batches; the history read flushes this replica's buffer only.
    let mut seen = String::new();
    for _ in 0..50 {
        let h = call_on(&b.base, "token-a", &id, "query_history", json!({})).await;
        seen = h["structuredContent"].to_string();
        if seen.contains("SELECT 41") && seen.contains("SELECT 42") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains("SELECT 41") && seen.contains("SELECT 42"),
        "history from both replicas: {seen}"
    );
    // DELETE on B ends the session everywhere, also on A where it lives in memory.
    let (status, _, _) = raw_http(
        &b.base,
        "DELETE",
        "/mcp",
        &[
            ("authorization", "Bearer token-a"),
            ("mcp-session-id", &id),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        "",
    )
    .await;
    assert!((200..300).contains(&status), "DELETE: {status}");
    let (status, _, _) = post(&a.base, "token-a", Some(&id), INITIALIZED).await;
    assert_eq!(status, 404, "a session deleted on B is gone on A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_of_ten_admits_exactly_ten_across_two_replicas() {
    let redis = Valkey::start();
    let (a, b) = replicas(&config("quota10", "queries_per_day = 10"), &redis, None).await;
    // Concurrent calls through the rmcp client (which follows SSE polling and resumption).
    let clients = [
        std::sync::Arc::new(a.client_with_token("token-a").await),
        std::sync::Arc::new(b.client_with_token("token-a").await),
    ];
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = clients[i % 2].clone();
        calls.spawn(async move {
            let r = call(&client, "run_query", json!({"sql": "SELECT 1"})).await;
            kind(&serde_json::to_value(&r).unwrap())
        });
    }
    let kinds: Vec<String> = calls.join_all().await;
    let admitted = kinds.iter().filter(|k| *k == "ok").count();
    let refused = kinds.iter().filter(|k| *k == "quota_exceeded").count();
    assert_eq!((admitted, refused), (10, 90), "{kinds:?}");
    assert_eq!(
        redis.command(&["HGET", &usage_key_today(), "queries"]),
        "10"
    );
}

/// The key of client `a`'s usage today.
fn usage_key_today() -> String {
    format!(
        "snowflake-mcp:{{c:a}}:usage:d:{}",
        chrono::Utc::now().format("%Y-%m-%d")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_replicas() {
    let redis = Valkey::start();
    let (a, b) = replicas(
        &config("rate2", "rate_per_minute = 6\nburst = 3"),
        &redis,
        None,
    )
    .await;
    let (sa, sb) = (
        open(&a.base, "token-a").await,
        open(&b.base, "token-a").await,
    );
    let mut admitted = 0;
    for i in 0..12 {
        let (base, id) = if i % 2 == 0 {
            (&a.base, &sa)
        } else {
            (&b.base, &sb)
        };
        let r = call_on(base, "token-a", id, "run_query", json!({"sql": "SELECT 1"})).await;
        match kind(&r).as_str() {
            "ok" => admitted += 1,
            "rate_limited" => {
                let wait = r["_meta"]["error"]["retry_after_ms"].as_u64().unwrap();
                assert!((1..=10_000).contains(&wait), "{wait}");
            }
            other => panic!("{other}: {r}"),
        }
    }
    // A burst of 3, one more every 10 s: alone, each replica would have admitted 3.
    assert!((3..=4).contains(&admitted), "admitted {admitted} of 12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_max_concurrent_holds_across_replicas() {
    let redis = Valkey::start();
    // Slow statements (every chunk to the emulator held 100 ms), so calls overlap.
    let proxy = FaultProxy::start(testkit::fakesnow().port).await;
    let (a, b) = replicas(
        &config("conc", "max_concurrent = 1"),
        &redis,
        Some(proxy.port),
    )
    .await;
    let clients = [
        std::sync::Arc::new(a.client_with_token("token-a").await),
        std::sync::Arc::new(b.client_with_token("token-a").await),
    ];
    // Warm both replicas' pools before slowing the network down.
    for client in &clients {
        ok(client, "run_query", json!({"sql": "SELECT 1"})).await;
    }
    proxy.set(Fault::Delay(100));
    let key = "snowflake-mcp:{c:a}:leases";
    let watching = {
        let port = redis.port;
        tokio::task::spawn_blocking(move || {
            let probe = Valkey::attach(port);
            let (mut most, deadline) = (0usize, Instant::now() + Duration::from_secs(20));
            while Instant::now() < deadline {
                let n: usize = probe.command(&["ZCARD", key]).parse().unwrap_or(0);
                most = most.max(n);
                if probe.command(&["EXISTS", "done"]) == "1" {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..6 {
        let client = clients[i % 2].clone();
        calls.spawn(async move {
            let r = call(&client, "run_query", json!({"sql": "SELECT 2"})).await;
            kind(&serde_json::to_value(&r).unwrap())
        });
    }
    let kinds = calls.join_all().await;
    redis.command(&["SET", "done", "1"]);
    let most = watching.await.unwrap();
    proxy.set(Fault::None);
    assert!(kinds.iter().all(|k| k == "ok"), "{kinds:?}");
    assert_eq!(most, 1, "one statement in flight across both replicas");
    assert_eq!(redis.command(&["ZCARD", key]), "0", "every lease released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_load_moves_its_sessions_without_losing_usage() {
    let redis = Valkey::start();
    let (a, b) = replicas(&config("killrep", "queries_per_day = 1000"), &redis, None).await;
    let id = open_in_replica_db(&a.base).await;
    // Load on A from another session of the same client while A is killed (the loop's
    // requests fail once A is gone; what it answered before is counted).
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let (base, answered) = (a.base.clone(), answered.clone());
        tokio::spawn(async move {
            let id = open(&base, "token-a").await;
            let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "run_query", "arguments": {"sql": "SELECT 1"}}})
            .to_string();
            loop {
                match post(&base, "token-a", Some(&id), &body).await {
                    (200, _, Some(v)) if v["result"]["isError"] != true => {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        })
    };
    // Kill A once it is busy answering (not after a guessed time).
    wait_for("A to answer calls under load", || {
        let answered = answered.clone();
        async move { answered.load(std::sync::atomic::Ordering::SeqCst) >= 5 }
    })
    .await;
    a.kill_hard().await;
    let _ = load.await;
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(answered > 0, "A answered calls before it died");
    // The session created on A goes on on B, context intact.
    let ctx = call_on(&b.base, "token-a", &id, "get_context", json!({})).await;
    assert_eq!(ctx["structuredContent"]["database"], "REPLICA_DB", "{ctx}");
    let r = call_on(
        &b.base,
        "token-a",
        &id,
        "run_query",
        json!({"sql": "SELECT 3"}),
    )
    .await;
    assert_eq!(kind(&r), "ok", "{r}");
    // Every call A answered was counted in the shared quota.
    let used: u64 = redis
        .command(&["HGET", &usage_key_today(), "queries"])
        .parse()
        .unwrap();
    assert!(
        used > answered,
        "usage {used} counts A's {answered} answered calls and B's"
    );
    // A's leases expire: a dead replica's places come back within the lease TTL (expired
    // holders are dropped by the next acquisition, here B's calls).
    let key = "snowflake-mcp:{c:a}:leases";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call_on(
            &b.base,
            "token-a",
            &id,
            "run_query",
            json!({"sql": "SELECT 4"}),
        )
        .await;
        assert_eq!(kind(&r), "ok", "{r}");
        if redis.command(&["ZCARD", key]) == "0" {
            break;
        }
        assert!(Instant::now() < deadline, "A's leases never expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_limits_degrade_as_documented_and_recover() {
    let mut redis = Valkey::start();
    let cfg = write_config(
        "redisdown",
        &format!(
            "[[clients]]\nid = \"limited\"\ntoken_sha256 = \"{}\"\nrate_per_minute = 600\nmax_concurrent = 2\n\
             [[clients]]\nid = \"quota\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 100\n",
            sha("token-l"),
            sha("token-q")
        ),
    );
    let url = redis.url();
    let a = Server::start(&["--config", &cfg, "--state", &url], &fakesnow_env()).await;
    let (sl, sq) = (
        open(&a.base, "token-l").await,
        open(&a.base, "token-q").await,
    );
    for (token, id) in [("token-l", &sl), ("token-q", &sq)] {
        let r = call_on(&a.base, token, id, "run_query", json!({"sql": "SELECT 1"})).await;
        assert_eq!(kind(&r), "ok", "{r}");
    }
    redis.kill();
    // Rate limits and concurrency caps fall back to this replica's share: calls go on.
    let r = call_on(
        &a.base,
        "token-l",
        &sl,
        "run_query",
        json!({"sql": "SELECT 2"}),
    )
    .await;
    assert_eq!(kind(&r), "ok", "{r}");
    let (_, metrics) = http_get(&a.base, "/metrics").await;
    assert!(
        metrics.contains("snowflake_mcp_state_store_unreachable 1"),
        "{metrics}"
    );
    // Quotas guard money: they fail closed, with a retry hint.
    let r = call_on(
        &a.base,
        "token-q",
        &sq,
        "run_query",
        json!({"sql": "SELECT 2"}),
    )
    .await;
    assert_eq!(kind(&r), "unavailable", "{r}");
    assert!(
        r["_meta"]["error"]["retry_after_ms"].as_u64().is_some(),
        "{r}"
    );
    // Sessions this replica holds keep working; a new one cannot be recorded: 503.
    let ctx = call_on(&a.base, "token-q", &sq, "get_context", json!({})).await;
    assert_eq!(kind(&ctx), "ok", "{ctx}");
    let (status, head, _) = post(&a.base, "token-l", None, INIT).await;
    assert_eq!(status, 503, "{head}");
    // Redis comes back (empty: persistence is off here): everything recovers on its own.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call_on(
            &a.base,
            "token-q",
            &sq,
            "run_query",
            json!({"sql": "SELECT 3"}),
        )
        .await;
        if kind(&r) == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "quotas did not recover: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, metrics) = http_get(&a.base, "/metrics").await;
    assert!(
        metrics.contains("snowflake_mcp_state_store_unreachable 0"),
        "{metrics}"
    );
    // The held sessions' records are written again (after the call that found them lost
    // answered: wait for it), and new sessions open.
    let key = format!("snowflake-mcp:session:{sq}");
    let owner = wait_for_value("the lost session record to be written again", || {
        let owner = redis.command(&["HGET", &key, "client_id"]);
        async move { (!owner.is_empty()).then_some(owner) }
    })
    .await;
    assert_eq!(owner, "quota");
    open(&a.base, "token-l").await;
}

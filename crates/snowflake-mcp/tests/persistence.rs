//! Rate limits, quotas and resumption, end to end, across graceful and `kill -9` restarts.

mod common;

use common::*;
use serde_json::json;

fn clients_config(name: &str) -> String {
    write_config(
        name,
        &format!(
            "[[clients]]\nid = \"capped\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 5\n\n\
             [[clients]]\nid = \"bursty\"\ntoken_sha256 = \"{}\"\nrate_per_minute = 6\nburst = 3\n\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("capped-token"),
            sha("bursty-token"),
            sha("free-token")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_holds_across_graceful_and_hard_restarts() {
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS QUOTA_DB".into(),
        "CREATE SCHEMA IF NOT EXISTS QUOTA_DB.PUBLIC".into(),
    ])
    .await;
    let config = clients_config("quota");
    let state = temp_state();
    let args = ["--config", config.as_str(), "--state", state.as_str()];
    let listen = format!("127.0.0.1:{}", testkit::free_port());

    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let client = server.client_with_token("capped-token").await;
    ok(&client, "set_context", json!({"database": "QUOTA_DB"})).await;
    for i in 0..3 {
        ok(&client, "run_query", json!({"sql": format!("SELECT {i}")})).await;
    }
    let ctx = ok(&client, "get_context", no_args()).await;
    assert_eq!(
        ctx["limits"]["quotas"]["queries_per_day"]["remaining"], 2,
        "{ctx}"
    );
    // Refused statements are refunded: they never reached Snowflake.
    let (kind, _) = err(&client, "run_query", json!({"sql": "DELETE FROM T"})).await;
    assert_eq!(kind, "not_allowed");
    server.stop().await;

    // After a graceful restart the same session id carries on: same context, same usage.
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let ctx = ok(&client, "get_context", no_args()).await;
    assert_eq!(
        ctx["database"], "QUOTA_DB",
        "the session's context came back: {ctx}"
    );
    assert_eq!(ctx["limits"]["quotas"]["queries_per_day"]["remaining"], 2);
    ok(&client, "run_query", json!({"sql": "SELECT 4"})).await;
    server.kill_hard().await;

    // kill -9 loses nothing that was acknowledged.
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let r = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT CURRENT_DATABASE()"}),
    )
    .await;
    assert_eq!(r["rows"][0][0], "QUOTA_DB");
    let r = call(&client, "run_query", json!({"sql": "SELECT 6"})).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "the sixth query of the day is refused"
    );
    let s = error_of(&r);
    assert_eq!(s["kind"], "quota_exceeded");
    assert!(
        s["message"].as_str().unwrap().contains("5 queries per day"),
        "{s}"
    );
    assert!(s["retry_after_ms"].as_u64().unwrap() > 0);

    // A brand-new session of the same client is still over its quota, and starts from the
    // client's defaults, not the old session's context.
    let fresh = server.client_with_token("capped-token").await;
    assert_eq!(
        ok(&fresh, "get_context", no_args()).await["database"],
        "MCP_DB"
    );
    assert_eq!(
        err(&fresh, "run_query", json!({"sql": "SELECT 1"})).await.0,
        "quota_exceeded"
    );
    // Other clients are not affected.
    let free = server.client_with_token("free-token").await;
    ok(&free, "run_query", json!({"sql": "SELECT 1"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_gets_retry_hints_and_others_are_unaffected() {
    let config = clients_config("rate");
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let bursty = server.client_with_token("bursty-token").await;
    let free = server.client_with_token("free-token").await;
    let mut limited = 0;
    for _ in 0..6 {
        let r = call(&bursty, "run_query", json!({"sql": "SELECT 1"})).await;
        if r.is_error == Some(true) {
            let s = error_of(&r);
            assert_eq!(s["kind"], "rate_limited", "{s}");
            let wait = s["retry_after_ms"].as_u64().unwrap();
            assert!(
                (1..=10_000).contains(&wait),
                "6/min refills one call every 10 s: {wait}"
            );
            assert!(s["message"].as_str().unwrap().contains("retry in"));
            limited += 1;
        }
    }
    assert!(
        limited >= 3,
        "a burst of 6 against 3 + 1 per 10 s was limited {limited} times"
    );
    for _ in 0..6 {
        ok(&free, "run_query", json!({"sql": "SELECT 1"})).await;
    }
    let headroom = ok(&bursty, "get_context", no_args()).await;
    assert_eq!(
        headroom["limits"]["rate_limit"]["per_minute"], 6,
        "{headroom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_session_id_restores_nothing() {
    let config = clients_config("owner");
    let state = temp_state();
    let args = ["--config", config.as_str(), "--state", state.as_str()];
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let capped = server.client_with_token("capped-token").await;
    ok(&capped, "get_context", no_args()).await;
    server.stop().await;
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    // Find the stored session id and present it with another client's token.
    let conn = stored_sessions(&state);
    assert_eq!(conn.len(), 1, "one stored session");
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", "Bearer free-token"),
        ("mcp-session-id", conn[0].as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_context","arguments":{}}}"#;
    let (status, _, text) = raw_http(&server.base, "POST", "/mcp", &headers, body).await;
    assert_eq!(
        status, 404,
        "another client's session id is answered 404, as the README says: {text}"
    );
    assert!(
        !text.contains("MCP_DB"),
        "nothing of the other client's session leaks: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_quotas_are_exact_under_a_hundred_concurrent_calls_and_cancelled_calls_are_audited() {
    let config = write_config(
        "rows-quota",
        &format!(
            "[[clients]]\nid = \"rows\"\ntoken_sha256 = \"{}\"\nrows_per_day = 10\n",
            sha("rows-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let client = std::sync::Arc::new(server.client_with_token("rows-token").await);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        calls.spawn(async move {
            let r = call(
                &client,
                "run_query",
                json!({"sql": "SELECT * FROM CUSTOMERS", "max_rows": 100}),
            )
            .await;
            match r.is_error {
                Some(true) => {
                    assert_eq!(error_of(&r)["kind"], "quota_exceeded");
                    0
                }
                _ => r.structured_content.unwrap()["row_count"].as_u64().unwrap(),
            }
        });
    }
    let rows: u64 = calls.join_all().await.into_iter().sum();
    assert_eq!(
        rows, 10,
        "100 concurrent 100-row queries against 10 remaining rows return 10"
    );
    let ctx = ok(&client, "get_context", no_args()).await;
    assert_eq!(ctx["limits"]["quotas"]["rows_per_day"]["used"], 10, "{ctx}");

    // A cancelled call is audited as cancelled, not lost.
    let params = rmcp::model::CallToolRequestParams::new("run_query").with_arguments(
        json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000000) SELECT COUNT(*) FROM c"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let unlimited = write_config(
        "cancel-audit",
        &format!(
            "[[clients]]\nid = \"c\"\ntoken_sha256 = \"{}\"\n",
            sha("c-token")
        ),
    );
    let server2 = Server::start(&["--config", &unlimited, "--demo"], &[]).await;
    let c = server2.client_with_token("c-token").await;
    let handle = c
        .peer()
        .send_cancellable_request(
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params)),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    // Cancel once the statement is running (not on a timer).
    wait_for("the statement to start", || async {
        statements_running(&server2.base).await > 0
    })
    .await;
    handle.cancel(Some("stop".into())).await.unwrap();
    let status = wait_for_value("the cancelled call's audit record", || async {
        let history = ok(&c, "query_history", json!({"limit": 1})).await;
        history["queries"][0]["status"].as_str().map(str::to_string)
    })
    .await;
    assert_eq!(status, "cancelled");
    wait_for("the statement to stop", || async {
        statements_running(&server2.base).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_seconds_quota_caps_the_statement_and_then_refuses() {
    let config = write_config(
        "seconds-quota",
        &format!(
            "[[clients]]\nid = \"s\"\ntoken_sha256 = \"{}\"\nstatement_seconds_per_day = 1\ncredits_per_day = 2.5\n",
            sha("s-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let c = server.client_with_token("s-token").await;
    let started = std::time::Instant::now();
    let long = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000000) SELECT COUNT(*) FROM c";
    let (kind, _) = err(&c, "run_query", json!({"sql": long})).await;
    assert_eq!(
        kind, "timeout",
        "the statement was stopped at the 1 s it had left"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let r = call(&c, "run_query", json!({"sql": "SELECT 1"})).await;
    let e = error_of(&r);
    assert_eq!(e["kind"], "quota_exceeded");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("statement seconds per day"),
        "{e}"
    );
    let ctx = ok(&c, "get_context", no_args()).await;
    let q = &ctx["limits"]["quotas"];
    assert!(
        q["statement_seconds_per_day"]["used"].as_f64().unwrap() >= 1.0,
        "{ctx}"
    );
    assert_eq!(q["credits_per_day"]["limit"], 2.5, "{ctx}");
}

/// Statements holding a scheduler permit, from `/metrics`.
async fn statements_running(base: &str) -> u64 {
    let (_, metrics) = http_get(base, "/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("snowflake_mcp_statements_running "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The sessions the server holds in memory for `client`, from `/metrics`.
async fn sessions_in_memory(base: &str, client: &str) -> usize {
    let (_, metrics) = http_get(base, "/metrics").await;
    let prefix = format!("snowflake_mcp_sessions{{client=\"{client}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_parked_out_of_memory_and_its_next_call_brings_it_back() {
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS PARK_DB".into(),
        "CREATE SCHEMA IF NOT EXISTS PARK_DB.PUBLIC".into(),
    ])
    .await;
    let config = write_config(
        "park",
        &format!(
            "[sessions]\npark_after_secs = 1\n\n[[clients]]\nid = \"parker\"\ntoken_sha256 = \"{}\"\n",
            sha("parker-token")
        ),
    );
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let client = server.client_with_token("parker-token").await;
    ok(&client, "set_context", json!({"database": "PARK_DB"})).await;
    assert_eq!(sessions_in_memory(&server.base, "parker").await, 1);
    // Idle for a second: parked at the next sweep (every second), and it stays parked although
    // the client held a GET stream, which ended and is not reopened.
    wait_for("the idle session to leave memory", || async {
        sessions_in_memory(&server.base, "parker").await == 0
    })
    .await;
    // It stays parked: watched over several sweeps (a property over time, so a span of time
    // is what is checked, at every sweep rather than once at its end).
    let watched = std::time::Instant::now();
    while watched.elapsed() < std::time::Duration::from_secs(4) {
        assert_eq!(
            sessions_in_memory(&server.base, "parker").await,
            0,
            "the client's GET stream did not bring it back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The next call restores it, context and all.
    let ctx = ok(&client, "get_context", no_args()).await;
    assert_eq!(ctx["database"], "PARK_DB", "{ctx}");
    let r = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT CURRENT_DATABASE()"}),
    )
    .await;
    assert_eq!(r["rows"][0][0], "PARK_DB");
    assert_eq!(sessions_in_memory(&server.base, "parker").await, 1);
}

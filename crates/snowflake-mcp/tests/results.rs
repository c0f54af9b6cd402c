//! Long queries and big results through handles: a statement that outlives `wait_secs` answers
//! `running` with a `result_id`, `get_result` reads it once done, `fetch_rows` pages the same
//! result without running it again, `cancel_query` stops it; a handle is its client's only and
//! survives a restart. Against the demo (offline) and against a scripted Snowflake
//! (`testkit::Warehouse`: asynchronous execution, results read by query id, chunks, aborts).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The text of resource `uri`, or the protocol error reading it.
async fn read_text(client: &Client, uri: &str) -> Result<String, String> {
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await
        .map_err(|e| e.to_string())?;
    match read.contents.into_iter().next() {
        Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => Ok(text),
        other => Err(format!("not text: {other:?}")),
    }
}

/// Page through a result from its first page to the end with `fetch_rows`; every row's first
/// cell, in order.
async fn page_to_the_end(client: &Client, first: &Value, limit: u64) -> Vec<String> {
    let cell = |r: &Value| match &r[0] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut seen: Vec<String> = first["rows"].as_array().unwrap().iter().map(cell).collect();
    let id = first["result_id"]
        .as_str()
        .expect("a truncated result has a handle");
    let mut next = first["next"].as_str().map(str::to_string);
    while let Some(cursor) = next {
        let page = ok(
            client,
            "fetch_rows",
            json!({"result_id": id, "cursor": cursor, "limit": limit}),
        )
        .await;
        assert_eq!(page["offset"].as_u64(), Some(seen.len() as u64));
        seen.extend(page["rows"].as_array().unwrap().iter().map(cell));
        next = page["next"].as_str().map(str::to_string);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_long_queries_by_handle_and_pages_big_results() {
    let state = temp_state();
    let config = write_config(
        "results-demo",
        &format!(
            "[[clients]]\nid = \"ana\"\ntoken_sha256 = \"{}\"\n\n[[clients]]\nid = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha("ana-token"),
            sha("bob-token")
        ),
    );
    let args = ["--demo", "--state", &state, "--config", &config];
    let server = Server::start(&args, &[]).await;
    let ana = server.client_with_token("ana-token").await;

    // A statement longer than the call's bound answers at once, and keeps running.
    let started = Instant::now();
    let running = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(3)", "wait_secs": 0.5}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within its bound"
    );
    assert_eq!(running["status"], "running", "{running}");
    let id = running["result_id"].as_str().unwrap().to_string();
    assert!(id.len() >= 64, "unguessable: {id}");
    assert!(running["query_id"]
        .as_str()
        .is_some_and(|q| q.starts_with("demo-")));
    let done = ok(
        &ana,
        "get_result",
        json!({"result_id": id, "wait_secs": 10}),
    )
    .await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["rows"], json!([["waited 3 seconds"]]));

    // Another client cannot see it, or stop it.
    let bob = server.client_with_token("bob-token").await;
    for tool in ["get_result", "fetch_rows", "cancel_query"] {
        let (kind, _) = err(&bob, tool, json!({"result_id": id})).await;
        assert_eq!(kind, "not_found", "{tool}");
    }
    let (kind, _) = err(&ana, "get_result", json!({"result_id": "r0123"})).await;
    assert_eq!(kind, "not_found");

    // A big result: its first page, then the rest of the same result, page by page.
    let first = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT ORDER_ID FROM ORDERS ORDER BY ORDER_ID", "max_rows": 500}),
    )
    .await;
    let total = first["total_rows"].as_u64().expect("the total is known");
    assert!(total > 1000, "{total}");
    assert_eq!(first["truncated"], true);
    assert_eq!(first["next"], "500");
    let ids = page_to_the_end(&ana, &first, 700).await;
    assert_eq!(ids.len() as u64, total);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len() as u64,
        total,
        "no row twice"
    );
    let numbers: Vec<i64> = ids.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in the result's order"
    );
    // An offset reads from anywhere; past the end is empty; bad paging arguments are refused.
    let handle = first["result_id"].as_str().unwrap();
    let deep = ok(
        &ana,
        "fetch_rows",
        json!({"result_id": handle, "offset": total - 2, "limit": 10}),
    )
    .await;
    assert_eq!(deep["row_count"], 2);
    assert!(deep.get("next").is_none());
    for bad in [
        json!({"result_id": handle, "cursor": "x"}),
        json!({"result_id": handle, "cursor": "1", "offset": 1}),
        json!({"result_id": handle, "limit": 0}),
    ] {
        let (kind, _) = err(&ana, "fetch_rows", bad.clone()).await;
        assert_eq!(kind, "invalid_argument", "{bad}");
    }

    // The whole result is also a resource, linked from the answer, as CSV or JSON.
    let answer = call(
        &ana,
        "run_query",
        json!({"sql": "SELECT ORDER_ID FROM ORDERS ORDER BY ORDER_ID", "max_rows": 10}),
    )
    .await;
    let link = answer
        .content
        .iter()
        .find_map(|c| match c {
            rmcp::model::ContentBlock::ResourceLink(r) => Some(r.uri.clone()),
            _ => None,
        })
        .expect("a resource_link to the whole result");
    assert!(link.ends_with(".csv"), "{link}");
    let csv = read_text(&ana, &link).await.expect("readable by its owner");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "ORDER_ID");
    assert_eq!(lines.len() as u64, total + 1, "a header and every row");
    let json_uri = link.replace(".csv", ".json");
    let as_json: Value = serde_json::from_str(&read_text(&ana, &json_uri).await.unwrap()).unwrap();
    assert_eq!(as_json["rows"].as_array().unwrap().len() as u64, total);
    assert!(
        read_text(&bob, &link).await.is_err(),
        "not another client's"
    );

    // Reading by handle is audited like any call.
    let history = ok(&ana, "query_history", json!({"limit": 200})).await;
    let tools: HashSet<&str> = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["tool"].as_str())
        .collect();
    assert!(
        tools.contains("get_result") && tools.contains("fetch_rows"),
        "{tools:?}"
    );

    // cancel_query stops a running statement at once.
    let long = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(60)", "wait_secs": 0.2}),
    )
    .await;
    let long_id = long["result_id"].as_str().unwrap();
    let asked = Instant::now();
    let cancelled = ok(&ana, "cancel_query", json!({"result_id": long_id})).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(asked.elapsed() < Duration::from_secs(5));
    let (kind, _) = err(&ana, "get_result", json!({"result_id": long_id})).await;
    assert_eq!(kind, "cancelled");

    // After a restart the handles still work: the result is read from what the demo kept.
    let late = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(1)", "wait_secs": 0}),
    )
    .await;
    let late_id = late["result_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let handle = handle.to_string();
    drop((ana, bob));
    server.stop().await;
    let server = Server::start(&args, &[]).await;
    let (ana, bob) = (
        server.client_with_token("ana-token").await,
        server.client_with_token("bob-token").await,
    );
    let late = ok(&ana, "get_result", json!({"result_id": late_id})).await;
    assert_eq!(late["rows"], json!([["waited 1 seconds"]]));
    let page = ok(
        &ana,
        "fetch_rows",
        json!({"result_id": handle, "offset": 100, "limit": 5}),
    )
    .await;
    assert_eq!(
        page["rows"][0][0].to_string().trim_matches('"'),
        numbers[100].to_string()
    );
    let (kind, _) = err(&bob, "fetch_rows", json!({"result_id": handle})).await;
    assert_eq!(kind, "not_found");
    drop((ana, bob));
    server.stop().await;
}

fn two_clients(name: &str) -> String {
    write_config(
        name,
        &format!(
            "[query]\nmax_rows = 10000\n\n[[clients]]\nid = \"ana\"\ntoken_sha256 = \"{}\"\n\n[[clients]]\nid = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha("ana-token"),
            sha("bob-token")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_results_are_paged_from_one_execution_and_outlive_the_server() {
    let wh = testkit::Warehouse::start().await;
    let env = warehouse_env(wh.port());
    let (state, config) = (temp_state(), two_clients("results-snowflake"));
    let args = ["--config", &config, "--state", &state];
    let server = Server::start(&args, &env).await;
    let ana = server.client_with_token("ana-token").await;

    // A million rows, paged to the end; Snowflake ran the statement once.
    let sql = "SELECT SEQ4() AS N FROM TABLE(GENERATOR(ROWCOUNT => 1000000))";
    let first = ok(&ana, "run_query", json!({"sql": sql, "max_rows": 10000})).await;
    assert_eq!(first["total_rows"], 1_000_000);
    let submit = wh
        .server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/queries/v1/query-request")
        .unwrap();
    assert_eq!(
        submit.body["asyncExec"], true,
        "run_query statements are detached"
    );
    let rows = page_to_the_end(&ana, &first, 10000).await;
    assert_eq!(rows.len(), 1_000_000);
    assert_eq!((rows[0].as_str(), rows[999_999].as_str()), ("1", "1000000"));
    assert_eq!(
        wh.executions("GENERATOR"),
        1,
        "paging never runs the statement again"
    );
    assert!(
        wh.chunk_downloads() < 1200,
        "each chunk read about once: {}",
        wh.chunk_downloads()
    );

    // A statement running when the server dies is answered by the next one.
    let running = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(4)", "wait_secs": 0.5}),
    )
    .await;
    assert_eq!(running["status"], "running");
    assert!(
        running["query_id"].as_str().is_some(),
        "Snowflake named it at once"
    );
    let waiting = running["result_id"].as_str().unwrap().to_string();
    let long = ok(
        &ana,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(600)", "wait_secs": 0.2}),
    )
    .await;
    let long = long["result_id"].as_str().unwrap().to_string();
    let big = first["result_id"].as_str().unwrap().to_string();
    drop(ana);
    server.kill_hard().await;

    let server = Server::start(&args, &env).await;
    let (ana, bob) = (
        server.client_with_token("ana-token").await,
        server.client_with_token("bob-token").await,
    );
    let done = ok(
        &ana,
        "get_result",
        json!({"result_id": waiting, "wait_secs": 15}),
    )
    .await;
    assert_eq!(done["rows"], json!([["waited 4 seconds"]]));
    assert_eq!(wh.executions("SYSTEM$WAIT(4)"), 1);
    let page = ok(
        &ana,
        "fetch_rows",
        json!({"result_id": big, "offset": 500000, "limit": 3}),
    )
    .await;
    assert_eq!(page["rows"][0][0], json!(500001));
    let (kind, _) = err(&bob, "get_result", json!({"result_id": waiting})).await;
    assert_eq!(kind, "not_found");
    // ... and stopped by it, on Snowflake.
    let (kind, _) = err(&bob, "cancel_query", json!({"result_id": long})).await;
    assert_eq!(kind, "not_found");
    assert!(!wh.cancelled("SYSTEM$WAIT(600)"));
    let stopped = ok(&ana, "cancel_query", json!({"result_id": long})).await;
    assert_eq!(stopped["status"], "cancelled");
    assert!(
        wh.cancelled("SYSTEM$WAIT(600)"),
        "SYSTEM$CANCEL_QUERY reached Snowflake"
    );
    let (kind, _) = err(&ana, "get_result", json!({"result_id": long})).await;
    assert_eq!(kind, "cancelled");
    drop((ana, bob));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_moves_between_replicas() {
    let redis = testkit::Valkey::start();
    let wh = testkit::Warehouse::start().await;
    let env = warehouse_env(wh.port());
    let config = two_clients("results-replicas");
    let url = redis.url();
    let args = ["--config", config.as_str(), "--state", url.as_str()];
    let (a, b) = (
        Server::start(&args, &env).await,
        Server::start(&args, &env).await,
    );
    let on_a = a.client_with_token("ana-token").await;
    let on_b = b.client_with_token("ana-token").await;
    let running = ok(
        &on_a,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(2)", "wait_secs": 0.2}),
    )
    .await;
    let id = running["result_id"].as_str().unwrap();
    let done = ok(
        &on_b,
        "get_result",
        json!({"result_id": id, "wait_secs": 10}),
    )
    .await;
    assert_eq!(done["rows"], json!([["waited 2 seconds"]]));
    let sql = "SELECT SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 5000))";
    let first = ok(&on_a, "run_query", json!({"sql": sql, "max_rows": 100})).await;
    let rows = page_to_the_end(&on_b, &first, 1000).await;
    assert_eq!(rows.len(), 5000);
    assert_eq!(wh.executions("GENERATOR"), 1);
    let bob = b.client_with_token("bob-token").await;
    let (kind, _) = err(&bob, "fetch_rows", json!({"result_id": first["result_id"]})).await;
    assert_eq!(kind, "not_found");
}

/// A call that asked for progress hears, while its statement runs, what Snowflake's monitoring
/// says of it (raw sessionless JSON-RPC, to see every notification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_reports_snowflakes_status_as_progress() {
    let wh = testkit::Warehouse::start().await;
    let server = Server::start(&[], &warehouse_env(wh.port())).await;
    let params = json!({"name": "run_query", "arguments": {"sql": "SELECT SYSTEM$WAIT(7)", "wait_secs": 15},
        "_meta": {"progressToken": "p-7",
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}});
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string();
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "run_query"),
    ];
    let (status, _, answer) = raw_http(&server.base, "POST", "/mcp", &headers, &body).await;
    assert_eq!(status, 200, "{answer}");
    let messages: Vec<Value> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    let notes: Vec<&str> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .filter_map(|m| m["params"]["message"].as_str())
        .collect();
    // The stage it had reached when the quiet period ended comes first, then the news.
    assert!(
        matches!(notes.first(), Some(&"queued" | &"running")),
        "{notes:?}"
    );
    assert!(notes.contains(&"running"), "{notes:?}");
    assert!(notes.contains(&"Snowflake: running"), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.starts_with("running for")),
        "{notes:?}"
    );
    let result = messages.iter().find(|m| m["id"] == 1).unwrap();
    assert_eq!(
        result["result"]["structuredContent"]["rows"],
        json!([["waited 7 seconds"]])
    );
    let progress: Vec<f64> = messages
        .iter()
        .filter_map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress always increases: {progress:?}"
    );
}

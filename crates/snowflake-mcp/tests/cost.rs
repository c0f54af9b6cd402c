//! Costs refused before they happen: a client with `max_scan_bytes` has each query's plan
//! (`EXPLAIN USING JSON`) asked for first, and one over its limit is refused with
//! `cost_exceeded` — the statement never runs; `explain_query` shows the same estimate.
//! Against a scripted Snowflake (`testkit::Warehouse`) and the demo.

mod common;

use common::*;
use serde_json::json;

fn config(name: &str) -> String {
    write_config(
        name,
        &format!(
            "[[clients]]\nid = \"careful\"\ntoken_sha256 = \"{}\"\nmax_scan_bytes = 1e12\n\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("careful-token"),
            sha("free-token")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_scan_limit_is_refused_before_it_runs() {
    let wh = testkit::Warehouse::start().await;
    let env = warehouse_env(wh.port());
    let config = config("cost-snowflake");
    let server = Server::start(&["--config", &config], &env).await;
    let careful = server.client_with_token("careful-token").await;

    let (kind, message) = err(&careful, "run_query", json!({"sql": "SELECT * FROM BIG"})).await;
    assert_eq!(kind, "cost_exceeded");
    assert!(
        message.contains("40.0 TB") && message.contains("LIMIT does not reduce"),
        "{message}"
    );
    assert_eq!(
        wh.executions("SELECT * FROM BIG"),
        1,
        "only its EXPLAIN ran"
    );
    assert_eq!(wh.executions("EXPLAIN USING JSON SELECT * FROM BIG"), 1);

    // The model can look first; the plan is cached briefly, so asking twice explains once.
    let plan = ok(
        &careful,
        "explain_query",
        json!({"sql": "SELECT * FROM BIG"}),
    )
    .await;
    assert_eq!(plan["bytes_assigned"], 40_000_000_000_000u64);
    assert_eq!(plan["partitions_assigned"], 100_000);
    assert!(plan["plan"]["GlobalStats"].is_object());
    assert_eq!(
        wh.executions("EXPLAIN USING JSON SELECT * FROM BIG"),
        1,
        "cached"
    );

    // Within the limit it runs; SHOW needs no estimate; a client without a limit is not asked.
    ok(&careful, "run_query", json!({"sql": "SELECT * FROM SMALL"})).await;
    assert_eq!(wh.executions("EXPLAIN USING JSON SELECT * FROM SMALL"), 1);
    ok(&careful, "run_query", json!({"sql": "SHOW TABLES"})).await;
    assert_eq!(wh.executions("EXPLAIN USING JSON SHOW"), 0);
    let free = server.client_with_token("free-token").await;
    ok(&free, "run_query", json!({"sql": "SELECT 2 FROM BIG"})).await;
    assert_eq!(wh.executions("EXPLAIN USING JSON SELECT 2"), 0);

    // Refusals are in the client's history and the metrics.
    let history = ok(&careful, "query_history", json!({})).await;
    assert!(
        history["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["status"] == "cost_exceeded"),
        "{history}"
    );
    let (_, metrics) = http_get(&server.base, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("tool_calls_total") && l.contains("cost_exceeded")),
        "{metrics}"
    );
    assert!(
        metrics.contains("snowflake_mcp_cost_refusals_total{client=\"careful\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_estimates_scans_from_its_tables() {
    let config = write_config(
        "cost-demo",
        &format!(
            "[[clients]]\nid = \"tiny\"\ntoken_sha256 = \"{}\"\nmax_scan_bytes = 1000\n",
            sha("tiny-token")
        ),
    );
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let tiny = server.client_with_token("tiny-token").await;
    let plan = ok(
        &tiny,
        "explain_query",
        json!({"sql": "SELECT COUNT(*) FROM ORDERS"}),
    )
    .await;
    assert!(plan["bytes_assigned"].as_u64().unwrap() > 1000, "{plan}");
    let view = ok(
        &tiny,
        "explain_query",
        json!({"sql": "SELECT * FROM ORDER_TOTALS"}),
    )
    .await;
    assert!(
        view["partitions_assigned"].as_u64().unwrap() >= 2,
        "a view reads its tables: {view}"
    );
    let (kind, _) = err(
        &tiny,
        "run_query",
        json!({"sql": "SELECT COUNT(*) FROM ORDERS"}),
    )
    .await;
    assert_eq!(kind, "cost_exceeded");
    let (kind, _) = err(&tiny, "explain_query", json!({"sql": "DELETE FROM ORDERS"})).await;
    assert_eq!(
        kind, "not_allowed",
        "explain_query is behind the same guard"
    );
    ok(&tiny, "run_query", json!({"sql": "SELECT 1 AS X"})).await;
}

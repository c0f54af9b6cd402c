//! The offline demo end to end: the real binary, a real MCP client, over HTTP and stdio.

mod common;

use common::*;
use serde_json::json;

async fn exercise(client: &Client) {
    // The tool list: exact names, output schemas, read-only hints.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "describe_object",
            "get_context",
            "list_databases",
            "list_objects",
            "list_schemas",
            "query_history",
            "run_query",
            "set_context"
        ]
    );
    assert!(tools.iter().all(|t| t.output_schema.is_some()));
    assert!(tools
        .iter()
        .all(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true)));

    let dbs = ok(client, "list_databases", no_args()).await;
    assert_eq!(names_of(&dbs["databases"]), ["DEMO"]);
    let schemas = ok(client, "list_schemas", json!({"database": "demo"})).await;
    assert_eq!(names_of(&schemas["schemas"]), ["SALES"]);
    let objects = ok(
        client,
        "list_objects",
        json!({"kind": "table", "pattern": "ORD%"}),
    )
    .await;
    assert_eq!(names_of(&objects["objects"]), ["ORDERS", "ORDER_ITEMS"]);
    let described = ok(client, "describe_object", json!({"name": "sales.orders"})).await;
    assert_eq!(described["name"], "DEMO.SALES.ORDERS");
    assert_eq!(described["columns"][0]["name"], "ORDER_ID");

    let result = ok(
        client,
        "run_query",
        json!({"sql": "SELECT STATUS, COUNT(*) AS N FROM ORDERS GROUP BY STATUS ORDER BY STATUS"}),
    )
    .await;
    assert_eq!(result["row_count"], 3);
    assert_eq!(result["rows"][0][0], "pending");
    assert_eq!(result["truncated"], false);
    assert_eq!(result["columns"][1]["type"], "NUMBER(38,0)");

    // A result bigger than the cap comes back truncated, with a note.
    let big = ok(
        client,
        "run_query",
        json!({"sql": "SELECT * FROM ORDER_ITEMS", "max_rows": 1_000_000}),
    )
    .await;
    assert_eq!(big["row_count"], 10_000);
    assert_eq!(big["truncated"], true);
    assert!(big["note"].as_str().unwrap().contains("Narrow"));
    let small = ok(
        client,
        "run_query",
        json!({"sql": "SELECT * FROM ORDER_ITEMS"}),
    )
    .await;
    assert_eq!(small["row_count"], 100, "the default cap");

    let described = ok(
        client,
        "run_query",
        json!({"sql": "DESCRIBE TABLE SALES.ORDERS"}),
    )
    .await;
    assert_eq!(described["rows"][0][0], "ORDER_ID");

    let ctx = ok(client, "get_context", no_args()).await;
    assert_eq!(
        ctx,
        json!({"database": "DEMO", "schema": "SALES", "warehouse": "DEMO_WH", "role": "PUBLIC",
            "limits": {"quotas": {}, "rate_limit": null}})
    );
    let set = ok(client, "set_context", json!({"schema": "SALES"})).await;
    assert_eq!(set["schema"], "SALES");

    // Error paths: each a tool error with a kind and a helpful message.
    let (kind, msg) = err(client, "run_query", json!({"sql": "DROP TABLE ORDERS"})).await;
    assert_eq!(kind, "not_allowed");
    assert!(msg.contains("DROP TABLE"), "{msg}");
    let (kind, _) = err(
        client,
        "run_query",
        json!({"sql": "SELECT * FROM NO_SUCH_TABLE"}),
    )
    .await;
    assert_eq!(kind, "sql_error");
    let (kind, msg) = err(client, "describe_object", json!({"name": "nope"})).await;
    assert_eq!(kind, "not_found");
    assert!(msg.contains("list_objects"), "{msg}");
    let (kind, _) = err(client, "list_schemas", json!({"database": "OTHER"})).await;
    assert_eq!(kind, "not_found");
    let (kind, _) = err(client, "set_context", json!({"database": "OTHER"})).await;
    assert_eq!(kind, "not_found");
    let (kind, msg) = err(client, "run_query", json!({"sql": 5})).await;
    assert_eq!(kind, "invalid_argument", "{msg}");
    let (kind, _) = err(
        client,
        "describe_object",
        json!({"name": "x; DROP TABLE y"}),
    )
    .await;
    assert_eq!(kind, "invalid_argument");
    let (kind, _) = err(client, "list_databases", json!({"surprise": 1})).await;
    assert_eq!(kind, "invalid_argument");
    assert!(client
        .call_tool(rmcp::model::CallToolRequestParams::new("drop_everything"))
        .await
        .is_err());
    // History: this client's own calls, newest first, refusals included.
    let history = ok(client, "query_history", json!({"limit": 50})).await;
    let queries = history["queries"].as_array().unwrap();
    assert!(
        queries
            .iter()
            .any(|q| q["sql"] == "DROP TABLE ORDERS" && q["status"] == "not_allowed"),
        "{history}"
    );
    assert!(queries
        .iter()
        .any(|q| q["status"] == "ok" && q["rows"] == 3));
    // The data is still there after every refusal.
    let count = ok(
        client,
        "run_query",
        json!({"sql": "SELECT COUNT(*) AS N FROM ORDERS"}),
    )
    .await;
    assert_eq!(count["rows"][0][0], 5000);
}

fn names_of(v: &serde_json::Value) -> Vec<String> {
    names(v)
}

#[tokio::test]
async fn demo_over_http() {
    let server = Server::start(&["--demo"], &[]).await;
    let client = server.client().await;
    exercise(&client).await;
    let health = http_get(&server.base, "/healthz").await;
    assert_eq!(health.0, 200);
    let ready = http_get(&server.base, "/readyz").await;
    assert_eq!(ready, (200, "ready\n".to_string()));
    let (status, _, metrics) = raw_http(&server.base, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    for expected in [
        "snowflake_mcp_tool_calls_total{tool=\"run_query\",client=\"anonymous\",outcome=\"ok\"}",
        "outcome=\"not_allowed\"",
        "snowflake_mcp_duration_seconds_count{stage=\"queue_wait\",tool=\"run_query\"}",
        "snowflake_mcp_cache_hits_total",
        "snowflake_mcp_sessions{client=\"anonymous\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn demo_over_stdio() {
    let client = stdio_client(&["--demo"], &[]).await;
    exercise(&client).await;
    client.cancel().await.unwrap();
}

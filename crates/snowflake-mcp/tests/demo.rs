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
            "cancel_query",
            "describe_object",
            "explain_query",
            "fetch_rows",
            "get_context",
            "get_result",
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
    assert_eq!(big["next"], "10000", "and the rest can be read: {big}");
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
            "limits": {"quotas": {}, "rate_limit": null}, "note": ctx["note"]})
    );
    assert!(
        ctx["note"].as_str().unwrap().contains("offline demo"),
        "{ctx}"
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

/// The SQL a model writes for Snowflake runs on the demo, with Snowflake's answers and types.
/// (The held-out corpus in `bench/demo-corpus` measures this broadly; these are the shapes a
/// newcomer meets first.)
#[tokio::test]
async fn the_demo_answers_snowflake_sql() {
    let config = write_config("demo-timeout", "[query]\nstatement_timeout_secs = 1\n");
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let client = server.client().await;
    let rows = |v: &serde_json::Value| v["rows"].as_array().unwrap().clone();

    // Three-part names, unquoted lower-case names, QUALIFY, IFF, DATE_TRUNC keeping a DATE.
    let top = ok(
        &client,
        "run_query",
        json!({"sql": "select c.customer_id, date_trunc('month', o.order_date) as month, \
            iff(count(*) > 1, 'repeat', 'once') as kind \
            from demo.sales.orders o join demo.sales.customers c on c.customer_id = o.customer_id \
            group by all qualify row_number() over (order by c.customer_id) <= 3"}),
    )
    .await;
    assert_eq!(rows(&top).len(), 3, "{top}");
    let types: Vec<&str> = top["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["NUMBER(38,0)", "DATE", "VARCHAR"], "{top}");
    assert_eq!(
        top["columns"][1]["name"], "MONTH",
        "unquoted aliases fold to upper case"
    );

    // Exact decimals, Snowflake's division, DATEADD/DATEDIFF with bare units.
    let sums = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT SUM(UNIT_PRICE) AS total, 7 / 2 AS half, \
            DATEDIFF(month, '2024-01-31'::date, DATEADD(day, 1, '2024-01-31'::date)) AS months \
            FROM PRODUCTS"}),
    )
    .await;
    let row = &rows(&sums)[0];
    assert_eq!(row[1], 3.5, "{sums}");
    assert_eq!(row[2], 1, "{sums}");
    assert!(
        sums["columns"][0]["type"]
            .as_str()
            .unwrap()
            .starts_with("NUMBER("),
        "{sums}"
    );

    // The information schema and SHOW, with Snowflake's column names.
    let tables = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT TABLE_NAME, ROW_COUNT FROM INFORMATION_SCHEMA.TABLES \
            WHERE TABLE_SCHEMA = CURRENT_SCHEMA() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"}),
    )
    .await;
    assert_eq!(rows(&tables)[1], json!(["ORDERS", 5000]), "{tables}");
    let show = ok(
        &client,
        "run_query",
        json!({"sql": "SHOW TABLES LIKE 'ord%'"}),
    )
    .await;
    let columns: Vec<&str> = show["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..5],
        ["created_on", "name", "database_name", "schema_name", "kind"]
    );
    assert_eq!(rows(&show).len(), 2, "ORDERS and ORDER_ITEMS: {show}");
    // DESCRIBE resolves names as Snowflake does: quoted names are exact, other databases are
    // not the demo's.
    let described = ok(
        &client,
        "run_query",
        json!({"sql": "DESC TABLE demo.sales.\"ORDERS\""}),
    )
    .await;
    assert_eq!(rows(&described).len(), 4, "{described}");
    for missing in ["DESC \"orders\"", "DESCRIBE TABLE other.sales.orders"] {
        let (kind, msg) = err(&client, "run_query", json!({"sql": missing})).await;
        assert_eq!(kind, "sql_error", "{missing}: {msg}");
        assert!(msg.contains("does not exist"), "{missing}: {msg}");
    }

    // Semi-structured values: a path into PARSE_JSON, cast to text.
    let json_value = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT PARSE_JSON('{\"Name\": {\"first\": \"Ada\"}}'):Name.first::string AS first"}),
    )
    .await;
    assert_eq!(rows(&json_value)[0][0], "Ada", "{json_value}");

    // What the demo cannot do is named, in Snowflake's words.
    let (kind, msg) = err(
        &client,
        "run_query",
        json!({"sql": "SELECT f.value FROM TABLE(FLATTEN(input => PARSE_JSON('[1,2]'))) f"}),
    )
    .await;
    assert_eq!(kind, "sql_error");
    assert!(
        msg.contains("FLATTEN") && msg.contains("offline demo"),
        "{msg}"
    );
    let (kind, msg) = err(&client, "run_query", json!({"sql": "SELECT NO_SUCH_FN(1)"})).await;
    assert_eq!(kind, "sql_error");
    assert!(msg.contains("Unknown function NO_SUCH_FN"), "{msg}");

    // A statement past its timeout is stopped; while it runs, other clients are answered (the
    // engine has threads of its own, so a heavy statement cannot starve the server).
    let other = server.client().await;
    let heavy = async {
        let result = err(
            &client,
            "run_query",
            json!({"sql": "SELECT COUNT(DISTINCT a.ORDER_ID * 100000 + b.ORDER_ID * 7 + c.LINE) \
                FROM ORDER_ITEMS a, ORDER_ITEMS b, ORDER_ITEMS c"}),
        )
        .await;
        (result, std::time::Instant::now())
    };
    let light = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        ok(
            &other,
            "run_query",
            json!({"sql": "SELECT COUNT(*) FROM PRODUCTS"}),
        )
        .await;
        std::time::Instant::now()
    };
    let (((kind, msg), heavy_done), light_done) = tokio::join!(heavy, light);
    assert_eq!(kind, "timeout", "{msg}");
    assert!(
        light_done < heavy_done,
        "another client waited for the heavy statement"
    );
    other.cancel().await.unwrap();
    let count = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT COUNT(*) FROM REGIONS"}),
    )
    .await;
    assert_eq!(rows(&count)[0][0], 5);
    client.cancel().await.unwrap();
}

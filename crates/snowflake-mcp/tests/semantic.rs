//! Snowflake's semantic views through the gateway, offline: the demo's `SALES` view answers
//! `SHOW SEMANTIC VIEWS`, `DESCRIBE SEMANTIC VIEW` and `SEMANTIC_VIEW(...)` queries through
//! `run_query` (the guard reads them as reads), with the numbers the plain SQL gives.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_semantic_view_answers_like_snowflake() {
    let server = Server::start(&["--demo"], &[]).await;
    let client = server.client().await;

    let shown = ok(
        &client,
        "run_query",
        json!({"sql": "SHOW SEMANTIC VIEWS IN SCHEMA DEMO.SALES"}),
    )
    .await;
    assert_eq!(shown["rows"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["columns"][1]["name"], "name");
    assert_eq!(shown["rows"][0][1], "SALES");
    let elsewhere = ok(
        &client,
        "run_query",
        json!({"sql": "SHOW SEMANTIC VIEWS IN SCHEMA OTHER.PLACE"}),
    )
    .await;
    assert_eq!(elsewhere["rows"], json!([]));

    let described = ok(
        &client,
        "run_query",
        json!({"sql": "DESCRIBE SEMANTIC VIEW DEMO.SALES.SALES", "max_rows": 500}),
    )
    .await;
    let rows = described["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r[0] == "METRIC" && r[1] == "TOTAL_REVENUE" && r[3] == "EXPRESSION"),
        "{described}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "DIMENSION" && r[1] == "REGION_NAME" && r[3] == "SYNONYMS"),
        "{described}"
    );

    // Revenue by region, as the plain query over the tables says.
    let semantic = ok(&client, "run_query", json!({"sql": "SELECT * FROM SEMANTIC_VIEW(SALES DIMENSIONS regions.region_name METRICS orders.total_revenue, orders.order_count WHERE orders.order_year = 2024) ORDER BY REGION_NAME"})).await;
    assert_eq!(semantic["columns"][0]["name"], "REGION_NAME", "{semantic}");
    assert_eq!(semantic["columns"][1]["name"], "TOTAL_REVENUE");
    let plain = ok(&client, "run_query", json!({"sql": "SELECT R.NAME, SUM(T.TOTAL), COUNT(O.ORDER_ID) FROM ORDERS O JOIN ORDER_TOTALS T ON T.ORDER_ID = O.ORDER_ID JOIN CUSTOMERS C ON C.CUSTOMER_ID = O.CUSTOMER_ID JOIN REGIONS R ON R.REGION_ID = C.REGION_ID WHERE DATE_PART('YEAR', O.ORDER_DATE) = 2024 GROUP BY R.NAME ORDER BY R.NAME"})).await;
    assert_eq!(semantic["rows"], plain["rows"]);
    assert_eq!(semantic["rows"].as_array().unwrap().len(), 5);

    // Snowflake's rules: no facts with metrics, names must exist, metrics are not filters.
    for (sql, says) in [
        ("SELECT * FROM SEMANTIC_VIEW(SALES FACTS orders.amount METRICS orders.order_count)", "FACTS and METRICS"),
        ("SELECT * FROM SEMANTIC_VIEW(SALES METRICS orders.profit)", "invalid identifier"),
        ("SELECT * FROM SEMANTIC_VIEW(SALES DIMENSIONS status METRICS order_count WHERE order_count > 3)", "cannot be used in the WHERE"),
        ("SELECT * FROM SEMANTIC_VIEW(NOPE METRICS orders.order_count)", "does not exist"),
    ] {
        let (kind, message) = err(&client, "run_query", json!({"sql": sql})).await;
        assert_eq!(kind, "sql_error", "{sql}: {message}");
        assert!(message.contains(says), "{sql}: {message}");
    }
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_semantic_view_tools_build_their_queries_and_run_them_on_the_run_query_path() {
    let config = write_config("semantic-tools", "[query]\nsemantic_views = true\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let client = server.client().await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    for tool in [
        "list_semantic_views",
        "describe_semantic_view",
        "query_semantic_view",
    ] {
        assert!(names.iter().any(|n| n == tool), "{names:?}");
    }

    let listed = ok(&client, "list_semantic_views", json!({})).await;
    assert_eq!(listed["semantic_views"][0]["name"], "SALES", "{listed}");
    assert_eq!(listed["semantic_views"][0]["database"], "DEMO");

    let described = ok(&client, "describe_semantic_view", json!({"name": "SALES"})).await;
    assert_eq!(described["name"], "DEMO.SALES.SALES");
    let revenue = item_with(&described["metrics"], "name", "TOTAL_REVENUE");
    assert_eq!(
        revenue["synonyms"],
        json!(["revenue", "sales"]),
        "{described}"
    );
    assert_eq!(revenue["table"], "ORDERS");
    assert!(described["dimensions"].as_array().unwrap().len() >= 5);

    // "What was revenue by region in 2024?": the three largest, from the view.
    let answer = ok(
        &client,
        "query_semantic_view",
        json!({"name": "SALES", "metrics": ["orders.total_revenue"], "dimensions": ["regions.region_name"],
            "where": [{"dimension": "orders.order_year", "op": "=", "value": 2024}],
            "order_by": ["total_revenue DESC"], "limit": 3}),
    )
    .await;
    assert_eq!(answer["columns"][0]["name"], "REGION_NAME", "{answer}");
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let values: Vec<f64> = rows
        .iter()
        .map(|r| {
            r[1].as_f64()
                .or_else(|| r[1].as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");

    // Names and values are never pasted: an injection is a name that does not exist or is
    // refused before any SQL is made; the audit shows the statement that ran.
    let (kind, _) = err(
        &client,
        "query_semantic_view",
        json!({"name": "SALES", "metrics": ["orders.total_revenue) UNION SELECT 1 --"]}),
    )
    .await;
    assert_eq!(kind, "invalid_argument");
    let none = ok(
        &client,
        "query_semantic_view",
        json!({"name": "SALES", "dimensions": ["regions.region_name"],
            "where": [{"dimension": "regions.region_name", "op": "=", "value": "x') OR (1=1"}]}),
    )
    .await;
    assert_eq!(none["rows"], json!([]), "a value stays a value: {none}");
    let history = ok(&client, "query_history", json!({"limit": 10})).await;
    assert!(
        history
            .to_string()
            .contains("SEMANTIC_VIEW(\\\"DEMO\\\".\\\"SALES\\\".\\\"SALES\\\""),
        "{history}"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_uses_only_the_semantic_views_it_is_allowed() {
    let config = write_config(
        "semantic-allowed",
        &format!(
            "[query]\nsemantic_views = true\n\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nallowed_semantic_views = [\"DEMO.SALES.SALES\"]\n\n\
             [[clients]]\nid = \"limited\"\ntoken_sha256 = \"{}\"\nallowed_semantic_views = [\"DEMO.SALES.MARGINS\"]\n",
            sha("analyst-token"),
            sha("limited-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let (analyst, limited) = (
        server.client_with_token("analyst-token").await,
        server.client_with_token("limited-token").await,
    );
    let ask = json!({"name": "SALES", "metrics": ["orders.order_count"]});
    let counted = ok(&analyst, "query_semantic_view", ask.clone()).await;
    assert_eq!(counted["rows"].as_array().unwrap().len(), 1, "{counted}");
    let listed = ok(&analyst, "list_semantic_views", json!({})).await;
    assert_eq!(listed["semantic_views"][0]["name"], "SALES");

    // The other client: not through the tools, not through run_query, not by listing.
    let (kind, message) = err(&limited, "query_semantic_view", ask).await;
    assert_eq!(kind, "not_allowed", "{message}");
    assert!(message.contains("DEMO.SALES.SALES"), "{message}");
    let (kind, _) = err(
        &limited,
        "describe_semantic_view",
        json!({"name": "DEMO.SALES.SALES"}),
    )
    .await;
    assert_eq!(kind, "not_allowed");
    let sql = "SELECT * FROM SEMANTIC_VIEW(SALES METRICS orders.order_count)";
    let (kind, _) = err(&limited, "run_query", json!({"sql": sql})).await;
    assert_eq!(kind, "not_allowed");
    let (kind, message) = err(
        &limited,
        "run_query",
        json!({"sql": "SHOW SEMANTIC VIEWS IN SCHEMA DEMO.SALES"}),
    )
    .await;
    assert_eq!(kind, "not_allowed");
    assert!(message.contains("list_semantic_views"), "{message}");
    let listed = ok(&limited, "list_semantic_views", json!({})).await;
    assert_eq!(
        listed["semantic_views"],
        json!([{"name": "MARGINS", "database": "DEMO", "schema": "SALES", "comment": null}])
    );
    drop((analyst, limited));
    server.stop().await;
}

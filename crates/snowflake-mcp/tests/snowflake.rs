//! The server against the fakesnow emulator, end to end: real binary, real MCP client.

mod common;

use common::*;
use serde_json::json;
use snowflake_client::RowLimits;
use tokio::sync::OnceCell;

/// Create the catalogue the tests look at, once per test binary.
async fn seed() {
    static SEEDED: OnceCell<()> = OnceCell::const_new();
    SEEDED
        .get_or_init(|| async {
            let mut s = emulator_session().await;
            for sql in [
                "CREATE DATABASE IF NOT EXISTS SALES",
                "CREATE SCHEMA IF NOT EXISTS SALES.CRM",
                "CREATE OR REPLACE TABLE SALES.CRM.ORDERS (ID INT NOT NULL, AMOUNT NUMBER(10,2), NOTE VARCHAR)",
                "INSERT INTO SALES.CRM.ORDERS VALUES (1, 10.50, 'first'), (2, 200.00, NULL), (3, 3.25, 'third')",
                "CREATE OR REPLACE VIEW SALES.CRM.BIG_ORDERS AS SELECT * FROM SALES.CRM.ORDERS WHERE AMOUNT > 100",
                "CREATE DATABASE IF NOT EXISTS MARKETING",
                "CREATE SCHEMA IF NOT EXISTS MARKETING.WEB",
            ] {
                s.query(sql).await.unwrap().collect(RowLimits::default()).await.unwrap();
            }
        })
        .await;
}

async fn exercise(client: &Client) {
    seed().await;
    let dbs = ok(client, "list_databases", no_args()).await;
    let db_names = names(&dbs["databases"]);
    assert!(
        db_names.contains(&"SALES".to_string()) && db_names.contains(&"MARKETING".to_string()),
        "{db_names:?}"
    );

    let schemas = ok(client, "list_schemas", json!({"database": "sales"})).await;
    assert!(names(&schemas["schemas"]).contains(&"CRM".to_string()));

    let set = ok(
        client,
        "set_context",
        json!({"database": "sales", "schema": "crm"}),
    )
    .await;
    assert_eq!(
        (set["database"].as_str(), set["schema"].as_str()),
        (Some("SALES"), Some("CRM"))
    );
    let ctx = ok(client, "get_context", no_args()).await;
    assert_eq!(ctx["database"], "SALES");

    let objects = ok(client, "list_objects", no_args()).await;
    let mut kinds: Vec<(String, String)> = objects["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().into(),
                o["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("BIG_ORDERS".into(), "view".into()),
            ("ORDERS".into(), "table".into())
        ]
    );
    let only_views = ok(
        client,
        "list_objects",
        json!({"database": "SALES", "schema": "CRM", "kind": "view"}),
    )
    .await;
    assert_eq!(names(&only_views["objects"]), ["BIG_ORDERS"]);

    let described = ok(client, "describe_object", json!({"name": "orders"})).await;
    assert_eq!(described["name"], "SALES.CRM.ORDERS");
    assert_eq!(
        described["columns"][0],
        json!({"name": "ID", "type": "NUMBER(38,0)", "nullable": false})
    );
    assert_eq!(described["columns"][1]["type"], "NUMBER(10,2)");

    let rows = ok(
        client,
        "run_query",
        json!({"sql": "SELECT ID, AMOUNT, NOTE FROM ORDERS ORDER BY ID"}),
    )
    .await;
    assert_eq!(rows["row_count"], 3);
    assert_eq!(rows["rows"][0], json!([1, 10.5, "first"]));
    assert_eq!(rows["rows"][1][2], serde_json::Value::Null);
    assert_eq!(
        rows["columns"][1],
        json!({"name": "AMOUNT", "type": "NUMBER(10,2)"})
    );
    assert!(!rows["query_id"].as_str().unwrap().is_empty());

    // 10,000 rows, capped.
    let big = ok(client, "run_query", json!({"sql": "SELECT seq4() AS N FROM TABLE(GENERATOR(ROWCOUNT => 10000))", "max_rows": 250})).await;
    assert_eq!(big["row_count"], 250);
    assert_eq!(big["truncated"], true);

    // Error paths.
    let r = call(
        client,
        "run_query",
        json!({"sql": "SELECT * FROM NO_SUCH_TABLE"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let s = error_of(&r);
    assert_eq!(s["kind"], "sql_error");
    assert!(s["code"].as_str().is_some_and(|c| c.len() == 6), "{s}");
    let (kind, _) = err(client, "describe_object", json!({"name": "SALES.CRM.NOPE"})).await;
    assert_eq!(kind, "not_found");
    let (kind, msg) = err(client, "set_context", json!({"database": "NO_SUCH_DB"})).await;
    assert_eq!(kind, "not_found", "{msg}");
    let after = ok(client, "get_context", no_args()).await;
    assert_eq!(
        after["database"], "SALES",
        "a failed set_context changes nothing"
    );
}

#[tokio::test]
async fn tools_over_http_against_the_emulator() {
    let server = Server::start(&[], &fakesnow_env()).await;
    let client = server.client().await;
    exercise(&client).await;
    let (_, _, metrics) = raw_http(&server.base, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.contains("snowflake_mcp_pool_sessions_idle"),
        "{metrics}"
    );
    assert!(
        metrics.contains("snowflake_mcp_context_switches_total"),
        "{metrics}"
    );
    assert!(!metrics.contains("\"pw\""), "no secret in any label");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_over_stdio_against_the_emulator() {
    let client = stdio_client(&[], &fakesnow_env()).await;
    exercise(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn set_context_in_one_session_leaves_another_alone() {
    seed().await;
    let server = Server::start(&[], &fakesnow_env()).await;
    let a = server.client().await;
    let b = server.client().await;
    ok(
        &a,
        "set_context",
        json!({"database": "SALES", "schema": "CRM"}),
    )
    .await;
    ok(
        &b,
        "set_context",
        json!({"database": "MARKETING", "schema": "WEB"}),
    )
    .await;
    for _ in 0..3 {
        let ra = ok(
            &a,
            "run_query",
            json!({"sql": "SELECT CURRENT_DATABASE() AS D"}),
        )
        .await;
        let rb = ok(
            &b,
            "run_query",
            json!({"sql": "SELECT CURRENT_DATABASE() AS D"}),
        )
        .await;
        assert_eq!(ra["rows"][0][0], "SALES");
        assert_eq!(rb["rows"][0][0], "MARKETING");
    }
    assert_eq!(ok(&a, "get_context", no_args()).await["database"], "SALES");
    assert_eq!(
        ok(&b, "get_context", no_args()).await["database"],
        "MARKETING"
    );
    // A third session starts from the defaults, untouched by the other two.
    let c = server.client().await;
    assert_eq!(ok(&c, "get_context", no_args()).await["database"], "MCP_DB");
    let rc = ok(
        &c,
        "run_query",
        json!({"sql": "SELECT CURRENT_DATABASE() AS D"}),
    )
    .await;
    assert_eq!(rc["rows"][0][0], "MCP_DB");
}

#[tokio::test]
async fn every_corpus_write_is_refused_end_to_end() {
    seed().await;
    let server = Server::start(&[], &fakesnow_env()).await;
    let client = server.client().await;
    let refusals = corpus_refusals();
    assert!(refusals.len() >= 40);
    for sql in &refusals {
        let r = call(&client, "run_query", json!({"sql": sql})).await;
        assert_eq!(r.is_error, Some(true), "{sql:?} was not refused");
        assert_eq!(error_of(&r)["kind"], "not_allowed", "{sql:?}");
    }
    let still = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT COUNT(*) AS N FROM SALES.CRM.ORDERS"}),
    )
    .await;
    assert_eq!(still["rows"][0][0], 3, "nothing was written");
}

#[tokio::test]
async fn readiness_follows_snowflake() {
    let up = Server::start(&[], &fakesnow_env()).await;
    let (status, _) = http_get(&up.base, "/readyz").await;
    assert_eq!(status, 200);
    let mut env = fakesnow_env();
    env.retain(|(k, _)| k != "SNOWFLAKE_PORT");
    env.push(("SNOWFLAKE_PORT".into(), testkit::free_port().to_string()));
    let down = Server::start(&[], &env).await;
    let (status, body) = http_get(&down.base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");
    assert!(
        !body.contains("127.0.0.1") && !body.to_lowercase().contains("refused"),
        "no backend error text at an unauthenticated door: {body}"
    );
    assert_eq!(http_get(&down.base, "/healthz").await.0, 200);
}

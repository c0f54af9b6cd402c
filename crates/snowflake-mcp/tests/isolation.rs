//! Snowflake's RBAC as the boundary, and attribution in Snowflake's own history: what every
//! statement carries, which role it runs as, and what a restored context may keep.

mod common;

use common::*;
use serde_json::json;
use testkit::{Reply, Scripted};

/// A scripted Snowflake that answers every statement with one row.
async fn snowflake() -> Scripted {
    Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "t", "masterToken": "m", "sessionInfo": {"databaseName": "DB1", "schemaName": "PUBLIC", "roleName": "SERVICE", "warehouseName": "WH"}}}),
        ),
        "/queries/v1/query-request" => Reply::json(json!({"success": true, "data": {
            "queryId": "q-1",
            "rowtype": [{"name": "V", "type": "text", "nullable": true}],
            "queryResultFormat": "json",
            "rowset": [["1"]],
            "total": 1,
        }})),
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_is_tagged_with_its_client_and_runs_without_secondary_roles() {
    let snowflake = snowflake().await;
    let mut env = env_with_port(snowflake.addr.port());
    env.retain(|(k, _)| k != "SNOWFLAKE_DATABASE" && k != "SNOWFLAKE_SCHEMA");
    // A config of the production defaults (no `secondary_roles = "keep"` as test configs get).
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-prod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prod.toml");
    std::fs::write(
        &config,
        format!(
            "[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nallowed_roles = [\"ANALYST\"]\n",
            sha("tok")
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()], &env).await;
    let client = server.client_with_token("tok").await;
    let ctx = ok(&client, "get_context", json!({})).await;
    assert_eq!(
        ctx["role"], "ANALYST",
        "a client limited to roles runs as one of them, never as the service role: {ctx}"
    );
    ok(&client, "run_query", json!({"sql": "SELECT 1"})).await;
    let statements: Vec<(String, serde_json::Value)> = snowflake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/queries/v1/query-request")
        .map(|r| {
            (
                r.body["sqlText"].as_str().unwrap_or_default().to_string(),
                r.body["parameters"]["QUERY_TAG"].clone(),
            )
        })
        .collect();
    let texts: Vec<&str> = statements.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        texts.first().copied(),
        Some("USE SECONDARY ROLES NONE"),
        "secondary roles go off before anything runs: {texts:?}"
    );
    assert!(texts.contains(&"USE ROLE \"ANALYST\""), "{texts:?}");
    let (_, tag) = statements
        .iter()
        .find(|(s, _)| s == "SELECT 1")
        .expect("the query ran");
    let tag: serde_json::Value =
        serde_json::from_str(tag.as_str().expect("QUERY_TAG is a statement parameter")).unwrap();
    assert_eq!(tag["app"], "snowflake-mcp");
    assert_eq!(tag["client"], "analyst");
    assert_eq!(tag["tool"], "run_query");
    assert_eq!(tag["session"].as_str().unwrap().len(), 12, "{tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_context_is_checked_against_the_policy_of_today() {
    let state = temp_state();
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let before = write_config(
        "roles-before",
        &format!(
            "[[clients]]\nid = \"r\"\ntoken_sha256 = \"{}\"\nallowed_roles = [\"R1\", \"R2\"]\n",
            sha("tok-r")
        ),
    );
    let server = Server::start_on(
        &listen,
        &["--config", &before, "--state", &state],
        &fakesnow_env(),
    )
    .await;
    let client = server.client_with_token("tok-r").await;
    assert_eq!(ok(&client, "get_context", json!({})).await["role"], "R1");
    assert_eq!(
        ok(&client, "set_context", json!({"role": "R2"})).await["role"],
        "R2"
    );
    server.stop().await;

    // R2 is withdrawn while the server is down: the restored session may not keep it.
    let after = write_config(
        "roles-after",
        &format!(
            "[[clients]]\nid = \"r\"\ntoken_sha256 = \"{}\"\nallowed_roles = [\"R1\"]\n",
            sha("tok-r")
        ),
    );
    let _server = Server::start_on(
        &listen,
        &["--config", &after, "--state", &state],
        &fakesnow_env(),
    )
    .await;
    let ctx = ok(&client, "get_context", json!({})).await;
    assert_eq!(ctx["role"], "R1", "{ctx}");
    let (kind, _) = err(&client, "set_context", json!({"role": "R2"})).await;
    assert_eq!(kind, "not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unauthenticated_door_costs_snowflake_nothing_and_metrics_can_need_a_token() {
    let proxy = testkit::Proxy::start(testkit::fakesnow().port).await;
    let config = write_config(
        "door",
        &format!(
            "[server]\nmetrics_token_sha256 = \"{}\"\n",
            sha("metrics-token")
        ),
    );
    let server = Server::start(&["--config", &config], &env_with_port(proxy.port)).await;
    let probes = (0..40).map(|_| http_get(&server.base, "/readyz"));
    let mut answers = Vec::new();
    for probe in probes {
        answers.push(probe.await.0);
    }
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let logins = proxy.stats.logins.load(std::sync::atomic::Ordering::SeqCst);
    let statements = proxy
        .stats
        .statements
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        logins <= 1 && statements <= 2,
        "40 readiness checks cost {logins} logins and {statements} statements"
    );
    let (status, _, _) = raw_http(&server.base, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 401);
    let (status, _, body) = raw_http(
        &server.base,
        "GET",
        "/metrics",
        &[("authorization", "Bearer metrics-token")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("snowflake_mcp"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_processes_never_share_history_unless_they_run_as_one_configured_client() {
    let state = temp_state();
    let config = write_config(
        "stdio-client",
        &format!(
            "[[clients]]\nid = \"desk\"\ntoken_sha256 = \"{}\"\n",
            sha("unused")
        ),
    );
    let history = |c: Client| async move {
        let h = ok(&c, "query_history", json!({})).await.to_string();
        c.cancel().await.unwrap();
        h
    };
    let first = stdio_client_on(&state, &["--demo"], &[]).await;
    ok(&first, "run_query", json!({"sql": "SELECT 4101"})).await;
    first.cancel().await.unwrap();
    let second = stdio_client_on(&state, &["--demo"], &[]).await;
    let seen = history(second).await;
    assert!(
        !seen.contains("4101"),
        "a new anonymous process reads another's SQL: {seen}"
    );

    let desk = stdio_client_on(
        &state,
        &["--config", &config, "--demo", "--client", "desk"],
        &[],
    )
    .await;
    ok(&desk, "run_query", json!({"sql": "SELECT 4102"})).await;
    desk.cancel().await.unwrap();
    let again = stdio_client_on(
        &state,
        &["--config", &config, "--demo", "--client", "desk"],
        &[],
    )
    .await;
    let seen = history(again).await;
    assert!(
        seen.contains("4102"),
        "the same configured client keeps its history: {seen}"
    );
    assert!(!seen.contains("4101"), "{seen}");
}

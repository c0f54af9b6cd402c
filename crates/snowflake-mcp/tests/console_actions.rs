//! The operator's console, acting and seeing as on a busy hour: a runaway statement stopped from
//! the console stops on Snowflake (the scripted warehouse), a flooding client paused gets
//! `unavailable` with the reason while others go on, a session ended cannot be used again, and
//! each action is in the audit trail with who did it. Actions are off unless configured;
//! people in an admin group of the identity provider are operators too, others are not.

mod common;

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = "Bearer admin-token";

fn config(name: &str, actions: bool) -> String {
    write_config(
        name,
        &format!(
            "[console]\ntoken_sha256 = \"{}\"\nactions = {actions}\n\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nweight = 3\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 100\n",
            sha("admin-token"),
            sha("analyst-token"),
            sha("bot-token")
        ),
    )
}

async fn api(base: &str, method: &str, path: &str, auth: &str, body: &str) -> (u16, Value) {
    let mut headers = vec![("Authorization", auth)];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let (status, _, body) = raw_http(base, method, path, &headers, body).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The console's audit records of `tool`.
async fn actions_of(base: &str, tool: &str) -> Vec<Value> {
    let (_, trail) = api(
        base,
        "GET",
        &format!("/console/api/queries?tool={tool}"),
        ADMIN,
        "",
    )
    .await;
    trail["queries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_stops_a_runaway_statement_pauses_a_flood_and_ends_a_session() {
    let wh = testkit::Warehouse::start().await;
    let config = config("console-actions", true);
    let server = Server::start(&["--config", &config], &warehouse_env(wh.port())).await;
    let base = server.base.clone();
    let (analyst, bot) = (
        server.client_with_token("analyst-token").await,
        server.client_with_token("bot-token").await,
    );

    // The bot's runaway statement shows among the running ones, with its SQL and age.
    let long = ok(
        &bot,
        "run_query",
        json!({"sql": "SELECT SYSTEM$WAIT(600)", "wait_secs": 0.2}),
    )
    .await;
    assert_eq!(long["status"], "running");
    let (status, trail) = api(&base, "GET", "/console/api/queries", ADMIN, "").await;
    assert_eq!(status, 200, "{trail}");
    let running = &trail["running"][0];
    assert_eq!(running["client"], "bot", "{trail}");
    assert_eq!(running["sql"], "SELECT SYSTEM$WAIT(600)");
    let id = running["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert!(
        !trail
            .to_string()
            .contains(long["result_id"].as_str().unwrap()),
        "handles never shown"
    );

    // A client cannot use the console; an unknown id is 404; the operator's cancel stops it on
    // Snowflake.
    let path = format!("/console/api/statements/{id}/cancel");
    assert_eq!(
        api(&base, "POST", &path, "Bearer bot-token", "").await.0,
        401
    );
    let (status, _) = api(
        &base,
        "POST",
        "/console/api/statements/00000000deadbeef/cancel",
        ADMIN,
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(!wh.cancelled("SYSTEM$WAIT(600)"));
    let (status, done) = api(&base, "POST", &path, ADMIN, "").await;
    assert_eq!(status, 200, "{done}");
    wait_for("the cancel to reach Snowflake", || async {
        wh.cancelled("SYSTEM$WAIT(600)")
    })
    .await;
    let (kind, message) = err(
        &bot,
        "get_result",
        json!({"result_id": long["result_id"], "wait_secs": 10}),
    )
    .await;
    assert_eq!(kind, "cancelled");
    assert!(message.contains("operator"), "{message}");
    let audit = actions_of(&base, "console.cancel").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["client"], "bot");
    assert!(
        audit[0]["confirmed"]
            .as_str()
            .unwrap()
            .contains("admin token"),
        "{audit:?}"
    );

    // Pausing the bot refuses its calls with the reason; the analyst goes on; /metrics shows it.
    let (status, _) = api(
        &base,
        "POST",
        "/console/api/clients/bot/pause",
        ADMIN,
        r#"{"reason":"flooding the warehouse"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (kind, message) = err(&bot, "run_query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(kind, "unavailable");
    assert!(message.contains("flooding the warehouse"), "{message}");
    ok(&analyst, "run_query", json!({"sql": "SELECT 1"})).await;
    let (_, metrics) = http_get(&base, "/metrics").await;
    assert!(
        metrics.contains("snowflake_mcp_client_paused{client=\"bot\"} 1"),
        "{metrics}"
    );
    let (_, clients) = api(&base, "GET", "/console/api/clients", ADMIN, "").await;
    let bot_row = item_with(&clients["clients"], "id", "bot");
    assert_eq!(
        bot_row["paused"]["reason"], "flooding the warehouse",
        "{bot_row}"
    );
    assert_eq!(
        api(
            &base,
            "POST",
            "/console/api/clients/nobody/pause",
            ADMIN,
            ""
        )
        .await
        .0,
        404
    );
    let (status, _) = api(&base, "POST", "/console/api/clients/bot/resume", ADMIN, "").await;
    assert_eq!(status, 200);
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(actions_of(&base, "console.pause").await.len(), 1);
    assert_eq!(actions_of(&base, "console.resume").await.len(), 1);

    // The clients list: weights, session-time and load.
    let analyst_row = item_with(&clients["clients"], "id", "analyst");
    assert_eq!(analyst_row["weight_share"], 0.75, "{analyst_row}");
    for field in ["share_5m", "running", "queued", "credits_today"] {
        assert!(!analyst_row[field].is_null(), "{field}: {analyst_row}");
    }

    // Sessions: the owner and software, never the whole id; ending one ends it for good.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "hand-made", "version": "7"}}})
    .to_string();
    let auth = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", "Bearer analyst-token"),
    ];
    let (status, head, _) = raw_http(&base, "POST", "/mcp", &auth, &init).await;
    assert_eq!(status, 200);
    let session = session_of(&head);
    let shown = sha(&session)[..16].to_string();
    let (_, sessions) = api(&base, "GET", "/console/api/sessions", ADMIN, "").await;
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{sessions}");
    let kept = sessions["stored"].as_array().unwrap();
    let analyst_kept = kept.iter().find(|k| k["client"] == "analyst").unwrap();
    assert_eq!(analyst_kept["live_here"], 2, "{sessions}");
    assert_eq!(analyst_kept["stored"], 2, "{sessions}");
    assert!(
        !sessions.to_string().contains(&session),
        "never the whole id: {sessions}"
    );
    let mine = list.iter().find(|s| s["id"] == shown.as_str()).unwrap();
    assert_eq!(mine["client"], "analyst");
    assert_eq!(mine["software"], "hand-made 7", "{mine}");
    let (status, _) = api(
        &base,
        "POST",
        &format!("/console/api/sessions/{shown}/end"),
        ADMIN,
        "",
    )
    .await;
    assert_eq!(status, 200);
    let mut with_session = auth.to_vec();
    with_session.push(("mcp-session-id", &session));
    let list_tools = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, _) = raw_http(&base, "POST", "/mcp", &with_session, list_tools).await;
    assert_eq!(
        status, 404,
        "an ended session is gone, here and in the store"
    );
    let (_, sessions) = api(&base, "GET", "/console/api/sessions", ADMIN, "").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );
    let audit = actions_of(&base, "console.end_session").await;
    assert_eq!(audit[0]["client"], "analyst", "{audit:?}");
    assert!(
        audit[0]["sql"].as_str().unwrap().contains("hand-made 7"),
        "{audit:?}"
    );
    drop((analyst, bot));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_off_unless_configured_and_pages_offer_them_only_then() {
    let config = config("console-no-actions", false);
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let bot = server.client_with_token("bot-token").await;
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;
    let base = &server.base;
    for path in [
        "/console/api/statements/00000000deadbeef/cancel",
        "/console/api/sessions/00000000deadbeef/end",
        "/console/api/clients/bot/pause",
        "/console/api/clients/bot/resume",
    ] {
        let (status, body) = api(base, "POST", path, ADMIN, "").await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.to_string().contains("actions = true"), "{body}");
    }
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;
    let (status, _, page) = raw_http(
        base,
        "GET",
        "/console/clients",
        &[("Authorization", ADMIN)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!page.contains("/console/act"), "no action buttons: {page}");
    // The sessions and warehouses pages answer (and hide session ids).
    for path in ["/console/sessions", "/console/warehouses"] {
        let (status, _, page) = raw_http(base, "GET", path, &[("Authorization", ADMIN)], "").await;
        assert_eq!(status, 200, "{path}: {page}");
    }
    drop(bot);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_in_an_admin_group_are_operators_and_others_are_not() {
    let idp = testkit::TestIdp::start().await;
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = write_config(
        &format!("console-oauth-{port}"),
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nclient_claim = \"email\"\n\n\
             [console]\nadmin_groups = [\"platform-admins\"]\nactions = true\n\n\
             [[clients]]\nid = \"staff\"\nmatch = {{ groups = \"staff\" }}\n",
            idp.issuer
        ),
    );
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &fakesnow_env(),
    )
    .await;
    let token = |groups: Value| {
        let mut claims = idp.claims("olga@corp.com", &resource);
        claims["email_verified"] = json!(true);
        claims["groups"] = groups;
        format!("Bearer {}", idp.token(&claims))
    };
    let admin = token(json!(["staff", "platform-admins"]));
    let (status, o) = api(&server.base, "GET", "/console/api/overview", &admin, "").await;
    assert_eq!(status, 200, "{o}");
    for outsider in [
        token(json!(["staff"])),
        token(json!("staff platform")),
        "Bearer admin-token".into(),
    ] {
        let (status, _) = api(&server.base, "GET", "/console/api/overview", &outsider, "").await;
        assert_eq!(status, 401, "{outsider}");
    }
    // The person's actions are audited under their name.
    let (status, _) = api(
        &server.base,
        "POST",
        "/console/api/clients/staff/pause",
        &admin,
        r#"{"reason":"maintenance"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let audit = actions_of(&server.base, "console.pause").await;
    assert!(
        audit.is_empty(),
        "the admin token is not configured, so ADMIN cannot read: {audit:?}"
    );
    let (_, trail) = api(
        &server.base,
        "GET",
        "/console/api/queries?tool=console.pause",
        &admin,
        "",
    )
    .await;
    let by = trail["queries"][0]["confirmed"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(by.contains("olga@corp.com"), "{trail}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_on_every_replica_sharing_the_store() {
    let redis = testkit::Valkey::start();
    let url = redis.url();
    let with_console = config("pause-replica-a", true);
    // The other replica serves no console: it keeps to the pauses all the same.
    let without = write_config(
        "pause-replica-b",
        &format!(
            "[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nweight = 3\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 100\n",
            sha("analyst-token"),
            sha("bot-token")
        ),
    );
    let a = Server::start(
        &["--config", &with_console, "--state", &url],
        &fakesnow_env(),
    )
    .await;
    let b = Server::start(&["--config", &without, "--state", &url], &fakesnow_env()).await;
    let bot_on_b = b.client_with_token("bot-token").await;
    ok(&bot_on_b, "run_query", json!({"sql": "SELECT 1"})).await;
    let body = r#"{"reason":"maintenance window"}"#;
    let (status, _) = api(
        &a.base,
        "POST",
        "/console/api/clients/bot/pause",
        ADMIN,
        body,
    )
    .await;
    assert_eq!(status, 200);
    wait_for("the other replica to refuse the paused client", || async {
        let r = call(&bot_on_b, "run_query", json!({"sql": "SELECT 1"})).await;
        r.is_error == Some(true) && error_of(&r)["kind"] == "unavailable"
    })
    .await;
    let (status, _) = api(
        &a.base,
        "POST",
        "/console/api/clients/bot/resume",
        ADMIN,
        "",
    )
    .await;
    assert_eq!(status, 200);
    wait_for("the other replica to serve it again", || async {
        call(&bot_on_b, "run_query", json!({"sql": "SELECT 1"}))
            .await
            .is_error
            != Some(true)
    })
    .await;
    drop(bot_on_b);
    a.stop().await;
    b.stop().await;
}

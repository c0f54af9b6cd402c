//! Many MCP clients through one server against the emulator, with a counting proxy between
//! the server and the emulator: isolation, queuing instead of refusing, identity, cancellation.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::json;
use testkit::{Proxy, Reply, Scripted};

async fn create_databases(names: &[String]) {
    // Snowflake gives every new database a PUBLIC schema; the emulator needs telling.
    let statements: Vec<String> = names
        .iter()
        .flat_map(|n| {
            [
                format!("CREATE DATABASE IF NOT EXISTS {n}"),
                format!("CREATE SCHEMA IF NOT EXISTS {n}.PUBLIC"),
            ]
        })
        .collect();
    run_on_emulator(&statements).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sessions_each_see_only_their_own_database() {
    let dbs: Vec<String> = (0..20).map(|i| format!("MC_DB_{i}")).collect();
    create_databases(&dbs).await;
    let proxy = Proxy::start(testkit::fakesnow().port).await;
    let config = write_config("twenty", "[pool]\nmax_sessions = 4\n");
    let server = Server::start(&["--config", &config], &env_with_port(proxy.port)).await;
    let mut clients = Vec::new();
    for db in &dbs {
        let c = server.client().await;
        ok(&c, "set_context", json!({"database": db})).await;
        clients.push(Arc::new(c));
    }
    let mut tasks = Vec::new();
    for round in 0..25 {
        for (i, c) in clients.iter().enumerate() {
            let (c, expected) = (c.clone(), dbs[i].clone());
            tasks.push(tokio::spawn(async move {
                let r = ok(
                    &c,
                    "run_query",
                    json!({"sql": "SELECT CURRENT_DATABASE() AS D"}),
                )
                .await;
                assert_eq!(
                    r["rows"][0][0],
                    expected.as_str(),
                    "round {round}: session {i} saw another database"
                );
            }));
        }
    }
    assert_eq!(tasks.len(), 500);
    for t in tasks {
        t.await.unwrap();
    }
    let stats = &proxy.stats;
    assert_eq!(
        stats.overlaps.load(Ordering::SeqCst),
        0,
        "two statements overlapped on one Snowflake session"
    );
    assert!(
        stats.peak_open.load(Ordering::SeqCst) <= 4,
        "peak {} sessions",
        stats.peak_open.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_of_two_queues_thirty_sessions_instead_of_refusing() {
    let proxy = Proxy::start(testkit::fakesnow().port).await;
    let config = write_config(
        "two",
        "[pool]\nmax_sessions = 2\n[scheduler]\nqueue_timeout_secs = 120\n",
    );
    let server = Server::start(&["--config", &config], &env_with_port(proxy.port)).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let client = server.client().await;
        tasks.push(tokio::spawn(async move {
            for j in 0..4 {
                let r = ok(
                    &client,
                    "run_query",
                    json!({"sql": format!("SELECT {i} * 100 + {j} AS N")}),
                )
                .await;
                assert_eq!(r["rows"][0][0], i * 100 + j);
            }
            ok(&client, "list_databases", no_args()).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = proxy.stats.peak_open.load(Ordering::SeqCst);
    assert!(peak <= 2, "the pool grew to {peak} Snowflake sessions");
    assert_eq!(proxy.stats.overlaps.load(Ordering::SeqCst), 0);
    assert!(proxy.stats.statements.load(Ordering::SeqCst) >= 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_identify_clients_and_their_default_context() {
    create_databases(&["ANALYST_DB".into()]).await;
    let config = write_config(
        "clients",
        &format!(
            "[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nweight = 2\ndefault_context = {{ database = \"analyst_db\" }}\n\n[[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\n",
            sha("analyst-token"),
            sha("bot-token")
        ),
    );
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
    let mcp_headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let (status, head, _) = raw_http(&server.base, "POST", "/mcp", &mcp_headers, init).await;
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    let wrong = [
        mcp_headers[0],
        mcp_headers[1],
        ("authorization", "Bearer not-a-token"),
    ];
    let (status, _, body) = raw_http(&server.base, "POST", "/mcp", &wrong, init).await;
    assert_eq!(status, 401);
    assert!(
        !body.contains("analyst"),
        "nothing about other clients leaks: {body}"
    );
    assert_eq!(
        raw_http(&server.base, "GET", "/healthz", &[], "").await.0,
        200,
        "health needs no token"
    );

    let analyst = server.client_with_token("analyst-token").await;
    assert_eq!(
        ok(&analyst, "get_context", no_args()).await["database"],
        "ANALYST_DB"
    );
    let bot = server.client_with_token("bot-token").await;
    assert_eq!(
        ok(&bot, "get_context", no_args()).await["database"],
        "MCP_DB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_aborts_its_statement_on_snowflake() {
    let server_side = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => {
            Reply::json(json!({"success": true, "data": {"token": "t", "sessionInfo": {"databaseName": "MCP_DB", "schemaName": "PUBLIC"}}}))
        }
        "/queries/v1/query-request" | "/queries/q/result" => {
            Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q/result"}}))
        }
        "/queries/v1/abort-request" => Reply::json(json!({"success": true})),
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await;
    let server = Server::start(&[], &env_with_port(server_side.addr.port())).await;
    let client = server.client().await;
    let params = CallToolRequestParams::new("run_query")
        .with_arguments(json!({"sql": "SELECT 1"}).as_object().unwrap().clone());
    let handle = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    // Wait until the statement is running on "Snowflake".
    for _ in 0..100 {
        if server_side.count("/queries/v1/query-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server_side.count("/queries/v1/abort-request"), 0);
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    for _ in 0..100 {
        if server_side.count("/queries/v1/abort-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paths: Vec<String> = server_side
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        server_side.count("/queries/v1/abort-request"),
        1,
        "the statement was aborted on Snowflake: {paths:?}"
    );
    let statement = server_side
        .requests()
        .into_iter()
        .find(|r| r.path == "/queries/v1/query-request")
        .unwrap();
    let abort = server_side
        .requests()
        .into_iter()
        .find(|r| r.path == "/queries/v1/abort-request")
        .unwrap();
    assert_eq!(
        abort.body["requestId"],
        statement.query["requestId"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_finish_aborts_the_rest_and_exits_cleanly() {
    let server_side = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "t", "sessionInfo": {"databaseName": "MCP_DB", "schemaName": "PUBLIC"}}}),
        ),
        "/queries/v1/query-request" | "/queries/q/result" => {
            Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q/result"}}))
        }
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await;
    let config = write_config("grace", "[server]\nshutdown_grace_secs = 1\n");
    let server = Server::start(
        &["--config", &config],
        &env_with_port(server_side.addr.port()),
    )
    .await;
    let client = Arc::new(server.client().await);
    let running = {
        let client = client.clone();
        tokio::spawn(async move {
            call(
                &client,
                "run_query",
                json!({"sql": "SELECT SYSTEM$TYPEOF(1)"}),
            )
            .await
        })
    };
    for _ in 0..100 {
        if server_side.count("/queries/v1/query-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    server.terminate().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        started.elapsed()
    );
    assert_eq!(
        server_side.count("/queries/v1/abort-request"),
        1,
        "the unfinished statement was aborted"
    );
    assert_eq!(
        server_side.count("/session"),
        server_side.count("/session/v1/login-request"),
        "every Snowflake session was logged out, the aborted one too"
    );
    let login = server_side
        .requests()
        .into_iter()
        .find(|r| r.path == "/session/v1/login-request")
        .unwrap();
    assert_eq!(
        login.body["data"]["SESSION_PARAMETERS"]["ABORT_DETACHED_QUERY"], true,
        "a statement dies with its session if the server is killed"
    );
    // The client's call has no answer to wait for any more.
    running.abort();
}

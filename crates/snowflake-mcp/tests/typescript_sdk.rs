//! The official TypeScript MCP SDK client (the one inside Claude Code, Claude Desktop, Cursor,
//! VS Code and MCP Inspector) drives the server over Streamable HTTP, over stdio and through
//! `connect`: every tool (its `structuredContent` validated by the SDK against the tool's
//! `outputSchema`), every error kind the demo can provoke (each must reach the SDK as a readable
//! tool error), rate limits, quotas, cancellation and a restart with session resumption.
//!
//! The client is `tests/js/sdk_client.mjs`; the SDK comes from the cache that
//! `scripts/test-env.sh` fills.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/sdk_client.mjs");

fn sdk_client(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(SCRIPT)
        .args(args)
        .env("NODE_PATH", testkit::node_modules())
        .env(cache_env().0, cache_env().1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Run the SDK client to the end and require its success line.
async fn run(args: &[&str]) {
    let child = sdk_client(args)
        .spawn()
        .expect("node (Node.js 20 or newer) must be on PATH for the TypeScript SDK tests");
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the SDK client finished within 300 s")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains(&format!("SDK_CLIENT_OK {}", args[0])),
        "the TypeScript SDK client failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn limits_config() -> String {
    write_config(
        "ts-limits",
        &format!(
            "[[clients]]\nid = \"limited\"\ntoken_sha256 = \"{}\"\nrate_per_minute = 3\nburst = 3\n\
             [[clients]]\nid = \"quota\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 4\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("tok-limited"),
            sha("tok-quota"),
            sha("tok-free")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_every_tool_every_error_and_cancellation() {
    let server = Server::start(&["--demo"], &[]).await;
    run(&["http", &server.url]).await;
    let pid = format!("--server-pid={}", server.pid());
    run(&["http", &server.url, "--cancel", "--no-common", &pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio_every_tool_every_error_and_cancellation() {
    let state = temp_state();
    run(&[
        "stdio", BIN, "stdio", "--demo", "--state", &state, "--cancel",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_connect_bridge_with_limits_and_quotas() {
    let config = limits_config();
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    run(&["connect", BIN, &server.url, "tok-free"]).await;
    run(&["http", &server.url, "tok-limited", "--expect-rate-limit"]).await;
    run(&["connect", BIN, &server.url, "tok-quota", "--expect-quota"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_after_a_restart() {
    let state = temp_state();
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let args = ["--demo", "--state", state.as_str()];
    let server = Server::start_on(&listen, &args, &[]).await;
    let mut child = sdk_client(&["http", &server.url, "--resume"])
        .spawn()
        .expect("node must be on PATH");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.trim() == "READY_FOR_RESTART" {
                return;
            }
        }
        panic!("the SDK client ended before READY_FOR_RESTART:\n{seen}");
    })
    .await
    .expect("READY_FOR_RESTART within 120 s");
    server.stop().await;
    let _server = Server::start_on(&listen, &args, &[]).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"RESTARTED\n").await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("the SDK client finished within 120 s");
    assert!(
        rest.success() && seen.contains("SDK_CLIENT_OK http"),
        "the session did not carry on after the restart ({rest:?}):\n{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snowflake_type_null_and_empty_result_passes_the_sdks_schema_check() {
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS TS_DB".into(),
        "CREATE SCHEMA IF NOT EXISTS TS_DB.EMPTY".into(),
        "CREATE SCHEMA IF NOT EXISTS TS_DB.TYPES".into(),
        "CREATE OR REPLACE TABLE TS_DB.TYPES.T (ID INT NOT NULL COMMENT 'the key', NAME TEXT, \
         AMOUNT NUMBER(10,2), RATIO FLOAT, OK BOOLEAN, D DATE, TM TIME, TS TIMESTAMP_NTZ, \
         V VARIANT, B BINARY)"
            .into(),
        "INSERT INTO TS_DB.TYPES.T (ID) VALUES (1)".into(),
        "CREATE OR REPLACE VIEW TS_DB.TYPES.V AS SELECT ID FROM TS_DB.TYPES.T".into(),
    ])
    .await;
    let calls = serde_json::json!([
        {"tool": "list_databases"},
        {"tool": "list_schemas", "arguments": {"database": "TS_DB"}},
        {"tool": "list_objects", "arguments": {"database": "TS_DB", "schema": "EMPTY"}, "expect": {"objects": []}},
        {"tool": "list_objects", "arguments": {"database": "TS_DB", "schema": "TYPES"}},
        {"tool": "list_objects", "arguments": {"database": "TS_DB", "schema": "TYPES", "kind": "view", "pattern": "V%"}},
        {"tool": "describe_object", "arguments": {"name": "TS_DB.TYPES.T"}},
        {"tool": "set_context", "arguments": {"database": "TS_DB", "schema": "TYPES"}},
        {"tool": "get_context"},
        {"tool": "run_query", "arguments": {"sql": "SELECT * FROM T"}, "expect": {"row_count": 1}},
        {"tool": "run_query", "arguments": {"sql": "SELECT * FROM T WHERE ID < 0"}, "expect": {"row_count": 0, "rows": []}},
        {"tool": "run_query", "arguments": {"sql":
            "SELECT 1::NUMBER(38,0) AS I, 12345678901234567890.12::NUMBER(38,2) AS BIG, 1.5::FLOAT AS F, \
             'x' AS S, TRUE AS BO, '2024-02-29'::DATE AS D, '13:14:15'::TIME AS TM, \
             '2024-02-29 13:14:15.123456'::TIMESTAMP_NTZ AS NTZ, '2024-02-29 13:14:15+00:00'::TIMESTAMP_TZ AS TZ, \
             PARSE_JSON('{\"a\": [1, 2]}') AS V, TO_BINARY('CAFE', 'HEX') AS BIN, NULL AS N"}},
        {"tool": "run_query", "arguments": {"sql":
            "SELECT NULL::NUMBER(10,2), NULL::FLOAT, NULL::TEXT, NULL::BOOLEAN, NULL::DATE, NULL::TIME, \
             NULL::TIMESTAMP_NTZ, NULL::VARIANT, NULL::BINARY"}},
        {"tool": "run_query", "arguments": {"sql": "SHOW TABLES"}},
        {"tool": "run_query", "arguments": {"sql": "SELECT ID FROM T", "max_rows": 1}},
        {"tool": "query_history", "arguments": {"limit": 5}}
    ]);
    let file = std::env::temp_dir().join(format!(
        "snowflake-mcp-ts-calls-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, calls.to_string()).unwrap();
    let server = Server::start(&[], &fakesnow_env()).await;
    run(&[
        "http",
        &server.url,
        "--no-common",
        &format!("--calls={}", file.display()),
    ])
    .await;
}

/// A person signs in the way MCP clients do: the SDK finds the authorization server from the
/// server's 401 and RFC 9728 metadata, runs the code flow with PKCE at the (test) identity
/// provider, and comes back with a token that maps to the policy of the person's group.
/// Forged and expired tokens are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_identity_provider_and_works_under_their_groups_policy() {
    let idp = testkit::TestIdp::start().await;
    idp.sign_in_as("bob@corp.com", &["analysts"]);
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = write_config(
        "ts-oauth",
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nscopes_supported = [\"mcp\"]\n\
             required_scopes = [\"mcp\"]\nclient_claim = \"email\"\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\nmax_rows = 1\n",
            idp.issuer
        ),
    );
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &fakesnow_env(),
    )
    .await;
    // The analysts' policy caps rows at 1: the person runs under it.
    let calls = serde_json::json!([
        {"tool": "run_query", "arguments": {"sql": "SELECT 1 AS A UNION ALL SELECT 2"},
         "expect": {"row_count": 1}},
        {"tool": "get_context", "arguments": {}}
    ]);
    let file = std::env::temp_dir().join(format!(
        "snowflake-mcp-ts-oauth-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, calls.to_string()).unwrap();
    run(&[
        "http",
        &server.url,
        "--oauth",
        "--no-common",
        &format!("--calls={}", file.display()),
    ])
    .await;
    let mut expired = idp.claims("bob@corp.com", &resource);
    expired["groups"] = serde_json::json!(["analysts"]);
    expired["exp"] = serde_json::json!(1_000_000_000);
    expired["nbf"] = serde_json::json!(999_000_000);
    for bad in [
        idp.token(&expired),
        idp.forged(
            testkit::Forgery::UnknownKid,
            &idp.claims("bob@corp.com", &resource),
        ),
        "not-a-token".to_string(),
    ] {
        run(&["http", &server.url, &bad, "--expect-unauthorized"]).await;
    }
}

/// A client whose requests time out after 10 s completes a 30 s statement through its
/// `result_id` (`tests/js/long_query.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_10_s_timeout_completes_a_30_s_query() {
    const LONG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/long_query.mjs");
    let server = Server::start(&["--demo"], &[]).await;
    node_script(LONG, &[&server.url, "30"], "LONG_QUERY_OK").await;
}

/// Run a Node script of tests/js with the SDK on NODE_PATH; it must exit 0 printing `ok`.
async fn node_script(script: &str, args: &[&str], ok: &str) {
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .env("NODE_PATH", testkit::node_modules())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("finished within 120 s")
        .expect("node (Node.js 20 or newer) must be on PATH");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains(ok),
        "{stdout}\n{stderr}"
    );
}

/// The semantic-view tools (issue 26) through the TypeScript SDK, on the demo
/// (`tests/js/semantic_client.mjs`): monthly revenue of two regions from the semantic view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_calls_the_semantic_view_tools() {
    const SEMANTIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/semantic_client.mjs");
    let config = write_config("ts-semantic", "[query]\nsemantic_views = true\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    node_script(SEMANTIC, &[&server.url], "TS_SEMANTIC_OK").await;
    server.stop().await;
}

/// The Cortex tools (issue 26) through the TypeScript SDK, on the scripted Snowflake
/// (`tests/js/cortex_client.mjs`): the analyst's SQL, a search, an agent's run and its progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_calls_the_cortex_tools() {
    const CORTEX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/cortex_client.mjs");
    let wh = testkit::Warehouse::start().await;
    let config = write_config("ts-cortex", CORTEX_CONFIG);
    let server = Server::start(&["--config", &config], &warehouse_env(wh.port())).await;
    node_script(CORTEX, &[&server.url], "TS_CORTEX_OK").await;
    server.stop().await;
}

//! Sessionless clients (protocol revision 2026-07-28), with raw HTTP requests built from the
//! specification: no `initialize`, no `Mcp-Session-Id`; each request names its protocol
//! version and capabilities in `_meta` and its method in the `Mcp-Method` header.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use testkit::{Reply, Scripted};

/// The `_meta` every 2026-07-28 request carries.
fn meta(extra: Value) -> Value {
    let mut m = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "1"}
    });
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m
}

fn request(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string()
}

fn headers<'a>(
    method: &'a str,
    name: Option<&'a str>,
    token: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(name) = name {
        h.push(("mcp-name", name));
    }
    if let Some(token) = token {
        h.push(("authorization", token));
    }
    h
}

/// The JSON-RPC messages of an answer (a JSON body, or the `data:` lines of an SSE stream).
fn messages(body: &str) -> Vec<Value> {
    let trimmed = body.trim();
    if trimmed.starts_with('{') {
        return vec![serde_json::from_str(trimmed).unwrap()];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect()
}

/// One sessionless `tools/call`: (the result, every message of the answer).
async fn call_tool(
    base: &str,
    token: Option<&str>,
    tool: &str,
    args: Value,
    extra_meta: Value,
) -> (Value, Vec<Value>) {
    let body = request(
        "tools/call",
        json!({"name": tool, "arguments": args, "_meta": meta(extra_meta)}),
    );
    let (status, head, answer) = raw_http(
        base,
        "POST",
        "/mcp",
        &headers("tools/call", Some(tool), token),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{head}\n{answer}");
    assert!(
        !head.to_ascii_lowercase().contains("mcp-session-id"),
        "sessionless requests get no session: {head}"
    );
    let all = messages(&answer);
    let result = all
        .iter()
        .find(|m| m["id"] == 7)
        .unwrap_or_else(|| panic!("no response in {answer}"))["result"]
        .clone();
    (result, all)
}

fn two_clients() -> String {
    write_config(
        "sessionless",
        &format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\nrate_per_minute = 12\nburst = 12\n\
             [[clients]]\nid = \"b\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 2\n",
            sha("token-a"),
            sha("token-b")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessionless_client_explores_sets_a_context_and_queries() {
    run_on_emulator(&["CREATE SCHEMA IF NOT EXISTS MCP_DB.STATELESS".into()]).await;
    let config = two_clients();
    let state = temp_state();
    let args = ["--config", config.as_str(), "--state", state.as_str()];
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let base = server.base.clone();
    let (a, b) = (Some("Bearer token-a"), Some("Bearer token-b"));

    let body = request("tools/list", json!({"_meta": meta(json!({}))}));
    let (status, _, answer) = raw_http(
        &base,
        "POST",
        "/mcp",
        &headers("tools/list", None, a),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let tools = messages(&answer)[0]["result"]["tools"].clone();
    assert_eq!(tools.as_array().unwrap().len(), 12, "{tools}");

    let (dbs, _) = call_tool(&base, a, "list_databases", json!({}), json!({})).await;
    assert!(
        dbs["structuredContent"]["databases"]
            .to_string()
            .contains("MCP_DB"),
        "{dbs}"
    );
    let (set, _) = call_tool(
        &base,
        a,
        "set_context",
        json!({"schema": "STATELESS"}),
        json!({}),
    )
    .await;
    assert_eq!(set["isError"], false, "{set}");
    // The context is the client's: kept between a's requests, not seen by b.
    let (ctx, _) = call_tool(&base, a, "get_context", json!({}), json!({})).await;
    assert_eq!(ctx["structuredContent"]["schema"], "STATELESS", "{ctx}");
    let (other, _) = call_tool(&base, b, "get_context", json!({}), json!({})).await;
    assert_eq!(other["structuredContent"]["schema"], "PUBLIC", "{other}");

    // A query with a progress token that answers at once is not told its stages: they would
    // only be noise before the result (a longer one hears them: results.rs).
    let (rows, all) = call_tool(
        &base,
        a,
        "run_query",
        json!({"sql": "SELECT CURRENT_SCHEMA() AS S"}),
        json!({"progressToken": "p-1"}),
    )
    .await;
    assert_eq!(
        rows["structuredContent"]["rows"][0][0], "STATELESS",
        "{rows}"
    );
    let stages: Vec<&str> = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            assert_eq!(m["params"]["progressToken"], "p-1");
            m["params"]["message"].as_str().unwrap()
        })
        .collect();
    assert!(stages.is_empty(), "{all:?}");

    // Quotas and errors apply as with sessions, in the shape every SDK reads.
    for i in 0..2 {
        let (r, _) = call_tool(
            &base,
            b,
            "run_query",
            json!({"sql": format!("SELECT {i}")}),
            json!({}),
        )
        .await;
        assert_eq!(r["isError"], false, "{r}");
    }
    let (r, _) = call_tool(&base, b, "run_query", json!({"sql": "SELECT 3"}), json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(r.get("structuredContent").is_none(), "{r}");
    assert_eq!(r["_meta"]["error"]["kind"], "quota_exceeded", "{r}");
    assert!(r["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("quota_exceeded: "));

    // After a restart, a's context is still there.
    server.stop().await;
    let server = Server::start_on(&listen, &args, &fakesnow_env()).await;
    let (ctx, _) = call_tool(&server.base, a, "get_context", json!({}), json!({})).await;
    assert_eq!(ctx["structuredContent"]["schema"], "STATELESS", "{ctx}");

    // The rate limit holds across sessionless requests (12 per minute, burst 12).
    let mut limited = None;
    for _ in 0..14 {
        let (r, _) = call_tool(&server.base, a, "list_databases", json!({}), json!({})).await;
        if r["isError"] == true {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the 13th call in a minute is rate limited");
    assert_eq!(
        limited["_meta"]["error"]["kind"], "rate_limited",
        "{limited}"
    );
    assert!(
        limited["_meta"]["error"]["retry_after_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sessionless_requests_are_one_client_under_the_anonymous_policy() {
    let config = write_config(
        "sessionless-anon",
        "[anonymous]\nrate_per_minute = 5\nburst = 5\n",
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let base = server.base.as_str();
    let (set, _) = call_tool(
        base,
        None,
        "set_context",
        json!({"schema": "SALES"}),
        json!({}),
    )
    .await;
    assert_eq!(set["isError"], false, "{set}");
    let (ctx, _) = call_tool(base, None, "get_context", json!({}), json!({})).await;
    assert_eq!(
        ctx["structuredContent"]["schema"], "SALES",
        "one anonymous client: {ctx}"
    );
    let mut kinds = Vec::new();
    for _ in 0..6 {
        let (r, _) = call_tool(base, None, "list_databases", json!({}), json!({})).await;
        kinds.push(
            r["_meta"]["error"]["kind"]
                .as_str()
                .unwrap_or("ok")
                .to_string(),
        );
    }
    // set_context counted too: 5 calls allowed in all, then rate_limited.
    assert_eq!(
        kinds,
        ["ok", "ok", "ok", "ok", "rate_limited", "rate_limited"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sessionless_request_aborts_its_statement() {
    let snowflake = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "t", "sessionInfo": {"databaseName": "MCP_DB", "schemaName": "PUBLIC"}}}),
        ),
        "/queries/v1/query-request" | "/queries/q/result" => Reply::json(
            json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q/result"}}),
        ),
        "/queries/v1/abort-request" => Reply::json(json!({"success": true})),
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await;
    let server = Server::start(&[], &env_with_port(snowflake.addr.port())).await;
    let base = server.base.clone();
    let call = tokio::spawn(async move {
        call_tool(
            &base,
            None,
            "run_query",
            json!({"sql": "SELECT 1"}),
            json!({"progressToken": 1}),
        )
        .await
    });
    for _ in 0..200 {
        if snowflake.count("/queries/v1/query-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        snowflake.count("/queries/v1/query-request") > 0,
        "the statement started"
    );
    assert_eq!(snowflake.count("/queries/v1/abort-request"), 0);
    call.abort(); // the HTTP client goes away mid-statement
    for _ in 0..200 {
        if snowflake.count("/queries/v1/abort-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        snowflake.count("/queries/v1/abort-request"),
        1,
        "the statement was aborted on Snowflake when its HTTP request was dropped"
    );
}

//! MCP tasks (2026-07-28 extension `io.modelcontextprotocol/tasks`), with raw sessionless
//! JSON-RPC built from the extension's specification: a long `run_query` from a request that
//! declares the extension is answered as a task, `tasks/get` polls it to its result,
//! `tasks/cancel` stops it, another client's task is unknown, and a request without the
//! extension gets `-32021` for `tasks/*` and a plain tool result for `run_query`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const TASKS: &str = "io.modelcontextprotocol/tasks";

fn meta(tasks: bool) -> Value {
    let caps = if tasks {
        json!({"extensions": {TASKS: {}}})
    } else {
        json!({})
    };
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-tasks", "version": "1"}
    })
}

/// One sessionless request: its JSON-RPC answer (`result` or `error`).
async fn rpc(base: &str, token: &str, method: &str, name: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params}).to_string();
    let auth = format!("Bearer {token}");
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("mcp-name", name),
        ("authorization", auth.as_str()),
    ];
    let (status, head, answer) = raw_http(base, "POST", "/mcp", &headers, &body).await;
    // A JSON-RPC error about the request itself may come as HTTP 400.
    assert!(status == 200 || status == 400, "{head}\n{answer}");
    let trimmed = answer.trim();
    let messages: Vec<Value> = if trimmed.starts_with('{') {
        vec![serde_json::from_str(trimmed).unwrap()]
    } else {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_json::from_str(d.trim()).unwrap())
            .collect()
    };
    messages
        .into_iter()
        .find(|m| m["id"] == 3)
        .unwrap_or_else(|| panic!("no answer in {answer}"))
}

async fn run_query(base: &str, token: &str, sql: &str, tasks: bool) -> Value {
    let params = json!({"name": "run_query", "arguments": {"sql": sql, "wait_secs": 0.2}, "_meta": meta(tasks)});
    rpc(base, token, "tools/call", "run_query", params).await
}

async fn task_call(base: &str, token: &str, method: &str, id: &str, tasks: bool) -> Value {
    let params = json!({"taskId": id, "_meta": meta(tasks)});
    rpc(base, token, method, id, params).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_query_runs_as_a_task_for_clients_that_declare_tasks() {
    let config = write_config(
        "tasks",
        &format!(
            "[[clients]]\nid = \"ana\"\ntoken_sha256 = \"{}\"\n\n[[clients]]\nid = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha("ana-token"),
            sha("bob-token")
        ),
    );
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let base = server.base.as_str();

    // Created at once, working.
    let created = run_query(base, "ana-token", "SELECT SYSTEM$WAIT(2)", true).await;
    let created = &created["result"];
    assert_eq!(created["resultType"], "task", "{created}");
    assert_eq!(created["status"], "working");
    assert!(created["pollIntervalMs"].as_u64().is_some() && created["ttlMs"].as_u64().is_some());
    let id = created["taskId"].as_str().unwrap().to_string();

    // Another client: unknown. Without the extension declared: -32021.
    let foreign = task_call(base, "bob-token", "tasks/get", &id, true).await;
    assert_eq!(foreign["error"]["code"], -32602, "{foreign}");
    let undeclared = task_call(base, "ana-token", "tasks/get", &id, false).await;
    assert_eq!(undeclared["error"]["code"], -32021, "{undeclared}");

    // Polled to its result: what tools/call would have answered.
    let started = Instant::now();
    let done = loop {
        let got = task_call(base, "ana-token", "tasks/get", &id, true).await;
        let task = got["result"].clone();
        assert_eq!(task["taskId"], id.as_str(), "{got}");
        if task["status"] != "working" {
            break task;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still working: {task}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["resultType"], "complete");
    assert_eq!(
        done["result"]["structuredContent"]["rows"],
        json!([["waited 2 seconds"]])
    );

    // tasks/cancel stops the statement.
    let long = run_query(base, "ana-token", "SELECT SYSTEM$WAIT(60)", true).await;
    let long = long["result"]["taskId"].as_str().unwrap().to_string();
    let foreign = task_call(base, "bob-token", "tasks/cancel", &long, true).await;
    assert_eq!(foreign["error"]["code"], -32602);
    let ack = task_call(base, "ana-token", "tasks/cancel", &long, true).await;
    assert!(ack.get("error").is_none(), "{ack}");
    let after = task_call(base, "ana-token", "tasks/get", &long, true).await;
    assert_eq!(after["result"]["status"], "cancelled", "{after}");

    // A short query is answered at once; a client without tasks gets a tool result.
    let short = run_query(base, "ana-token", "SELECT 1 AS X", true).await;
    assert_eq!(short["result"]["structuredContent"]["rows"], json!([[1]]));
    assert_ne!(short["result"]["resultType"], "task");
    let plain = run_query(base, "ana-token", "SELECT SYSTEM$WAIT(1)", false).await;
    assert_eq!(
        plain["result"]["structuredContent"]["status"], "running",
        "{plain}"
    );
    assert_ne!(plain["result"]["resultType"], "task");
    let unknown = task_call(base, "ana-token", "tasks/get", "r-no-such-task", true).await;
    assert_eq!(unknown["error"]["code"], -32602);
}

//! MCP tasks (the 2026-07-28 extension `io.modelcontextprotocol/tasks`, SEP-2663) over result
//! handles: one implementation serves both.
//!
//! A `run_query` from a request that declares the extension runs as usual, within its bound;
//! a statement still running then is answered as a task (`resultType: "task"`) whose id is its
//! `result_id` — whose record the state store already holds, so any replica answers
//! `tasks/get` and `tasks/cancel` for it. `tasks/get` is `get_result` without waiting,
//! `tasks/cancel` is `cancel_query`; both go through the same door as a `tools/call` (the
//! caller's identity, rate limit, audit), so a task is its client's only: another client's id
//! is "unknown" (-32602), as the extension asks of ids that are not the caller's.
//!
//! rmcp 3.11 keeps its own tasks in memory ([`rmcp::task_manager`]); ours are the result
//! handles, durable and shared. The 2025-11-25 experimental tasks (SEP-1686), which rmcp 3
//! dropped, are not offered.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, CreateTaskResult,
    DetailedTask, GetTaskParams, GetTaskResult, Task, TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};

use super::door::{error_kind, Door};
use crate::tools::results::RETENTION;

/// How often a client should ask about a task, milliseconds.
const POLL_INTERVAL_MS: u64 = 2000;

/// Whether the request declared the tasks extension.
pub(super) fn declared(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|caps| caps.supports_tasks())
}

fn iso(ms_ago: u64) -> String {
    (chrono::Utc::now() - chrono::Duration::milliseconds(ms_ago as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn task(id: &str, status: TaskStatus, elapsed_ms: u64) -> Task {
    Task::new(id, status, iso(elapsed_ms), iso(0))
        .with_ttl_ms(RETENTION.as_millis() as u64)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
}

/// A `run_query` answer as the task extension wants it: a statement still running is a task.
pub(super) fn answer(result: CallToolResult) -> CallToolResponse {
    let running = result
        .structured_content
        .as_ref()
        .filter(|s| s["status"] == "running" && result.is_error != Some(true));
    match running.and_then(|s| s["result_id"].as_str()) {
        Some(id) => {
            let elapsed = running.and_then(|s| s["elapsed_ms"].as_u64()).unwrap_or(0);
            let message = "the statement is running; poll tasks/get";
            CallToolResponse::Task(CreateTaskResult::new(
                task(id, TaskStatus::Working, elapsed).with_status_message(message),
            ))
        }
        None => CallToolResponse::Complete(result),
    }
}

/// Run result tool `tool` for the task `task_id` through the server's door.
async fn through_the_door(
    door: &impl Door,
    tool: &'static str,
    mut args: serde_json::Map<String, Value>,
    task_id: &str,
) -> Result<CallToolResult, McpError> {
    args.insert("result_id".into(), json!(task_id));
    let request = CallToolRequestParams::new(tool).with_arguments(args);
    let result = door(request).await;
    match error_kind(&result).as_deref() {
        Some("not_found") | Some("invalid_argument") => Err(McpError::invalid_params(
            format!("unknown task '{task_id}'"),
            None,
        )),
        _ => Ok(result),
    }
}

/// `tasks/get`: the task's state; its `result` is what `tools/call` would have answered.
pub(super) async fn get(door: impl Door, params: GetTaskParams) -> Result<GetTaskResult, McpError> {
    let args = serde_json::Map::from_iter([("wait_secs".to_string(), json!(0))]);
    let result = through_the_door(&door, "get_result", args, &params.task_id).await?;
    let s = result.structured_content.clone().unwrap_or_default();
    let elapsed = s["elapsed_ms"].as_u64().unwrap_or(0);
    let (payload, message) = match error_kind(&result).as_deref() {
        Some("cancelled") => (TaskPayload::Cancelled, Some("cancelled")),
        // Refused for now, not failed: the client asks again.
        Some("rate_limited" | "busy" | "unavailable") => {
            (TaskPayload::Working, Some("busy; ask again later"))
        }
        _ if s["status"] == "running" => (TaskPayload::Working, None),
        _ => {
            let result = serde_json::to_value(&result)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            (TaskPayload::Completed { result }, None)
        }
    };
    let mut base = task(&params.task_id, payload.status(), elapsed);
    if let Some(message) = message {
        base = base.with_status_message(message);
    }
    Ok(GetTaskResult::new(DetailedTask::new(base, payload)))
}

/// `tasks/cancel`: stop the statement (cooperative: the task may still end `completed`).
pub(super) async fn cancel(door: impl Door, params: CancelTaskParams) -> Result<(), McpError> {
    let args = serde_json::Map::new();
    through_the_door(&door, "cancel_query", args, &params.task_id)
        .await
        .map(|_| ())
}

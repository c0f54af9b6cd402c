//! [`Door`]: how the protocol's other methods that act on results (`tasks/*`,
//! `resources/read`) reach the tools — as a tool call through the handler's own path (who
//! calls, rate limit, audit, metrics), never around it. The handler passes its `call` as a
//! closure, so those modules need nothing of the handler.

use rmcp::model::{CallToolRequestParams, CallToolResult};

/// A tool call through the server's door.
pub(super) trait Door: Fn(CallToolRequestParams) -> Self::Call {
    type Call: std::future::Future<Output = CallToolResult>;
}

impl<F, Fut> Door for F
where
    F: Fn(CallToolRequestParams) -> Fut,
    Fut: std::future::Future<Output = CallToolResult>,
{
    type Call = Fut;
}

/// The kind of a tool error that came through the door (its `_meta.error.kind`), if it is one.
pub(super) fn error_kind(result: &CallToolResult) -> Option<String> {
    (result.is_error == Some(true)).then(|| {
        result
            .meta
            .as_ref()
            .and_then(|m| m.0.get("error"))
            .and_then(|e| e["kind"].as_str())
            .unwrap_or("internal")
            .to_string()
    })
}

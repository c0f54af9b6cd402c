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

//! The floor: a bare MCP server on the same rmcp version and Streamable HTTP transport as
//! snowflake-mcp, with one tool, `run_query`, that answers at once with a one-row page shaped
//! like snowflake-mcp's. No identity, policy, scheduler, backend or state store: what is left
//! is what MCP over HTTP costs on this machine, and the benchmarks report the server's overhead
//! above it, measured in the same run under the same load generator.
//!
//! It runs as a child process of its own (`snowflake-mcp-bench floor`), as the server does, so
//! both compete with the load generator for the same CPU in the same way.

use std::sync::Arc;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::json;

#[derive(Clone)]
struct Floor;

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("floor", "1"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let input = json!({"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]});
        let input = Arc::new(input.as_object().cloned().unwrap_or_default());
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "run_query",
            "Answer at once.",
            input,
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let page = json!({"status": "done", "columns": [{"name": "1", "type": "NUMBER(1,0)"}],
            "rows": [[1]], "row_count": 1, "truncated": false, "query_id": "01b00000-0000-4000-8000-000000000001"});
        let mut result = CallToolResult::structured(page);
        result.content = vec![ContentBlock::text("1\n1")];
        Ok(result.into())
    }
}

/// Serve the floor on `listener` until the process ends.
pub async fn run(listener: tokio::net::TcpListener) {
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let service = StreamableHttpService::new(
        || Ok(Floor),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    eprintln!(
        "listening on http://{}/mcp",
        listener.local_addr().expect("bound")
    );
    axum::serve(listener, app).await.expect("serve the floor");
}

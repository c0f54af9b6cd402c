//! The floor: a bare MCP server on the same rmcp version and Streamable HTTP transport as
//! snowflake-mcp, with one tool, `run_query`, that answers at once with a one-row page shaped
//! like snowflake-mcp's. No identity, policy, scheduler, backend or state store: what is left
//! is what MCP over HTTP costs on this machine, and the benchmarks report the server's overhead
//! above it, measured in the same run under the same load generator.
//!
//! It runs as a child process of its own (`snowflake-mcp-bench floor`), as the server does, so
//! both compete with the load generator for the same CPU in the same way.
//!
//! With `--backend <port>` it becomes the *relay floor*: the same bare server, whose tool first
//! runs the statement on the responder through snowflake-client (a pool of logged-in sessions,
//! one statement per session at a time) and answers with its rows. That is the least any
//! gateway must do per call — the protocol plus one Snowflake round trip — so the distance
//! from the relay floor to snowflake-mcp is what the server's own policy, scheduling and
//! bookkeeping cost, and the distance from the bare floor to the relay floor is the Snowflake
//! exchange itself, which the bare floor never makes.

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
struct Floor {
    relay: Option<Arc<Relay>>,
}

/// Logged-in Snowflake sessions for the relay floor, each lent to one call at a time.
struct Relay {
    free: std::sync::Mutex<Vec<snowflake_client::Session>>,
    permits: tokio::sync::Semaphore,
}

impl Relay {
    /// `size` sessions logged in to the responder on `port`.
    async fn connect(port: u16, size: usize) -> Result<Relay, String> {
        let settings = crate::harness::responder_settings(port);
        let client = snowflake_client::Client::new(&settings).map_err(|e| e.to_string())?;
        let mut free = Vec::with_capacity(size);
        for _ in 0..size {
            free.push(client.login().await.map_err(|e| e.to_string())?);
        }
        Ok(Relay {
            free: std::sync::Mutex::new(free),
            permits: tokio::sync::Semaphore::new(size),
        })
    }

    /// Run `sql` on a free session and give back its first cell as text.
    async fn run(&self, sql: &str) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let mut session = self.free.lock().unwrap().pop().ok_or("no free session")?;
        let rows = match session.query(sql).await {
            Ok(result) => result
                .collect(snowflake_client::RowLimits::default())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.free.lock().unwrap().push(session);
        let rows = rows?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .map_or_else(String::new, |v| v.to_string()))
    }
}

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
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if let Some(relay) = &self.relay {
            let sql = request
                .arguments
                .as_ref()
                .and_then(|a| a.get("sql"))
                .and_then(|v| v.as_str())
                .unwrap_or("SELECT 1");
            let cell = relay
                .run(sql)
                .await
                .map_err(|e| McpError::internal_error(e, None))?;
            return Ok(page(format!("1\n{cell}")).into());
        }
        Ok(page("1\n1".into()).into())
    }
}

/// A one-row page shaped like snowflake-mcp's, with `text` as its text content.
fn page(text: String) -> CallToolResult {
    let page = json!({"status": "done", "columns": [{"name": "1", "type": "NUMBER(1,0)"}],
        "rows": [[1]], "row_count": 1, "truncated": false, "query_id": "01b00000-0000-4000-8000-000000000001"});
    let mut result = CallToolResult::structured(page);
    result.content = vec![ContentBlock::text(text)];
    result
}

/// Serve the floor on `listener` until the process ends; with `backend`, relay each call to
/// the responder on that port first, on `sessions` Snowflake sessions.
pub async fn run(listener: tokio::net::TcpListener, backend: Option<u16>, sessions: usize) {
    let relay = match backend {
        Some(port) => Some(Arc::new(
            Relay::connect(port, sessions.max(1))
                .await
                .expect("log in to the responder"),
        )),
        None => None,
    };
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let service = StreamableHttpService::new(
        move || {
            Ok(Floor {
                relay: relay.clone(),
            })
        },
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

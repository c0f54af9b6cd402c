//! Transports: the MCP handler, served over Streamable HTTP (`serve`) or stdin/stdout (`stdio`).
//!
//! rmcp creates one [`McpServer`] per MCP session (per `Mcp-Session-Id` over HTTP, one for a
//! stdio process), so the session's context lives in the handler itself: `set_context` in one
//! session can never touch another's. Beside `/mcp` the HTTP server answers `/healthz`
//! (the process is up) and `/readyz` (Snowflake answers).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig as McpServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::backend::Context;
use crate::config::ServerConfig;
use crate::error::ToolError;
use crate::tools::{definitions, Tools};

const INSTRUCTIONS: &str = "Read-only access to Snowflake. Explore with list_databases, list_schemas, list_objects and describe_object; query with run_query. Each session has its own context (set_context).";

/// The MCP handler for one MCP session.
#[derive(Clone)]
pub struct McpServer {
    tools: Arc<Tools>,
    tool_list: Arc<Vec<Tool>>,
    context: Arc<Mutex<Option<Context>>>,
}

impl McpServer {
    pub fn new(tools: Arc<Tools>, tool_list: Arc<Vec<Tool>>) -> Self {
        McpServer {
            tools,
            tool_list,
            context: Arc::new(Mutex::new(None)),
        }
    }

    /// This session's context; the backend's default until `set_context` changes it.
    async fn context(&self) -> Result<Context, ToolError> {
        if let Some(ctx) = lock(&self.context).clone() {
            return Ok(ctx);
        }
        let default = self.tools.backend.default_context().await?;
        Ok(lock(&self.context).get_or_insert(default).clone())
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        cancel: CancellationToken,
    ) -> rmcp::model::CallToolResult {
        let work = async {
            let ctx = self.context().await?;
            let outcome = self
                .tools
                .call(&request.name, request.arguments.unwrap_or_default(), &ctx)
                .await?;
            if let Some(new) = outcome.new_context {
                *lock(&self.context) = Some(new);
            }
            Ok::<_, ToolError>(outcome.result)
        };
        // A cancelled call drops its work: a queued lease is given up, and a statement
        // interrupted mid-flight retires its Snowflake session (see `backend::pool`).
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = cancel.cancelled() => Err(ToolError::new("cancelled", "the call was cancelled")),
        };
        outcome.unwrap_or_else(ToolError::into_result)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> McpServerConfig {
        McpServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "snowflake-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.tool_list.as_ref().clone(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_list.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if self.get_tool(&request.name).is_none() {
            return Err(McpError::invalid_params(
                format!("unknown tool '{}'", request.name),
                None,
            ));
        }
        Ok(self.call(request, context.ct).await.into())
    }
}

/// Serve MCP over stdin/stdout until the client closes it.
pub async fn stdio(tools: Arc<Tools>) -> Result<(), String> {
    let server = McpServer::new(tools, Arc::new(definitions()));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("cannot start the stdio transport: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("stdio transport failed: {e}"))?;
    Ok(())
}

/// Serve MCP over Streamable HTTP on `listen` until `shutdown` is cancelled.
pub async fn serve(
    tools: Arc<Tools>,
    listen: &str,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(config.allowed_hosts.iter().cloned());
    let http_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(config.max_request_bytes)
        .with_cancellation_token(shutdown.child_token());
    let tool_list = Arc::new(definitions());
    let factory_tools = tools.clone();
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(factory_tools.clone(), tool_list.clone())),
        Arc::new(LocalSessionManager::default()),
        http_config,
    );
    let ready_tools = tools.clone();
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let tools = ready_tools.clone();
                async move {
                    match tokio::time::timeout(Duration::from_secs(15), tools.backend.ready()).await
                    {
                        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_string()),
                        Ok(Err(e)) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {}\n", e.message),
                        ),
                        Err(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: the backend did not answer in 15 s\n".into(),
                        ),
                    }
                }
            }),
        );
    eprintln!(
        "snowflake-mcp: listening on http://{addr}/mcp ({} backend)",
        tools.backend.name()
    );
    tracing::info!(%addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| format!("HTTP server failed: {e}"))
}

//! `snowflake-mcp connect`: a stdio ↔ Streamable HTTP bridge to a running `serve`.
//!
//! Clients that can only launch a process (Claude Desktop, for one) speak MCP on the bridge's
//! stdin/stdout; the bridge forwards tool listing and tool calls to the shared server over
//! HTTP with the bearer token from `SNOWFLAKE_MCP_TOKEN`. Cancellations are forwarded too. If
//! nothing answers at a local URL, the bridge starts `serve` there in the background and waits
//! until it is ready. Because the server persists sessions, the bridge's session survives a
//! server restart.

use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig as McpServerConfig,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt};

/// The environment variable holding the bearer token.
pub const TOKEN_ENV: &str = "SNOWFLAKE_MCP_TOKEN";

type Upstream = RunningService<RoleClient, ()>;

struct Bridge {
    upstream: Upstream,
}

/// The server's own protocol errors (an unknown tool, bad parameters) pass through unchanged;
/// only a failure to reach it becomes an internal error here.
fn upstream_error(e: rmcp::ServiceError) -> McpError {
    match e {
        rmcp::ServiceError::McpError(e) => e,
        other => McpError::internal_error(
            format!("the snowflake-mcp server did not answer: {other}"),
            None,
        ),
    }
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> McpServerConfig {
        let mut info = McpServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "snowflake-mcp",
                env!("CARGO_PKG_VERSION"),
            ));
        if let Some(instructions) = self
            .upstream
            .peer_info()
            .and_then(|p| p.instructions.clone())
        {
            info = info.with_instructions(instructions);
        }
        info
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut handle = self
            .upstream
            .peer()
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(request)),
                PeerRequestOptions::no_options(),
            )
            .await
            .map_err(upstream_error)?;
        tokio::select! {
            answer = &mut handle.rx => match answer
                .map_err(|_| McpError::internal_error("the snowflake-mcp server did not answer", None))?
                .map_err(upstream_error)?
            {
                ServerResult::CallToolResult(result) => Ok(result.into()),
                other => Err(McpError::internal_error(format!("unexpected answer from the server: {other:?}"), None)),
            },
            _ = context.ct.cancelled() => {
                // Forward the cancellation, so the server aborts the statement too.
                let _ = handle.cancel(Some("cancelled by the client".into())).await;
                Err(McpError::internal_error("cancelled", None))
            }
        }
    }
}

/// Is there a snowflake-mcp answering at `base` (`http://host:port` or `https://...`)? TLS
/// servers are verified against the system's roots (`SSL_CERT_FILE` names others).
async fn healthy(base: &str) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Bridge stdin/stdout to `url`, starting a local server first when none answers.
/// `serve_args` are passed to a started `serve` (config, connection, state).
pub async fn run(url: &str, serve_args: Vec<String>) -> Result<(), String> {
    let base = url
        .trim_end_matches('/')
        .trim_end_matches("/mcp")
        .to_string();
    // Only a plain-HTTP loopback URL can be served by a server started here.
    let authority = base.strip_prefix("http://").unwrap_or_default().to_string();
    let local = ["127.0.0.1:", "localhost:", "[::1]:"]
        .iter()
        .any(|p| authority.starts_with(p));
    if !healthy(&base).await {
        if !local {
            return Err(format!("no snowflake-mcp server answers at {url}"));
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        eprintln!("snowflake-mcp connect: no server at {url}; starting one");
        std::process::Command::new(exe)
            .arg("serve")
            .args(["--listen", &authority])
            .args(&serve_args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !healthy(&base).await {
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the server started for {url} did not become ready in 30 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        config = config.auth_header(token);
    }
    let upstream = ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| {
        format!("cannot open an MCP session at {url}: {e} (is {TOKEN_ENV} set to a valid token?)")
    })?;
    let bridge = Bridge { upstream };
    let running = bridge
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("cannot start the stdio side: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("the stdio side failed: {e}"))?;
    Ok(())
}

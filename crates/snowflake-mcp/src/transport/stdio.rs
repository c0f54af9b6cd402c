//! MCP over stdin/stdout: one client, the one that started the process (Claude Desktop and
//! most local clients launch servers this way).

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::transport::handler::McpServer;
use crate::transport::App;

/// Serve MCP over stdin/stdout until the client closes it.
pub async fn stdio(
    app: Arc<App>,
    client: Option<Arc<crate::policy::ClientPolicy>>,
) -> Result<(), String> {
    let server = McpServer::for_stdio(app, client);
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

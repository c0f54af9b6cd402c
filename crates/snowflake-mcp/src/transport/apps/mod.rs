//! The result viewer, an MCP App (the `io.modelcontextprotocol/ui` extension, spec 2026-01-26
//! in modelcontextprotocol/ext-apps): one self-contained HTML document (`result-viewer.html`,
//! built into the binary) that hosts rendering MCP Apps show beside the answers of
//! `run_query`, `get_result` and `fetch_rows` — a sortable table, a chart where the shape
//! suggests one, "load more" through `fetch_rows`, copy as CSV or TSV.
//!
//! This module serves it: listed by `resources/list`, read by `resources/read` with the MIME
//! type the extension requires and its `_meta.ui` (no network: `csp` declares no domains;
//! clipboard writing asked for). For a client that declares the extension, the tools link to
//! it with `_meta.ui.resourceUri` ([`crate::tools::VIEWER_URI`]), as the specification asks
//! servers to check; others get the tool list as it was. Every result is the same full text
//! and `structuredContent` for everyone.

use rmcp::model::{MetaObject, ReadResourceResult, Resource, ResourceContents, ServerCapabilities};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::{json, Value};

pub use crate::tools::VIEWER_URI;

/// The MIME type of an MCP App's document.
pub const MIME: &str = "text/html;profile=mcp-app";
/// The extension's identifier, declared in the server's capabilities.
pub const EXTENSION: &str = "io.modelcontextprotocol/ui";
/// The viewer's document.
pub const HTML: &str = include_str!("result-viewer.html");

/// The viewer's `_meta.ui`: no network (no domains), a border, and clipboard writing for its
/// copy buttons (it falls back to a text box to copy from by hand).
fn ui_meta() -> MetaObject {
    let meta = json!({"ui": {"csp": {"connectDomains": [], "resourceDomains": []},
        "permissions": {"clipboardWrite": {}}, "prefersBorder": true}});
    match meta {
        Value::Object(map) => MetaObject(map),
        _ => unreachable!("an object"),
    }
}

/// Whether the client of this request declared MCP Apps (with the viewer's MIME type): per
/// request on 2026-07-28, from `initialize` on earlier revisions.
pub fn declared(context: &RequestContext<RoleServer>) -> bool {
    let Some(caps) = context.client_capabilities() else {
        return false;
    };
    caps.extensions
        .as_ref()
        .and_then(|e| e.get(EXTENSION))
        .and_then(|ui| ui.get("mimeTypes"))
        .and_then(Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t == MIME))
}

/// Declare MCP Apps in the server's `capabilities.extensions`, beside what is there (tasks are
/// an extension too on 2026-07-28).
pub fn declare(capabilities: &mut ServerCapabilities) {
    capabilities
        .extensions
        .get_or_insert_with(Default::default)
        .insert(EXTENSION.to_string(), Default::default());
}

/// The viewer as `resources/list` lists it.
pub fn listed() -> Resource {
    Resource::new(VIEWER_URI, "result-viewer")
        .with_title("Query result viewer")
        .with_description("an interactive table and chart of a query's result (MCP Apps)")
        .with_mime_type(MIME)
        .with_meta(ui_meta())
}

/// `resources/read` of the viewer; `None` for any other URI.
pub fn read(uri: &str) -> Option<ReadResourceResult> {
    (uri == VIEWER_URI).then(|| {
        let contents = ResourceContents::text(HTML, VIEWER_URI)
            .with_mime_type(MIME)
            .with_meta(ui_meta());
        ReadResourceResult::new(vec![contents])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_is_one_small_offline_document() {
        assert!(HTML.len() < 200 * 1024, "{} bytes", HTML.len());
        assert!(HTML.starts_with("<!doctype html>"));
        // Nothing is fetched: no external scripts, styles, images or requests.
        for banned in [
            "src=\"http",
            "href=\"http",
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
            "@import",
        ] {
            assert!(!HTML.contains(banned), "{banned}");
        }
        let read = serde_json::to_value(read(VIEWER_URI).unwrap()).unwrap();
        let content = &read["contents"][0];
        assert_eq!(content["mimeType"], MIME);
        assert_eq!(content["_meta"]["ui"]["csp"]["connectDomains"], json!([]));
        assert_eq!(content["text"], HTML);
        assert!(super::read("ui://snowflake-mcp/other.html").is_none());
        let listed = serde_json::to_value(listed()).unwrap();
        assert_eq!(listed["uri"], VIEWER_URI);
        assert_eq!(listed["mimeType"], MIME);
    }
}

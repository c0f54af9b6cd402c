//! A result handle's rows as an MCP resource, for clients that attach or render resources:
//! `snowflake-mcp://results/<result_id>.csv` (or `.json`), linked from every tool result that
//! has a handle (`resource_link`) and read with `resources/read`.
//!
//! Reading one is paging the result with `fetch_rows` through the server's door — the same
//! owner check (another client's is "not found"), rate limit, quotas and audit — until its end
//! or the byte cap (`query.max_result_bytes`); a resource cut at the cap says so in its
//! `_meta` (`truncated`, and `next`: the row `fetch_rows` reads on from).

use rmcp::model::{
    CallToolRequestParams, ReadResourceRequestParams, ReadResourceResult, ResourceContents,
};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};

use super::door::{error_kind, Door};

/// Where result resources live.
pub const PREFIX: &str = crate::tools::results::RESOURCE_PREFIX;

/// The URI template of result resources (`resources/templates/list`).
pub const TEMPLATE: &str = "snowflake-mcp://results/{result_id}.csv";

/// `(result_id, json?)` of a result resource's URI.
fn parse(uri: &str) -> Option<(&str, bool)> {
    let rest = uri.strip_prefix(PREFIX)?;
    let (id, json) = match rest.rsplit_once('.') {
        Some((id, "csv")) => (id, false),
        Some((id, "json")) => (id, true),
        _ => return None,
    };
    let ok = !id.is_empty() && id.len() <= 80 && id.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some((id, json))
}

/// One CSV field: quoted when it must be (RFC 4180).
fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `resources/read` of a result resource.
pub(super) async fn read(
    door: impl Door,
    request: ReadResourceRequestParams,
    max_bytes: usize,
) -> Result<ReadResourceResult, McpError> {
    let uri = request.uri;
    let Some((id, as_json)) = parse(&uri) else {
        return Err(McpError::resource_not_found(
            format!("no resource '{uri}'"),
            None,
        ));
    };
    let (mut columns, mut rows, mut bytes) = (Value::Null, Vec::<Value>::new(), 0usize);
    let mut next: Option<String> = Some("0".into());
    while let Some(cursor) = next.take() {
        if bytes >= max_bytes {
            next = Some(cursor);
            break;
        }
        // As many rows per page as the client may take (fetch_rows caps it).
        let args = json!({"result_id": id, "cursor": cursor, "limit": 1_000_000});
        let call = CallToolRequestParams::new("fetch_rows")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let page = door(call).await;
        if let Some(kind) = error_kind(&page) {
            if kind == "not_found" {
                return Err(McpError::resource_not_found(
                    format!("no resource '{uri}'"),
                    None,
                ));
            }
            let why = page
                .content
                .first()
                .and_then(|c| c.as_text())
                .map_or_else(String::new, |t| t.text.clone());
            return Err(McpError::internal_error(why, None));
        }
        let page = page.structured_content.unwrap_or_default();
        columns = page["columns"].clone();
        for row in page["rows"].as_array().into_iter().flatten() {
            bytes += row.to_string().len();
            rows.push(row.clone());
        }
        next = page["next"].as_str().map(str::to_string);
    }
    let names: Vec<Value> = columns
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].clone())
        .collect();
    let (text, mime) = if as_json {
        let body = json!({"columns": columns, "rows": rows, "truncated": next.is_some()});
        (body.to_string(), "application/json")
    } else {
        let mut out = String::new();
        for line in std::iter::once(&names).chain(rows.iter().filter_map(Value::as_array)) {
            let fields: Vec<String> = line.iter().map(csv_field).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        (out, "text/csv")
    };
    let meta = next.map(|n| {
        rmcp::model::MetaObject(
            json!({"truncated": true, "next": n})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    });
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri,
            mime_type: Some(mime.into()),
            text,
            meta,
        },
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_result_uris_are_read() {
        assert_eq!(
            parse("snowflake-mcp://results/rabc.csv"),
            Some(("rabc", false))
        );
        assert_eq!(
            parse("snowflake-mcp://results/rabc.json"),
            Some(("rabc", true))
        );
        for bad in [
            "snowflake-mcp://results/rabc",
            "snowflake-mcp://results/../x.csv",
            "file:///etc/passwd",
            "snowflake-mcp://results/.csv",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field(&json!("a,b")), "\"a,b\"");
        assert_eq!(csv_field(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(&json!(12.5)), "12.5");
        assert_eq!(csv_field(&Value::Null), "");
    }
}

//! Compact text renderings of tool results: small pipe-separated tables, not pretty JSON.
//!
//! Every token a model reads costs money and context, so cells are shortened in the text (the
//! structured content keeps them whole) and NULL is spelled out.

use serde_json::{json, Value};

use super::{success, Outcome};
use crate::backend::QueryOutput;
use crate::Context;
use rmcp::model::CallToolResult;

/// Longest cell shown in text.
const MAX_CELL: usize = 120;

/// A header line and one line per row, cells separated by ` | `.
pub fn table(headers: &[&str], rows: &[Vec<Value>]) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 32);
    out.push_str(&headers.join(" | "));
    for row in rows {
        out.push('\n');
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            out.push_str(&cell_text(cell));
        }
    }
    out
}

/// One cell as text: strings bare, NULL as `NULL`, long values cut with `…`.
pub fn cell_text(v: &Value) -> String {
    let text = match v {
        Value::Null => return "NULL".into(),
        Value::String(s) => s.replace(['\n', '\r'], " "),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A page of rows starting at row `offset` of its result, as a tool result: the rows, and
/// when more follow, how to read them.
pub fn page(out: QueryOutput, offset: u64, max_rows: usize, max_bytes: usize) -> Outcome {
    let headers: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    let mut text = table(&headers, &out.rows);
    let mut structured = json!({
        "status": "done",
        "columns": out.columns,
        "rows": out.rows,
        "row_count": out.rows.len(),
        "truncated": out.truncated,
        "query_id": out.query_id,
    });
    if offset > 0 {
        structured["offset"] = json!(offset);
    }
    if let Some(total) = out.total_rows {
        structured["total_rows"] = json!(total);
    }
    let of_total = out
        .total_rows
        .map(|t| format!(" of {t}"))
        .unwrap_or_default();
    if out.truncated {
        let note = format!(
            "Showing rows {}-{}{of_total} (cap: {max_rows} rows or {} bytes). Narrow the query with WHERE, aggregate it, or select fewer columns.",
            offset + 1,
            offset + out.rows.len() as u64,
            max_bytes
        );
        text.push_str(&format!("\n… {note}"));
        structured["note"] = json!(note);
    } else {
        text.push_str(&format!("\n({} rows{of_total})", out.rows.len()));
    }
    // Bytes are the result data returned to the client: the JSON of its rows.
    let data_bytes = serde_json::to_vec(&structured["rows"]).map_or(0, |v| v.len());
    let returned = (out.rows.len() as u64, data_bytes as u64);
    Outcome {
        result: success(structured, text),
        new_context: None,
        returned: Some(returned),
    }
}

/// The context as a tool result; `get_context` adds the caller's remaining quotas and rate.
pub(super) fn context_result(
    ctx: &Context,
    limits: Option<Value>,
    note: Option<&str>,
) -> CallToolResult {
    let mut value = json!({"database": ctx.database, "schema": ctx.schema, "warehouse": ctx.warehouse, "role": ctx.role});
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let mut text = format!(
        "database: {}\nschema: {}\nwarehouse: {}\nrole: {}",
        show(&ctx.database),
        show(&ctx.schema),
        show(&ctx.warehouse),
        show(&ctx.role)
    );
    if let Some(limits) = limits {
        if let Some(quotas) = limits["quotas"].as_object() {
            for (name, q) in quotas {
                text.push_str(&format!(
                    "\n{name}: {} of {} left (resets in {} s)",
                    q["remaining"], q["limit"], q["resets_in_s"]
                ));
            }
        }
        if let Some(why) = limits["quotas_unavailable"].as_str() {
            text.push_str(&format!("\nquotas: unknown for now ({why})"));
        }
        if let Some(rate) = limits["rate_limit"].as_object() {
            text.push_str(&format!(
                "\nrate limit: {} calls/min, {} available now",
                rate["per_minute"], rate["available_now"]
            ));
        }
        value["limits"] = limits;
    }
    if let Some(note) = note {
        text.push_str(&format!("\nnote: {note}"));
        value["note"] = note.into();
    }
    success(value, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_compact_and_cells_bounded() {
        let long = "x".repeat(500);
        let t = table(
            &["ID", "NAME"],
            &[
                vec![json!(1), json!("a\nb")],
                vec![json!(null), json!(long)],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID | NAME");
        assert_eq!(lines[1], "1 | a b");
        assert!(lines[2].starts_with("NULL | xxx"));
        assert!(lines[2].chars().count() < 140);
        assert!(lines[2].ends_with('…'));
    }
}

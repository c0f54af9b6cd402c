//! Compact text renderings of tool results: small pipe-separated tables, not pretty JSON.
//!
//! Every token a model reads costs money and context, so cells are shortened in the text (the
//! structured content keeps them whole) and NULL is spelled out.

use serde_json::Value;

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

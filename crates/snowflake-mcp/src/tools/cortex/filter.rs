//! A Cortex Search filter, checked before it is passed through: Snowflake's filter grammar
//! (docs.snowflake.com/en/user-guide/snowflake-cortex/cortex-search/query-cortex-search-service)
//! as structured JSON — `{"@eq": {"REGION": "EU"}}`, `@contains`, `@gte`, `@lte`,
//! `@primarykey`, combined with `@and` / `@or` (lists) and `@not` — bounded in depth and size.
//! Anything else is refused here, so a model's mistake reads as our clear error, not a 400.

use serde_json::Value;

use crate::error::ToolError;

/// The deepest nesting, and the most conditions in one `@and` / `@or`.
const MAX_DEPTH: usize = 8;
const MAX_ITEMS: usize = 50;

fn bad(why: &str) -> ToolError {
    ToolError::invalid(format!(
        "filter: {why} (a filter is {{\"@eq\": {{\"COLUMN\": value}}}}, @contains, @gte, @lte, @primarykey, or @and / @or of a list, @not of one)"
    ))
}

/// Whether `f` is a filter Cortex Search takes.
pub(super) fn check(f: &Value, depth: usize) -> Result<(), ToolError> {
    if depth > MAX_DEPTH {
        return Err(bad(&format!("nested deeper than {MAX_DEPTH}")));
    }
    let Some((op, arg)) = f
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        return Err(bad("each condition is an object with one operator"));
    };
    match op.as_str() {
        "@and" | "@or" => match arg.as_array() {
            Some(items) if !items.is_empty() && items.len() <= MAX_ITEMS => {
                items.iter().try_for_each(|i| check(i, depth + 1))
            }
            _ => Err(bad(&format!(
                "{op} takes a list of 1 to {MAX_ITEMS} conditions"
            ))),
        },
        "@not" => check(arg, depth + 1),
        "@eq" | "@contains" | "@gte" | "@lte" => {
            let Some((column, value)) = arg
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.iter().next())
            else {
                return Err(bad(&format!("{op} takes one column and its value")));
            };
            column_name(column)?;
            match value {
                Value::String(s) if s.len() <= 1_000 => Ok(()),
                Value::Number(_) | Value::Bool(_) => Ok(()),
                _ => Err(bad(&format!(
                    "{op}'s value is a string (up to 1000 bytes), a number or a boolean"
                ))),
            }
        }
        "@primarykey" => match arg.as_object() {
            Some(keys) if !keys.is_empty() && keys.len() <= MAX_ITEMS => {
                for (column, value) in keys {
                    column_name(column)?;
                    if !(value.is_string() || value.is_number()) {
                        return Err(bad("@primarykey's values are strings or numbers"));
                    }
                }
                Ok(())
            }
            _ => Err(bad("@primarykey takes an object of key columns and values")),
        },
        other => Err(bad(&format!("unknown operator '{other}'"))),
    }
}

fn column_name(c: &str) -> Result<(), ToolError> {
    let ok = !c.is_empty()
        && c.len() <= 255
        && c.chars()
            .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '$');
    if ok {
        Ok(())
    } else {
        Err(bad(&format!("'{c}' is not a column name")))
    }
}

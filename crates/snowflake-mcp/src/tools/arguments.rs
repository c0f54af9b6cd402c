//! The arguments of each tool as the model sends them: one struct per tool, unknown fields
//! refused, and the small checks every tool shares (a database or the current one, a LIKE
//! pattern). Parsing happens before anything else, so a malformed call costs nothing.

use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::Value;

use crate::backend::{current, ObjectKind};
use crate::error::ToolError;
use crate::ident::Ident;
use crate::Context;

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(args: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| ToolError::invalid(format!("invalid arguments: {e}")))
}

pub(super) fn database_or_current(arg: Option<&str>, ctx: &Context) -> Result<Ident, ToolError> {
    match arg {
        Some(d) => Ident::parse(d, "database"),
        None => current(&ctx.database, "database"),
    }
}

pub(super) fn check_pattern(p: &str) -> Result<&str, ToolError> {
    if p.is_empty() || p.len() > 255 || p.chars().any(char::is_control) {
        return Err(ToolError::invalid(
            "pattern must be 1 to 255 printable characters, e.g. 'ORD%'",
        ));
    }
    Ok(p)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryHistory {
    pub(super) limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListSchemas {
    pub(super) database: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListObjects {
    pub(super) database: Option<String>,
    pub(super) schema: Option<String>,
    pub(super) kind: Option<ObjectKind>,
    pub(super) pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DescribeObject {
    pub(super) name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunQuery {
    pub(super) sql: String,
    pub(super) max_rows: Option<u64>,
    pub(super) wait_secs: Option<f64>,
    /// The token of a `confirmation_required` answer.
    pub(super) confirm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExplainQuery {
    pub(super) sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GetResult {
    pub(super) result_id: String,
    pub(super) wait_secs: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchRows {
    pub(super) result_id: String,
    pub(super) cursor: Option<String>,
    pub(super) offset: Option<u64>,
    pub(super) limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelQuery {
    pub(super) result_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetContext {
    pub(super) database: Option<String>,
    pub(super) schema: Option<String>,
    pub(super) warehouse: Option<String>,
    pub(super) role: Option<String>,
}

impl SetContext {
    /// The context asked for: the current one with the given parts replaced. A new database
    /// without a schema starts in that database's default schema.
    pub(super) fn apply_to(&self, ctx: &Context) -> Result<Context, ToolError> {
        if [&self.database, &self.schema, &self.warehouse, &self.role]
            .iter()
            .all(|v| v.is_none())
        {
            return Err(ToolError::invalid(
                "pass at least one of database, schema, warehouse, role",
            ));
        }
        let ident = |v: &Option<String>, what| {
            v.as_deref()
                .map(|s| Ident::parse(s, what).map(|i| i.name().to_string()))
                .transpose()
        };
        let mut target = ctx.clone();
        if let Some(db) = ident(&self.database, "database")? {
            if target.database.as_deref() != Some(db.as_str()) {
                target.schema = None;
            }
            target.database = Some(db);
        }
        if let Some(schema) = ident(&self.schema, "schema")? {
            if target.database.is_none() {
                return Err(ToolError::invalid(
                    "set a database before (or together with) the schema",
                ));
            }
            target.schema = Some(schema);
        }
        if let Some(wh) = ident(&self.warehouse, "warehouse")? {
            target.warehouse = Some(wh);
        }
        if let Some(role) = ident(&self.role, "role")? {
            target.role = Some(role);
        }
        Ok(target)
    }
}

//! Snowflake's semantic views as tools (`[query] semantic_views = true`):
//! `list_semantic_views`, `describe_semantic_view` and `query_semantic_view`.
//!
//! Each builds one statement from validated, always-quoted names and typed values — never the
//! model's text pasted into SQL — and runs it on the `run_query` path: the guard (which reads
//! `SHOW/DESCRIBE SEMANTIC VIEW(S)` and `SEMANTIC_VIEW(...)` as reads and holds restricted
//! clients to their databases), quotas, fairness, caps, paging and audit. The statements follow
//! Snowflake's reference: `sql-reference/sql/show-semantic-views`, `desc-semantic-view` and
//! `sql-reference/constructs/semantic_view` (the inner `WHERE` filters dimensions and facts
//! before metrics are computed; `ORDER BY` and `LIMIT` go outside).

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::backend::{current, ObjectName};
use crate::error::ToolError;
use crate::ident::{split_parts, string_literal, Ident};
use crate::tools::arguments::parse;
use crate::tools::{success, Caller, Outcome, Tools};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListSemanticViews {
    database: Option<String>,
    schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DescribeSemanticView {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuerySemanticView {
    name: String,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    dimensions: Vec<String>,
    #[serde(default)]
    facts: Vec<String>,
    #[serde(default, rename = "where")]
    filters: Vec<Filter>,
    #[serde(default)]
    order_by: Vec<String>,
    limit: Option<u64>,
}

/// One condition of the inner `WHERE`: a dimension or fact, an operator, a value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    dimension: String,
    op: String,
    value: Value,
}

/// The most names one query may ask for.
const MAX_ITEMS: usize = 50;

/// `table.name` or `name`, each part validated and quoted.
fn item(text: &str) -> Result<(String, Ident), ToolError> {
    let parts = split_parts(text, "a metric, dimension or fact")?;
    match parts.as_slice() {
        [name] => Ok((name.quoted(), name.clone())),
        [table, name] => Ok((
            format!("{}.{}", table.quoted(), name.quoted()),
            name.clone(),
        )),
        _ => Err(ToolError::invalid(format!(
            "'{text}' must be table.name or name"
        ))),
    }
}

/// One typed value as a SQL literal.
fn literal(v: &Value) -> Result<String, ToolError> {
    match v {
        Value::String(s) => Ok(string_literal(s)),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string().to_uppercase()),
        _ => Err(ToolError::invalid(
            "a filter's value is a string, a number or a boolean (a list for op IN)",
        )),
    }
}

fn condition(f: &Filter) -> Result<String, ToolError> {
    let (column, _) = item(&f.dimension)?;
    let op = f.op.trim().to_ascii_uppercase();
    Ok(match (op.as_str(), &f.value) {
        ("=" | "!=" | "<>", Value::Null) => {
            let not = if op == "=" { "" } else { " NOT" };
            format!("{column} IS{not} NULL")
        }
        ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "LIKE" | "NOT LIKE", v) => {
            format!("{column} {op} {}", literal(v)?)
        }
        ("IN" | "NOT IN", Value::Array(items)) if !items.is_empty() && items.len() <= 1000 => {
            let list: Result<Vec<String>, ToolError> = items.iter().map(literal).collect();
            format!("{column} {op} ({})", list?.join(", "))
        }
        _ => {
            return Err(ToolError::invalid(format!(
                "op '{}' is not one of =, !=, <, <=, >, >=, LIKE, NOT LIKE, IN, NOT IN (IN takes a non-empty list)",
                f.op
            )))
        }
    })
}

/// The `SELECT * FROM SEMANTIC_VIEW(...)` statement `q` asks for, in view `view`.
fn statement(q: &QuerySemanticView, view: &ObjectName) -> Result<String, ToolError> {
    if q.metrics.is_empty() && q.dimensions.is_empty() && q.facts.is_empty() {
        return Err(ToolError::invalid(
            "name at least one metric, dimension or fact (describe_semantic_view lists them)",
        ));
    }
    if !q.facts.is_empty() && !q.metrics.is_empty() {
        return Err(ToolError::invalid(
            "facts and metrics cannot be asked for together (Snowflake's rule)",
        ));
    }
    if q.metrics.len() + q.dimensions.len() + q.facts.len() > MAX_ITEMS {
        return Err(ToolError::invalid(format!(
            "at most {MAX_ITEMS} metrics, dimensions and facts"
        )));
    }
    let mut sql = format!(
        "SELECT * FROM SEMANTIC_VIEW({}.{}.{}",
        view.database.quoted(),
        view.schema.quoted(),
        view.name.quoted()
    );
    let mut outputs = Vec::new();
    for (clause, names) in [
        ("DIMENSIONS", &q.dimensions),
        ("METRICS", &q.metrics),
        ("FACTS", &q.facts),
    ] {
        if names.is_empty() {
            continue;
        }
        let parts: Result<Vec<(String, Ident)>, ToolError> =
            names.iter().map(|n| item(n)).collect();
        let parts = parts?;
        outputs.extend(parts.iter().map(|(_, name)| name.name().to_string()));
        let list: Vec<String> = parts.into_iter().map(|(sql, _)| sql).collect();
        sql.push_str(&format!(" {clause} {}", list.join(", ")));
    }
    if !q.filters.is_empty() {
        let conditions: Result<Vec<String>, ToolError> = q.filters.iter().map(condition).collect();
        sql.push_str(&format!(" WHERE {}", conditions?.join(" AND ")));
    }
    sql.push(')');
    if !q.order_by.is_empty() {
        let mut keys = Vec::new();
        for key in &q.order_by {
            let (name, direction) = match key.trim().rsplit_once(char::is_whitespace) {
                Some((n, d)) if d.eq_ignore_ascii_case("DESC") || d.eq_ignore_ascii_case("ASC") => {
                    (n.trim(), d.to_ascii_uppercase())
                }
                _ => (key.trim(), "ASC".to_string()),
            };
            let (_, ident) = item(name)?;
            if !outputs.iter().any(|o| o == ident.name()) {
                return Err(ToolError::invalid(format!(
                    "order_by '{name}' is not one of the metrics, dimensions or facts asked for"
                )));
            }
            keys.push(format!("{} {direction}", ident.quoted()));
        }
        sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    }
    if let Some(n) = q.limit {
        sql.push_str(&format!(" LIMIT {}", n.max(1)));
    }
    Ok(sql)
}

/// The rows of a finished `run_query` answer as objects keyed by column name; `None` when the
/// statement is still running (its answer is passed on as it is).
fn records(outcome: &Outcome) -> Option<Vec<Map<String, Value>>> {
    let s = outcome.result.structured_content.as_ref()?;
    let columns: Vec<String> = s["columns"]
        .as_array()?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_ascii_lowercase())
        .collect();
    Some(
        s["rows"]
            .as_array()?
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .cloned()
                    .zip(row.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .collect(),
    )
}

/// Group `DESCRIBE SEMANTIC VIEW` rows into tables, dimensions, facts and metrics with their
/// properties (synonyms as a list).
fn described(rows: Vec<Map<String, Value>>) -> Value {
    let mut groups: Map<String, Value> = Map::new();
    let mut comment = Value::Null;
    for row in rows {
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (kind, name, property) = (text("object_kind"), text("object_name"), text("property"));
        let value = row.get("property_value").cloned().unwrap_or(Value::Null);
        if kind.is_empty() {
            if property == "COMMENT" {
                comment = value;
            }
            continue;
        }
        let group = match kind.as_str() {
            "TABLE" => "tables",
            "DIMENSION" => "dimensions",
            "FACT" => "facts",
            "METRIC" | "DERIVED_METRIC" => "metrics",
            _ => continue,
        };
        let list = groups
            .entry(group)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("a list");
        if list.last().is_none_or(|e| e["name"] != name.as_str()) {
            list.push(json!({"name": name}));
        }
        let entry = list.last_mut().expect("pushed");
        let value = match (property.as_str(), &value) {
            ("SYNONYMS" | "PRIMARY_KEY", Value::String(s)) => {
                serde_json::from_str(s).unwrap_or(value.clone())
            }
            _ => value,
        };
        entry[property.to_ascii_lowercase()] = value;
    }
    let mut out = json!({"comment": comment});
    for group in ["tables", "dimensions", "facts", "metrics"] {
        out[group] = groups.remove(group).unwrap_or_else(|| json!([]));
    }
    out
}

/// The `list_semantic_views` answer: the views, and their full names as text (`note` after).
fn views_result(views: Vec<Value>, note: &str) -> rmcp::model::CallToolResult {
    let names: Vec<String> = views
        .iter()
        .map(|v| {
            let part = |k: &str| v[k].as_str().unwrap_or("").to_string();
            format!("{}.{}.{}", part("database"), part("schema"), part("name"))
        })
        .collect();
    let text = if names.is_empty() {
        format!("no semantic views here{note}")
    } else {
        format!("{}{note}", names.join("\n"))
    };
    success(json!({"semantic_views": views}), text)
}

/// For a client limited to some semantic views: those of them in the scope asked for (their
/// comments are not read: SHOW would list the others too).
fn allowed_views(
    allowed: &[String],
    database: &Ident,
    schema: Option<&str>,
    ctx: &crate::Context,
) -> Result<rmcp::model::CallToolResult, ToolError> {
    let schema = match schema {
        Some(s) => Some(Ident::parse(s, "schema")?),
        None if ctx.schema.is_some() => Some(current(&ctx.schema, "schema")?),
        None => None,
    };
    let views: Vec<Value> = allowed
        .iter()
        .filter_map(|v| {
            let mut parts = v.splitn(3, '.');
            let (d, s, n) = (parts.next()?, parts.next()?, parts.next()?);
            let here = d == database.name() && schema.as_ref().is_none_or(|x| x.name() == s);
            here.then(|| json!({"name": n, "database": d, "schema": s, "comment": null}))
        })
        .collect();
    Ok(views_result(
        views,
        " (the semantic views this client may use)",
    ))
}

impl Tools {
    /// Run `sql` on the `run_query` path for `caller`.
    async fn semantic_sql(
        self: &Arc<Self>,
        sql: String,
        max_rows: Option<u64>,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let mut args = JsonObject::new();
        args.insert("sql".into(), Value::String(sql));
        if let Some(n) = max_rows {
            args.insert("max_rows".into(), json!(n));
        }
        self.run_query_within(args, caller).await
    }

    pub(super) async fn semantic(
        self: &Arc<Self>,
        name: &str,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let ctx = &caller.context;
        match name {
            "list_semantic_views" => {
                let a: ListSemanticViews = parse(args)?;
                let database = match &a.database {
                    Some(d) => Ident::parse(d, "database")?,
                    None => current(&ctx.database, "database")?,
                };
                let scope = match (&a.schema, &a.database) {
                    (Some(s), _) => format!(
                        "SCHEMA {}.{}",
                        database.quoted(),
                        Ident::parse(s, "schema")?.quoted()
                    ),
                    (None, Some(_)) => format!("DATABASE {}", database.quoted()),
                    (None, None) => format!(
                        "SCHEMA {}.{}",
                        database.quoted(),
                        current(&ctx.schema, "schema")?.quoted()
                    ),
                };
                if let Some(allowed) = &caller.client.access.semantic_views {
                    let listed = allowed_views(allowed, &database, a.schema.as_deref(), ctx)?;
                    return Ok(Outcome::plain(listed));
                }
                let outcome = self
                    .semantic_sql(
                        format!("SHOW SEMANTIC VIEWS IN {scope}"),
                        Some(1000),
                        caller,
                    )
                    .await?;
                let Some(rows) = records(&outcome) else {
                    return Ok(outcome);
                };
                let views: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        json!({"name": r.get("name"), "database": r.get("database_name"),
                        "schema": r.get("schema_name"), "comment": r.get("comment")})
                    })
                    .collect();
                Ok(Outcome {
                    result: views_result(views, ""),
                    ..outcome
                })
            }
            "describe_semantic_view" => {
                let a: DescribeSemanticView = parse(args)?;
                let view = ObjectName::resolve(&a.name, ctx)?;
                let sql = format!(
                    "DESCRIBE SEMANTIC VIEW {}.{}.{}",
                    view.database.quoted(),
                    view.schema.quoted(),
                    view.name.quoted()
                );
                let outcome = self.semantic_sql(sql, Some(10_000), caller).await?;
                let Some(rows) = records(&outcome) else {
                    return Ok(outcome);
                };
                let mut value = described(rows);
                value["name"] = json!(format!("{}.{}.{}", view.database, view.schema, view.name));
                let mut text = value["name"].as_str().unwrap_or("").to_string();
                for group in ["dimensions", "facts", "metrics"] {
                    for e in value[group].as_array().into_iter().flatten() {
                        text.push_str(&format!(
                            "\n{} {}.{}: {}",
                            &group[..group.len() - 1],
                            e["table"].as_str().unwrap_or(""),
                            e["name"].as_str().unwrap_or(""),
                            e["comment"].as_str().unwrap_or("")
                        ));
                    }
                }
                Ok(Outcome {
                    result: success(value, text),
                    ..outcome
                })
            }
            _ => {
                let q: QuerySemanticView = parse(args)?;
                let view = ObjectName::resolve(&q.name, ctx)?;
                let sql = statement(&q, &view)?;
                self.semantic_sql(sql, q.limit, caller).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(v: Value) -> QuerySemanticView {
        serde_json::from_value(v).unwrap()
    }

    fn view() -> ObjectName {
        ObjectName::resolve("DEMO.SALES.SALES", &Default::default()).unwrap()
    }

    #[test]
    fn a_query_is_built_from_quoted_names_and_typed_values() {
        let q = query(json!({"name": "SALES", "metrics": ["orders.total_revenue"],
            "dimensions": ["regions.region_name"], "where": [{"dimension": "orders.order_year", "op": ">=", "value": 2024},
            {"dimension": "regions.region_name", "op": "in", "value": ["North", "it's"]}],
            "order_by": ["total_revenue desc"], "limit": 5}));
        assert_eq!(
            statement(&q, &view()).unwrap(),
            "SELECT * FROM SEMANTIC_VIEW(\"DEMO\".\"SALES\".\"SALES\" DIMENSIONS \"REGIONS\".\"REGION_NAME\" \
METRICS \"ORDERS\".\"TOTAL_REVENUE\" WHERE \"ORDERS\".\"ORDER_YEAR\" >= 2024 AND \"REGIONS\".\"REGION_NAME\" IN ('North', 'it''s')) \
ORDER BY \"TOTAL_REVENUE\" DESC LIMIT 5"
        );
    }

    #[test]
    fn what_is_not_a_name_or_a_value_is_refused() {
        for bad in [
            json!({"name": "SALES", "metrics": ["orders.x; DROP TABLE T"]}),
            json!({"name": "SALES", "metrics": ["a.b.c.d"]}),
            json!({"name": "SALES"}),
            json!({"name": "SALES", "metrics": ["m"], "facts": ["f"]}),
            json!({"name": "SALES", "metrics": ["m"], "where": [{"dimension": "d", "op": "= 1 OR 1", "value": 1}]}),
            json!({"name": "SALES", "metrics": ["m"], "where": [{"dimension": "d", "op": "=", "value": {"x": 1}}]}),
            json!({"name": "SALES", "metrics": ["m"], "order_by": ["other"]}),
            json!({"name": "SALES", "metrics": ["m"], "where": [{"dimension": "d", "op": "IN", "value": []}]}),
        ] {
            let q = query(bad.clone());
            assert!(statement(&q, &view()).is_err(), "{bad}");
        }
        // A quote inside a name stays inside the quoted name.
        let q = query(json!({"name": "SALES", "metrics": ["\"a\"\"b\""]}));
        assert!(statement(&q, &view())
            .unwrap()
            .contains("METRICS \"a\"\"b\")"));
    }

    #[test]
    fn a_description_is_grouped_by_kind() {
        let row = |k: Value, n: Value, p: &str, v: &str| {
            serde_json::from_value::<Map<String, Value>>(json!({"object_kind": k, "object_name": n, "parent_entity": null, "property": p, "property_value": v})).unwrap()
        };
        let d = described(vec![
            row(Value::Null, Value::Null, "COMMENT", "Sales"),
            row(json!("METRIC"), json!("REV"), "TABLE", "ORDERS"),
            row(json!("METRIC"), json!("REV"), "SYNONYMS", "[\"revenue\"]"),
            row(json!("DIMENSION"), json!("REGION"), "COMMENT", "where"),
        ]);
        assert_eq!(d["comment"], "Sales");
        assert_eq!(
            d["metrics"],
            json!([{"name": "REV", "table": "ORDERS", "synonyms": ["revenue"]}])
        );
        assert_eq!(d["dimensions"][0]["comment"], "where");
    }
}

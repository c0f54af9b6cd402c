//! The tool contract: names, one-sentence descriptions, input and output schemas, hints.
//!
//! Hand-written JSON schemas keep the list small: every token of it is paid for on every model
//! turn, and a test keeps the whole list well under 1,500 tokens.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{json, Value};

/// The result viewer (an MCP App, see `transport::apps`) the tools that answer with rows link to.
pub const VIEWER_URI: &str = "ui://snowflake-mcp/result-viewer.html";
/// The tools whose results the viewer shows.
const VIEWED: [&str; 3] = ["run_query", "get_result", "fetch_rows"];

/// Link `tool` to the result viewer, for a client that declared MCP Apps: `_meta.ui.resourceUri`,
/// and the older flat key hosts still read. The result itself is the same for everyone; the
/// list of a client without Apps stays as small as it was.
pub fn with_viewer(mut tool: Tool) -> Tool {
    if VIEWED.contains(&&*tool.name) {
        let meta = json!({"ui": {"resourceUri": VIEWER_URI}, "ui/resourceUri": VIEWER_URI});
        if let Value::Object(map) = meta {
            tool.meta = Some(rmcp::model::MetaObject(map));
        }
    }
    tool
}

/// The tool list of a read-only server, with compact input and output schemas.
pub fn definitions() -> Vec<Tool> {
    definitions_for(false)
}

/// The tool list; where some client may write (`allow_statements`), `run_query` says so, takes
/// a `confirm` token, and is annotated as possibly destructive.
pub fn definitions_for(writes: bool) -> Vec<Tool> {
    let name_list = |key: &str| {
        json!({"type": "object", "properties": {key: {"type": "array", "items": {"type": "object",
            "properties": {"name": {"type": "string"}, "comment": {"type": "string"}}, "required": ["name"]}}}, "required": [key]})
    };
    let str_prop = |d: &str| json!({"type": "string", "description": d});
    let ctx_schema = json!({"type": "object", "properties": {
        "database": {"type": ["string", "null"]}, "schema": {"type": ["string", "null"]},
        "warehouse": {"type": ["string", "null"]}, "role": {"type": ["string", "null"]},
        "limits": {"type": "object", "description": "remaining quotas and rate-limit headroom"},
        "note": {"type": "string", "description": "what to know about this server's data, e.g. that it is the offline demo"}}});
    let empty = json!({"type": "object", "properties": {}, "additionalProperties": false});
    // A page of rows, or (status "running") word that the statement still runs.
    let page_schema = json!({"type": "object", "properties": {
        "status": {"enum": ["running", "done"]}, "result_id": {"type": "string"}, "elapsed_ms": {"type": "integer"},
        "columns": {"type": "array"}, "rows": {"type": "array"}, "row_count": {"type": "integer"},
        "total_rows": {"type": "integer"}, "truncated": {"type": "boolean"}, "next": {"type": "string"}, "query_id": {"type": "string"}},
        "required": ["status"]});
    let status_schema = json!({"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]});
    vec![
        tool("list_databases", "List the databases the current role can see.", empty.clone(), name_list("databases")),
        tool(
            "list_schemas",
            "List the schemas of a database (default: the current one).",
            json!({"type": "object", "properties": {"database": str_prop("database name")}, "additionalProperties": false}),
            name_list("schemas"),
        ),
        tool(
            "list_objects",
            "List tables and views of a schema (default: the current one); pattern is a LIKE pattern such as 'ORD%'.",
            json!({"type": "object", "properties": {
                "database": str_prop("database name"), "schema": str_prop("schema name"),
                "kind": {"type": "string", "enum": ["table", "view"]}, "pattern": str_prop("LIKE pattern")},
                "additionalProperties": false}),
            json!({"type": "object", "properties": {"objects": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "kind": {"type": "string"}, "rows": {"type": "integer"}, "comment": {"type": "string"}},
                "required": ["name", "kind"]}}}, "required": ["objects"]}),
        ),
        tool(
            "describe_object",
            "Show the columns of a table or view; name is NAME, SCHEMA.NAME or DB.SCHEMA.NAME.",
            json!({"type": "object", "properties": {"name": str_prop("table or view")}, "required": ["name"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"name": {"type": "string"}, "columns": {"type": "array", "items": {"type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "nullable": {"type": "boolean"}, "comment": {"type": "string"}},
                "required": ["name", "type", "nullable"]}}}, "required": ["name", "columns"]}),
        ),
        run_query(writes, page_schema),
        tool(
            "get_result",
            "Status of a running query by result_id, or its first page once done.",
            json!({"type": "object", "properties": {"result_id": {"type": "string"},
                "wait_secs": {"type": "number", "minimum": 0}}, "required": ["result_id"], "additionalProperties": false}),
            status_schema.clone(),
        ),
        tool(
            "fetch_rows",
            "More rows of a finished result; never re-runs the query.",
            json!({"type": "object", "properties": {"result_id": {"type": "string"}, "cursor": str_prop("next of the previous page"),
                "offset": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1}}, "required": ["result_id"], "additionalProperties": false}),
            status_schema.clone(),
        ),
        tool(
            "cancel_query",
            "Stop a running query by result_id.",
            json!({"type": "object", "properties": {"result_id": {"type": "string"}}, "required": ["result_id"], "additionalProperties": false}),
            status_schema,
        ),
        tool(
            "explain_query",
            "Estimate what a query would scan, from its plan, without running it.",
            json!({"type": "object", "properties": {"sql": str_prop("one statement")}, "required": ["sql"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"bytes_assigned": {"type": "integer"}}, "required": ["bytes_assigned"]}),
        ),
        tool("get_context", "Show this session's database, schema, warehouse and role.", empty, ctx_schema.clone()),
        tool(
            "query_history",
            "List your own recent queries (newest first).",
            json!({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 200}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "object"}}}, "required": ["queries"]}),
        ),
        tool(
            "set_context",
            "Change this session's database, schema, warehouse or role; other sessions are not affected.",
            json!({"type": "object", "properties": {"database": str_prop("database"), "schema": str_prop("schema"),
                "warehouse": str_prop("warehouse"), "role": str_prop("role")}, "additionalProperties": false}),
            ctx_schema,
        ),
    ]
}

/// The semantic-view tools, listed where `[query] semantic_views = true`.
pub fn semantic_definitions() -> Vec<Tool> {
    let names = json!({"type": "array", "items": {"type": "string"}, "maxItems": 50});
    let page = json!({"type": "object", "properties": {"status": {"type": "string"}, "columns": {"type": "array"}, "rows": {"type": "array"}}, "required": ["status"]});
    vec![
        tool(
            "list_semantic_views",
            "List the semantic views (business metrics and dimensions defined in Snowflake) of a schema or database.",
            json!({"type": "object", "properties": {"database": {"type": "string"}, "schema": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"semantic_views": {"type": "array"}}, "required": ["semantic_views"]}),
        ),
        tool(
            "describe_semantic_view",
            "Show a semantic view's tables, dimensions, facts and metrics with their comments and synonyms.",
            json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"name": {"type": "string"}, "dimensions": {"type": "array"}, "facts": {"type": "array"}, "metrics": {"type": "array"}}, "required": ["name"]}),
        ),
        tool(
            "query_semantic_view",
            "Query a semantic view by metric and dimension names (table.name); where filters dimensions before metrics are computed.",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "metrics": names.clone(), "dimensions": names.clone(), "facts": names,
                "where": {"type": "array", "items": {"type": "object", "properties": {"dimension": {"type": "string"},
                    "op": {"enum": ["=", "!=", "<", "<=", ">", ">=", "LIKE", "NOT LIKE", "IN", "NOT IN"]}, "value": {}}, "required": ["dimension", "op", "value"]}},
                "order_by": {"type": "array", "items": {"type": "string"}, "description": "output names, each optionally followed by DESC"},
                "limit": {"type": "integer", "minimum": 1}}, "required": ["name"], "additionalProperties": false}),
            page,
        ),
    ]
}

fn run_query(writes: bool, page_schema: Value) -> Tool {
    let mut input = json!({"type": "object", "properties": {"sql": {"type": "string", "description": "one statement"},
        "max_rows": {"type": "integer", "minimum": 1, "description": "rows per page"},
        "wait_secs": {"type": "number", "minimum": 0, "description": "answer within this long, then keep running"}}, "required": ["sql"], "additionalProperties": false});
    if !writes {
        return tool(
            "run_query",
            "Run one read-only SQL statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) in the current context; a long one answers status running and a result_id.",
            input,
            page_schema,
        );
    }
    input["properties"]["confirm"] =
        json!({"type": "string", "description": "token of a confirmation_required answer"});
    let mut tool = tool(
        "run_query",
        "Run one SQL statement in the current context: a read, or a write this client may run once a person confirms it; a long one answers status running and a result_id.",
        input,
        page_schema,
    );
    tool.annotations = Some(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false),
    );
    tool
}

fn tool(name: &'static str, description: &'static str, input: Value, output: Value) -> Tool {
    let object = |v: Value| match v {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool schemas are JSON objects"),
    };
    let annotations = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(name != "set_context");
    let mut tool =
        Tool::new(name, description, object(input)).with_raw_output_schema(object(output));
    tool.annotations = Some(annotations);
    tool
}

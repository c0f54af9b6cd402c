//! The Cortex tools' contract: `ask_analyst`, and one tool per configured search service and
//! agent, named and described by the operator. Listed only where `[cortex]` configures them.

use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{json, Value};

use crate::config::CortexConfig;

fn object(v: Value) -> Arc<rmcp::model::JsonObject> {
    match v {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool schemas are JSON objects"),
    }
}

fn tool(name: &str, description: String, input: Value, output: Value) -> Tool {
    let mut tool = Tool::new(name.to_string(), description, object(input))
        .with_raw_output_schema(object(output));
    tool.annotations = Some(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    );
    tool
}

/// Earlier turns of a conversation the caller keeps: user, then the reply, alternating.
fn history(reply: &str) -> Value {
    json!({"type": "array", "maxItems": 20, "description": format!("earlier turns, alternating user and {reply}"),
        "items": {"type": "object", "properties": {"role": {"enum": ["user", reply]}, "text": {"type": "string"}},
        "required": ["role", "text"], "additionalProperties": false}})
}

/// The Cortex tools `config` lists.
pub fn cortex_definitions(config: &CortexConfig) -> Vec<Tool> {
    let mut tools = Vec::new();
    if config.analyst {
        tools.push(tool(
            "ask_analyst",
            "Ask Cortex Analyst a question in words about a semantic view; answers its interpretation, the SQL and, where allowed, the rows.".into(),
            json!({"type": "object", "properties": {"question": {"type": "string"},
                "semantic_view": {"type": "string", "description": "DB.SCHEMA.VIEW"}, "history": history("analyst")},
                "required": ["question"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"semantic_view": {"type": "string"}, "interpretation": {"type": "string"},
                "sql": {"type": "string"}, "suggestions": {"type": "array"}, "result": {"type": "object"}}, "required": ["semantic_view"]}),
        ));
    }
    for s in &config.search {
        tools.push(tool(
            &s.name,
            format!("Search {} (Cortex Search).", s.description.trim_end_matches('.')),
            json!({"type": "object", "properties": {"query": {"type": "string"},
                "filter": {"type": "object", "description": "e.g. {\"@eq\": {\"COLUMN\": \"value\"}}; also @contains, @gte, @lte, @and, @or, @not"},
                "limit": {"type": "integer", "minimum": 1, "maximum": s.max_results}},
                "required": ["query"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"results": {"type": "array", "items": {"type": "object"}}}, "required": ["results"]}),
        ));
    }
    for a in &config.agents {
        tools.push(tool(
            &a.name,
            format!("Ask the Cortex agent that {}.", a.description.trim_end_matches('.')),
            json!({"type": "object", "properties": {"question": {"type": "string"}, "history": history("assistant")},
                "required": ["question"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"answer": {"type": "string"}, "sql": {"type": "array"},
                "tables": {"type": "array"}, "citations": {"type": "array"}}, "required": ["answer"]}),
        ));
    }
    tools
}

//! The scripted Snowflake's Cortex REST services, written from Snowflake's documentation:
//!
//! * Cortex Analyst, `POST /api/v2/cortex/analyst/message`
//!   (docs.snowflake.com/en/user-guide/snowflake-cortex/cortex-analyst/rest-api): `messages`
//!   (roles `user`/`analyst` alternating, the last a `user`; content items `{type: "text",
//!   text}`) and exactly one of `semantic_view`, `semantic_model_file`, `semantic_model`,
//!   `semantic_models`; answers `{request_id, message: {role: "analyst", content: [text, sql |
//!   suggestions]}, warnings, response_metadata}`. The SQL is not run.
//! * Cortex Search, `POST /api/v2/databases/{db}/schemas/{schema}/cortex-search-services/{name}:query`
//!   (…/cortex-search/query-cortex-search-service): `query`, `columns`, `filter` (`@eq`,
//!   `@contains`, `@gte`, `@lte`, `@and`, `@or`, `@not`), `limit` (1–1000, default 10);
//!   answers `{results: [{column: value}], request_id}`.
//! * Cortex Agents, `POST /api/v2/databases/{db}/schemas/{schema}/agents/{name}:run`
//!   (…/cortex-agents-run): `messages` (roles `user`/`assistant`), `tool_choice`, `stream`
//!   (default true); streams `response.status`, `response.thinking.delta`, `response.tool_use`,
//!   `response.tool_result.status`, `response.tool_result`, `response.table`,
//!   `response.text.delta`, `response.text.annotation` and last `response` (the whole answer),
//!   or `error`; with `stream: false` answers that last object as JSON.
//!
//! Requests are checked field by field: anything the documentation does not allow is answered
//! 400 with Snowflake's error shape `{code, message, request_id}`. Every call must carry a
//! session's token (`Authorization: Snowflake Token="wh-token"`, or `wh-token-N` of the Nth
//! OAuth login). Known objects: the semantic
//! view `DB1.PUBLIC.SALES_SV`, the search service `DB1.PUBLIC.SUPPORT_DOCS`, the agent
//! `DB1.PUBLIC.SALES_AGENT`; `DB1.PUBLIC.LOCKED` (any kind) answers 403, anything else 404.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::scripted::{Reply, Request};

mod agent;
mod search;

use agent::agent_run;
pub(crate) use agent::max_overlap;
use search::search;

/// What the tests read back.
#[derive(Default)]
pub(crate) struct CortexState {
    /// The pause between an agent's events.
    pub(crate) agent_pace: Duration,
    /// When each agent run started and when its stream ends.
    pub(crate) agent_runs: Vec<(Instant, Instant)>,
    /// The tokens of logins that sent one (OAuth); login `n` got session token `wh-token-n`.
    pub(crate) logins: Vec<String>,
}

/// The answer revenue-by-region SQL gets from the warehouse: (region, revenue).
pub const REVENUE: [(&str, f64); 3] = [("AMER", 3400.0), ("EMEA", 1200.5), ("APAC", 980.25)];

/// The SQL the analyst and the agent write for a revenue question.
pub const REVENUE_SQL: &str = "SELECT REGION, SUM(AMOUNT) AS REVENUE FROM DB1.PUBLIC.ORDERS WHERE ORDER_DATE >= '2026-07-01' AND ORDER_DATE < '2026-10-01' GROUP BY REGION ORDER BY REVENUE DESC";

const DOCS: [(&str, &str, &str, &str); 4] = [
    (
        "KB-1",
        "Refund policy",
        "Refunds are paid within 30 days of a return.",
        "EMEA",
    ),
    (
        "KB-2",
        "Refunds in the Americas",
        "Refunds in AMER are paid to the original card.",
        "AMER",
    ),
    (
        "KB-3",
        "Shipping times",
        "Orders ship within two days.",
        "EMEA",
    ),
    (
        "KB-4",
        "Warranty",
        "Every product carries a two-year warranty.",
        "APAC",
    ),
];

fn refuse(status: u16, message: &str) -> Reply {
    Reply::json_status(
        status,
        json!({"code": "399504", "message": message, "request_id": request_id()}),
    )
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The Cortex answer to `r`, or `None` when it is not a Cortex call.
pub(crate) fn answer(
    r: &Request,
    state: &std::sync::Mutex<crate::warehouse::State>,
) -> Option<Reply> {
    let path = r.path.as_str();
    if !path.starts_with("/api/v2/") {
        return None;
    }
    if r.method != "POST" {
        return Some(refuse(405, "method not allowed"));
    }
    let auth = r
        .headers
        .get("authorization")
        .map(String::as_str)
        .unwrap_or_default();
    let session = auth
        .strip_prefix("Snowflake Token=\"wh-token")
        .and_then(|rest| rest.strip_suffix('"'));
    let known = match session {
        Some("") => true,
        Some(n) => n
            .strip_prefix('-')
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 1 && n <= state.lock().unwrap().cortex.logins.len()),
        None => false,
    };
    if !known {
        return Some(refuse(401, "Authentication token is missing or invalid."));
    }
    if !r
        .headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return Some(refuse(415, "Content-Type must be application/json"));
    }
    if path == "/api/v2/cortex/analyst/message" {
        return Some(analyst(&r.body).unwrap_or_else(|e| e));
    }
    let rest = path.strip_prefix("/api/v2/databases/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [db, "schemas", schema, kind, name] = parts.as_slice() else {
        return Some(refuse(404, "no such endpoint"));
    };
    let object = |suffix: &str| {
        name.strip_suffix(suffix)
            .map(|n| format!("{db}.{schema}.{n}").to_ascii_uppercase())
    };
    Some(match (*kind, object(":query"), object(":run")) {
        ("cortex-search-services", Some(service), _) => {
            search(&service, &r.body).unwrap_or_else(|e| e)
        }
        ("agents", _, Some(agent)) => {
            let mut st = state.lock().unwrap();
            agent_run(&agent, &r.body, &mut st.cortex).unwrap_or_else(|e| e)
        }
        _ => refuse(404, "no such endpoint"),
    })
}

fn known(object: &str, wanted: &str, what: &str) -> Result<(), Reply> {
    match object {
        o if o == wanted => Ok(()),
        "DB1.PUBLIC.LOCKED" => Err(refuse(
            403,
            &format!("Insufficient privileges to operate on {what} '{object}'."),
        )),
        _ => Err(refuse(
            404,
            &format!("{what} '{object}' does not exist or not authorized."),
        )),
    }
}

fn only_fields(body: &Value, allowed: &[&str]) -> Result<(), Reply> {
    let Some(map) = body.as_object() else {
        return Err(refuse(400, "the request body must be a JSON object"));
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(refuse(400, &format!("unknown field '{k}'"))),
        None => Ok(()),
    }
}

/// The conversation's questions, checked: alternating `first`/`second` roles, text content,
/// the last from the user. Returns the last question.
fn conversation(body: &Value, reply_role: &str) -> Result<String, Reply> {
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err(refuse(400, "messages must be a non-empty array"));
    };
    let mut last = String::new();
    for (i, m) in messages.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { reply_role };
        if m["role"] != role {
            return Err(refuse(400, &format!("messages[{i}].role must be '{role}'")));
        }
        let Some(content) = m["content"].as_array().filter(|c| !c.is_empty()) else {
            return Err(refuse(
                400,
                &format!("messages[{i}].content must be a non-empty array"),
            ));
        };
        for c in content {
            match (c["type"].as_str(), c["text"].as_str()) {
                (Some("text"), Some(text)) => last = text.to_string(),
                _ => {
                    return Err(refuse(
                        400,
                        &format!("messages[{i}].content items are {{type: text, text}}"),
                    ))
                }
            }
        }
    }
    if messages.len() % 2 == 0 {
        return Err(refuse(400, "the last message must come from the user"));
    }
    Ok(last)
}

fn analyst(body: &Value) -> Result<Reply, Reply> {
    only_fields(
        body,
        &[
            "messages",
            "semantic_view",
            "semantic_model_file",
            "semantic_model",
            "semantic_models",
            "stream",
        ],
    )?;
    let models = [
        "semantic_view",
        "semantic_model_file",
        "semantic_model",
        "semantic_models",
    ];
    if models.iter().filter(|k| !body[**k].is_null()).count() != 1 {
        return Err(refuse(400, "exactly one of semantic_view, semantic_model_file, semantic_model, semantic_models is required"));
    }
    if !body["stream"].is_null() && !body["stream"].is_boolean() {
        return Err(refuse(400, "stream must be a boolean"));
    }
    let Some(view) = body["semantic_view"].as_str() else {
        return Err(refuse(400, "this account answers semantic_view only"));
    };
    known(
        &view.to_ascii_uppercase(),
        "DB1.PUBLIC.SALES_SV",
        "Semantic view",
    )?;
    let question = conversation(body, "analyst")?.to_ascii_lowercase();
    let turns = body["messages"].as_array().map_or(0, Vec::len);
    let content = if question.contains("revenue") || (turns > 1 && question.contains("emea")) {
        let sql = if turns > 1 && question.contains("emea") {
            REVENUE_SQL.replace(" GROUP BY", " AND REGION = 'EMEA' GROUP BY")
        } else {
            REVENUE_SQL.to_string()
        };
        json!([
            {"type": "text", "text": "This is our interpretation of your question:\n\nWhat was the total revenue by region last quarter (2026-07-01 to 2026-09-30)?"},
            {"type": "sql", "statement": sql, "confidence": {"verified_query_used": null}}
        ])
    } else {
        json!([
            {"type": "text", "text": "Your question is unclear. Did you mean one of these?"},
            {"type": "suggestions", "suggestions": ["What was revenue by region last quarter?", "Which region had the most orders?"]}
        ])
    };
    Ok(Reply::json(json!({
        "request_id": request_id(),
        "message": {"role": "analyst", "content": content},
        "warnings": [],
        "response_metadata": {"model_names": ["claude-4-sonnet"], "question_category": "CLEARLY_UNAMBIGUOUS_SQL"}
    })))
}

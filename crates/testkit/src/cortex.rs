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

fn matches(doc: &Value, filter: &Value) -> Result<bool, Reply> {
    let Some((op, arg)) = filter
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        return Err(refuse(400, "a filter is an object with one operator"));
    };
    let field = |arg: &Value| -> Result<(String, Value), Reply> {
        match arg
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        {
            Some((k, v)) => Ok((k.clone(), v.clone())),
            None => Err(refuse(400, &format!("{op} takes one column and a value"))),
        }
    };
    Ok(match op.as_str() {
        "@and" | "@or" => {
            let Some(items) = arg.as_array() else {
                return Err(refuse(400, &format!("{op} takes an array")));
            };
            let results: Result<Vec<bool>, Reply> = items.iter().map(|f| matches(doc, f)).collect();
            let results = results?;
            if op == "@and" {
                results.iter().all(|b| *b)
            } else {
                results.iter().any(|b| *b)
            }
        }
        "@not" => !matches(doc, arg)?,
        "@eq" => {
            let (k, v) = field(arg)?;
            doc[&k] == v
        }
        "@contains" => {
            let (k, v) = field(arg)?;
            doc[&k]
                .as_str()
                .zip(v.as_str())
                .is_some_and(|(d, v)| d.contains(v))
        }
        "@gte" | "@lte" => {
            let (k, v) = field(arg)?;
            let (d, v) = (doc[&k].as_str().unwrap_or(""), v.as_str().unwrap_or(""));
            if op == "@gte" {
                d >= v
            } else {
                d <= v
            }
        }
        other => return Err(refuse(400, &format!("unknown filter operator '{other}'"))),
    })
}

fn search(service: &str, body: &Value) -> Result<Reply, Reply> {
    only_fields(
        body,
        &[
            "query",
            "columns",
            "filter",
            "limit",
            "scoring_config",
            "scoring_profile",
        ],
    )?;
    known(service, "DB1.PUBLIC.SUPPORT_DOCS", "Cortex Search Service")?;
    let Some(query) = body["query"].as_str().filter(|q| !q.trim().is_empty()) else {
        return Err(refuse(400, "query is required"));
    };
    let limit = match &body["limit"] {
        Value::Null => 10,
        v => match v.as_u64().filter(|n| (1..=1000).contains(n)) {
            Some(n) => n as usize,
            None => return Err(refuse(400, "limit must be an integer from 1 to 1000")),
        },
    };
    let columns: Vec<String> = match &body["columns"] {
        Value::Null => vec!["BODY".into()],
        Value::Array(c) if c.iter().all(Value::is_string) => c
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return Err(refuse(400, "columns must be an array of column names")),
    };
    let words: Vec<String> = query
        .to_ascii_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut hits = Vec::new();
    for (id, title, text, region) in DOCS {
        let doc = json!({"DOC_ID": id, "TITLE": title, "BODY": text, "REGION": region});
        if !body["filter"].is_null() && !matches(&doc, &body["filter"])? {
            continue;
        }
        let haystack = format!("{title} {text}").to_ascii_lowercase();
        let score = words
            .iter()
            .filter(|w| haystack.contains(w.as_str()))
            .count();
        if score > 0 {
            hits.push((score, doc));
        }
    }
    hits.sort_by_key(|h| std::cmp::Reverse(h.0));
    for c in &columns {
        if !["DOC_ID", "TITLE", "BODY", "REGION"].contains(&c.as_str()) {
            return Err(refuse(
                400,
                &format!("column '{c}' is not an attribute of the service"),
            ));
        }
    }
    let results: Vec<Value> = hits
        .into_iter()
        .take(limit)
        .map(|(_, doc)| {
            let row: serde_json::Map<String, Value> = columns
                .iter()
                .map(|c| (c.clone(), doc[c].clone()))
                .collect();
            Value::Object(row)
        })
        .collect();
    Ok(Reply::json(
        json!({"results": results, "request_id": request_id()}),
    ))
}

fn agent_run(agent: &str, body: &Value, state: &mut CortexState) -> Result<Reply, Reply> {
    only_fields(
        body,
        &[
            "messages",
            "thread_id",
            "parent_message_id",
            "tool_choice",
            "stream",
        ],
    )?;
    known(agent, "DB1.PUBLIC.SALES_AGENT", "Agent")?;
    let question = conversation(body, "assistant")?;
    if !body["tool_choice"].is_null() && !body["tool_choice"]["type"].is_string() {
        return Err(refuse(400, "tool_choice.type is required"));
    }
    let answer = format!(
        "Revenue last quarter was highest in AMER (3,400.00), then EMEA (1,200.50) and APAC (980.25). Refunds follow the refund policy [1]. You asked: {question}"
    );
    let table = json!({"statementHandle": "01b0aaaa-0000-4000-8000-000000000001",
        "resultSetMetaData": {"numRows": 3, "format": "jsonv2", "rowType": [
            {"name": "REGION", "type": "text", "nullable": true}, {"name": "REVENUE", "type": "fixed", "nullable": true}]},
        "data": REVENUE.iter().map(|(r, v)| json!([r, v.to_string()])).collect::<Vec<_>>()});
    let citation = json!({"type": "cortex_search_citation", "index": 1, "search_result_id": "cs_1",
        "doc_id": "KB-1", "doc_title": "Refund policy", "text": "Refunds are paid within 30 days of a return."});
    let tool_result = json!({"tool_use_id": "toolu_1", "type": "cortex_analyst_text_to_sql", "name": "sales_analyst",
        "status": "success", "content": [{"type": "json", "json": {"sql": REVENUE_SQL, "text": "Revenue by region", "query_id": "01b0aaaa-0000-4000-8000-000000000001"}}]});
    let last = json!({"role": "assistant", "content": [
        {"type": "thinking", "thinking": {"text": "The question asks for revenue by region."}},
        {"type": "tool_use", "tool_use": {"tool_use_id": "toolu_1", "type": "cortex_analyst_text_to_sql", "name": "sales_analyst", "input": {"query": question}}},
        {"type": "tool_result", "tool_result": tool_result},
        {"type": "table", "table": {"tool_use_id": "toolu_1", "result_set": table}},
        {"type": "text", "text": answer, "annotations": [citation]}],
        "metadata": {"usage": {"tokens_consumed": [{"model_name": "claude-4-sonnet", "input_tokens": 1200, "output_tokens": 90}]}}});
    if body["stream"] == json!(false) {
        return Ok(Reply::json(last));
    }
    let failing = question.to_ascii_lowercase().contains("fail");
    let (head, tail) = answer.split_at(answer.len() / 2);
    let mut events = vec![
        (
            "response.status",
            json!({"status": "planning", "message": "Planning the next steps"}),
        ),
        (
            "response.thinking.delta",
            json!({"content_index": 0, "text": "The question asks for revenue by region."}),
        ),
        (
            "response.tool_use",
            json!({"content_index": 1, "tool_use_id": "toolu_1", "type": "cortex_analyst_text_to_sql", "name": "sales_analyst", "input": {"query": question}}),
        ),
        (
            "response.tool_result.status",
            json!({"tool_use_id": "toolu_1", "tool_type": "cortex_analyst_text_to_sql", "status": "executing_sql", "message": "Executing SQL"}),
        ),
    ];
    if failing {
        events.push(("error", json!({"code": "399505", "message": "The agent's tool failed.", "request_id": request_id()})));
    } else {
        events.extend([
            (
                "response.tool_result",
                json!({"content_index": 2})
                    .as_object()
                    .map(|m| {
                        let mut m = m.clone();
                        m.extend(tool_result.as_object().cloned().unwrap_or_default());
                        Value::Object(m)
                    })
                    .unwrap_or_default(),
            ),
            (
                "response.table",
                json!({"content_index": 3, "tool_use_id": "toolu_1", "result_set": table}),
            ),
            (
                "response.status",
                json!({"status": "proceeding_to_answer", "message": "Forming the answer"}),
            ),
            (
                "response.text.delta",
                json!({"content_index": 4, "text": head}),
            ),
            (
                "response.text.delta",
                json!({"content_index": 4, "text": tail}),
            ),
            (
                "response.text.annotation",
                json!({"content_index": 4, "annotation_index": 0, "annotation": citation}),
            ),
            ("response.unknown_future_event", json!({"anything": true})),
            ("response", last),
        ]);
    }
    let pace = state.agent_pace;
    let start = Instant::now();
    state
        .agent_runs
        .push((start, start + pace * events.len() as u32));
    Ok(Reply::events(
        events
            .into_iter()
            .map(|(name, data)| (pace, name.to_string(), data.to_string()))
            .collect(),
    ))
}

/// The most agent runs whose streams overlapped at any moment.
pub(crate) fn max_overlap(runs: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, i32)> =
        runs.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

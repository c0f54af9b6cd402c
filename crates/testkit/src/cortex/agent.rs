//! Cortex Agents: one run's events, paced, or its last answer as JSON (see the module above).

use std::time::Instant;

use serde_json::{json, Value};

use super::{
    conversation, known, only_fields, refuse, request_id, CortexState, REVENUE, REVENUE_SQL,
};
use crate::scripted::Reply;

pub(super) fn agent_run(
    agent: &str,
    body: &Value,
    state: &mut CortexState,
) -> Result<Reply, Reply> {
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

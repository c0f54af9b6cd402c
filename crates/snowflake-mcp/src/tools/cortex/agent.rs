//! A Cortex Agent run (`POST /api/v2/databases/{db}/schemas/{schema}/agents/{name}:run`,
//! docs.snowflake.com/en/user-guide/snowflake-cortex/cortex-agents-run): its server-sent
//! events, as they come, become progress for the client (status, tool use) and are folded into
//! one answer — the text, the SQL its tools ran, the tables they returned and the citations.
//!
//! The last `response` event holds the whole answer and wins over the deltas; a stream that
//! ends without it is answered from the deltas. An `error` event fails the call with its
//! message. Event types this module does not know are ignored, as the documentation asks.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{configured, messages, object_path, AskAgent};
use crate::backend::ApiEvent;
use crate::error::ToolError;
use crate::tools::{render, success, Caller, Outcome, Tools};

/// The most SQL statements, tables and citations kept from one run.
const MAX_ITEMS: usize = 50;

/// What a run said so far.
#[derive(Default)]
struct Folded {
    text: String,
    sql: Vec<String>,
    tables: Vec<Value>,
    citations: Vec<Value>,
    last: Option<Value>,
    error: Option<String>,
}

impl Folded {
    /// Take one event; return what to tell the client, if anything.
    fn take(&mut self, event: &ApiEvent) -> Option<String> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        match event.event.as_str() {
            "response.status" => data["message"].as_str().map(str::to_string),
            "response.tool_use" => Some(format!(
                "using {}",
                data["name"]
                    .as_str()
                    .or(data["type"].as_str())
                    .unwrap_or("a tool")
            )),
            "response.tool_result.status" => data["message"].as_str().map(str::to_string),
            "response.tool_result" => {
                self.tool_result(&data);
                None
            }
            "response.table" => {
                self.push_table(&data["result_set"]);
                None
            }
            "response.text.delta" => {
                self.text
                    .push_str(data["text"].as_str().unwrap_or_default());
                None
            }
            "response.text.annotation" => {
                self.push_citation(&data["annotation"]);
                None
            }
            "response" => {
                self.last = Some(data);
                None
            }
            "error" => {
                let said = data["message"].as_str().unwrap_or("the agent failed");
                self.error = Some(match data["request_id"].as_str() {
                    Some(id) => format!("{said} (request id {id})"),
                    None => said.to_string(),
                });
                None
            }
            _ => None,
        }
    }

    fn tool_result(&mut self, result: &Value) {
        for item in result["content"].as_array().into_iter().flatten() {
            if let Some(sql) = item["json"]["sql"].as_str() {
                if self.sql.len() < MAX_ITEMS && !self.sql.iter().any(|s| s == sql) {
                    self.sql.push(sql.to_string());
                }
            }
        }
    }

    /// A table in the SQL API's result-set shape, as columns and rows.
    fn push_table(&mut self, set: &Value) {
        if self.tables.len() >= MAX_ITEMS || set.is_null() {
            return;
        }
        let columns: Vec<Value> = set["resultSetMetaData"]["rowType"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"name": c["name"], "type": c["type"]}))
            .collect();
        self.tables.push(
            json!({"columns": columns, "rows": set["data"], "query_id": set["statementHandle"]}),
        );
    }

    fn push_citation(&mut self, a: &Value) {
        if self.citations.len() < MAX_ITEMS && !a.is_null() {
            self.citations
                .push(json!({"index": a["index"], "doc_id": a["doc_id"],
                "title": a["doc_title"], "text": a["text"]}));
        }
    }

    /// The answer: from the final `response` when it came (the deltas otherwise).
    fn answer(mut self) -> Result<Value, ToolError> {
        if let Some(error) = self.error {
            return Err(ToolError::new(
                "backend_error",
                format!("the Cortex agent failed: {error}"),
            ));
        }
        if let Some(last) = self.last.take() {
            let (mut text, mut sql, mut tables, mut citations) =
                (String::new(), vec![], vec![], vec![]);
            std::mem::swap(&mut self.sql, &mut sql);
            std::mem::swap(&mut self.tables, &mut tables);
            std::mem::swap(&mut self.citations, &mut citations);
            for item in last["content"].as_array().into_iter().flatten() {
                match item["type"].as_str() {
                    Some("text") => {
                        text.push_str(item["text"].as_str().unwrap_or_default());
                        for a in item["annotations"].as_array().into_iter().flatten() {
                            self.push_citation(a);
                        }
                    }
                    Some("tool_result") => self.tool_result(&item["tool_result"]),
                    Some("table") => self.push_table(&item["table"]["result_set"]),
                    _ => {}
                }
            }
            // What the final answer lists is the whole story; what only the stream said stays.
            for s in sql {
                if !self.sql.contains(&s) {
                    self.sql.push(s);
                }
            }
            if self.tables.is_empty() {
                self.tables = tables;
            }
            if self.citations.is_empty() {
                self.citations = citations;
            }
            self.text = text;
        }
        if self.text.is_empty() && self.sql.is_empty() {
            return Err(ToolError::new(
                "backend_error",
                "the Cortex agent's answer was empty",
            ));
        }
        Ok(
            json!({"answer": self.text, "sql": self.sql, "tables": self.tables, "citations": self.citations}),
        )
    }
}

/// The answer as text: the agent's words, then its SQL, tables and citations.
fn text_of(v: &Value) -> String {
    let mut text = v["answer"].as_str().unwrap_or_default().to_string();
    for sql in v["sql"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        text.push_str(&format!("\n\nSQL:\n{sql}"));
    }
    for t in v["tables"].as_array().into_iter().flatten() {
        let headers: Vec<&str> = t["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let rows: Vec<Vec<Value>> = t["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_array().cloned())
            .collect();
        text.push_str(&format!("\n\n{}", render::table(&headers, &rows)));
    }
    for c in v["citations"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n[{}] {}: {}",
            c["index"],
            c["title"].as_str().unwrap_or_default(),
            render::cell_text(&c["text"])
        ));
    }
    text
}

impl Tools {
    pub(super) async fn run_agent(
        self: &Arc<Self>,
        tool: &str,
        agent: &str,
        a: AskAgent,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let object = configured(agent)?;
        caller
            .client
            .access
            .check_database(caller.client.display(), object.database.name())?;
        let body = json!({
            "messages": messages(&a.question, &a.history, "assistant")?,
            "tool_choice": {"type": "auto"},
            "stream": true,
        });
        let path = object_path(&object, "agents", ":run");
        let mut folded = Folded::default();
        let answer = self
            .call_cortex(tool, &path, &body, caller, &mut |event| {
                if let Some(news) = folded.take(&event) {
                    crate::observe::progress::running(format!("agent: {news}"));
                }
            })
            .await?;
        // An agent asked to stream may still answer one JSON object.
        if !answer.is_null() {
            folded.take(&ApiEvent {
                event: "response".into(),
                data: answer.to_string(),
            });
        }
        let mut value = folded.answer()?;
        value["agent"] = json!(agent);
        let text = text_of(&value);
        Ok(Outcome::plain(success(value, text)))
    }
}

#[cfg(test)]
pub(super) fn fold(events: &[(&str, Value)]) -> Result<Value, ToolError> {
    let mut folded = Folded::default();
    for (event, data) in events {
        folded.take(&ApiEvent {
            event: event.to_string(),
            data: data.to_string(),
        });
    }
    folded.answer()
}

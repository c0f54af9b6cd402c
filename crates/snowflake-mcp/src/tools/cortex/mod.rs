//! Snowflake's Cortex services as tools, governed like everything else:
//!
//! * `ask_analyst` (`[cortex] analyst = true`): Cortex Analyst turns a question into SQL over a
//!   semantic view; the answer carries its interpretation and the SQL, and — for a client with
//!   `analyst_execute = true` — that SQL's rows, run on the `run_query` path (guard, restricted
//!   databases, quotas, fairness, paging, audit).
//! * one tool per `[[cortex.search]]` service: Cortex Search with a validated structured filter
//!   ([`filter`]).
//! * one tool per `[[cortex.agents]]` agent: a Cortex Agent run, its streamed events told to
//!   the client as progress and folded into the final answer ([`agent`]).
//!
//! Every call is checked against the client's `allowed_cortex` (and, for the analyst, its
//! `allowed_semantic_views` and `allowed_databases`) before anything is sent, reserves one of
//! its `cortex_calls_per_*`, waits for a Cortex place in the gateway (`[cortex]
//! max_concurrent`, fair by weight, apart from the statements' places) and is audited with its
//! question. The REST calls and their documentation: `backend::snowflake` and the scripted
//! service in `testkit::cortex`.

mod agent;
mod definitions;
mod filter;

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::backend::ObjectName;
use crate::error::ToolError;
use crate::ident::Ident;
use crate::state::Amounts;
use crate::tools::arguments::parse;
use crate::tools::{render, success, Caller, Outcome, Tools};
pub use definitions::cortex_definitions;

/// The longest question, and the most turns of history, a call may send.
const MAX_QUESTION: usize = 10_000;
const MAX_TURNS: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskAnalyst {
    question: String,
    semantic_view: Option<String>,
    #[serde(default)]
    history: Vec<Turn>,
}

/// One earlier turn of a conversation: who spoke, and what.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Turn {
    role: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    query: String,
    filter: Option<Value>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskAgent {
    question: String,
    #[serde(default)]
    history: Vec<Turn>,
}

/// The conversation as Cortex takes it: earlier turns alternating `user` and `reply_role`,
/// then the question. The caller keeps the history (nothing is kept here between calls).
fn messages(question: &str, history: &[Turn], reply_role: &str) -> Result<Value, ToolError> {
    let bounded = |t: &str, what: &str| {
        if t.trim().is_empty() || t.len() > MAX_QUESTION {
            Err(ToolError::invalid(format!(
                "{what} must be 1 to {MAX_QUESTION} bytes"
            )))
        } else {
            Ok(())
        }
    };
    bounded(question, "question")?;
    if history.len() > MAX_TURNS || history.len() % 2 == 1 {
        return Err(ToolError::invalid(format!(
            "history is pairs of turns (user, then {reply_role}), at most {MAX_TURNS} turns"
        )));
    }
    let mut out = Vec::with_capacity(history.len() + 1);
    for (i, turn) in history.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { reply_role };
        if turn.role != role {
            return Err(ToolError::invalid(format!(
                "history[{i}].role must be '{role}' (turns alternate user, {reply_role})"
            )));
        }
        bounded(&turn.text, "each history text")?;
        out.push(json!({"role": role, "content": [{"type": "text", "text": turn.text}]}));
    }
    out.push(json!({"role": "user", "content": [{"type": "text", "text": question}]}));
    Ok(Value::Array(out))
}

/// A name as Snowflake's REST API takes it: plain when it is a plain upper-case identifier,
/// else double-quoted (quotes doubled).
fn api_name(ident: &Ident) -> String {
    let name = ident.name();
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        ident.quoted()
    }
}

/// One path segment, percent-encoded.
fn segment(ident: &Ident) -> String {
    api_name(ident)
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' | b'$' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `api/v2/databases/{db}/schemas/{schema}/{kind}/{name}{action}`.
fn object_path(object: &ObjectName, kind: &str, action: &str) -> String {
    format!(
        "api/v2/databases/{}/schemas/{}/{kind}/{}{action}",
        segment(&object.database),
        segment(&object.schema),
        segment(&object.name)
    )
}

/// `DB.SCHEMA.NAME` of a configured object (checked at load).
fn configured(object: &str) -> Result<ObjectName, ToolError> {
    ObjectName::resolve(object, &crate::Context::default())
}

impl Tools {
    /// Run Cortex tool `name` for `caller`: refused unless allowed, one Cortex call reserved
    /// from its quota (given back if nothing reached Snowflake), audited with its question.
    pub(super) async fn cortex(
        self: &Arc<Self>,
        name: &str,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let asked = ["question", "query"]
            .iter()
            .find_map(|k| args.get(*k).and_then(Value::as_str))
            .map(|q| q.chars().take(10_000).collect());
        let work = Box::pin(async {
            let client = &caller.client;
            client.access.check_cortex(client.display(), name)?;
            let ticket = self.admission.reserve_cortex(client).await?;
            let outcome = self.cortex_call(name, args, caller).await;
            if let Some(ticket) = ticket {
                ticket
                    .settle(outcome.as_ref().map(|_| Amounts::default()))
                    .await;
            }
            outcome
        });
        self.audited(name, asked, caller, work).await
    }

    async fn cortex_call(
        self: &Arc<Self>,
        name: &str,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let config = &self.cortex;
        if name == "ask_analyst" && config.analyst {
            return self.ask_analyst(parse(args)?, caller).await;
        }
        if let Some(service) = config.search.iter().find(|s| s.name == name) {
            return self.search(service, parse(args)?, caller).await;
        }
        if let Some(agent) = config.agents.iter().find(|a| a.name == name) {
            return self
                .run_agent(name, &agent.agent, parse(args)?, caller)
                .await;
        }
        Err(ToolError::invalid(format!("unknown tool '{name}'")))
    }

    /// Call `path` with `body` through the gateway's Cortex places, as `caller`.
    async fn call_cortex(
        &self,
        tool: &str,
        path: &str,
        body: &Value,
        caller: &Caller,
        on_event: &mut (dyn FnMut(crate::backend::ApiEvent) + Send),
    ) -> Result<Value, ToolError> {
        let timeout = std::time::Duration::from_secs(self.cortex.timeout_secs);
        let share = caller.client.share();
        self.gateway
            .call_api(&share, &caller.context, tool, path, body, timeout, on_event)
            .await
    }

    async fn ask_analyst(
        self: &Arc<Self>,
        a: AskAnalyst,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let named = a
            .semantic_view
            .as_deref()
            .or(self.cortex.default_semantic_view.as_deref())
            .ok_or_else(|| {
                ToolError::invalid(
                    "name the semantic_view to ask about (list_semantic_views shows them)",
                )
            })?;
        let view = ObjectName::resolve(named, &caller.context)?;
        let (client, access) = (caller.client.display(), &caller.client.access);
        access.check_database(client, view.database.name())?;
        let full = format!(
            "{}.{}.{}",
            view.database.name(),
            view.schema.name(),
            view.name.name()
        );
        access.check_semantic_view(client, &full)?;
        let body = json!({
            "messages": messages(&a.question, &a.history, "analyst")?,
            "semantic_view": format!("{}.{}.{}", api_name(&view.database), api_name(&view.schema), api_name(&view.name)),
            "stream": false,
        });
        let answer = self
            .call_cortex(
                "ask_analyst",
                "api/v2/cortex/analyst/message",
                &body,
                caller,
                &mut |_| {},
            )
            .await?;
        let mut value = json!({"semantic_view": full, "request_id": answer["request_id"]});
        let mut text = String::new();
        for item in answer["message"]["content"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match item["type"].as_str() {
                Some("text") => {
                    let t = item["text"].as_str().unwrap_or_default();
                    value["interpretation"] = json!(t);
                    text.push_str(t);
                    text.push('\n');
                }
                Some("sql") => {
                    value["sql"] = item["statement"].clone();
                    if let Some(v) = item["confidence"]["verified_query_used"].as_object() {
                        value["verified_query"] = json!(v.get("name"));
                    }
                }
                Some("suggestions") => value["suggestions"] = item["suggestions"].clone(),
                _ => {}
            }
        }
        if let Some(warnings) = answer["warnings"].as_array().filter(|w| !w.is_empty()) {
            value["warnings"] = json!(warnings
                .iter()
                .filter_map(|w| w["message"].as_str())
                .collect::<Vec<_>>());
        }
        if let Some(list) = value["suggestions"].as_array() {
            for s in list.iter().filter_map(Value::as_str) {
                text.push_str(&format!("- {s}\n"));
            }
        }
        let Some(sql) = value["sql"].as_str().map(str::to_string) else {
            return Ok(Outcome::plain(success(value, text.trim_end().to_string())));
        };
        text.push_str(&format!("SQL:\n{sql}\n"));
        if !caller.client.access.analyst_execute {
            text.push_str(
                "(not run: this client may not run the analyst's SQL here; run it with run_query)",
            );
            return Ok(Outcome::plain(success(value, text)));
        }
        // The SQL runs as if the client had sent it to run_query: the guard reads it,
        // restricted databases and quotas apply, and it is audited on its own.
        let mut run = JsonObject::new();
        run.insert("sql".into(), Value::String(sql));
        let ran = self.run_query_within(run, caller).await?;
        if ran.result.is_error == Some(true) {
            let said = ran
                .result
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone())
                .unwrap_or_default();
            value["result_error"] = json!(said);
            text.push_str(&format!("running it failed: {said}"));
            return Ok(Outcome::plain(success(value, text)));
        }
        value["result"] = ran.result.structured_content.clone().unwrap_or(Value::Null);
        for c in ran.result.content.iter().filter_map(|c| c.as_text()) {
            text.push_str(&c.text);
        }
        Ok(Outcome {
            result: success(value, text),
            new_context: None,
            returned: ran.returned,
        })
    }

    async fn search(
        &self,
        service: &crate::config::SearchConfig,
        a: Search,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let object = configured(&service.service)?;
        caller
            .client
            .access
            .check_database(caller.client.display(), object.database.name())?;
        if a.query.trim().is_empty() || a.query.len() > 2_000 {
            return Err(ToolError::invalid("query must be 1 to 2000 bytes"));
        }
        let limit = a.limit.unwrap_or(service.max_results.min(10));
        if limit == 0 || limit > service.max_results {
            return Err(ToolError::invalid(format!(
                "limit must be from 1 to {}",
                service.max_results
            )));
        }
        let mut body = json!({"query": a.query, "limit": limit});
        if !service.columns.is_empty() {
            body["columns"] = json!(service.columns);
        }
        if let Some(f) = &a.filter {
            filter::check(f, 0)?;
            body["filter"] = f.clone();
        }
        let path = object_path(&object, "cortex-search-services", ":query");
        let answer = self
            .call_cortex(&service.name, &path, &body, caller, &mut |_| {})
            .await?;
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        let mut headers: Vec<String> = service.columns.clone();
        if headers.is_empty() {
            for r in &results {
                for k in r.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !headers.contains(k) {
                        headers.push(k.clone());
                    }
                }
            }
        }
        let rows: Vec<Vec<Value>> = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                std::iter::once(json!(i + 1))
                    .chain(headers.iter().map(|h| r[h].clone()))
                    .collect()
            })
            .collect();
        let mut shown: Vec<&str> = vec!["#"];
        shown.extend(headers.iter().map(String::as_str));
        let text = if rows.is_empty() {
            "no results".to_string()
        } else {
            render::table(&shown, &rows)
        };
        let value = json!({"results": results, "request_id": answer["request_id"], "service": service.service});
        Ok(Outcome::plain(success(value, text)))
    }
}

#[cfg(test)]
mod tests;

//! Cortex Search: the documents, the filter grammar, the answer (see the module above).

use serde_json::{json, Value};

use super::{known, only_fields, refuse, request_id, DOCS};
use crate::scripted::Reply;

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

pub(super) fn search(service: &str, body: &Value) -> Result<Reply, Reply> {
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

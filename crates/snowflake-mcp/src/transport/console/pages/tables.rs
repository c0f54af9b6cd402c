//! The console's lists: clients, queries (running and past), sessions and warehouses, each a
//! table made from the JSON API's answer, with the actions' buttons where `[console] actions`
//! allows them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{cell, escape, page, Shared};
use crate::transport::console::api::{self, QueriesAsked, SHARE_WINDOW};
use crate::transport::console::Console;

/// The note an action leaves on the page it returns to.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::transport::console) struct Note {
    note: Option<String>,
}

/// A button posting `action` on `id` (with a reason field for a pause).
fn button(c: &Console, action: &str, id: &str, label: &str) -> String {
    if !c.access.actions {
        return String::new();
    }
    let reason = if action == "pause" {
        "<input name=\"reason\" placeholder=\"reason\" size=\"14\"> "
    } else {
        ""
    };
    format!(
        "<form method=\"post\" action=\"/console/act\"><input type=\"hidden\" name=\"action\" value=\"{action}\">\
<input type=\"hidden\" name=\"id\" value=\"{}\">{reason}<button>{label}</button></form>",
        escape(id)
    )
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or("–".into(), |f| format!("{:.0} %", f * 100.0))
}

pub(in crate::transport::console) async fn clients(
    State(c): Shared,
    Query(note): Query<Note>,
) -> Response {
    let list = api::clients(&c).await;
    let mut rows = String::new();
    for client in list["clients"].as_array().into_iter().flatten() {
        let id = client["id"].as_str().unwrap_or_default();
        let limits = &client["limits"];
        let mut used = Vec::new();
        if let Some(rate) = limits["rate_limit"].as_object() {
            used.push(format!(
                "rate: {} of {}/min available",
                cell(&rate["available_now"]),
                cell(&rate["per_minute"])
            ));
        }
        for (name, q) in limits["quotas"].as_object().into_iter().flatten() {
            let spent = q["remaining"].as_f64() == Some(0.0);
            let text = format!(
                "{}: {} of {} left, resets in {} s",
                escape(name),
                cell(&q["remaining"]),
                cell(&q["limit"]),
                cell(&q["resets_in_s"])
            );
            used.push(if spent {
                format!("<span class=\"bad\">{text} (spent)</span>")
            } else {
                text
            });
        }
        if let Some(why) = limits["unavailable"].as_str() {
            used.push(format!(
                "<span class=\"bad\">limits unknown: {}</span>",
                escape(why)
            ));
        }
        let credits = &client["credits_today"];
        let credits = match credits["credits"].as_f64() {
            Some(v) => format!("{v:.3}<br><small>{}</small>", cell(&credits["from"])),
            None => format!("unknown<br><small>{}</small>", cell(&credits["from"])),
        };
        let state = match client["paused"].as_object() {
            Some(p) => format!(
                "<span class=\"bad\">paused</span>: {}<br><small>by {}</small> {}",
                cell(&p["reason"]),
                cell(&p["by"]),
                button(&c, "resume", id, "Resume")
            ),
            None => format!("serving {}", button(&c, "pause", id, "Pause")),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{} ({})</td><td>{}<br><small>{} s</small></td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{credits}</td><td>{state}</td></tr>",
            escape(id),
            cell(&client["weight"]),
            percent(&client["weight_share"]),
            percent(&client["share_5m"]),
            client["session_seconds_5m"].as_f64().map_or("0".into(), |s| format!("{s:.1}")),
            cell(&client["running"]),
            cell(&client["max_concurrent"]),
            cell(&client["queued"]),
            cell(&client["sessions"]),
            if used.is_empty() { "unlimited".into() } else { used.join("<br>") }
        ));
    }
    let body = format!(
        "<p>Share: each client's part of the session-time all clients held over the last {} minutes, beside its weight's part.</p>\
<table><tr><th>client</th><th>weight (share)</th><th>session-time share</th><th>in flight / max</th><th>queued</th><th>sessions here</th>\
<th>limits</th><th>credits today (estimate)</th><th>state</th></tr>{rows}</table>",
        SHARE_WINDOW.as_secs() / 60
    );
    let note = note.note;
    page("Clients", &body, true, note.as_deref()).into_response()
}

pub(in crate::transport::console) async fn queries(
    State(c): Shared,
    asked: Result<Query<QueriesAsked>, QueryRejection>,
) -> Response {
    let Ok(Query(asked)) = asked else {
        return (StatusCode::BAD_REQUEST, "unknown filter\n").into_response();
    };
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let form = format!(
        "<form class=\"f\" method=\"get\">client <input name=\"client\" value=\"{}\"> status <input name=\"status\" value=\"{}\" placeholder=\"ok, sql_error…\"> \
tool <input name=\"tool\" value=\"{}\"> <button>Filter</button></form>",
        value(&asked.client),
        value(&asked.status),
        value(&asked.tool)
    );
    let note = asked.note.clone();
    let trail = match api::queries(&c.app, asked).await {
        Ok(t) => t,
        Err(why) => {
            let body = format!(
                "{form}<p class=\"bad\">The audit trail cannot be read now: {}</p>",
                escape(&why)
            );
            return page("Queries", &body, true, note.as_deref()).into_response();
        }
    };
    let mut running = String::new();
    for r in trail["running"].as_array().into_iter().flatten() {
        let secs = r["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
        running.push_str(&format!(
            "<tr><td>{secs:.1} s</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            cell(&r["client"]),
            cell(&r["query_id"]),
            cell(&r["sql"]),
            button(&c, "cancel", r["id"].as_str().unwrap_or_default(), "Cancel")
        ));
    }
    if running.is_empty() {
        running = "<tr><td colspan=\"5\">Nothing is running on this replica.</td></tr>".into();
    }
    let mut rows = String::new();
    for q in trail["queries"].as_array().into_iter().flatten() {
        let status = cell(&q["status"]);
        let status = match (q["status"] == "ok", q["error_code"].as_str()) {
            (true, _) => status,
            (false, Some(code)) => {
                format!("<span class=\"bad\">{status} ({})</span>", escape(code))
            }
            (false, None) => format!("<span class=\"bad\">{status}</span>"),
        };
        let by = q["confirmed"]
            .as_str()
            .map(|c| format!("<br><small>{}</small>", escape(c)))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td><code>{}</code>{by}</td></tr>",
            cell(&q["time"]),
            cell(&q["client"]),
            cell(&q["tool"]),
            cell(&q["rows"]),
            cell(&q["duration_ms"]),
            cell(&q["sql"])
        ));
    }
    let body = format!(
        "<h2>Running now</h2><table><tr><th>for</th><th>client</th><th>query id</th><th>SQL</th><th></th></tr>{running}</table>\
<h2>Audit trail</h2>{form}<table><tr><th>time (UTC)</th><th>client</th><th>tool</th><th>status</th><th>rows</th><th>ms</th><th>SQL</th></tr>{rows}</table>"
    );
    page("Queries", &body, true, note.as_deref()).into_response()
}

pub(in crate::transport::console) async fn sessions(
    State(c): Shared,
    Query(note): Query<Note>,
) -> Response {
    let mut rows = String::new();
    for s in c.app.registry.list() {
        let (id, end) = match &s.id {
            Some(id) => (
                format!("{}…", &id[..8]),
                button(&c, "end_session", id, "End"),
            ),
            None => ("sessionless".to_string(), String::new()),
        };
        let context = [&s.database, &s.schema]
            .iter()
            .filter_map(|p| p.as_deref())
            .collect::<Vec<_>>()
            .join(".");
        let who = match &s.person {
            Some(p) => format!("{} ({})", escape(&s.client), escape(p)),
            None => escape(&s.client),
        };
        rows.push_str(&format!(
            "<tr><td>{id}</td><td>{who}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} s</td><td>{} s</td><td>{}</td><td>{end}</td></tr>",
            escape(s.software.as_deref().unwrap_or("–")),
            escape(&context),
            escape(s.warehouse.as_deref().unwrap_or("–")),
            escape(s.role.as_deref().unwrap_or("–")),
            s.age_s,
            s.idle_s,
            if s.in_flight > 0 { format!("live, {} call(s)", s.in_flight) } else { "live, idle".into() }
        ));
    }
    let mut kept = String::new();
    for k in api::stored_sessions(&c.app).await {
        let (stored, here) = (k["stored"].as_u64(), k["live_here"].as_u64().unwrap_or(0));
        let elsewhere = stored.map_or("unknown (the state store did not answer)".into(), |n| {
            n.saturating_sub(here).to_string()
        });
        kept.push_str(&format!(
            "<tr><td>{}</td><td>{here}</td><td>{elsewhere}</td></tr>",
            cell(&k["client"])
        ));
    }
    let body = format!(
        "<h2>Per client</h2><table><tr><th>client</th><th>live here</th><th>parked, or live on another replica</th></tr>{kept}</table>\
<h2>Live here</h2><p>MCP sessions live on this replica. Idle sessions are parked in the state store after \
<code>[sessions] park_after_secs</code> and come back at their next request; they are counted above.</p>\
<table><tr><th>session</th><th>client</th><th>software</th><th>database.schema</th><th>warehouse</th><th>role</th><th>age</th><th>idle</th><th>state</th><th></th></tr>{rows}</table>"
    );
    let note = note.note;
    page("Sessions", &body, true, note.as_deref()).into_response()
}

pub(in crate::transport::console) async fn warehouses(State(c): Shared) -> Response {
    let list = api::warehouses(&c.app);
    let mut rows = String::new();
    for w in list["warehouses"].as_array().into_iter().flatten() {
        let full = w["cap"]
            .as_u64()
            .is_some_and(|cap| w["running"].as_u64() >= Some(cap));
        let running = if full {
            format!(
                "<span class=\"bad\">{} (at its cap)</span>",
                cell(&w["running"])
            )
        } else {
            cell(&w["running"])
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{running}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&w["name"]),
            cell(&w["queued"]),
            w["cap"].as_u64().map_or("none".into(), |c| c.to_string()),
            cell(&w["credits_per_hour"])
        ));
    }
    if rows.is_empty() {
        rows =
            "<tr><td colspan=\"5\">No warehouse has a cap, and nothing runs now.</td></tr>".into();
    }
    let body = format!(
        "<table><tr><th>warehouse</th><th>running</th><th>queued</th><th>cap</th><th>credits per hour</th></tr>{rows}</table>"
    );
    page("Warehouses", &body, true, None).into_response()
}

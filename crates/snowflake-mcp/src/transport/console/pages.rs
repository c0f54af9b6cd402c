//! The console's pages: plain HTML made on the server from the same answers as the JSON API,
//! with no script and nothing fetched from elsewhere (they work offline and without
//! JavaScript); a data page refreshes itself every 10 s. Every value is HTML-escaped: client
//! ids, SQL and error text come from clients.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::{
    clients as clients_json, overview_now, queries as queries_json, signin, Console, QueriesAsked,
};

type Shared = State<Arc<Console>>;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text for a cell (strings without quotes, null as a dash).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

const STYLE: &str = "body{font:15px system-ui,sans-serif;margin:0;color:#222}nav{background:#1b3a57;padding:.6em 1em}\
nav a,nav button{color:#fff;margin-right:1.2em;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer}\
main{padding:1em;max-width:1200px}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f3f5f7}.n{font-size:1.6em;font-weight:600}.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}\
.bad{color:#b00020;font-weight:600}code{white-space:pre-wrap;word-break:break-word}form.f input,form.f select{margin-right:.5em}";

fn page(title: &str, body: &str, refresh: bool) -> Html<String> {
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"10\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{meta}\
<title>{title} · snowflake-mcp</title><style>{STYLE}</style></head><body><nav><a href=\"/console\">Overview</a><a href=\"/console/clients\">Clients</a>\
<a href=\"/console/queries\">Queries</a><form method=\"post\" action=\"/console/logout\" style=\"display:inline\"><button>Sign out</button></form></nav>\
<main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

pub(super) fn sign_in_page(note: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Sign in · snowflake-mcp</title><style>{STYLE}</style></head><body><main><h1>snowflake-mcp console</h1><p>{}</p>\
<form method=\"post\" action=\"/console/login\"><label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
<button>Sign in</button></form></main></body></html>",
        escape(note)
    );
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

fn card(label: &str, value: &str) -> String {
    format!("<div class=\"card\"><div>{label}</div><div class=\"n\">{value}</div></div>")
}

pub(super) async fn overview(State(c): Shared) -> Response {
    let o = overview_now(&c.app);
    let mut cards = vec![
        card("Clients online", &cell(&o["clients_online"])),
        card("MCP sessions live", &cell(&o["sessions"]["live"])),
        card("Statements running", &cell(&o["statements"]["running"])),
        card("Queued", &cell(&o["statements"]["queued"])),
    ];
    if o["pool"].is_object() {
        cards.push(card(
            "Snowflake sessions busy / idle",
            &format!(
                "{} / {}",
                cell(&o["pool"]["busy"]),
                cell(&o["pool"]["idle"])
            ),
        ));
    }
    if o["snowflake"].is_object() {
        let open = o["snowflake"]["circuit_open"] == Value::Bool(true);
        let text = if open {
            "<span class=\"bad\">unreachable</span>"
        } else {
            "reachable"
        };
        cards.push(card("Snowflake", text));
    }
    let store = &o["state_store"];
    let store_text = match (store["shared"].as_bool(), store["reachable"].as_bool()) {
        (Some(true), Some(true)) => format!("shared, {} replicas", cell(&store["replicas"])),
        (Some(true), _) => "<span class=\"bad\">unreachable</span>".into(),
        _ => "this replica's own".into(),
    };
    cards.push(card("State store", &store_text));
    let mut rows = String::new();
    for s in o["sessions"]["by_client"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            cell(&s["client"]),
            cell(&s["sessions"])
        ));
    }
    let mut warehouses = String::new();
    for w in o["warehouses"].as_array().into_iter().flatten() {
        warehouses.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&w["name"]),
            cell(&w["running"]),
            cell(&w["queued"])
        ));
    }
    let body = format!(
        "<div class=\"cards\">{}</div><h2>Sessions by client</h2><table><tr><th>client</th><th>MCP sessions</th></tr>{rows}</table>\
<h2>Warehouses</h2><table><tr><th>warehouse</th><th>running</th><th>queued</th></tr>{warehouses}</table><p>Backend: {}</p>",
        cards.join(""),
        cell(&o["backend"])
    );
    page("Overview", &body, true).into_response()
}

pub(super) async fn clients(State(c): Shared) -> Response {
    let list = clients_json(&c.app).await;
    let mut rows = String::new();
    for client in list["clients"].as_array().into_iter().flatten() {
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
            used.push(format!(
                "{}: {} of {} left, resets in {} s",
                escape(name),
                cell(&q["remaining"]),
                cell(&q["limit"]),
                cell(&q["resets_in_s"])
            ));
        }
        if let Some(why) = limits["unavailable"].as_str() {
            used.push(format!(
                "<span class=\"bad\">limits unknown: {}</span>",
                escape(why)
            ));
        }
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&client["id"]),
            cell(&client["weight"]),
            cell(&client["max_concurrent"]),
            cell(&client["sessions"]),
            if used.is_empty() {
                "unlimited".into()
            } else {
                used.join("<br>")
            }
        ));
    }
    let body = format!("<table><tr><th>client</th><th>weight</th><th>max concurrent</th><th>sessions here</th><th>limits</th></tr>{rows}</table>");
    page("Clients", &body, true).into_response()
}

pub(super) async fn queries(
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
    let trail = match queries_json(&c.app, asked).await {
        Ok(t) => t,
        Err(why) => {
            return page(
                "Queries",
                &format!(
                    "{form}<p class=\"bad\">The audit trail cannot be read now: {}</p>",
                    escape(&why)
                ),
                true,
            )
            .into_response()
        }
    };
    let mut rows = String::new();
    for q in trail["queries"].as_array().into_iter().flatten() {
        let status = cell(&q["status"]);
        let status = if q["status"] == "ok" {
            status
        } else {
            format!("<span class=\"bad\">{status}</span>")
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            cell(&q["time"]),
            cell(&q["client"]),
            cell(&q["tool"]),
            cell(&q["rows"]),
            cell(&q["duration_ms"]),
            cell(&q["sql"])
        ));
    }
    let body = format!("{form}<table><tr><th>time (UTC)</th><th>client</th><th>tool</th><th>status</th><th>rows</th><th>ms</th><th>SQL</th></tr>{rows}</table>");
    page("Queries", &body, true).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn login(State(c): Shared, Form(form): Form<SignIn>) -> Response {
    match signin::sign_in(&c.app, &c.token, &form.token, c.tls).await {
        Some(cookie) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/console".to_string()),
                (header::SET_COOKIE, cookie),
            ],
        )
            .into_response(),
        None => sign_in_page("That is not the console's admin token."),
    }
}

pub(super) async fn logout(State(c): Shared, headers: HeaderMap) -> Response {
    let cleared = signin::sign_out(&c.app, &headers).await;
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console".to_string()),
            (header::SET_COOKIE, cleared),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(cell(&Value::String("<b>".into())), "&lt;b&gt;");
        assert_eq!(cell(&Value::Null), "–");
    }
}

//! The console's pages: plain HTML made on the server from the same answers as the JSON API,
//! with no script and nothing fetched from elsewhere (they work offline and without
//! JavaScript); a data page refreshes itself every 10 s. Every value is HTML-escaped: client
//! ids, SQL and error text come from clients. This file has the frame, the overview and
//! signing in; the lists are in [`tables`].

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::history::chart;
use super::{overview_now, signin, Console};

mod tables;
pub(super) use tables::{clients, queries, sessions, warehouses};

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

const STYLE: &str = "body{font:15px system-ui,sans-serif;margin:0;color:#222}nav{background:#1b3a57;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:.3em 1.2em}\
nav a,nav button{color:#fff;padding:0;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer}\
main{padding:1em;max-width:1200px}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f3f5f7}.n{font-size:1.6em;font-weight:600}.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}\
.bad{color:#b00020;font-weight:600}code{white-space:pre-wrap;word-break:break-word}form.f input,form.f select{margin-right:.5em}\
.note{background:#fff6d6;border:1px solid #e5c200;padding:.4em .8em;border-radius:4px}.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}\
td form{display:inline}td button{font:inherit;padding:.1em .5em}@media(max-width:700px){td,th{padding:.2em;font-size:13px}.n{font-size:1.2em}}";

/// A page of the console: its title, the note an action left (if any), its body.
fn page(title: &str, body: &str, refresh: bool, note: Option<&str>) -> Html<String> {
    let body = match note {
        Some(n) => format!("<p class=\"note\" role=\"status\">{}</p>{body}", escape(n)),
        None => body.to_string(),
    };
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"10\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{meta}\
<title>{title} · snowflake-mcp</title><style>{STYLE}</style></head><body><nav><a href=\"/console\">Overview</a><a href=\"/console/clients\">Clients</a>\
<a href=\"/console/queries\">Queries</a><a href=\"/console/sessions\">Sessions</a><a href=\"/console/warehouses\">Warehouses</a><form method=\"post\" action=\"/console/logout\" style=\"display:inline\"><button>Sign out</button></form></nav>\
<main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

pub(super) fn sign_in_page(note: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Sign in · snowflake-mcp</title><style>{STYLE}</style></head><body><main><h1>snowflake-mcp console</h1><p>{}</p>\
<form method=\"post\" action=\"/console/login\"><label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
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
    let series = c.history.series();
    let charts = [
        chart("Calls per minute", &series.calls_per_min),
        chart("Errors per minute", &series.errors_per_min),
        chart("Statements running", &series.running),
        chart("Queued", &series.queued),
    ]
    .join("");
    let mut paused = String::new();
    for (client, p) in o["paused"].as_object().into_iter().flatten() {
        paused.push_str(&format!(
            "<p class=\"bad\">Client {} is paused: {}</p>",
            escape(client),
            cell(&p["reason"])
        ));
    }
    let body = format!(
        "{paused}<div class=\"cards\">{}</div><h2>Last ten minutes</h2><div class=\"charts\">{charts}</div><h2>Sessions by client</h2><table><tr><th>client</th><th>MCP sessions</th></tr>{rows}</table>\
<h2>Warehouses</h2><table><tr><th>warehouse</th><th>running</th><th>queued</th></tr>{warehouses}</table><p>Backend: {}</p>",
        cards.join(""),
        cell(&o["backend"])
    );
    page("Overview", &body, true, None).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn login(State(c): Shared, Form(form): Form<SignIn>) -> Response {
    match signin::sign_in(&c.app, &c.access, &form.token, c.tls).await {
        Some(cookie) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/console".to_string()),
                (header::SET_COOKIE, cookie),
            ],
        )
            .into_response(),
        None => sign_in_page("That token does not admit you to the console."),
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

//! The operator's console: pages and a JSON API under `/console`, served by the binary, off
//! unless `[console]` is configured. Who may see it: [`signin`]. What it shows: [`api`] (JSON)
//! and [`pages`] (plain HTML made on the server from the same answers: no script, nothing
//! fetched elsewhere). The last ten minutes for its charts: [`history`]. What an operator may
//! do, with `[console] actions = true`: [`actions`].
//!
//! `GET /console/api/overview` is the picture an operator asks for first: MCP sessions live
//! per client, statements running and queued, the pool, the circuit to Snowflake, warehouses,
//! the shared state store and replicas — the same gauges `/metrics` reads, at the same moment
//! of asking. `snowflake-mcp status [URL]` prints it in a terminal. Every route checks Host
//! and Origin like `/mcp`; everyone but an operator gets 401 (API) or the sign-in page.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::{json, Value};

mod actions;
pub mod api;
pub mod history;
mod pages;
mod signin;

pub use crate::identity::operators::ConsoleAccess;

use crate::observe::metrics::Gauges;
use crate::transport::App;

/// What every console route shares.
pub struct Console {
    pub app: Arc<App>,
    pub access: ConsoleAccess,
    /// Served over TLS (the session cookie is then `Secure`).
    pub tls: bool,
    /// The last ten minutes, for charts and recent shares.
    pub history: Arc<history::History>,
    /// The transport's sessions (to end one).
    pub sessions: Arc<LocalSessionManager>,
}

type Shared = State<Arc<Console>>;

/// The console's pages and API. Every route but signing in and out is behind [`admit`].
pub fn routes(console: Console) -> Router {
    let shared = Arc::new(console);
    let admitted = Router::new()
        .route("/console", get(pages::overview))
        .route("/console/clients", get(pages::clients))
        .route("/console/queries", get(pages::queries))
        .route("/console/sessions", get(pages::sessions))
        .route("/console/warehouses", get(pages::warehouses))
        .route("/console/act", post(actions::act))
        .route("/console/api/overview", get(api::overview))
        .route("/console/api/clients", get(api::clients_api))
        .route("/console/api/queries", get(api::queries_api))
        .route("/console/api/warehouses", get(api::warehouses_api))
        .route("/console/api/sessions", get(api::sessions_api))
        .route(
            "/console/api/statements/{id}/cancel",
            post(actions::cancel_api),
        )
        .route(
            "/console/api/sessions/{id}/end",
            post(actions::end_session_api),
        )
        .route("/console/api/clients/{id}/pause", post(actions::pause_api))
        .route(
            "/console/api/clients/{id}/resume",
            post(actions::resume_api),
        )
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), admit));
    Router::new()
        .route("/console/login", post(pages::login))
        .route("/console/logout", post(pages::logout))
        .merge(admitted)
        .with_state(shared)
}

/// Only an operator reaches a console route (the handler learns who, for the audit): others
/// get the sign-in page (pages) or 401 (API).
async fn admit(State(c): Shared, mut request: Request, next: Next) -> Response {
    if let Some(who) = signin::admitted(&c.app, &c.access, request.headers()).await {
        request.extensions_mut().insert(who);
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/console/api/") {
        unauthorized()
    } else {
        pages::sign_in_page("Sign in with the console's admin token, or your access token if you are in an admin group.")
    }
}

/// The overview now.
fn overview_now(app: &App) -> Value {
    let gauges = crate::transport::ops::gauges(&app.tools, &app.registry);
    let mut o = overview(&gauges, app.tools.gateway.backend().name());
    o["paused"] = json!(app.tools.pauses.list());
    o
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"console\"")],
        "the console needs an operator's token (Authorization: Bearer ...)\n",
    )
        .into_response()
}

/// The overview as JSON (documented in docs/operations.md).
pub fn overview(g: &Gauges, backend: &str) -> Value {
    let live: usize = g.sessions_by_client.iter().map(|(_, n)| n).sum();
    let by_client: Vec<Value> = g
        .sessions_by_client
        .iter()
        .map(|(client, n)| json!({"client": client, "sessions": n}))
        .collect();
    json!({
        "backend": backend,
        "clients_online": g.sessions_by_client.iter().filter(|(_, n)| *n > 0).count(),
        "sessions": {"live": live, "by_client": by_client},
        "statements": {"running": g.running, "queued": g.queue_depth},
        "pool": g.pool_in_use.zip(g.pool_idle).map(|(busy, idle)| json!({"busy": busy, "idle": idle, "logins": g.pool_logins})),
        "snowflake": g.circuit.map(|(open, failed)| json!({"circuit_open": open, "failed_logins": failed})),
        "warehouses": g.warehouses.iter().map(|(name, running, waiting)| json!({"name": name, "running": running, "queued": waiting})).collect::<Vec<_>>(),
        "state_store": g.cluster.map(|(replicas, degraded)| json!({"shared": true, "replicas": replicas, "reachable": !degraded})).unwrap_or_else(|| json!({"shared": false, "reachable": true})),
        "audit_dropped": g.audit_dropped,
    })
}

/// The overview in plain words, for `snowflake-mcp status`.
pub fn overview_text(o: &Value) -> String {
    let mut lines = vec![
        format!("backend: {}", o["backend"].as_str().unwrap_or("?")),
        format!(
            "clients online: {}, MCP sessions live: {}",
            o["clients_online"], o["sessions"]["live"]
        ),
        format!(
            "statements running: {}, queued: {}",
            o["statements"]["running"], o["statements"]["queued"]
        ),
    ];
    if o["pool"].is_object() {
        lines.push(format!(
            "Snowflake sessions busy: {}, idle: {}",
            o["pool"]["busy"], o["pool"]["idle"]
        ));
    }
    if o["snowflake"].is_object() {
        let open = o["snowflake"]["circuit_open"] == json!(true);
        lines.push(format!(
            "Snowflake: {}",
            if open {
                "UNREACHABLE (circuit open)"
            } else {
                "reachable"
            }
        ));
    }
    for w in o["warehouses"].as_array().into_iter().flatten() {
        lines.push(format!(
            "warehouse {}: running {}, queued {}",
            w["name"].as_str().unwrap_or("?"),
            w["running"],
            w["queued"]
        ));
    }
    let store = &o["state_store"];
    lines.push(
        match (
            store["shared"] == json!(true),
            store["reachable"] == json!(true),
        ) {
            (true, true) => format!("state store: shared, {} replicas", store["replicas"]),
            (true, false) => "state store: shared, UNREACHABLE".to_string(),
            (false, _) => "state store: this replica's own".to_string(),
        },
    );
    for (client, p) in o["paused"].as_object().into_iter().flatten() {
        lines.push(format!(
            "client {client} is PAUSED: {}",
            p["reason"].as_str().unwrap_or("?")
        ));
    }
    for c in o["sessions"]["by_client"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}: {} sessions",
            c["client"].as_str().unwrap_or("?"),
            c["sessions"]
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_reads_the_gauges() {
        let g = Gauges {
            queue_depth: 3,
            running: 2,
            pool_in_use: Some(2),
            pool_idle: Some(1),
            circuit: Some((true, 4)),
            sessions_by_client: vec![("analyst".into(), 2), ("bot".into(), 1)],
            warehouses: vec![("WH".into(), 2, 3)],
            cluster: Some((2, false)),
            ..Gauges::default()
        };
        let mut o = overview(&g, "snowflake");
        o["paused"] =
            json!({"bot": {"reason": "flooding", "by": "the admin token", "since_ms": 0}});
        assert_eq!(o["sessions"]["live"], 3);
        assert_eq!(o["clients_online"], 2);
        assert_eq!(o["statements"]["queued"], 3);
        assert_eq!(o["pool"]["busy"], 2);
        assert_eq!(o["snowflake"]["circuit_open"], true);
        assert_eq!(o["state_store"]["replicas"], 2);
        let text = overview_text(&o);
        assert!(text.contains("MCP sessions live: 3"), "{text}");
        assert!(text.contains("UNREACHABLE (circuit open)"), "{text}");
        assert!(text.contains("warehouse WH: running 2, queued 3"), "{text}");
        assert!(text.contains("state store: shared, 2 replicas"), "{text}");
        assert!(text.contains("client bot is PAUSED: flooding"), "{text}");
    }
}

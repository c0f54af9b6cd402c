//! The operator's console, first part: its JSON API under `/console/api`, off unless
//! `[console] token_sha256` is configured.
//!
//! `GET /console/api/overview` is the picture an operator asks for first: MCP sessions live
//! per client, statements running and queued, the pool, the circuit to Snowflake, warehouses,
//! the shared state store and replicas — the same gauges `/metrics` reads, at the same moment
//! of asking. It needs `Authorization: Bearer <admin token>` (compared by SHA-256 in constant
//! time); everyone else gets 401, and the Host/Origin checks of every route apply. Client ids
//! are shown (the operator configured them); session ids, tokens and SQL are not.
//! `snowflake-mcp status [URL]` prints it in a terminal.
//!
//! `GET /console/api/clients` lists each configured client: its weight and concurrency, its MCP
//! sessions on this replica, and its rate limit and quotas used and left, with when they reset
//! (what `get_context` tells the client itself).
//!
//! `GET /console/api/queries?client=&status=&tool=&since_ms=&limit=` is the audit trail of every
//! client, newest first, SQL included (the operator's to read); `GET /console/api/warehouses`
//! the statements running and queued per warehouse.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

mod pages;
mod signin;

use crate::observe::audit::time_text;
use crate::observe::metrics::Gauges;
use crate::state::AuditFilter;
use crate::transport::App;

/// What every console route shares.
pub struct Console {
    pub app: Arc<App>,
    /// The SHA-256 of the admin token.
    pub token: [u8; 32],
    /// Served over TLS (the session cookie is then `Secure`).
    pub tls: bool,
}

type Shared = State<Arc<Console>>;

/// The console's pages and API. Every route but signing in and out is behind [`admit`].
pub fn routes(console: Console) -> Router {
    let shared = Arc::new(console);
    let admitted = Router::new()
        .route("/console", get(pages::overview))
        .route("/console/clients", get(pages::clients))
        .route("/console/queries", get(pages::queries))
        .route("/console/api/overview", get(api_overview))
        .route("/console/api/clients", get(api_clients))
        .route("/console/api/queries", get(api_queries))
        .route("/console/api/warehouses", get(api_warehouses))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), admit));
    Router::new()
        .route("/console/login", post(pages::login))
        .route("/console/logout", post(pages::logout))
        .merge(admitted)
        .with_state(shared)
}

/// Only the admin reaches a console route: others get the sign-in page (pages) or 401 (API).
async fn admit(State(c): Shared, request: Request, next: Next) -> Response {
    if signin::admitted(&c.app, &c.token, request.headers()).await {
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/console/api/") {
        unauthorized()
    } else {
        pages::sign_in_page("Sign in with the console's admin token.")
    }
}

async fn api_overview(State(c): Shared) -> Response {
    axum::Json(overview_now(&c.app)).into_response()
}

async fn api_clients(State(c): Shared) -> Response {
    axum::Json(clients(&c.app).await).into_response()
}

async fn api_queries(State(c): Shared, Query(asked): Query<QueriesAsked>) -> Response {
    match queries(&c.app, asked).await {
        Ok(trail) => axum::Json(trail).into_response(),
        Err(why) => unavailable(&why),
    }
}

async fn api_warehouses(State(c): Shared) -> Response {
    let stats = c.app.tools.gateway.scheduler().stats();
    let list: Vec<Value> = stats
        .warehouses
        .iter()
        .map(|(name, running, queued)| json!({"name": name, "running": running, "queued": queued}))
        .collect();
    axum::Json(json!({ "warehouses": list })).into_response()
}

/// The overview now.
fn overview_now(app: &App) -> Value {
    let gauges = crate::transport::ops::gauges(
        &app.tools.gateway,
        &app.registry,
        app.tools.auditor.dropped(),
    );
    overview(&gauges, app.tools.gateway.backend().name())
}

/// What `/console/api/queries` may be asked.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueriesAsked {
    #[serde(default, deserialize_with = "blank_is_none")]
    client: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    status: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    tool: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
}

/// A filter left empty in the page's form filters nothing.
fn blank_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(text.filter(|t| !t.trim().is_empty()))
}

/// The audit trail of every client, newest first; `Err` says why it cannot be read.
async fn queries(app: &App, asked: QueriesAsked) -> Result<Value, String> {
    let filter = AuditFilter {
        client: asked.client,
        status: asked.status,
        tool: asked.tool,
        since_ms: asked.since_ms,
    };
    let limit = asked.limit.unwrap_or(50).clamp(1, 500);
    // Records still in the audit buffer are read too.
    app.tools.auditor.flush().await;
    let store = app.tools.auditor.store();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.recent_audit(&filter, limit),
    )
    .await;
    let records = match read {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("the state store did not answer within 5 s".into()),
    };
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({"time": time_text(r.time_ms), "time_ms": r.time_ms, "client": r.client_id,
                "tool": r.tool, "status": r.status, "sql": r.statement, "rows": r.rows,
                "bytes": r.bytes, "duration_ms": r.duration_ms, "query_id": r.query_id,
                "error_code": r.error_code, "write": r.write, "confirmed": r.confirmed})
        })
        .collect();
    Ok(json!({ "queries": list }))
}

fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the audit trail cannot be read now: {why}\n"),
    )
        .into_response()
}

/// Each configured client: its share, its sessions here, and its limits' use.
async fn clients(app: &App) -> Value {
    let sessions = app.registry.sessions_by_client();
    // One deadline for the whole list: a slow state store must not hold the page (2 s per
    // client would add up).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut list = Vec::new();
    for policy in app.clients.entries() {
        let live = sessions
            .iter()
            .find(|(c, _)| *c == *policy.id)
            .map_or(0, |(_, n)| *n);
        let limits = tokio::time::timeout_at(deadline, app.tools.admission.headroom(policy)).await;
        let limits = match limits {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => json!({"unavailable": e.message}),
            Err(_) => {
                json!({"unavailable": "the state store did not answer in time (2 s for the whole list)"})
            }
        };
        list.push(json!({
            "id": policy.id.as_ref(),
            "weight": policy.weight,
            "max_concurrent": policy.max_concurrent,
            "sessions": live,
            "writes": policy.access.writes.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "limits": limits,
        }));
    }
    json!({ "clients": list })
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"console\"")],
        "the console needs the admin token (Authorization: Bearer ...)\n",
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
        let o = overview(&g, "snowflake");
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
    }
}

//! What the console shows, as JSON: the answers of `/console/api/...`, which the pages render
//! too (documented in docs/operations.md).
//!
//! Scope: clients, quotas, pauses and the audit trail are the cluster's (they live in the state
//! store); sessions, running statements, queues and charts are this replica's (each answer
//! says which replica by its `backend` and the overview's `state_store.replicas`).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{overview_now, Shared};
use crate::observe::audit::time_text;
use crate::state::AuditFilter;
use crate::transport::App;

/// The window of each client's recent share of session-time.
pub const SHARE_WINDOW: Duration = Duration::from_secs(300);

pub(super) async fn overview(State(c): Shared) -> Response {
    let mut o = overview_now(&c.app);
    let s = c.history.series();
    o["charts"] = json!({"every_s": super::history::EVERY.as_secs(), "calls_per_min": s.calls_per_min,
        "errors_per_min": s.errors_per_min, "running": s.running, "queued": s.queued});
    axum::Json(o).into_response()
}

pub(super) async fn clients_api(State(c): Shared) -> Response {
    axum::Json(clients(&c).await).into_response()
}

pub(super) async fn queries_api(State(c): Shared, Query(asked): Query<QueriesAsked>) -> Response {
    match queries(&c.app, asked).await {
        Ok(trail) => axum::Json(trail).into_response(),
        Err(why) => unavailable(&why),
    }
}

pub(super) async fn warehouses_api(State(c): Shared) -> Response {
    axum::Json(warehouses(&c.app)).into_response()
}

pub(super) async fn sessions_api(State(c): Shared) -> Response {
    let stored = stored_sessions(&c.app).await;
    axum::Json(json!({ "sessions": c.app.registry.list(), "stored": stored })).into_response()
}

/// Per configured client: its sessions kept in the state store (live on any replica, or
/// parked) and those live here. Bounded to 2 s for the whole list.
pub async fn stored_sessions(app: &App) -> Vec<Value> {
    let since = crate::unix_now() - app.registry.limits().idle_timeout.as_secs() as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let store = app.tools.admission.store();
    let mut list = Vec::new();
    for policy in app.clients.entries() {
        let group = crate::state::owner_group(&policy.id);
        let stored = tokio::time::timeout_at(deadline, store.count_sessions(group, since)).await;
        list.push(json!({
            "client": policy.id.as_ref(),
            "stored": stored.ok().and_then(Result::ok),
            "live_here": app.registry.count_for(&policy.id),
        }));
    }
    list
}

/// Statements running and queued per warehouse, against their caps.
pub fn warehouses(app: &App) -> Value {
    let scheduler = app.tools.gateway.scheduler();
    let caps = scheduler.warehouse_caps();
    let stats = scheduler.stats();
    let mut names: Vec<&String> = caps.keys().collect();
    for (name, _, _) in &stats.warehouses {
        if !caps.contains_key(name) {
            names.push(name);
        }
    }
    names.sort();
    let list: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let (running, queued) = stats
                .warehouses
                .iter()
                .find(|(w, _, _)| w == name)
                .map_or((0, 0), |(_, r, q)| (*r, *q));
            json!({"name": name, "running": running, "queued": queued, "cap": caps.get(name),
                "credits_per_hour": app.tools.gateway.known_credit_rate(name)})
        })
        .collect();
    json!({ "warehouses": list })
}

/// What `/console/api/queries` may be asked.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueriesAsked {
    #[serde(default, deserialize_with = "blank_is_none")]
    pub client: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    pub tool: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: Option<usize>,
    /// What an action on the page did (shown, not a filter).
    #[serde(default)]
    pub note: Option<String>,
}

/// A filter left empty in the page's form filters nothing.
fn blank_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(text.filter(|t| !t.trim().is_empty()))
}

/// The statements running on this replica, then the audit trail of every client, newest
/// first; `Err` says why the trail cannot be read.
pub async fn queries(app: &App, asked: QueriesAsked) -> Result<Value, String> {
    let running: Vec<_> = app
        .tools
        .results
        .running()
        .into_iter()
        .filter(|r| asked.client.as_ref().is_none_or(|c| *c == r.client))
        .collect();
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
    let read =
        tokio::time::timeout(Duration::from_secs(5), store.recent_audit(&filter, limit)).await;
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
    Ok(json!({ "running": running, "queries": list }))
}

pub(super) fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the audit trail cannot be read now: {why}\n"),
    )
        .into_response()
}

/// Each configured client: its share, its load, its sessions here, its limits' use, its
/// estimated credits today and whether it is paused.
pub async fn clients(c: &super::Console) -> Value {
    let app = &c.app;
    let sessions = app.registry.sessions_by_client();
    let loads = app.tools.gateway.scheduler().client_loads();
    let times = app.tools.gateway.scheduler().session_time();
    let shares = c.history.shares(SHARE_WINDOW);
    let paused = app.tools.pauses.list();
    let weights: u32 = app.clients.entries().iter().map(|p| p.weight).sum();
    // One deadline for the whole list: a slow state store must not hold the page (2 s per
    // client would add up).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut list = Vec::new();
    for policy in app.clients.entries() {
        let id = policy.id.as_ref();
        let count =
            |list: &[(String, usize)]| list.iter().find(|(c, _)| c == id).map_or(0, |x| x.1);
        let (running, queued) = loads
            .iter()
            .find(|(c, _, _)| c == id)
            .map_or((0, 0), |(_, r, q)| (*r, *q));
        let limits = tokio::time::timeout_at(deadline, app.tools.admission.headroom(policy)).await;
        let limits = match limits {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => json!({"unavailable": e.message}),
            Err(_) => {
                json!({"unavailable": "the state store did not answer in time (2 s for the whole list)"})
            }
        };
        let share = shares.iter().find(|(c, _, _)| c == id);
        let today = times.iter().find(|t| t.client == id);
        list.push(json!({
            "id": id,
            "weight": policy.weight,
            "weight_share": if weights > 0 { f64::from(policy.weight) / f64::from(weights) } else { 0.0 },
            "share_5m": share.map_or(0.0, |s| s.1),
            "session_seconds_5m": share.map_or(0.0, |s| s.2),
            "running": running,
            "queued": queued,
            "max_concurrent": policy.max_concurrent,
            "sessions": count(&sessions),
            "writes": policy.access.writes.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "limits": limits.clone(),
            "credits_today": credits_today(app, &limits, today),
            "paused": paused.get(id),
        }));
    }
    json!({ "clients": list })
}

/// Estimated credits today: the credits quota's count when the client has a daily one (the
/// cluster's, exact to the estimate), else this replica's session-time today at each
/// warehouse's known rate (`null` where no rate is known yet).
fn credits_today(
    app: &App,
    limits: &Value,
    today: Option<&crate::scheduling::scheduler::ClientTime>,
) -> Value {
    if let Some(used) = limits["quotas"]["credits_per_day"]["used"].as_f64() {
        return json!({"credits": used, "from": "the credits quota (every replica)"});
    }
    let Some(today) = today else {
        return json!({"credits": 0.0, "from": "session-time on this replica"});
    };
    let mut credits = 0.0;
    for (warehouse, us) in &today.today_us {
        let rate = warehouse
            .as_deref()
            .and_then(|w| app.tools.gateway.known_credit_rate(w));
        match rate {
            Some(rate) => credits += rate * *us as f64 / 3.6e9,
            None => {
                return json!({"credits": null, "from": "unknown: a warehouse's size has not been read",
                    "session_seconds": today.today_us.iter().map(|(_, us)| *us as f64 / 1e6).sum::<f64>()})
            }
        }
    }
    json!({"credits": credits, "from": "session-time on this replica"})
}

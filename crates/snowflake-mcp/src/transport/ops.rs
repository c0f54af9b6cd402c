//! The operator endpoints beside `/mcp`: `/healthz` (the process is up), `/readyz` (Snowflake
//! answers) and `/metrics` (Prometheus, OpenMetrics text).
//!
//! They need no MCP session, and `/healthz` and `/readyz` no token — which makes them a door
//! anyone can knock on. So `/readyz` never reaches Snowflake per request: it reports the last
//! probe, and at most one probe runs at a time, at most every [`PROBE_EVERY`]; its answer never
//! carries backend error text (that goes to the log). `/metrics` (client ids, volumes) can
//! require a bearer token: `server.metrics_token_sha256`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;

use crate::backend::Backend;
use crate::lock;
use crate::sessions::Registry;
use crate::tools::Tools;

/// How old the last probe may be before `/readyz` starts a new one.
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
const PROBE_DEADLINE: Duration = Duration::from_secs(15);

/// The cached readiness probe.
pub struct Readiness {
    backend: Arc<dyn Backend>,
    last: Mutex<Option<(Instant, bool)>>,
    probing: tokio::sync::Mutex<()>,
}

impl Readiness {
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Readiness> {
        Arc::new(Readiness {
            backend,
            last: Mutex::new(None),
            probing: tokio::sync::Mutex::new(()),
        })
    }

    fn fresh(&self) -> Option<bool> {
        lock(&self.last)
            .filter(|(at, _)| at.elapsed() < PROBE_EVERY)
            .map(|(_, ok)| ok)
    }

    /// Whether the backend answered its latest probe; probes again when that one is stale.
    /// Concurrent callers share one probe (or get the previous answer while it runs).
    pub async fn check(&self) -> bool {
        if let Some(ok) = self.fresh() {
            return ok;
        }
        let Ok(_probe) = self.probing.try_lock() else {
            return lock(&self.last).is_some_and(|(_, ok)| ok);
        };
        if let Some(ok) = self.fresh() {
            return ok;
        }
        let ok = match tokio::time::timeout(PROBE_DEADLINE, self.backend.ready()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.message, "readiness probe failed");
                false
            }
            Err(_) => {
                tracing::warn!("readiness probe timed out");
                false
            }
        };
        *lock(&self.last) = Some((Instant::now(), ok));
        ok
    }
}

/// The three routes. `metrics` renders the page; `metrics_token` is the SHA-256 of the token
/// `/metrics` requires, if any.
pub fn routes(
    readiness: Arc<Readiness>,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    metrics_token: Option<[u8; 32]>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    if readiness.check().await {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: Snowflake does not answer\n",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let metrics = metrics.clone();
                async move {
                    if let Some(expected) = metrics_token {
                        let allowed = crate::identity::bearer_token(&headers)
                            .is_some_and(|t| crate::identity::token_matches(t, &expected));
                        if !allowed {
                            return (
                                StatusCode::UNAUTHORIZED,
                                [(header::CONTENT_TYPE, "text/plain")],
                                "a bearer token is required\n".to_string(),
                            );
                        }
                    }
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, crate::observe::metrics::CONTENT_TYPE)],
                        metrics(),
                    )
                }
            }),
        )
}

/// The gauges read now: what `/metrics` and the console's overview show.
pub fn gauges(tools: &Tools, registry: &Registry) -> crate::observe::metrics::Gauges {
    let gateway = &tools.gateway;
    let sched = gateway.scheduler().stats();
    let pool = gateway.backend().pool_gauges();
    let cache = gateway.cache_stats();
    crate::observe::metrics::Gauges {
        queue_depth: sched.queued,
        running: sched.running,
        pool_in_use: pool.map(|p| p.0),
        pool_idle: pool.map(|p| p.1),
        pool_logins: pool.map(|p| p.2),
        context_switches: pool.map(|p| p.3),
        cache_hits: cache.hits.load(std::sync::atomic::Ordering::Relaxed),
        cache_misses: cache.misses.load(std::sync::atomic::Ordering::Relaxed),
        sessions_by_client: registry.sessions_by_client(),
        audit_dropped: tools.auditor.dropped(),
        circuit: gateway.backend().circuit(),
        warehouses: sched.warehouses.clone(),
        cluster: gateway.cluster().map(|c| (c.replicas(), c.degraded())),
        session_seconds: gateway
            .scheduler()
            .session_time()
            .into_iter()
            .map(|t| (t.client, t.total_us as f64 / 1e6))
            .collect(),
        paused: tools.pauses.list().into_keys().collect(),
    }
}

/// The `/metrics` page: counters and histograms, plus gauges read now.
pub fn render_metrics(tools: &Tools, registry: &Registry) -> String {
    tools.gateway.metrics().render(&gauges(tools, registry))
}

/// How often each client's quota use is read for `snowflake_mcp_quota_used_ratio`.
const QUOTAS_EVERY: Duration = Duration::from_secs(30);

/// Read each configured client's quota use every [`QUOTAS_EVERY`] into the quota gauge (for
/// the "quota nearly spent" alert), each read bounded so a slow store delays only the gauge.
pub fn sample_quotas(clients: Arc<crate::identity::Clients>, tools: &Arc<Tools>) {
    if clients.entries().iter().all(|c| c.quotas.is_unlimited()) {
        return;
    }
    let weak = Arc::downgrade(tools);
    crate::spawn_every(QUOTAS_EVERY, move || {
        let (tools, clients) = (weak.upgrade(), clients.clone());
        async move {
            let Some(tools) = tools else { return };
            for client in clients
                .entries()
                .iter()
                .filter(|c| !c.quotas.is_unlimited())
            {
                let read =
                    tokio::time::timeout(Duration::from_secs(2), tools.admission.headroom(client))
                        .await;
                let Ok(Ok(headroom)) = read else { continue };
                for (quota, q) in headroom["quotas"].as_object().into_iter().flatten() {
                    let (Some(limit), Some(used)) = (q["limit"].as_f64(), q["used"].as_f64())
                    else {
                        continue;
                    };
                    let ratio: f64 = if limit > 0.0 { used / limit } else { 1.0 };
                    tools
                        .gateway
                        .metrics()
                        .quota_used(&client.id, quota, ratio.min(1.0));
                }
            }
        }
    });
}

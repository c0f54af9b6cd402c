//! Metrics served at `/metrics`, encoded by the `prometheus-client` crate in the OpenMetrics text
//! format ([`CONTENT_TYPE`]), which Prometheus scrapes natively.
//!
//! This module owns every metric name, help text and label set the server exposes, so an
//! operator's dashboards and alerts have one place to look. Counters and histograms are recorded
//! on the request path (`call`, `observe`, the connection hooks); values owned elsewhere (queue
//! depth, pool sessions, cache, sessions by client, audit drops, the circuit to Snowflake) are
//! handed to [`Metrics::render`] as [`Gauges`] and encoded as they are at scrape time. Client
//! labels are configured client ids; signed-in people are labelled by the `[[clients]]` entry
//! whose policy covers them, anonymous clients all `anonymous`, so label sets stay bounded and
//! no label ever carries an e-mail address or another personal claim. Tokens, passwords and
//! keys never appear in any label.
//!
//! Names follow OpenMetrics: a counter family is named without `_total` in its `# HELP`/`# TYPE`
//! lines and its samples carry the suffix, so every sample keeps the name it always had
//! (`snowflake_mcp_tool_calls_total{tool=…,client=…,outcome=…}`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The `Content-Type` of the page [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    client: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    client: String,
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabel {
    client: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    client: String,
    quota: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
    tool: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    cost_refusals: Family<ClientLabel, Counter>,
    quota_used: Family<QuotaLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    durations: Family<StageLabels, Histogram, fn() -> Histogram>,
    connections_open: Gauge,
    connections_refused: Counter,
    /// Tool calls and failed ones in all, for the console's charts.
    totals: [std::sync::atomic::AtomicU64; 2],
}

impl Default for Metrics {
    fn default() -> Metrics {
        let calls = Family::<CallLabels, Counter>::default();
        let durations = Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        let writes = Family::<WriteLabels, Counter>::default();
        let cost_refusals = Family::<ClientLabel, Counter>::default();
        let quota_used = Family::default();
        let mut registry = Registry::default();
        registry.register(
            "snowflake_mcp_quota_used_ratio",
            "Share of each client quota used in its current window (1 is spent), read every 30 s",
            Family::clone(&quota_used),
        );
        registry.register(
            "snowflake_mcp_writes",
            "Writes by client, statement kind and outcome (asked: a confirmation was asked for; declined; ran; failed)",
            writes.clone(),
        );
        registry.register(
            "snowflake_mcp_cost_refusals",
            "Queries refused before they ran because their plan would scan more than the client may",
            cost_refusals.clone(),
        );
        // `register` appends the full stop to each help text itself.
        registry.register(
            "snowflake_mcp_tool_calls",
            "Tool calls by tool, client and outcome (ok or the error kind)",
            calls.clone(),
        );
        registry.register(
            "snowflake_mcp_duration_seconds",
            "Time per stage of a tool call: queue_wait, snowflake, total",
            durations.clone(),
        );
        registry.register(
            "snowflake_mcp_http_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        registry.register(
            "snowflake_mcp_http_connections_refused",
            "HTTP connections refused because the server was at its connection limit",
            connections_refused.clone(),
        );
        Metrics {
            registry,
            calls,
            writes,
            cost_refusals,
            quota_used,
            durations,
            connections_open,
            connections_refused,
            totals: Default::default(),
        }
    }
}

/// Values read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub queue_depth: usize,
    pub running: usize,
    pub pool_in_use: Option<usize>,
    pub pool_idle: Option<usize>,
    pub pool_logins: Option<u64>,
    pub context_switches: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub sessions_by_client: Vec<(String, usize)>,
    pub audit_dropped: u64,
    /// Whether the circuit to Snowflake is open, and logins that failed so far.
    pub circuit: Option<(bool, u64)>,
    /// Per warehouse: (name, statements in flight, requests waiting).
    pub warehouses: Vec<(String, usize, usize)>,
    /// With a shared state store: (replicas last seen alive, whether it is unreachable now).
    pub cluster: Option<(usize, bool)>,
    /// Per client: the session-time its statements held so far, seconds.
    pub session_seconds: Vec<(String, f64)>,
    /// Clients paused by an operator.
    pub paused: Vec<String>,
}

impl Metrics {
    /// How much of `client`'s `quota` (e.g. `queries_per_day`) is used: 0 to 1.
    pub fn quota_used(&self, client: &str, quota: &str, ratio: f64) {
        let labels = QuotaLabels {
            client: client.into(),
            quota: quota.into(),
        };
        self.quota_used.get_or_create(&labels).set(ratio);
    }

    /// One finished tool call.
    pub fn call(&self, tool: &str, client: &str, outcome: &str, took: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.into(),
                client: client.into(),
                outcome: outcome.into(),
            })
            .inc();
        use std::sync::atomic::Ordering::Relaxed;
        self.totals[0].fetch_add(1, Relaxed);
        if outcome != "ok" {
            self.totals[1].fetch_add(1, Relaxed);
        }
        self.observe("total", tool, took);
    }

    /// Tool calls so far, and how many of them failed.
    pub fn call_totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.totals[0].load(Relaxed), self.totals[1].load(Relaxed))
    }

    /// A write reached `outcome` (`asked`, `declined`, `ran`, `failed`).
    pub fn write(&self, client: &str, kind: &str, outcome: &'static str) {
        self.writes
            .get_or_create(&WriteLabels {
                client: client.into(),
                kind: kind.into(),
                outcome,
            })
            .inc();
    }

    /// Start `client`'s write and cost-refusal counters at zero, so dashboards and `rate()` see
    /// them before the first event (a family without series is not exposed at all).
    pub fn prepare_client(&self, client: &str, write_kinds: &[&str], limits_scans: bool) {
        for kind in write_kinds {
            for outcome in ["asked", "declined", "ran", "failed"] {
                let labels = WriteLabels {
                    client: client.into(),
                    kind: kind.to_string(),
                    outcome,
                };
                drop(self.writes.get_or_create(&labels));
            }
        }
        if limits_scans {
            drop(self.cost_refusals.get_or_create(&ClientLabel {
                client: client.into(),
            }));
        }
    }

    /// A query was refused by its estimated scan.
    pub fn cost_refused(&self, client: &str) {
        self.cost_refusals
            .get_or_create(&ClientLabel {
                client: client.into(),
            })
            .inc();
    }

    /// A duration of one stage (`queue_wait`, `snowflake`, `total`) of a call to `tool`.
    pub fn observe(&self, stage: &'static str, tool: &str, took: Duration) {
        self.durations
            .get_or_create(&StageLabels {
                stage,
                tool: tool.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// An HTTP connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// An accepted HTTP connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// An HTTP connection was refused (the server is at its connection limit).
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The exposition text, served with [`CONTENT_TYPE`].
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the encoders only pass on the writer's errors.
        let _ = text::encode_registry(&mut out, &self.registry);
        let mut now = Registry::default();
        now.register_collector(Box::new(ScrapeTime(g.clone())));
        let _ = text::encode_registry(&mut out, &now);
        let _ = text::encode_eof(&mut out);
        out
    }
}

/// The [`Gauges`] of one scrape, encoded as they are. Values that do not apply (no pool, no
/// circuit) are left out rather than reported as zero.
#[derive(Debug)]
struct ScrapeTime(Gauges);

impl Collector for ScrapeTime {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = &self.0;
        let as_u64 = |v: usize| v as u64;
        gauge(
            &mut enc,
            "snowflake_mcp_queue_depth",
            "Requests waiting for a Snowflake session.",
            Some(as_u64(g.queue_depth)),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_statements_running",
            "Statements holding a scheduler permit.",
            Some(as_u64(g.running)),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_pool_sessions_in_use",
            "Snowflake sessions lent to requests.",
            g.pool_in_use.map(as_u64),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_pool_sessions_idle",
            "Snowflake sessions idle in the pool.",
            g.pool_idle.map(as_u64),
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_pool_logins",
            "Snowflake logins by the pool.",
            g.pool_logins,
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_context_switches",
            "USE statements run to switch a pooled session's context.",
            g.context_switches,
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_cache_hits",
            "Catalogue answers served from the cache or a shared request.",
            Some(g.cache_hits),
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_cache_misses",
            "Catalogue answers fetched from the database.",
            Some(g.cache_misses),
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_audit_dropped",
            "Audit records dropped because the audit buffer was full.",
            Some(g.audit_dropped),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_circuit_open",
            "1 while Snowflake is unreachable and calls fail fast (the circuit is open).",
            g.circuit.map(|c| u64::from(c.0)),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_replicas",
            "Replicas sharing the state store, as last seen alive by this one.",
            g.cluster.map(|c| c.0 as u64),
        )?;
        gauge(
            &mut enc,
            "snowflake_mcp_state_store_unreachable",
            "1 while the shared state store cannot be reached (limits fall back to local shares).",
            g.cluster.map(|c| u64::from(c.1)),
        )?;
        counter(
            &mut enc,
            "snowflake_mcp_login_failures",
            "Snowflake logins that failed or timed out.",
            g.circuit.map(|c| c.1),
        )?;
        let mut sessions = enc.encode_descriptor(
            "snowflake_mcp_sessions",
            "MCP sessions by client.",
            None,
            MetricType::Gauge,
        )?;
        for (client, n) in &g.sessions_by_client {
            ConstGauge::new(as_u64(*n))
                .encode(sessions.encode_family(&[("client", client.as_str())])?)?;
        }
        let mut held = enc.encode_descriptor(
            "snowflake_mcp_session_seconds",
            "Session-time each client's statements held a Snowflake session (its share of the pool).",
            None,
            MetricType::Counter,
        )?;
        for (client, seconds) in &g.session_seconds {
            ConstCounter::new(*seconds)
                .encode(held.encode_family(&[("client", client.as_str())])?)?;
        }
        let mut paused = enc.encode_descriptor(
            "snowflake_mcp_client_paused",
            "1 for each client an operator paused (its calls are refused).",
            None,
            MetricType::Gauge,
        )?;
        for client in &g.paused {
            ConstGauge::new(1u64).encode(paused.encode_family(&[("client", client.as_str())])?)?;
        }
        for (name, help, pick) in [
            (
                "snowflake_mcp_warehouse_running",
                "Statements in flight per warehouse.",
                (|w: &(String, usize, usize)| w.1) as fn(&(String, usize, usize)) -> usize,
            ),
            (
                "snowflake_mcp_warehouse_queued",
                "Requests waiting per warehouse.",
                |w: &(String, usize, usize)| w.2,
            ),
        ] {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for w in &g.warehouses {
                ConstGauge::new(as_u64(pick(w)))
                    .encode(family.encode_family(&[("warehouse", w.0.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// One unlabelled gauge, if it has a value.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> Result<(), std::fmt::Error> {
    match value {
        Some(v) => {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
        }
        None => Ok(()),
    }
}

/// One unlabelled counter, if it has a value; its sample is named `{name}_total`.
fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> Result<(), std::fmt::Error> {
    match value {
        Some(v) => ConstCounter::new(v).encode(enc.encode_descriptor(
            name,
            help,
            None,
            MetricType::Counter,
        )?),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

//! Metrics in the Prometheus text format, served at `/metrics`.
//!
//! Counters and histograms are recorded on the request path (a mutex-guarded map update, no
//! allocation once a label set exists); gauges (queue depth, pool sessions, cache, sessions by
//! client) are read from their owners when scraped. Client labels are configured client ids;
//! anonymous clients are all labelled `anonymous`, so label sets stay bounded. Tokens, passwords
//! and keys never appear in any label.

use crate::lock;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String, String), u64>>,
    durations: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// A client id as a label: configured ids as they are, anonymous clients pooled.
pub fn client_label(id: &str, anonymous: bool) -> String {
    if anonymous {
        "anonymous".into()
    } else {
        id.to_string()
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
}

impl Metrics {
    /// One finished tool call.
    pub fn call(&self, tool: &str, client: &str, outcome: &str, took: Duration) {
        *lock(&self.calls)
            .entry((tool.into(), client.into(), outcome.into()))
            .or_default() += 1;
        self.observe("total", tool, took);
    }

    /// A duration of one stage (`queue_wait`, `snowflake`, `total`) of a call to `tool`.
    pub fn observe(&self, stage: &'static str, tool: &str, took: Duration) {
        lock(&self.durations)
            .entry((stage, tool.into()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP snowflake_mcp_tool_calls_total Tool calls by tool, client and outcome (ok or the error kind).\n# TYPE snowflake_mcp_tool_calls_total counter\n");
        for ((tool, client, outcome), n) in lock(&self.calls).iter() {
            let _ = writeln!(
                out,
                "snowflake_mcp_tool_calls_total{{tool=\"{}\",client=\"{}\",outcome=\"{}\"}} {n}",
                esc(tool),
                esc(client),
                esc(outcome)
            );
        }
        out.push_str("# HELP snowflake_mcp_duration_seconds Time per stage of a tool call: queue_wait, snowflake, total.\n# TYPE snowflake_mcp_duration_seconds histogram\n");
        for ((stage, tool), h) in lock(&self.durations).iter() {
            let labels = format!("stage=\"{stage}\",tool=\"{}\"", esc(tool));
            for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "snowflake_mcp_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "snowflake_mcp_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "snowflake_mcp_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "snowflake_mcp_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let mut gauge = |name: &str, help: &str, kind: &str, value: Option<String>| {
            if let Some(v) = value {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        };
        gauge(
            "snowflake_mcp_queue_depth",
            "Requests waiting for a Snowflake session.",
            "gauge",
            Some(g.queue_depth.to_string()),
        );
        gauge(
            "snowflake_mcp_statements_running",
            "Statements holding a scheduler permit.",
            "gauge",
            Some(g.running.to_string()),
        );
        gauge(
            "snowflake_mcp_pool_sessions_in_use",
            "Snowflake sessions lent to requests.",
            "gauge",
            g.pool_in_use.map(|v| v.to_string()),
        );
        gauge(
            "snowflake_mcp_pool_sessions_idle",
            "Snowflake sessions idle in the pool.",
            "gauge",
            g.pool_idle.map(|v| v.to_string()),
        );
        gauge(
            "snowflake_mcp_pool_logins_total",
            "Snowflake logins by the pool.",
            "counter",
            g.pool_logins.map(|v| v.to_string()),
        );
        gauge(
            "snowflake_mcp_context_switches_total",
            "USE statements run to switch a pooled session's context.",
            "counter",
            g.context_switches.map(|v| v.to_string()),
        );
        gauge(
            "snowflake_mcp_cache_hits_total",
            "Catalogue answers served from the cache or a shared request.",
            "counter",
            Some(g.cache_hits.to_string()),
        );
        gauge(
            "snowflake_mcp_cache_misses_total",
            "Catalogue answers fetched from the database.",
            "counter",
            Some(g.cache_misses.to_string()),
        );
        gauge(
            "snowflake_mcp_audit_dropped_total",
            "Audit records dropped because the audit buffer was full.",
            "counter",
            Some(g.audit_dropped.to_string()),
        );
        gauge(
            "snowflake_mcp_circuit_open",
            "1 while Snowflake is unreachable and calls fail fast (the circuit is open).",
            "gauge",
            g.circuit.map(|c| u8::from(c.0).to_string()),
        );
        gauge(
            "snowflake_mcp_login_failures_total",
            "Snowflake logins that failed or timed out.",
            "counter",
            g.circuit.map(|c| c.1.to_string()),
        );
        out.push_str("# HELP snowflake_mcp_sessions MCP sessions by client.\n# TYPE snowflake_mcp_sessions gauge\n");
        for (client, n) in &g.sessions_by_client {
            let _ = writeln!(
                out,
                "snowflake_mcp_sessions{{client=\"{}\"}} {n}",
                esc(client)
            );
        }
        out
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.call("run_query", "analyst", "ok", Duration::from_millis(3));
        m.call("run_query", "analyst", "ok", Duration::from_millis(30));
        m.call(
            "run_query",
            &client_label("anonymous-7", true),
            "rate_limited",
            Duration::from_micros(50),
        );
        let text = m.render(&Gauges {
            queue_depth: 2,
            sessions_by_client: vec![("analyst".into(), 3)],
            ..Default::default()
        });
        assert!(text.contains("snowflake_mcp_tool_calls_total{tool=\"run_query\",client=\"analyst\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("client=\"anonymous\",outcome=\"rate_limited\"} 1"));
        assert!(text.contains("snowflake_mcp_duration_seconds_bucket{stage=\"total\",tool=\"run_query\",le=\"0.005\"} 2"));
        assert!(text.contains(
            "snowflake_mcp_duration_seconds_count{stage=\"total\",tool=\"run_query\"} 3"
        ));
        assert!(text.contains("snowflake_mcp_queue_depth 2"));
        assert!(text.contains("snowflake_mcp_sessions{client=\"analyst\"} 3"));
        assert!(
            !text.contains("pool_sessions_idle"),
            "pool gauges only when there is a pool"
        );
    }
}

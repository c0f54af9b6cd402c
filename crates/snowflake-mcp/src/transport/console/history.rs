//! The last ten minutes, for the console's charts and each client's recent share: every
//! [`EVERY`] a sample of the call counters, the scheduler's running and queued statements and
//! each client's session-time so far. Kept in memory on this replica (61 samples); Prometheus
//! keeps the long view (`deploy/grafana-dashboard.json`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lock;
use crate::tools::Tools;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(10);
/// Samples kept: ten minutes.
const KEPT: usize = 61;

#[derive(Clone, Debug, Default)]
struct Sample {
    calls: u64,
    errors: u64,
    running: usize,
    queued: usize,
    /// Per client: session-time held so far, microseconds.
    held: Vec<(String, u64)>,
}

/// The samples, oldest first.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

/// One chart's points, oldest first.
pub struct Series {
    pub calls_per_min: Vec<f64>,
    pub errors_per_min: Vec<f64>,
    pub running: Vec<f64>,
    pub queued: Vec<f64>,
}

impl History {
    /// Sample `tools` every [`EVERY`] for as long as the history lives.
    pub fn follow(tools: Arc<Tools>) -> Arc<History> {
        let history = Arc::new(History::default());
        history.sample(&tools);
        let weak = Arc::downgrade(&history);
        crate::spawn_every(EVERY, move || {
            if let Some(h) = weak.upgrade() {
                h.sample(&tools);
            }
            async {}
        });
        history
    }

    fn sample(&self, tools: &Tools) {
        let (calls, errors) = tools.gateway.metrics().call_totals();
        let stats = tools.gateway.scheduler().stats();
        let held = tools
            .gateway
            .scheduler()
            .session_time()
            .into_iter()
            .map(|t| (t.client, t.total_us))
            .collect();
        self.push(Sample {
            calls,
            errors,
            running: stats.running,
            queued: stats.queued,
            held,
        });
    }

    fn push(&self, sample: Sample) {
        let mut samples = lock(&self.samples);
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The charts' points: calls and errors per minute between samples, statements running
    /// and queued at each.
    pub fn series(&self) -> Series {
        let samples = lock(&self.samples);
        let per_min = 60.0 / EVERY.as_secs_f64();
        let rate = |pick: fn(&Sample) -> u64| -> Vec<f64> {
            samples
                .iter()
                .zip(samples.iter().skip(1))
                .map(|(a, b)| pick(b).saturating_sub(pick(a)) as f64 * per_min)
                .collect()
        };
        Series {
            calls_per_min: rate(|s| s.calls),
            errors_per_min: rate(|s| s.errors),
            running: samples.iter().map(|s| s.running as f64).collect(),
            queued: samples.iter().map(|s| s.queued as f64).collect(),
        }
    }

    /// Each client's share of the session-time all clients held over about the last `window`
    /// (from 0 to 1), with the seconds it held; empty until two samples exist.
    pub fn shares(&self, window: Duration) -> Vec<(String, f64, f64)> {
        let samples = lock(&self.samples);
        let back = (window.as_secs() / EVERY.as_secs()) as usize;
        let (Some(newest), Some(oldest)) = (
            samples.back(),
            samples.get(samples.len().saturating_sub(back + 1)),
        ) else {
            return Vec::new();
        };
        let held: Vec<(String, u64)> = newest
            .held
            .iter()
            .map(|(client, now)| {
                let before = oldest
                    .held
                    .iter()
                    .find(|(c, _)| c == client)
                    .map_or(0, |(_, us)| *us);
                (client.clone(), now.saturating_sub(before))
            })
            .filter(|(_, us)| *us > 0)
            .collect();
        let all: u64 = held.iter().map(|(_, us)| us).sum();
        held.into_iter()
            .map(|(client, us)| (client, us as f64 / all as f64, us as f64 / 1e6))
            .collect()
    }
}

/// A small line chart of `points` as inline SVG (no script), labelled with its latest and
/// highest values.
pub fn chart(title: &str, points: &[f64]) -> String {
    let (w, h) = (240.0, 48.0);
    let max = points.iter().cloned().fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { (h - 4.0) / max } else { 0.0 };
    let step = if points.len() > 1 {
        w / (points.len() - 1) as f64
    } else {
        0.0
    };
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, h - 2.0 - v * scale))
        .collect();
    let latest = points.last().copied().unwrap_or(0.0);
    format!(
        "<figure class=\"chart\"><figcaption>{title}: <b>{latest:.0}</b> now, {max:.0} at most (10 min)</figcaption>\
<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{title}\"><polyline fill=\"none\" stroke=\"#1b6ac9\" stroke-width=\"2\" points=\"{}\"/></svg></figure>",
        line.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(calls: u64, held: &[(&str, u64)]) -> Sample {
        Sample {
            calls,
            held: held.iter().map(|(c, us)| (c.to_string(), *us)).collect(),
            ..Sample::default()
        }
    }

    #[test]
    fn rates_and_shares_come_from_the_differences() {
        let h = History::default();
        h.push(sample(10, &[("a", 0)]));
        h.push(sample(20, &[("a", 1_000_000), ("b", 3_000_000)]));
        h.push(sample(50, &[("a", 2_000_000), ("b", 9_000_000)]));
        let s = h.series();
        assert_eq!(s.calls_per_min, vec![60.0, 180.0]);
        let shares = h.shares(Duration::from_secs(10));
        assert_eq!(
            shares,
            vec![("a".into(), 1.0 / 7.0, 1.0), ("b".into(), 6.0 / 7.0, 6.0)]
        );
        let all = h.shares(Duration::from_secs(600));
        assert_eq!(all[0], ("a".into(), 2.0 / 11.0, 2.0));
        for _ in 0..KEPT + 5 {
            h.push(Sample::default());
        }
        assert_eq!(lock(&h.samples).len(), KEPT);
    }

    #[test]
    fn a_chart_is_an_svg_line() {
        let svg = chart("Calls per minute", &[0.0, 5.0, 10.0]);
        assert!(svg.contains("<svg"), "{svg}");
        assert!(
            svg.contains("points=\"0.0,46.0 120.0,24.0 240.0,2.0\""),
            "{svg}"
        );
        assert!(svg.contains("<b>10</b> now"), "{svg}");
    }
}

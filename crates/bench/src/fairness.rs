//! `fairness`: three configured clients flooding a small pool, with equal weights and with
//! weights 1:2:4; each client's share of the calls against its share of the weights, and Jain's
//! index of throughput normalized by weight.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::{sha, start_responder, start_server};
use crate::load::{self, jain, summarize, Class};

pub async fn fairness(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(20)).await;
    let _ = writeln!(out, "## Fairness (pool 6, backend delay 20 ms, each client 4 sessions x 8 calls in flight, {} s)\n", secs.as_secs());
    for weights in [[1u32, 1, 1], [1, 2, 4]] {
        let mut config =
            String::from("[pool]\nmax_sessions = 6\n[scheduler]\nqueue_timeout_secs = 120\n");
        let mut classes = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            let token = format!("bench-token-{i}");
            let _ = write!(config, "[[clients]]\nid = \"c{i}\"\ntoken_sha256 = \"{}\"\nweight = {w}\nmax_concurrent = 6\n", sha(&token));
            classes.push(Class {
                name: format!("c{i} (weight {w})"),
                sessions: 4,
                token: Some(token),
                in_flight: 8,
            });
        }
        let server = start_server(bin, port, &config).await?;
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        let total: usize = reports.iter().map(|r| r.completed).sum();
        let weight_sum: u32 = weights.iter().sum();
        let _ = writeln!(out, "Weights {weights:?}:\n\n| client | calls | share | weight share | p50 ms | p99 ms |\n|---|---|---|---|---|---|");
        let mut normalized = Vec::new();
        for ((r, s), w) in reports
            .iter()
            .zip(summarize(&reports, secs.as_secs_f64()))
            .zip(weights)
        {
            let share = r.completed as f64 / total.max(1) as f64;
            let target = w as f64 / weight_sum as f64;
            normalized.push(share / target);
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.1} | {:.1} |",
                r.name, r.completed, share, target, s.2, s.4
            );
        }
        let _ = writeln!(
            out,
            "\nJain's index of throughput normalized by weight: **{:.4}**\n",
            jain(&normalized)
        );
    }
    Ok(())
}

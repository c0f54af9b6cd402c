//! `isolation`: a light client's latency alone, then beside two heavy clients that keep far more
//! calls in flight than their fair share of the pool.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::{sha, start_responder, start_server};
use crate::load::{self, summarize, Class};

pub async fn isolation(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(20)).await;
    let mut config = String::from("[pool]\nmax_sessions = 8\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_per_client = 1000\n");
    for name in ["light", "heavy1", "heavy2"] {
        let _ = write!(
            config,
            "[[clients]]\nid = \"{name}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = 8\n",
            sha(name)
        );
    }
    // Light: two calls in flight, below its fair third of the pool; heavy: far above it.
    let light = Class {
        name: "light".into(),
        sessions: 2,
        token: Some("light".into()),
        in_flight: 1,
    };
    let heavy = |n: &str| Class {
        name: n.into(),
        sessions: 4,
        token: Some(n.into()),
        in_flight: 32,
    };
    let _ = writeln!(
        out,
        "## Light clients while heavy clients flood (pool 8, backend delay 20 ms, {} s)\n",
        secs.as_secs()
    );
    let _ = writeln!(
        out,
        "| run | class | calls/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|"
    );
    for (label, classes) in [
        ("light alone", vec![light.clone()]),
        (
            "light + 2 heavy",
            vec![light.clone(), heavy("heavy1"), heavy("heavy2")],
        ),
    ] {
        let server = start_server(bin, port, &config).await?;
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        for s in summarize(&reports, secs.as_secs_f64()) {
            let _ = writeln!(
                out,
                "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.0, s.1, s.2, s.3, s.4
            );
        }
    }
    let _ = writeln!(out);
    Ok(())
}

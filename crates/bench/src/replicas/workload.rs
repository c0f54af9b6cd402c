//! The load of the replicas scenario and what it counts: every client's sessions calling
//! `run_query` in a closed loop (errors by kind), the queries the store counted, the latencies of
//! one session's sequential calls, and the Valkey commands one call costs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CLIENTS, IN_FLIGHT, OVERHEAD_CALLS, SESSIONS, WARMUP};
use crate::external::Valkey;
use crate::load::{self, sorted};

/// What the load generator saw.
#[derive(Default)]
pub(super) struct Outcome {
    /// Latencies of the successful calls that completed inside the measured window.
    pub(super) window: Vec<Duration>,
    /// Successful calls per client over the whole run, warm-up included.
    pub(super) ok: Vec<usize>,
    /// Failed calls (and sessions that could not connect) by kind, over the whole run.
    pub(super) errors: BTreeMap<String, usize>,
    pub(super) first_error: Option<String>,
}

impl Outcome {
    fn error(&mut self, kind: &str, text: String) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
        self.first_error.get_or_insert(text);
    }
}

pub(super) type Sessions = Vec<(usize, Arc<load::Client>)>;

/// Every client's [`SESSIONS`]; failures to connect are errors of kind `connect`.
pub(super) async fn open(url: &str) -> (Sessions, Outcome) {
    let mut o = Outcome {
        ok: vec![0; CLIENTS.len()],
        ..Outcome::default()
    };
    let mut sessions = Vec::new();
    for (ci, id) in CLIENTS.iter().enumerate() {
        for _ in 0..SESSIONS {
            match load::connect(url, Some(id)).await {
                Ok(c) => sessions.push((ci, Arc::new(c))),
                Err(e) => o.error("connect", format!("connect: {e}")),
            }
        }
    }
    (sessions, o)
}

/// The sessions calling `run_query` in a closed loop for the warm-up and `secs`.
pub(super) async fn drive(sessions: Sessions, secs: Duration, o: &mut Outcome) {
    let start = Instant::now() + WARMUP;
    let end = start + secs;
    let mut tasks = Vec::new();
    for (ci, client) in &sessions {
        for _ in 0..IN_FLIGHT {
            let (ci, client) = (*ci, client.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Outcome {
                    ok: vec![0; CLIENTS.len()],
                    ..Outcome::default()
                };
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let r = load::call_tool(&client, "run_query", json!({"sql": "SELECT 1"})).await;
                    let t1 = Instant::now();
                    match r {
                        Ok(r) if r.is_error != Some(true) => {
                            mine.ok[ci] += 1;
                            if t1 >= start && t1 <= end {
                                mine.window.push(t1 - t0);
                            }
                        }
                        failed => {
                            let text = match failed {
                                Ok(r) => load::text(&r),
                                Err(e) => format!("transport: {e}"),
                            };
                            let kind = text.split(':').next().unwrap_or("").to_string();
                            mine.error(&kind, text);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                mine
            }));
        }
    }
    for t in tasks {
        let Ok(mine) = t.await else { continue };
        o.window.extend(mine.window);
        for (a, b) in o.ok.iter_mut().zip(mine.ok) {
            *a += b;
        }
        for (k, n) in mine.errors {
            *o.errors.entry(k).or_default() += n;
        }
        o.first_error = o.first_error.take().or(mine.first_error);
    }
    for (_, c) in sessions {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
}

/// Queries the store counted for all clients today (`get_context`, a new session per client).
pub(super) async fn store_counts(url: &str) -> Result<u64, String> {
    let mut total = 0;
    for id in CLIENTS {
        let c = load::connect(url, Some(id)).await?;
        let r = load::call_tool(&c, "get_context", json!({})).await;
        let _ = c.cancel().await;
        let content = r?.structured_content.unwrap_or_default();
        total += content["limits"]["quotas"]["queries_per_day"]["used"]
            .as_u64()
            .ok_or_else(|| format!("no queries_per_day in {content}"))?;
    }
    Ok(total)
}

/// Latencies of [`OVERHEAD_CALLS`] sequential calls of one session, after a warm-up.
pub(super) async fn sequential(url: &str) -> Result<Vec<Duration>, String> {
    let client = load::connect(url, Some(CLIENTS[0])).await?;
    for _ in 0..50 {
        load::call(&client, "SELECT 1").await?;
    }
    let mut l = Vec::with_capacity(OVERHEAD_CALLS);
    for _ in 0..OVERHEAD_CALLS {
        let t = Instant::now();
        load::call(&client, "SELECT 1").await?;
        l.push(t.elapsed());
    }
    let _ = client.cancel().await;
    Ok(sorted(l))
}

/// The Valkey commands one call costs: MONITOR over [`MONITORED`] sequential calls.
pub(super) async fn round_trips(url: &str, valkey: &Valkey) -> Result<String, String> {
    const MONITORED: usize = 200;
    let client = load::connect(url, Some(CLIENTS[0])).await?;
    load::call(&client, "SELECT 1").await?;
    let monitor = valkey.monitor().await?;
    for _ in 0..MONITORED {
        load::call(&client, "SELECT 1").await?;
    }
    // MONITOR lines arrive after the commands ran.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let [sent, scripted] = monitor.finish();
    let _ = client.cancel().await;
    let per = |m: &BTreeMap<String, u64>| {
        let total = m.values().sum::<u64>() as f64 / MONITORED as f64;
        let each: Vec<String> = m
            .iter()
            .map(|(c, n)| format!("{c} {:.2}", *n as f64 / MONITORED as f64))
            .collect();
        format!("**{total:.2}** ({})", each.join(", "))
    };
    Ok(format!(
        "Valkey commands per `run_query` call (one replica on Redis, MONITOR over {MONITORED} \
         sequential calls): sent by the replica {}; run inside its Lua scripts {}.",
        per(&sent),
        per(&scripted)
    ))
}

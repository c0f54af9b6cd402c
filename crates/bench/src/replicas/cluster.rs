//! Bringing a replicas setup up: its replicas on SQLite or on the shared Valkey store (flushed
//! first), each with the same two configured clients, and for the HAProxy setups a load balancer
//! in front with the setup's balance lines; and reading a metric from every replica.

use std::fmt::Write as _;
use std::path::Path;

use tokio::process::Child;

use super::{Front, Setup, Store, CLIENTS, POOL};
use crate::external::{start_haproxy, Valkey};
use crate::harness::{sha, start_server_with_state, Server};

/// What the scenario runs with.
pub(super) struct Env<'a> {
    pub(super) bin: &'a str,
    pub(super) haproxy: &'a Path,
    pub(super) valkey: &'a Valkey,
    pub(super) dir: &'a Path,
}

/// Replicas and, in front of them, HAProxy if the setup has one.
pub(super) struct Cluster {
    servers: Vec<Server>,
    _lb: Option<Child>,
    pub(super) url: String,
}

impl Env<'_> {
    pub(super) async fn bring_up(&self, s: Setup, responder: u16) -> Result<Cluster, String> {
        let state = match s.store {
            Store::Sqlite => None,
            Store::Redis => {
                // A clean store per setup: quotas counted from zero, no stale heartbeats.
                let ok = self.valkey.command(&["FLUSHALL"]).await?;
                if ok != "+OK" {
                    return Err(format!("FLUSHALL answered {ok}"));
                }
                Some(self.valkey.url())
            }
        };
        let mut servers = Vec::new();
        for _ in 0..s.replicas {
            servers.push(
                start_server_with_state(self.bin, responder, &config(), state.as_deref()).await?,
            );
        }
        let (lb, url) = match s.front {
            Front::Direct => (None, servers[0].url.clone()),
            front => {
                let backends: Vec<&str> = servers.iter().map(|s| host_port(&s.url)).collect();
                let (child, url) =
                    start_haproxy(self.haproxy, self.dir, &backends, balance(front)).await?;
                (Some(child), url)
            }
        };
        Ok(Cluster {
            servers,
            _lb: lb,
            url,
        })
    }
}

impl Cluster {
    /// Each replica's sum of the `/metrics` samples starting with `prefix` and containing
    /// `filter`, e.g. `2104 + 1987`.
    pub(super) async fn per_replica(&self, prefix: &str, filter: &str) -> String {
        let http = reqwest::Client::new();
        let mut counts = Vec::new();
        for s in &self.servers {
            let url = s.url.replace("/mcp", "/metrics");
            let page = match http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let n: f64 = page
                .lines()
                .filter(|l| l.starts_with(prefix) && l.contains(filter))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            counts.push(format!("{n:.0}"));
        }
        counts.join(" + ")
    }
}

/// The backend lines of `front`.
fn balance(front: Front) -> &'static str {
    match front {
        // A session's requests all carry its id, so they all hash to one replica: its SSE
        // streams, the progress of its calls in flight and its resumable events stay there.
        // A request without the header (`initialize`, which creates the id, and stateless
        // requests) is balanced round robin, HAProxy's documented fallback for `hdr()`: so
        // about half the sessions are created on one replica and then move, once, to the one
        // their id hashes to (the shared store carries them). Consistent hashing moves only
        // the sessions of a replica that comes or goes.
        Front::Hash => "balance hdr(Mcp-Session-Id)\n    hash-type consistent",
        // The stick table learns the replica from the `Mcp-Session-Id` of the response that
        // created the session, so no session moves; the hash decides for ids it does not know
        // (after an HAProxy restart, or on another HAProxy instance).
        Front::HashStick => {
            "balance hdr(Mcp-Session-Id)\n    hash-type consistent\n    \
             stick-table type string len 128 size 1m expire 2h\n    \
             stick on req.hdr(Mcp-Session-Id)\n    \
             stick store-response res.hdr(Mcp-Session-Id)"
        }
        // No affinity: each request to any replica; sessions come from the shared store.
        Front::RoundRobin | Front::Direct => "balance roundrobin",
    }
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT/mcp`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Every replica's config: two clients whose quota, rate limit and concurrency cap never bind
/// but are all checked (and, on Redis, kept in the shared store) on every call.
fn config() -> String {
    let mut c = format!("[pool]\nmax_sessions = {POOL}\n[scheduler]\nqueue_timeout_secs = 120\n");
    for id in CLIENTS {
        let _ = write!(
            c,
            "[[clients]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = {}\n\
             rate_per_minute = 600000\nburst = 1000\nqueries_per_day = 1000000000\n",
            sha(id),
            2 * POOL
        );
    }
    c
}

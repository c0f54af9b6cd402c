//! Admission: rate limits and quotas, checked before a call may queue for Snowflake.
//!
//! * **Rate limits** are token buckets on tool calls: one per client (`rate_per_minute`, burst
//!   `burst` or one minute's worth) and optionally one for the whole server. A refused call
//!   fails at once with `rate_limited` and `retry_after_ms`; buckets live in memory. The
//!   server's bucket is shared fairly ([`ServerRate`](crate::policy::rate::ServerRate)): once it is half empty, a client that has
//!   had its weighted share of the current minute is refused first, so one client cannot drain
//!   the server's rate for everybody.
//!   `get_context` is not counted: it touches no database and is how a model plans.
//! * **Quotas** count per UTC day and hour (`queries_per_day`, `rows_per_hour`, ...) in the
//!   [`StateStore`], so a restart never resets them. A `run_query` reserves at admission, in one
//!   atomic step, its query and the rows and bytes it may return — capped to what is left, and
//!   the query is then capped to that grant — so concurrent calls can never overrun a quota
//!   (100 concurrent calls against 10 remaining queries admit exactly 10; five concurrent
//!   100-row queries against 10 remaining rows return 10 rows in all). The [`Ticket`] is settled
//!   with what was returned; what was not used goes back. A reserved query is **refunded** only
//!   when it certainly never reached Snowflake (refused by the guard, bad arguments, busy, or
//!   cancelled while queued); any other failure counts, because Snowflake may have done the
//!   work. A ticket dropped unsettled — its call was cancelled or the server stopped — settles
//!   itself that way. Cost quotas (`statement_seconds_*`, `credits_*`) are reserved the same
//!   way, as session-time the statement may hold: see `ticket.rs`.
//!
//! The parts: `rate.rs` (buckets and the server's fair rate), `ticket.rs` (a reservation and
//! its settlement).

use crate::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::MICROCREDITS_PER_CREDIT;
use crate::error::ToolError;
use crate::policy::cluster::Cluster;
use crate::policy::{ClientPolicy, RatePolicy};
use crate::state::{Amounts, Cost, StateStore};

mod ticket;

use crate::policy::rate::{Bucket, Buckets, ServerRate};
#[cfg(test)]
use ticket::estimated_microcredits;
pub use ticket::Ticket;

/// The longest a quota reservation waits on the state store.
pub const QUOTA_DEADLINE: Duration = Duration::from_secs(3);
/// Time from `now` until the window named `window` ends.
pub fn until_reset(window: &str, now: DateTime<Utc>) -> Duration {
    let next = if window.starts_with("h:") {
        now.with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .map(|t| t + chrono::Duration::hours(1))
    } else {
        now.date_naive()
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    };
    next.and_then(|n| (n - now).to_std().ok())
        .unwrap_or(Duration::from_secs(60))
}

/// Rate limits and quotas.
pub struct Admission {
    store: Arc<dyn StateStore>,
    buckets: Mutex<Buckets>,
    server: Option<Mutex<ServerRate>>,
    /// With several replicas, clients' rate limits are kept cluster-wide there instead of in
    /// `buckets` (the server's own rate stays per replica).
    cluster: Option<Arc<Cluster>>,
}

impl Admission {
    pub fn new(
        store: Arc<dyn StateStore>,
        server_per_minute: Option<u32>,
        cluster: Option<Arc<Cluster>>,
    ) -> Admission {
        Admission {
            store,
            buckets: Mutex::new(Buckets::new(Instant::now())),
            server: server_per_minute.map(|n| Mutex::new(ServerRate::new(n, Instant::now()))),
            cluster,
        }
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Take a token for one tool call of `client`, or refuse with `rate_limited`.
    pub async fn check_rate(&self, client: &ClientPolicy) -> Result<(), ToolError> {
        if let Some(rate) = client.rate {
            if let Err(wait) = self.take_client_token(client, rate).await {
                return Err(rate_limited(
                    &format!(
                        "client '{}' is over its limit of {} calls per minute",
                        client.id, rate.per_minute
                    ),
                    wait,
                ));
            }
        }
        if let Some(server) = &self.server {
            let taken = lock(server).take(&client.id, client.weight, Instant::now());
            if let Err(wait) = taken {
                if let Some(rate) = client.rate {
                    self.give_back_client_token(client, rate).await;
                }
                return Err(rate_limited("the server is over its total call rate", wait));
            }
        }
        Ok(())
    }

    async fn take_client_token(
        &self,
        client: &ClientPolicy,
        rate: RatePolicy,
    ) -> Result<(), Duration> {
        if let Some(cluster) = &self.cluster {
            return cluster.take_rate(&client.id, rate).await;
        }
        let now = Instant::now();
        lock(&self.buckets).take(
            &client.id,
            || Bucket::new(rate.per_minute, rate.burst, now),
            now,
        )
    }

    async fn give_back_client_token(&self, client: &ClientPolicy, rate: RatePolicy) {
        if let Some(cluster) = &self.cluster {
            return cluster.give_back(&client.id, rate).await;
        }
        if let Some(b) = lock(&self.buckets).get_mut(&client.id) {
            b.give_back();
        }
    }

    /// For a query (`want` given: rows and bytes, and its timeout and warehouse's rate),
    /// reserve its quota grant. The rate limit is checked before, with [`Admission::check_rate`].
    pub async fn admit(
        &self,
        client: &ClientPolicy,
        want: Option<(Amounts, Cost)>,
    ) -> Result<Option<Ticket>, ToolError> {
        match want {
            Some((want, cost)) => self.reserve(client, want, cost).await,
            None => Ok(None),
        }
    }

    /// Reserve one query against `client`'s quotas, with up to `want` rows and bytes and, under
    /// a cost quota, session-time up to its timeout at its warehouse's rate (`cost`); the grant
    /// may be less, and the query must stay within it.
    pub async fn reserve(
        &self,
        client: &ClientPolicy,
        want: Amounts,
        cost: Cost,
    ) -> Result<Option<Ticket>, ToolError> {
        if client.quotas.is_unlimited() {
            return Ok(None);
        }
        let now = Utc::now();
        let windows = client.quotas.windows(now);
        self.reserve_in(client, client.id.clone(), windows, (want, cost), None, now)
            .await
    }

    /// Reserve one Cortex call against `client`'s `cortex_calls_per_*`, counted apart from its
    /// queries (under a key of its own in the store); settled like a query's ticket.
    pub async fn reserve_cortex(&self, client: &ClientPolicy) -> Result<Option<Ticket>, ToolError> {
        let now = Utc::now();
        let windows = client.quotas.cortex_windows(now);
        if windows.is_empty() {
            return Ok(None);
        }
        let key: Arc<str> = format!("{}\u{1f}cortex", client.id).into();
        let want = (Amounts::default(), Cost::default());
        self.reserve_in(client, key, windows, want, Some("Cortex calls"), now)
            .await
    }

    /// Reserve `want` under `key` in `windows`; a refusal names the quota `noun` when given.
    async fn reserve_in(
        &self,
        client: &ClientPolicy,
        key: Arc<str>,
        windows: Vec<(String, crate::state::WindowLimits)>,
        (want, cost): (Amounts, Cost),
        noun: Option<&'static str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, ToolError> {
        // A locked or slow state store fails this call clearly instead of stalling everyone.
        let reserved = tokio::time::timeout(
            QUOTA_DEADLINE,
            self.store.reserve(&key, &windows, want, cost),
        )
        .await
        .map_err(|_| {
            let mut e = ToolError::new(
                "unavailable",
                format!(
                    "the quota store did not answer within {} s; retry shortly",
                    QUOTA_DEADLINE.as_secs()
                ),
            );
            e.retry_after_ms = Some(1_000);
            e
        })?;
        match reserved.map_err(store_error)? {
            Ok(granted) => Ok(Some(Ticket {
                store: self.store.clone(),
                client: key,
                windows: windows.into_iter().map(|(w, _)| w).collect(),
                granted,
                reached: crate::observe::progress::tracker(),
                credits_per_hour: cost.microcredits_per_hour as f64 / MICROCREDITS_PER_CREDIT,
                settled: false,
            })),
            Err(exceeded) => {
                let wait = until_reset(&exceeded.window, now);
                let period = if exceeded.window.starts_with("h:") {
                    "hour"
                } else {
                    "day"
                };
                let reset = now + chrono::Duration::from_std(wait).unwrap_or_default();
                // Credits are counted in millionths and configured in credits.
                let limit = if exceeded.quota == "credits" {
                    (exceeded.limit as f64 / MICROCREDITS_PER_CREDIT).to_string()
                } else {
                    exceeded.limit.to_string()
                };
                // Session-time is reserved up front: part of it may come back.
                let running = if matches!(exceeded.quota, "statement seconds" | "credits") {
                    " (what statements still running reserved and do not use comes back when they end)"
                } else {
                    ""
                };
                let mut e = ToolError::new(
                    "quota_exceeded",
                    format!(
                        "client '{}' has used its quota of {} {} per {period}{running}; it resets at {} UTC (in {})",
                        client.id,
                        limit,
                        noun.unwrap_or(exceeded.quota),
                        reset.format("%Y-%m-%d %H:%M"),
                        human(wait)
                    ),
                );
                e.retry_after_ms = Some(wait.as_millis() as u64);
                Err(e)
            }
        }
    }

    /// Remaining quota and rate headroom, for `get_context`.
    pub async fn headroom(&self, client: &ClientPolicy) -> Result<Value, ToolError> {
        let now = Utc::now();
        let mut quotas = serde_json::Map::new();
        let mut unavailable = None;
        for (window, limits) in client.quotas.windows(now) {
            // The rest of the context is still worth having when the store cannot answer.
            let used = match self.store.usage(&client.id, &window).await {
                Ok(used) => used,
                Err(e) => {
                    unavailable = Some(format!("{e}; try again shortly"));
                    break;
                }
            };
            let period = if window.starts_with("h:") {
                "hour"
            } else {
                "day"
            };
            for (name, limit, used) in [
                ("queries", limits.queries, used.queries),
                ("rows", limits.rows, used.rows),
                ("bytes", limits.bytes, used.bytes),
            ] {
                if let Some(limit) = limit {
                    quotas.insert(
                        format!("{name}_per_{period}"),
                        json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "resets_in_s": until_reset(&window, now).as_secs()}),
                    );
                }
            }
            // Cost quotas, in their own units: seconds and credits (with decimals).
            for (name, limit, used) in [
                (
                    "statement_seconds",
                    limits.seconds.map(|s| s as f64),
                    used.ms as f64 / 1000.0,
                ),
                (
                    "credits",
                    limits
                        .microcredits
                        .map(|m| m as f64 / MICROCREDITS_PER_CREDIT),
                    used.microcredits as f64 / MICROCREDITS_PER_CREDIT,
                ),
            ] {
                if let Some(limit) = limit {
                    quotas.insert(
                        format!("{name}_per_{period}"),
                        json!({"limit": limit, "used": used, "remaining": (limit - used).max(0.0), "resets_in_s": until_reset(&window, now).as_secs()}),
                    );
                }
            }
        }
        let rate = match client.rate {
            Some(r) => {
                let available = match &self.cluster {
                    Some(cluster) => cluster.available(&client.id, r).await,
                    None => lock(&self.buckets)
                        .get_mut(&client.id)
                        .map_or(u64::from(r.burst.unwrap_or(r.per_minute)), |b| {
                            b.available(Instant::now())
                        }),
                };
                Some(json!({"per_minute": r.per_minute, "available_now": available}))
            }
            None => None,
        };
        let mut headroom = json!({"quotas": quotas, "rate_limit": rate});
        if let Some(why) = unavailable {
            headroom["quotas_unavailable"] = json!(why);
        }
        Ok(headroom)
    }
}

fn rate_limited(what: &str, wait: Duration) -> ToolError {
    let mut e = ToolError::new(
        "rate_limited",
        format!("retry in {:.1} s; {what}", wait.as_secs_f64()),
    );
    e.retry_after_ms = Some(wait.as_millis().max(1) as u64);
    e
}

fn store_error(e: crate::state::StoreError) -> ToolError {
    let mut t = ToolError::new("unavailable", format!("{e}; try again shortly"));
    t.retry_after_ms = Some(1000);
    t
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;

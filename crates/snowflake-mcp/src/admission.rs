//! Admission: rate limits and quotas, checked before a call may queue for Snowflake.
//!
//! * **Rate limits** are token buckets on tool calls: one per client (`rate_per_minute`, burst
//!   `burst` or one minute's worth) and optionally one for the whole server. A refused call
//!   fails at once with `rate_limited` and `retry_after_ms`; buckets live in memory. The
//!   server's bucket is shared fairly ([`ServerRate`]): once it is half empty, a client that has
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
//!   itself that way.

use crate::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::ToolError;
use crate::policy::{ClientPolicy, RatePolicy};
use crate::progress::{Stage, Tracker};
use crate::store::{Amounts, Grant, Spent, StateStore, MICROCREDITS_PER_CREDIT};

/// The longest a quota reservation waits on the state store.
pub const QUOTA_DEADLINE: Duration = Duration::from_secs(3);

/// A token bucket: `capacity` tokens, refilled at `per_sec`.
///
/// Hand-written on purpose rather than built on `governor` (issue 12 weighed it): governor's
/// GCRA cannot give a token back ([`Bucket::give_back`], when the server's rate refuses a call
/// the client's bucket admitted), reports remaining capacity only as a side effect of taking a
/// token (we need [`Bucket::available`] without taking, for the fair share and `get_context`),
/// and cannot express `per_minute = 0`. This bucket also takes `now` from tokio's clock, so the
/// unit tests run on a paused clock.
#[derive(Clone, Debug)]
pub struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `per_minute` calls per minute with bursts of `burst` (default: one minute's worth).
    pub fn new(per_minute: u32, burst: Option<u32>, now: Instant) -> Bucket {
        let capacity = f64::from(burst.unwrap_or(per_minute).max(1));
        Bucket {
            capacity,
            per_sec: f64::from(per_minute) / 60.0,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Take one token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_sec <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }

    /// Give a token back (a later check refused the call).
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.floor() as u64
    }
}

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
    buckets: Mutex<HashMap<Arc<str>, Bucket>>,
    server: Option<Mutex<ServerRate>>,
    /// With several replicas, clients' rate limits are kept cluster-wide there instead of in
    /// `buckets` (the server's own rate stays per replica).
    cluster: Option<Arc<Cluster>>,
}

/// The server-wide rate limit, shared by weight. Calls are counted per client in one-minute
/// windows; while the bucket is more than half full anyone may take a token, below that a
/// client whose calls this minute reached its share — `per_minute × weight / (weights of the
/// clients seen this minute + 1)`, the `+ 1` keeping room for a client not seen yet — is refused,
/// heaviest first, and the rest stays for the others.
pub struct ServerRate {
    bucket: Bucket,
    per_minute: u32,
    window: Instant,
    calls: HashMap<Arc<str>, (u32, u32)>,
}

impl ServerRate {
    pub fn new(per_minute: u32, now: Instant) -> ServerRate {
        ServerRate {
            bucket: Bucket::new(per_minute, None, now),
            per_minute,
            window: now,
            calls: HashMap::new(),
        }
    }

    /// Take a token for one call of `client` (of `weight`), or say how long to wait.
    pub fn take(&mut self, client: &Arc<str>, weight: u32, now: Instant) -> Result<(), Duration> {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(60) {
            self.window = now;
            self.calls.clear();
        }
        let available = self.bucket.available(now);
        if available * 2 < u64::from(self.per_minute) {
            let mine = self.calls.get(client).map_or(0, |c| c.0);
            let others: u32 = self
                .calls
                .iter()
                .filter(|(id, _)| *id != client)
                .map(|(_, c)| c.1)
                .sum();
            let share = u64::from(self.per_minute) * u64::from(weight.max(1))
                / (u64::from(others) + u64::from(weight.max(1)) + 1);
            if u64::from(mine) >= share.max(1) {
                let rest = Duration::from_secs(60)
                    .saturating_sub(now.saturating_duration_since(self.window));
                return Err(rest.max(Duration::from_millis(1)));
            }
        }
        self.bucket.take(now)?;
        let entry = self
            .calls
            .entry(client.clone())
            .or_insert((0, weight.max(1)));
        entry.0 += 1;
        Ok(())
    }
}

/// A reserved query, settled once its outcome is known — or, if dropped unsettled (the call
/// was cancelled), settled as returning nothing, refunded if it never reached Snowflake. Either
/// way the session-time its statements held is charged, and credits estimated from it.
pub struct Ticket {
    store: Arc<dyn StateStore>,
    client: Arc<str>,
    windows: Vec<String>,
    granted: Grant,
    reached: Tracker,
    /// The warehouse's credits per hour (0 when unknown).
    credits_per_hour: f64,
    settled: bool,
}

impl Ticket {
    /// What this query may use: rows, bytes, and session-time left.
    pub fn granted(&self) -> Grant {
        self.granted
    }

    /// What the call's statements cost so far.
    fn spent(&self) -> Spent {
        let ms = self.reached.held_ms();
        Spent {
            ms,
            microcredits: estimated_microcredits(ms, self.credits_per_hour),
        }
    }

    /// Settle with the call's outcome: `Ok(used)` charges what was returned (never more than
    /// granted), a refusal that never reached Snowflake refunds the query.
    pub async fn settle(mut self, outcome: Result<Amounts, &ToolError>) {
        self.settled = true;
        let (used, ran) = match outcome {
            Ok(used) => (used, true),
            Err(e) => (
                Amounts::default(),
                !matches!(e.kind, "not_allowed" | "invalid_argument" | "busy")
                    && (e.kind != "cancelled" || self.reached.reached(Stage::Running)),
            ),
        };
        let spent = self.spent();
        settle(
            &self.store,
            &self.client,
            &self.windows,
            &self.granted,
            used,
            ran,
            spent,
        )
        .await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let spent = self.spent();
        let (store, client, windows, granted) = (
            self.store.clone(),
            self.client.clone(),
            std::mem::take(&mut self.windows),
            self.granted,
        );
        let ran = self.reached.reached(Stage::Running);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                settle(
                    &store,
                    &client,
                    &windows,
                    &granted,
                    Amounts::default(),
                    ran,
                    spent,
                )
                .await
            });
        }
    }
}

/// The credits `ms` of session-time on a warehouse of `credits_per_hour` cost, in millionths.
fn estimated_microcredits(ms: u64, credits_per_hour: f64) -> u64 {
    (ms as f64 * credits_per_hour * MICROCREDITS_PER_CREDIT / 3_600_000.0).round() as u64
}

async fn settle(
    store: &Arc<dyn StateStore>,
    client: &str,
    windows: &[String],
    granted: &Grant,
    used: Amounts,
    ran: bool,
    spent: Spent,
) {
    let used = Amounts {
        rows: used.rows.min(granted.amounts.rows),
        bytes: used.bytes.min(granted.amounts.bytes),
    };
    if let Err(e) = store
        .settle(client, windows, granted, used, ran, spent)
        .await
    {
        tracing::error!(error = %e, client, "could not record quota usage");
    }
}

impl Admission {
    pub fn new(
        store: Arc<dyn StateStore>,
        server_per_minute: Option<u32>,
        cluster: Option<Arc<Cluster>>,
    ) -> Admission {
        Admission {
            store,
            buckets: Mutex::new(HashMap::new()),
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
        lock(&self.buckets)
            .entry(client.id.clone())
            .or_insert_with(|| Bucket::new(rate.per_minute, rate.burst, now))
            .take(now)
    }

    async fn give_back_client_token(&self, client: &ClientPolicy, rate: RatePolicy) {
        if let Some(cluster) = &self.cluster {
            return cluster.give_back(&client.id, rate).await;
        }
        if let Some(b) = lock(&self.buckets).get_mut(&client.id) {
            b.give_back();
        }
    }

    /// For a query (`want` given: rows and bytes, and the warehouse's credits per hour),
    /// reserve its quota grant. The rate limit is checked before, with [`Admission::check_rate`].
    pub async fn admit(
        &self,
        client: &ClientPolicy,
        want: Option<(Amounts, f64)>,
    ) -> Result<Option<Ticket>, ToolError> {
        match want {
            Some((want, credits_per_hour)) => self.reserve(client, want, credits_per_hour).await,
            None => Ok(None),
        }
    }

    /// Reserve one query against `client`'s quotas, with up to `want` rows and bytes (the
    /// grant may be less; the query must stay within it).
    pub async fn reserve(
        &self,
        client: &ClientPolicy,
        want: Amounts,
        credits_per_hour: f64,
    ) -> Result<Option<Ticket>, ToolError> {
        if client.quotas.is_unlimited() {
            return Ok(None);
        }
        let now = Utc::now();
        let windows = client.quotas.windows(now);
        // A locked or slow state store fails this call clearly instead of stalling everyone.
        let reserved = tokio::time::timeout(
            QUOTA_DEADLINE,
            self.store.reserve(&client.id, &windows, want),
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
                client: client.id.clone(),
                windows: windows.into_iter().map(|(w, _)| w).collect(),
                granted,
                reached: crate::progress::tracker(),
                credits_per_hour,
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
                let mut e = ToolError::new(
                    "quota_exceeded",
                    format!(
                        "client '{}' has used its quota of {} {} per {period}; it resets at {} UTC (in {})",
                        client.id,
                        limit,
                        exceeded.quota,
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

fn store_error(e: crate::store::StoreError) -> ToolError {
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

//! # Stage: state — what outlives the process and is shared by replicas
//!
//! Owns the one narrow interface to durable, shared state ([`StateStore`], and
//! [`coordinator::Coordinator`] for limits across replicas) and its two implementations. It
//! stores what other stages decide and imports none of them: no policy, no MCP, no backend.
//!
//! The state store: MCP sessions and quota usage that survive restarts.
//!
//! [`StateStore`] is the narrow interface the rest of the server uses — a handful of session
//! and usage operations, all async, all keyed by plain strings — so a shared store for several
//! replicas (Redis, Postgres) can replace [`SqliteStore`] without touching tools, scheduler or
//! transports. The contract an implementation must keep:
//!
//! * `reserve` is atomic: it adds one query (and the rows and bytes it grants) to every window
//!   only if each stays within its limits, and refuses otherwise (never overruns under
//!   concurrency); `settle` gives back exactly what was reserved and not used;
//! * each [`Grant`] is settled once (its `Ticket` sees to it); a shared store also makes a
//!   repeated settlement harmless (a replica retrying after a lost reply);
//! * a call that returned `Ok` is durable: it survives the process being killed.
//!
//! Two implementations, interchangeable behind the trait: [`SqliteStore`] (`sqlite.rs`), the
//! embedded default for one process, and [`RedisStore`] (`redis.rs`), shared by every replica
//! of a cluster. A shared store says so ([`StateStore::shared`]): the session door then checks
//! its record on every request (a session deleted on another replica ends here too), and the
//! store also coordinates rate limits and concurrency across replicas (`policy/cluster.rs`).

use async_trait::async_trait;

use crate::Context;

/// A store failure (disk, corruption); callers turn it into an `unavailable` tool error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state store: {}", self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// One persisted MCP session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub context: Option<Context>,
    /// The `initialize` parameters as JSON, for rmcp's session restore.
    pub init_params: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub last_seen: i64,
}

/// Usage in one window (`d:2026-11-24` or `h:2026-11-24T13`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub queries: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Session-time its statements held, milliseconds.
    pub ms: u64,
    /// Estimated warehouse credits, millionths.
    pub microcredits: u64,
}

/// What a finished query cost: session-time (milliseconds) and estimated credits (millionths).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub ms: u64,
    pub microcredits: u64,
}

/// A reservation's grant: the rows and bytes the query may return, and the session-time (and
/// credits) reserved for it — its statement timeout is capped to that reservation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub amounts: Amounts,
    /// Session-time reserved, milliseconds (whole seconds, at least one); `None` when no cost
    /// quota applies (nothing caps the statement's timeout).
    pub ms: Option<u64>,
    /// Credits reserved with it, millionths (at the warehouse's rate).
    pub microcredits: u64,
    /// The store's name for this reservation, so a settlement is applied once (0: the store
    /// needs none).
    pub reservation: u64,
}

/// What a statement's session-time may cost: the longest it may run (its statement timeout) and
/// what an hour of it costs on its warehouse. Cost quotas reserve from it before the statement
/// starts, as rows and bytes are reserved ([`cost_grant`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// The statement's timeout, milliseconds.
    pub ms: u64,
    /// Its warehouse's credits per hour, millionths (0: unknown; credits then cap nothing).
    pub microcredits_per_hour: u64,
}

/// The smallest session-time reservation: Snowflake's statement timeout counts whole seconds.
pub const MIN_GRANT_MS: u64 = 1000;

/// The session-time granted to a statement that may run `want_ms` when `free_ms` are left
/// (unreserved) in its tightest cost quota: at most half of what is left, in whole seconds, so
/// that statements started together split it instead of each being granted all of it; at least
/// one second (the shortest timeout Snowflake takes), so a quota is overrun by less than a
/// second in total — once nothing is left, nothing more is granted. `reserve.lua` computes the
/// same.
pub fn cost_grant(want_ms: u64, free_ms: u64) -> u64 {
    let share = free_ms / 2 / 1000 * 1000;
    want_ms.min(share).max(MIN_GRANT_MS)
}

/// The session-time `microcredits` buy at `per_hour` (millionths of a credit per hour), rounded
/// down.
pub fn ms_for_microcredits(microcredits: u64, per_hour: u64) -> u64 {
    (u128::from(microcredits) * 3_600_000 / u128::from(per_hour.max(1))).min(u128::from(u64::MAX))
        as u64
}

/// The credits `ms` of session-time cost at `per_hour` (millionths per hour), rounded up.
pub fn microcredits_for_ms(ms: u64, per_hour: u64) -> u64 {
    (u128::from(ms) * u128::from(per_hour))
        .div_ceil(3_600_000)
        .min(u128::from(u64::MAX)) as u64
}

/// Rows and bytes: what a query asks to reserve, what it was granted, what it used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    pub rows: u64,
    pub bytes: u64,
}

/// Limits of one window; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowLimits {
    pub queries: Option<u64>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    /// Session-time, seconds (`statement_seconds_per_*`).
    pub seconds: Option<u64>,
    /// Estimated credits, millionths (`credits_per_*`).
    pub microcredits: Option<u64>,
}

/// Why a reservation was refused: which window and which quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub window: String,
    pub quota: &'static str,
    pub limit: u64,
}

/// Which audit records the operator asks for; `None` matches any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub client: Option<String>,
    pub status: Option<String>,
    pub tool: Option<String>,
    /// Records at or after this Unix-milliseconds time.
    pub since_ms: Option<i64>,
}

impl AuditFilter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.client.as_ref().is_none_or(|c| *c == r.client_id)
            && self.status.as_ref().is_none_or(|s| *s == r.status)
            && self.tool.as_ref().is_none_or(|t| *t == r.tool)
            && self.since_ms.is_none_or(|t| r.time_ms >= t)
    }
}

/// One audited tool call.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub time_ms: i64,
    pub client_id: String,
    pub session_id: Option<String>,
    pub tool: String,
    pub statement: Option<String>,
    pub query_id: Option<String>,
    /// `ok` or the error kind.
    pub status: String,
    pub rows: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error_code: Option<String>,
    /// For a write: its kind and target (`INSERT SCRATCH.PUBLIC.T`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<String>,
    /// For a write: who confirmed it, how, and what they were shown; or why nobody was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<String>,
}

#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// True when other replicas share this store (their sessions, usage and history are ours).
    fn shared(&self) -> bool {
        false
    }

    /// Insert or update a session; fields given as `None` keep their stored value. The owner
    /// (`client_id`) is written once: the first one recorded stays, whatever later saves say.
    async fn save_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// A session deleted from a shared store may come back as a record without an owner (a
    /// tombstone), which every ownership check refuses.
    async fn load_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError>;
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;
    /// Delete sessions not seen since `before` (Unix seconds); returns how many.
    async fn expire_sessions(&self, before: i64) -> Result<usize, StoreError>;
    /// Sessions kept for the owner group `group` (see [`owner_group`]) seen since `since` (Unix
    /// seconds): what `[sessions] max_stored_per_client` / `max_stored_anonymous` bound.
    async fn count_sessions(&self, group: &str, since: i64) -> Result<usize, StoreError>;

    /// Reserve one query, and up to `want` rows and bytes, in every window — only if each
    /// window stays within its limits, atomically (concurrent reservations never overrun a
    /// quota). Rows and bytes are granted up to what every window has left (the query is then
    /// capped to the grant); a window with no rows (bytes) left refuses the query. When a
    /// window limits session-time or credits (these at `cost`'s rate), session-time is
    /// reserved too, [`cost_grant`] of what is left unreserved, with its credits, in every
    /// window; a window with none left refuses the query.
    async fn reserve(
        &self,
        client: &str,
        windows: &[(String, WindowLimits)],
        want: Amounts,
        cost: Cost,
    ) -> Result<Result<Grant, Exceeded>, StoreError>;
    /// Settle a reservation: give back what was `granted` but not `used`, and the query itself
    /// when it never `ran`; charge what it `spent` (session-time, credits) in place of the
    /// session-time and credits reserved.
    async fn settle(
        &self,
        client: &str,
        windows: &[String],
        granted: &Grant,
        used: Amounts,
        ran: bool,
        spent: Spent,
    ) -> Result<(), StoreError>;
    async fn usage(&self, client: &str, window: &str) -> Result<Usage, StoreError>;
    /// Make sure everything is on disk (graceful shutdown).
    async fn flush(&self) -> Result<(), StoreError>;

    /// Write audit records, all or none.
    async fn record_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(record)).await
    }
    /// A client's most recent records, newest first.
    async fn history(&self, client: &str, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// The most recent records of every client that match `filter`, newest first (the
    /// operator's audit trail).
    async fn recent_audit(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Delete records older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<usize, StoreError>;

    /// Keep a handle's record until `expires_ms` (Unix milliseconds). `key` names the handle
    /// (a digest of it: the store never holds a usable handle); `record` is opaque to the
    /// store. The owner is written once: a save under another owner changes nothing and
    /// returns `false`.
    async fn save_handle(
        &self,
        key: &str,
        owner: &str,
        record: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError>;
    /// A handle's owner and record, unless it is unknown or expired.
    async fn load_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError>;
    /// Load and delete a handle in one step: of callers racing for the same handle, on any
    /// replica, exactly one gets it (single-use tokens).
    async fn take_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError>;
}

/// A handle's record as kept by [`StateStore::save_handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHandle {
    pub owner: String,
    pub record: String,
}

/// The group whose stored sessions are bounded together: every anonymous client is one group
/// (each anonymous session is a client of its own), anyone else is their own.
pub fn owner_group(client_id: &str) -> &str {
    if client_id.starts_with(crate::principal::ANONYMOUS_PREFIX) {
        ANONYMOUS_GROUP
    } else {
        client_id
    }
}

/// The owner group of every anonymous client.
pub const ANONYMOUS_GROUP: &str = "anonymous";

pub(crate) fn context_json(c: &Context) -> String {
    serde_json::json!({"database": c.database, "schema": c.schema, "warehouse": c.warehouse, "role": c.role}).to_string()
}

pub(crate) fn context_from_json(text: &str) -> Option<Context> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(Context {
        database: field("database"),
        schema: field("schema"),
        warehouse: field("warehouse"),
        role: field("role"),
    })
}

pub mod coordinator;
mod redis;
mod sqlite;

pub use self::redis::{RedisOptions, RedisStore};
pub use sqlite::{default_state_path, SqliteStore};

#[cfg(test)]
mod tests;

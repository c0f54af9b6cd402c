//! The shared store: Redis (or Valkey, its wire-compatible fork) holds the state every replica
//! of a cluster must agree on — sessions, quota usage, history, rate limits and concurrency
//! leases — so a call can land on any replica.
//!
//! Everything that checks and changes in one step is a Lua script (`lua/`), which Redis runs
//! atomically on its primary: quota reservation and settlement, session saves (owner written
//! once), GCRA rate limits and concurrency leases on Redis's own clock. Keys (after
//! `key_prefix`, default `snowflake-mcp:`):
//!
//! | key | type | what |
//! |---|---|---|
//! | `session:<id>` | hash | one MCP session's owner, client info, context, times; expires after the idle timeout, refreshed on use |
//! | `{c:<client>}:usage:<window>` | hash | queries, rows, bytes, ms, microcredits of one day (`d:…`) or hour (`h:…`); expires after its window |
//! | `{c:<client>}:res:<n>` | string | an unsettled reservation (settled once) |
//! | `{c:<client>}:rate` | string | the client's GCRA theoretical arrival time |
//! | `{c:<client>}:leases` | sorted set | the client's statements in flight, scored by lease expiry |
//! | `{c:<client>}:history` | list | the client's newest audit records (JSON), capped |
//! | `{w:<WAREHOUSE>}:leases` | sorted set | statements in flight on a capped warehouse |
//! | `replicas` | sorted set | live replicas, scored by heartbeat expiry |
//! | `handle:<digest>` | hash | a result handle's owner and record; expires with the result |
//!
//! A client's keys share the Redis Cluster hash tag `{c:<client>}`, so one script may touch all
//! of its windows. Replication in Redis is asynchronous: a failover can lose the last
//! acknowledged increments.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{
    context_from_json, context_json, Amounts, AuditFilter, AuditRecord, Cost, Exceeded, Grant,
    Spent, StateStore, StoreError, StoredHandle, StoredSession, Usage, WindowLimits,
};
use crate::state::coordinator::Scope;

mod coordination;
mod scripts;
use scripts::Scripts;

/// How to reach and lay out the shared store.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db` or `rediss://` (TLS).
    pub url: String,
    /// Prepended to every key; several deployments can share one Redis.
    pub key_prefix: String,
    /// A session record expires after this long without use.
    pub session_ttl: Duration,
    /// Audit records kept per client for `query_history`.
    pub history_max: usize,
    /// And for how long.
    pub history_retention: Duration,
}

/// The Redis-backed [`StateStore`] and cluster [`Coordinator`].
pub struct RedisStore {
    conn: ConnectionManager,
    options: RedisOptions,
    scripts: Scripts,
}

/// Redis's answers are bounded: a command that gets no reply in this long fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        // The error names the operation and the server's reply, never the URL (and password).
        StoreError(format!("redis: {e}"))
    }
}

impl RedisStore {
    /// Connect to the store at `options.url`. The connection is made lazily and re-made in the
    /// background after a failure, so a replica starts (and recovers) while Redis is down; a
    /// malformed URL fails at once.
    pub fn open(options: RedisOptions) -> Result<Arc<RedisStore>, StoreError> {
        if options.key_prefix.contains(['{', '}']) {
            return Err(StoreError(
                "[state] key_prefix must not contain '{' or '}' (they delimit Redis Cluster hash tags)"
                    .into(),
            ));
        }
        if options.url.starts_with("rediss://") {
            // redis-rs builds its rustls client from the process's default crypto provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| StoreError(format!("[state] url is not a Redis URL ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Arc::new(RedisStore {
            conn,
            options,
            scripts: Scripts::load(),
        }))
    }

    /// Answer a PING (startup check, readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.options.key_prefix)
    }

    fn client_key(&self, client: &str, rest: &str) -> String {
        self.key(&format!("{{c:{client}}}:{rest}"))
    }

    fn session_key(&self, id: &str) -> String {
        self.key(&format!("session:{id}"))
    }

    /// The sorted set of an owner group's session ids, scored by when each record expires.
    fn group_key(&self, group: &str) -> String {
        self.client_key(group, "sessions")
    }

    fn scope_key(&self, scope: &Scope) -> String {
        match scope {
            Scope::Client(c) => self.client_key(c, "leases"),
            Scope::Warehouse(w) => self.key(&format!("{{w:{w}}}:leases")),
            Scope::Replicas => self.key("replicas"),
        }
    }
}

/// A window's lifetime in Redis: its length plus a day's margin for clock skew and late
/// settlements.
fn window_ttl(window: &str) -> u64 {
    if window.starts_with("h:") {
        3600 + 86_400
    } else {
        2 * 86_400
    }
}

fn limit(l: Option<u64>) -> i64 {
    l.map_or(-1, |v| v.min(i64::MAX as u64) as i64)
}

fn signed(v: u64) -> i64 {
    v.min(i64::MAX as u64 / 2) as i64
}

/// A session field for `session.lua`: '' keeps the stored value, '=value' sets it.
fn field(v: Option<&str>) -> String {
    v.map_or(String::new(), |v| format!("={v}"))
}

#[async_trait]
impl StateStore for RedisStore {
    fn shared(&self) -> bool {
        true
    }

    async fn save_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let context = s.context.as_ref().map(context_json);
        let _: i64 = self
            .scripts
            .session
            .key(self.session_key(&s.id))
            .arg(field(s.client_id.as_deref()))
            .arg(field(s.client_name.as_deref()))
            .arg(field(s.client_version.as_deref()))
            .arg(field(context.as_deref()))
            .arg(field(s.init_params.as_deref()))
            .arg(s.created)
            .arg(s.last_seen)
            .arg(self.options.session_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await?;
        if let Some(owner) = &s.client_id {
            // The group index (outside the script: another hash slot), so sessions can be
            // counted per owner; entries past their record's expiry are dropped when counted.
            let expires = crate::unix_now() + self.options.session_ttl.as_secs() as i64;
            let _: i64 = conn
                .zadd(self.group_key(super::owner_group(owner)), &s.id, expires)
                .await?;
        }
        Ok(())
    }

    async fn load_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        // Reading a session is using it: its expiry starts again.
        let key = self.session_key(id);
        let mut conn = self.conn.clone();
        let (h, _): (std::collections::HashMap<String, String>, i64) = redis::pipe()
            .hgetall(&key)
            .expire(&key, self.options.session_ttl.as_secs().max(1) as i64)
            .query_async(&mut conn)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        if h.contains_key("deleted") {
            // Ended: a record without an owner, which every check refuses.
            return Ok(Some(StoredSession {
                id: id.to_string(),
                ..Default::default()
            }));
        }
        let text = |k: &str| h.get(k).cloned();
        let number = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(StoredSession {
            id: id.to_string(),
            client_id: text("client_id"),
            client_name: text("client_name"),
            client_version: text("client_version"),
            context: h.get("context").and_then(|c| context_from_json(c)),
            init_params: text("init_params"),
            created: number("created"),
            last_seen: number("last_seen"),
        }))
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        // A tombstone, not just a missing record: a replica that still holds the session in
        // memory must tell "ended elsewhere" (404) from "record lost" (Redis restarted without
        // its data: the holder writes the record again).
        let key = self.session_key(id);
        let mut conn = self.conn.clone();
        let owner: Option<String> = conn.hget(&key, "client_id").await?;
        if let Some(owner) = owner {
            let _: i64 = conn
                .zrem(self.group_key(super::owner_group(&owner)), id)
                .await?;
        }
        let _: () = redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .hset(&key, "deleted", 1)
            .ignore()
            .expire(&key, self.options.session_ttl.as_secs().max(1) as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn expire_sessions(&self, _before: i64) -> Result<usize, StoreError> {
        // Redis expires session records itself (their TTL is refreshed on every save).
        Ok(0)
    }

    async fn count_sessions(&self, group: &str, since: i64) -> Result<usize, StoreError> {
        // Entries are scored by their record's expiry (refreshed by every save), and removed
        // when a session is deleted.
        let _ = since;
        let key = self.group_key(group);
        let mut conn = self.conn.clone();
        let (_, n): (i64, usize) = redis::pipe()
            .zrembyscore(&key, "-inf", crate::unix_now())
            .zcard(&key)
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    async fn reserve(
        &self,
        client: &str,
        windows: &[(String, WindowLimits)],
        want: Amounts,
        cost: Cost,
    ) -> Result<Result<Grant, Exceeded>, StoreError> {
        let reservation = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        let mut call = self.scripts.reserve.prepare_invoke();
        for (window, _) in windows {
            call.key(self.client_key(client, &format!("usage:{window}")));
        }
        call.key(self.client_key(client, &format!("res:{reservation}")));
        call.arg(windows.len())
            .arg(want.rows.min(i64::MAX as u64))
            .arg(want.bytes.min(i64::MAX as u64))
            .arg(2 * 86_400)
            .arg(cost.ms.min(i64::MAX as u64))
            .arg(cost.microcredits_per_hour.min(i64::MAX as u64));
        for (window, l) in windows {
            call.arg(limit(l.queries))
                .arg(limit(l.rows))
                .arg(limit(l.bytes))
                .arg(limit(l.seconds.map(|s| s.saturating_mul(1000))))
                .arg(limit(l.microcredits))
                .arg(window_ttl(window));
        }
        let mut conn = self.conn.clone();
        let answer: Vec<redis::Value> = call.invoke_async(&mut conn).await?;
        let int = |i: usize| match answer.get(i) {
            Some(redis::Value::Int(n)) => Ok(*n),
            other => Err(StoreError(format!("reserve.lua answered {other:?}"))),
        };
        if int(0)? == 1 {
            let ms = int(3)?;
            return Ok(Ok(Grant {
                amounts: Amounts {
                    rows: int(1)?.max(0) as u64,
                    bytes: int(2)?.max(0) as u64,
                },
                ms: (ms >= 0).then_some(ms as u64),
                microcredits: int(4)?.max(0) as u64,
                reservation,
            }));
        }
        let index = (int(1)?.max(1) - 1) as usize;
        let quota = match answer.get(2) {
            Some(redis::Value::BulkString(b)) => b.as_slice(),
            _ => b"",
        };
        let (quota, limit) = match quota {
            b"queries" => ("queries", int(3)?),
            b"seconds" => ("statement seconds", int(3)? / 1000),
            b"microcredits" => ("credits", int(3)?),
            b"rows" => ("rows", int(3)?),
            _ => ("bytes", int(3)?),
        };
        Ok(Err(Exceeded {
            window: windows.get(index).map(|w| w.0.clone()).unwrap_or_default(),
            quota,
            limit: limit.max(0) as u64,
        }))
    }

    async fn settle(
        &self,
        client: &str,
        windows: &[String],
        granted: &Grant,
        used: Amounts,
        ran: bool,
        spent: Spent,
    ) -> Result<(), StoreError> {
        let mut call = self.scripts.settle.prepare_invoke();
        for window in windows {
            call.key(self.client_key(client, &format!("usage:{window}")));
        }
        call.key(self.client_key(client, &format!("res:{}", granted.reservation)));
        call.arg(windows.len())
            .arg(i64::from(!ran))
            .arg(granted.amounts.rows.saturating_sub(used.rows))
            .arg(granted.amounts.bytes.saturating_sub(used.bytes))
            // What was spent replaces what was reserved.
            .arg(signed(spent.ms) - signed(granted.ms.unwrap_or(0)))
            .arg(signed(spent.microcredits) - signed(granted.microcredits));
        let mut conn = self.conn.clone();
        let _: i64 = call.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn usage(&self, client: &str, window: &str) -> Result<Usage, StoreError> {
        let mut conn = self.conn.clone();
        let v: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(self.client_key(client, &format!("usage:{window}")))
            .arg(&["queries", "rows", "bytes", "ms", "microcredits"])
            .query_async(&mut conn)
            .await?;
        let at = |i: usize| v.get(i).copied().flatten().unwrap_or(0);
        Ok(Usage {
            queries: at(0),
            rows: at(1),
            bytes: at(2),
            ms: at(3),
            microcredits: at(4),
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Durability is Redis's own (its AOF/RDB settings); nothing is buffered here.
        Ok(())
    }

    async fn record_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let keep = self.options.history_max.max(1) as isize;
        let retention = self.options.history_retention.as_millis().max(1) as i64;
        // Each record goes to its client's history and to everyone's recent trail (the
        // operator's), both capped and expiring.
        let recent = self.key("audit:recent");
        for r in records {
            let json = serde_json::to_string(r).map_err(|e| StoreError(e.to_string()))?;
            for key in [self.client_key(&r.client_id, "history"), recent.clone()] {
                pipe.lpush(&key, &json)
                    .ignore()
                    .ltrim(&key, 0, keep - 1)
                    .ignore()
                    .pexpire(&key, retention)
                    .ignore();
            }
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn history(&self, client: &str, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let items: Vec<String> = conn
            .lrange(self.client_key(client, "history"), 0, limit as isize - 1)
            .await?;
        // Newest first already (LPUSH); a record that does not parse is skipped, not fatal.
        Ok(items
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }

    async fn recent_audit(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let key = match &filter.client {
            Some(client) => self.client_key(client, "history"),
            None => self.key("audit:recent"),
        };
        let mut conn = self.conn.clone();
        let items: Vec<String> = conn.lrange(key, 0, -1).await?;
        Ok(items
            .iter()
            .filter_map(|j| serde_json::from_str::<AuditRecord>(j).ok())
            .filter(|r| filter.matches(r))
            .take(limit)
            .collect())
    }

    async fn prune_audit(&self, _before_ms: i64) -> Result<usize, StoreError> {
        // Histories are capped (`history_max`) and expire (`history_retention`) in Redis.
        Ok(0)
    }

    async fn save_handle(
        &self,
        key: &str,
        owner: &str,
        record: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let saved: i64 = self
            .scripts
            .handle
            .key(self.key(&format!("handle:{key}")))
            .arg(owner)
            .arg(record)
            .arg(expires_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(saved == 1)
    }

    async fn take_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError> {
        self.read_handle(key, true).await
    }

    async fn load_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError> {
        self.read_handle(key, false).await
    }
}

impl RedisStore {
    /// A handle's owner and record; with `take`, deleted in the same step.
    async fn read_handle(&self, key: &str, take: bool) -> Result<Option<StoredHandle>, StoreError> {
        let mut conn = self.conn.clone();
        let (owner, record): (Option<String>, Option<String>) = self
            .scripts
            .read_handle
            .key(self.key(&format!("handle:{key}")))
            .arg(if take { "take" } else { "read" })
            .invoke_async(&mut conn)
            .await?;
        Ok(owner
            .zip(record)
            .map(|(owner, record)| StoredHandle { owner, record }))
    }
}

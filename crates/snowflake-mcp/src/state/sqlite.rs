//! The embedded SQLite store: one process's sessions, quota usage and audit in one file.
//!
//! WAL mode with `synchronous = NORMAL`: a commit reaches the OS before the call returns (so
//! `kill -9` loses nothing that was acknowledged) without waiting for an fsync on the hot path.
//! Calls run on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    context_from_json, context_json, cost_grant, microcredits_for_ms, ms_for_microcredits, Amounts,
    AuditFilter, AuditRecord, Cost, Exceeded, Grant, Spent, StateStore, StoreError, StoredHandle,
    StoredSession, Usage, WindowLimits,
};
use crate::lock;

/// The embedded SQLite store.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Where the state lives by default: `$XDG_STATE_HOME/snowflake-mcp/state.db`, else
/// `~/.local/state/snowflake-mcp/state.db`.
pub fn default_state_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("snowflake-mcp").join("state.db")
}

impl SqliteStore {
    /// Open (creating if needed, readable by the owner only) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
            restrict(dir, 0o700);
        }
        let conn = Connection::open(path)?;
        restrict(path, 0o600);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                id TEXT PRIMARY KEY, client_id TEXT, client_name TEXT, client_version TEXT,
                context TEXT, init_params TEXT, created INTEGER NOT NULL, last_seen INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions(last_seen);
             CREATE INDEX IF NOT EXISTS sessions_client ON sessions(client_id);
             CREATE TABLE IF NOT EXISTS usage (
                client_id TEXT NOT NULL, window TEXT NOT NULL,
                queries INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
                ms INTEGER NOT NULL DEFAULT 0, microcredits INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (client_id, window));
             CREATE TABLE IF NOT EXISTS audit (
                time_ms INTEGER NOT NULL, client_id TEXT NOT NULL, session_id TEXT, tool TEXT NOT NULL,
                statement TEXT, query_id TEXT, status TEXT NOT NULL, rows INTEGER NOT NULL, bytes INTEGER NOT NULL,
                duration_ms INTEGER NOT NULL, error_code TEXT, write_target TEXT, confirmed TEXT);
             CREATE INDEX IF NOT EXISTS audit_client_time ON audit(client_id, time_ms);
             CREATE TABLE IF NOT EXISTS handles (
                key TEXT PRIMARY KEY, owner TEXT NOT NULL, record TEXT NOT NULL, expires_ms INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS handles_expiry ON handles(expires_ms);",
        )?;
        // Stores made before the cost quotas (and writes) lack their columns.
        let has = |table: &str, column: &str| -> Result<bool, StoreError> {
            Ok(conn
                .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
                .exists([table, column])?)
        };
        let has_column = |column: &str| has("usage", column);
        for column in ["write_target", "confirmed"] {
            if !has("audit", column)? {
                conn.execute_batch(&format!("ALTER TABLE audit ADD COLUMN {column} TEXT"))?;
            }
        }
        for column in ["ms", "microcredits"] {
            if !has_column(column)? {
                conn.execute_batch(&format!(
                    "ALTER TABLE usage ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                ))?;
                // The first cost quotas counted thousandths of a credit.
                if column == "microcredits" && has_column("millicredits")? {
                    conn.execute_batch("UPDATE usage SET microcredits = millicredits * 1000")?;
                }
            }
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&conn);
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError(format!("store worker failed: {e}")))?
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) {}

#[async_trait]
impl StateStore for SqliteStore {
    async fn save_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        let s = s.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO sessions (id, client_id, client_name, client_version, context, init_params, created, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET
                   client_id = COALESCE(client_id, excluded.client_id),
                   client_name = COALESCE(excluded.client_name, client_name),
                   client_version = COALESCE(excluded.client_version, client_version),
                   context = COALESCE(excluded.context, context),
                   init_params = COALESCE(excluded.init_params, init_params),
                   last_seen = MAX(excluded.last_seen, last_seen)",
                params![s.id, s.client_id, s.client_name, s.client_version, s.context.as_ref().map(context_json), s.init_params, s.created, s.last_seen],
            )?;
            Ok(())
        })
        .await
    }

    async fn load_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT id, client_id, client_name, client_version, context, init_params, created, last_seen FROM sessions WHERE id = ?1",
                [id],
                |r| {
                    Ok(StoredSession {
                        id: r.get(0)?,
                        client_id: r.get(1)?,
                        client_name: r.get(2)?,
                        client_version: r.get(3)?,
                        context: r.get::<_, Option<String>>(4)?.as_deref().and_then(context_from_json),
                        init_params: r.get(5)?,
                        created: r.get(6)?,
                        last_seen: r.get(7)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn expire_sessions(&self, before: i64) -> Result<usize, StoreError> {
        self.with(move |c| Ok(c.execute("DELETE FROM sessions WHERE last_seen < ?1", [before])?))
            .await
    }

    async fn count_sessions(&self, group: &str, since: i64) -> Result<usize, StoreError> {
        let group = group.to_string();
        self.with(move |c| {
            let n: i64 = if group == super::ANONYMOUS_GROUP {
                let prefix = crate::principal::ANONYMOUS_PREFIX;
                c.query_row(
                    "SELECT COUNT(*) FROM sessions WHERE substr(client_id, 1, ?1) = ?2 AND last_seen >= ?3",
                    params![prefix.len() as i64, prefix, since],
                    |r| r.get(0),
                )?
            } else {
                c.query_row(
                    "SELECT COUNT(*) FROM sessions WHERE client_id = ?1 AND last_seen >= ?2",
                    params![group, since],
                    |r| r.get(0),
                )?
            };
            Ok(n as usize)
        })
        .await
    }

    async fn reserve(
        &self,
        client: &str,
        windows: &[(String, WindowLimits)],
        want: Amounts,
        cost: Cost,
    ) -> Result<Result<Grant, Exceeded>, StoreError> {
        let (client, windows) = (client.to_string(), windows.to_vec());
        self.with(move |c| {
            let tx = c.transaction()?;
            let mut grant = want;
            // Session-time left unreserved in the tightest cost quota (credits converted).
            let mut free_ms: Option<u64> = None;
            for (window, limits) in &windows {
                let used = read_usage(&tx, &client, window)?;
                let exceeded = |quota, limit: Option<u64>| {
                    Ok(Err(Exceeded {
                        window: window.clone(),
                        quota,
                        limit: limit.unwrap_or(0),
                    }))
                };
                if limits.queries.is_some_and(|l| used.queries + 1 > l) {
                    return exceeded("queries", limits.queries);
                }
                if let Some(l) = limits.seconds {
                    let left = l.saturating_mul(1000).saturating_sub(used.ms);
                    if left == 0 {
                        return exceeded("statement seconds", limits.seconds);
                    }
                    free_ms = Some(free_ms.map_or(left, |m| m.min(left)));
                }
                if let Some(l) = limits.microcredits {
                    if used.microcredits >= l {
                        return exceeded("credits", limits.microcredits);
                    }
                    if cost.microcredits_per_hour > 0 {
                        let left =
                            ms_for_microcredits(l - used.microcredits, cost.microcredits_per_hour);
                        free_ms = Some(free_ms.map_or(left, |m| m.min(left)));
                    }
                }
                for (quota, limit, used, granted) in [
                    ("rows", limits.rows, used.rows, &mut grant.rows),
                    ("bytes", limits.bytes, used.bytes, &mut grant.bytes),
                ] {
                    if let Some(l) = limit {
                        let left = l.saturating_sub(used);
                        if left == 0 {
                            return exceeded(quota, limit);
                        }
                        *granted = (*granted).min(left);
                    }
                }
            }
            let ms = free_ms.map(|free| cost_grant(cost.ms, free));
            let microcredits =
                ms.map_or(0, |ms| microcredits_for_ms(ms, cost.microcredits_per_hour));
            for (window, _) in &windows {
                tx.execute(
                    "INSERT INTO usage (client_id, window, queries, rows, bytes, ms, microcredits)
                     VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)
                     ON CONFLICT(client_id, window) DO UPDATE SET queries = queries + 1,
                       rows = rows + excluded.rows, bytes = bytes + excluded.bytes,
                       ms = ms + excluded.ms, microcredits = microcredits + excluded.microcredits",
                    params![
                        client,
                        window,
                        grant.rows as i64,
                        grant.bytes as i64,
                        ms.unwrap_or(0) as i64,
                        microcredits as i64
                    ],
                )?;
            }
            tx.commit()?;
            Ok(Ok(Grant {
                amounts: grant,
                ms,
                microcredits,
                reservation: 0,
            }))
        })
        .await
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
        // What was spent replaces what was reserved (more or less).
        let (ms, microcredits) = (
            spent.ms as i64 - granted.ms.unwrap_or(0) as i64,
            spent.microcredits as i64 - granted.microcredits as i64,
        );
        let granted = granted.amounts;
        let (client, windows) = (client.to_string(), windows.to_vec());
        let unused_rows = granted.rows.saturating_sub(used.rows) as i64;
        let unused_bytes = granted.bytes.saturating_sub(used.bytes) as i64;
        let query = i64::from(!ran);
        self.with(move |c| {
            let tx = c.transaction()?;
            for w in &windows {
                tx.execute(
                    "UPDATE usage SET queries = MAX(queries - ?3, 0), rows = MAX(rows - ?4, 0),
                       bytes = MAX(bytes - ?5, 0), ms = MAX(ms + ?6, 0),
                       microcredits = MAX(microcredits + ?7, 0)
                     WHERE client_id = ?1 AND window = ?2",
                    params![
                        client,
                        w,
                        query,
                        unused_rows,
                        unused_bytes,
                        ms,
                        microcredits
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, client: &str, window: &str) -> Result<Usage, StoreError> {
        let (client, window) = (client.to_string(), window.to_string());
        self.with(move |c| read_usage(c, &client, &window)).await
    }

    async fn record_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                // Cached: one parse for the life of the connection, not one per record.
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit (time_ms, client_id, session_id, tool, statement, query_id, status, rows, bytes, duration_ms, error_code, write_target, confirmed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                for r in &records {
                    insert.execute(params![r.time_ms, r.client_id, r.session_id, r.tool, r.statement, r.query_id, r.status, r.rows as i64, r.bytes as i64, r.duration_ms as i64, r.error_code, r.write, r.confirmed])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn history(&self, client: &str, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let client = client.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT time_ms, client_id, session_id, tool, statement, query_id, status, rows, bytes, duration_ms, error_code, write_target, confirmed
                 FROM audit WHERE client_id = ?1 ORDER BY time_ms DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![client, limit as i64], Self::audit_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn recent_audit(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let filter = filter.clone();
        self.with(move |c| {
            // `?n IS NULL OR column = ?n`: one prepared statement whatever the filter.
            let mut stmt = c.prepare(
                "SELECT time_ms, client_id, session_id, tool, statement, query_id, status, rows, bytes, duration_ms, error_code, write_target, confirmed
                 FROM audit WHERE (?1 IS NULL OR client_id = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR tool = ?3) AND (?4 IS NULL OR time_ms >= ?4)
                 ORDER BY time_ms DESC, rowid DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![filter.client, filter.status, filter.tool, filter.since_ms, limit as i64],
                Self::audit_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.with(move |c| Ok(c.execute("DELETE FROM audit WHERE time_ms < ?1", [before_ms])?))
            .await
    }

    async fn save_handle(
        &self,
        key: &str,
        owner: &str,
        record: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        let (key, owner, record) = (key.to_string(), owner.to_string(), record.to_string());
        self.with(move |c| {
            // Expired handles go as new ones come (the index makes this cheap).
            c.execute(
                "DELETE FROM handles WHERE expires_ms < ?1",
                [chrono::Utc::now().timestamp_millis()],
            )?;
            let changed = c.execute(
                "INSERT INTO handles (key, owner, record, expires_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET record = excluded.record, expires_ms = excluded.expires_ms
                 WHERE owner = excluded.owner",
                params![key, owner, record, expires_ms],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn take_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            let taken = c
                .query_row(
                    "DELETE FROM handles WHERE key = ?1 RETURNING owner, record, expires_ms",
                    [key],
                    |r| {
                        Ok((
                            StoredHandle {
                                owner: r.get(0)?,
                                record: r.get(1)?,
                            },
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            let now = chrono::Utc::now().timestamp_millis();
            Ok(taken.filter(|(_, expires)| *expires >= now).map(|(h, _)| h))
        })
        .await
    }

    async fn load_handle(&self, key: &str) -> Result<Option<StoredHandle>, StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT owner, record FROM handles WHERE key = ?1 AND expires_ms >= ?2",
                params![key, chrono::Utc::now().timestamp_millis()],
                |r| {
                    Ok(StoredHandle {
                        owner: r.get(0)?,
                        record: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

impl SqliteStore {
    fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
        Ok(AuditRecord {
            time_ms: r.get(0)?,
            client_id: r.get(1)?,
            session_id: r.get(2)?,
            tool: r.get(3)?,
            statement: r.get(4)?,
            query_id: r.get(5)?,
            status: r.get(6)?,
            rows: r.get::<_, i64>(7)? as u64,
            bytes: r.get::<_, i64>(8)? as u64,
            duration_ms: r.get::<_, i64>(9)? as u64,
            error_code: r.get(10)?,
            write: r.get(11)?,
            confirmed: r.get(12)?,
        })
    }
}

fn read_usage(c: &Connection, client: &str, window: &str) -> Result<Usage, StoreError> {
    Ok(c.query_row(
        "SELECT queries, rows, bytes, ms, microcredits FROM usage WHERE client_id = ?1 AND window = ?2",
        params![client, window],
        |r| {
            Ok(Usage {
                queries: r.get::<_, i64>(0)? as u64,
                rows: r.get::<_, i64>(1)? as u64,
                bytes: r.get::<_, i64>(2)? as u64,
                ms: r.get::<_, i64>(3)? as u64,
                microcredits: r.get::<_, i64>(4)? as u64,
            })
        },
    )
    .optional()?
    .unwrap_or_default())
}

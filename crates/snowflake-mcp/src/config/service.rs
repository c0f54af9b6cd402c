//! The server's own sections of the `--config` file: how it listens (`[server]`), how long
//! MCP sessions live (`[sessions]`), waiting for and caching Snowflake work (`[scheduler]`,
//! `[cache]`, `[query]`, `[pool]`, `[warehouses.NAME]`), and where state and audit records
//! go (`[state]`, `[audit]`). Every key here is listed in `docs/configuration.md`.

use serde::Deserialize;

/// `[state]`: the state store. `sqlite` (the default) for one process; `redis` (or Valkey) for
/// several replicas sharing sessions, quotas, rate limits, concurrency caps and history.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `sqlite` or `redis`.
    pub backend: String,
    /// The SQLite file (default `~/.local/state/snowflake-mcp/state.db`).
    pub path: Option<std::path::PathBuf>,
    /// `redis://[user:password@]host:port/db`, or `rediss://` for TLS.
    pub url: Option<String>,
    /// Prepended to every Redis key.
    pub key_prefix: String,
    /// Audit records kept per client in Redis for `query_history`.
    pub history_max: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: "sqlite".into(),
            path: None,
            url: None,
            key_prefix: "snowflake-mcp:".into(),
            history_max: 1000,
        }
    }
}

/// `[warehouses.NAME]`: one warehouse's limits, across all clients.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// Statements in flight on this warehouse at once; more wait (others' warehouses do not).
    pub max_concurrent: usize,
}

/// `[audit]`: the record of every statement.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Also append each record as a JSON line to this file.
    pub jsonl_path: Option<std::path::PathBuf>,
    /// Days records are kept in the state store.
    pub retention_days: u32,
    /// Answer a call only once its record is committed (a `kill -9` then loses none), at about
    /// a third of a millisecond per call; by default records are committed just after.
    pub wait_for_commit: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            jsonl_path: None,
            retention_days: 30,
            wait_for_commit: false,
        }
    }
}

/// `[sessions]`: MCP sessions.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub max_total: usize,
    pub max_per_client: usize,
    /// Seconds without a request after which a session expires (`idle_timeout` too).
    #[serde(alias = "idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds without a tool call after which a session is parked: out of memory, kept in the
    /// state store, restored by its next request (see the `parking` module). 0: never.
    pub park_after_secs: u64,
    /// Sessions kept in the state store for one client (live and parked); more are refused.
    pub max_stored_per_client: usize,
    /// Sessions kept in the state store for all anonymous clients together.
    pub max_stored_anonymous: usize,
    /// Bytes of `initialize` parameters (client info and capabilities) accepted and stored
    /// per session; a larger `initialize` is refused.
    pub max_client_info_bytes: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_total: 10_000,
            max_per_client: 100,
            idle_timeout_secs: 3600,
            park_after_secs: 60,
            max_stored_per_client: 1000,
            max_stored_anonymous: 2000,
            max_client_info_bytes: 16 << 10,
        }
    }
}

/// `[scheduler]`: waiting for a Snowflake session.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Seconds a request may wait before it fails with a busy error (`queue_timeout` too).
    #[serde(alias = "queue_timeout")]
    pub queue_timeout_secs: u64,
    pub max_queue_per_client: usize,
    pub max_queue_total: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            queue_timeout_secs: 30,
            max_queue_per_client: 64,
            max_queue_total: 4096,
        }
    }
}

/// `[cache]`: catalogue answers shared between identical requests.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a metadata answer is reused; 0 turns the cache off (requests still coalesce).
    pub metadata_ttl_secs: u64,
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            metadata_ttl_secs: 60,
            max_entries: 10_000,
        }
    }
}

/// `[query]`: caps on every statement.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Rows returned when the caller gives no `max_rows`.
    pub default_max_rows: usize,
    /// Hard maximum for `max_rows`.
    pub max_rows: usize,
    /// At most this many bytes of cell data per result.
    pub max_result_bytes: usize,
    /// Server-side timeout of every statement, in seconds.
    pub statement_timeout_secs: u64,
    /// Longest SQL text accepted.
    pub max_sql_bytes: usize,
    /// How long `run_query` waits for its statement before answering with a `result_id` and
    /// leaving it running (a call may ask for less or more with `wait_secs`).
    pub answer_within_secs: u64,
    /// How long a write's confirmation (its `confirm` token) stays valid.
    pub confirm_within_secs: u64,
    /// List the semantic-view tools (`list_semantic_views`, `describe_semantic_view`,
    /// `query_semantic_view`); off by default to keep the tool list small.
    pub semantic_views: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            default_max_rows: 100,
            max_rows: 10_000,
            max_result_bytes: 1 << 20,
            statement_timeout_secs: 120,
            max_sql_bytes: 100_000,
            answer_within_secs: 20,
            confirm_within_secs: 300,
            semantic_views: false,
        }
    }
}

impl QueryConfig {
    pub fn confirm_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.confirm_within_secs.clamp(1, 3600))
    }

    pub fn statement_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.statement_timeout_secs.max(1))
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.default_max_rows == 0 || self.max_rows == 0 || self.default_max_rows > self.max_rows
        {
            return Err("[query] needs 1 <= default_max_rows <= max_rows".into());
        }
        if self.max_result_bytes < 1024
            || self.max_sql_bytes < 64
            || self.statement_timeout_secs == 0
        {
            return Err("[query] max_result_bytes >= 1024, max_sql_bytes >= 64, statement_timeout_secs >= 1".into());
        }
        Ok(())
    }
}

/// `[pool]`: the shared Snowflake sessions.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// At most this many Snowflake sessions at once.
    pub max_sessions: usize,
    /// Sessions kept logged in and idle, ready for the next request.
    pub min_idle: usize,
    /// Seconds after which a session is retired and replaced.
    pub max_lifetime_secs: u64,
    /// Seconds of idleness after which a session gets a heartbeat.
    pub heartbeat_secs: u64,
    /// `"none"` (default): every session runs `USE SECONDARY ROLES NONE`, so only the client's
    /// role is active. `"keep"`: leave the user's default secondary roles active — unsafe with
    /// several clients; only for emulators that do not understand the statement.
    pub secondary_roles: String,
    /// Longest a login may take (capped at `scheduler.queue_timeout_secs`).
    pub login_timeout_secs: u64,
    /// Logins in flight at once.
    pub max_concurrent_logins: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_sessions: 8,
            min_idle: 0,
            max_lifetime_secs: 4 * 3600,
            heartbeat_secs: 1800,
            secondary_roles: "none".into(),
            login_timeout_secs: 20,
            max_concurrent_logins: 2,
        }
    }
}

/// `[server]`: the Streamable HTTP listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`--listen` overrides).
    pub listen: String,
    /// Extra `Host` header values accepted besides loopback (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Largest MCP request body, in bytes.
    pub max_request_bytes: usize,
    /// Tool calls per minute for the whole server; unlimited when unset.
    pub rate_per_minute: Option<u32>,
    /// Browser origins allowed besides local ones (e.g. `https://app.example.com:443`).
    pub allowed_origins: Vec<String>,
    /// Listen on a non-loopback address without configured clients (not recommended).
    pub allow_anonymous_remote: bool,
    /// On SIGTERM/SIGINT, seconds calls in flight may take to finish before they are aborted.
    pub shutdown_grace_secs: u64,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key_file`.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key_file: Option<std::path::PathBuf>,
    /// Resumable streams: bytes of recent SSE events kept for clients that reconnect with
    /// `Last-Event-ID` (all streams together; oldest dropped first).
    pub resume_buffer_bytes: usize,
    /// Resumable streams: seconds an event is kept.
    pub resume_secs: u64,
    /// When set, `/metrics` requires `Authorization: Bearer <token>` with this SHA-256 (hex).
    pub metrics_token_sha256: Option<String>,
    /// Open HTTP connections at most; at the cap, the oldest connection that has not sent a
    /// request head yet makes room, else the newcomer is refused.
    pub max_connections: usize,
    /// Open connections from one address at most (behind `trusted_proxies`: requests in
    /// progress, SSE streams included, per forwarded client address).
    pub max_connections_per_ip: usize,
    /// Load balancers and reverse proxies (IP addresses or CIDR ranges) whose
    /// `X-Forwarded-For` names the client's address; nobody else's is believed.
    pub trusted_proxies: Vec<String>,
    /// Seconds a new connection has to send its first request head.
    pub header_read_timeout_secs: u64,
    /// Seconds without a byte either way after which a connection is closed.
    pub connection_idle_timeout_secs: u64,
    /// TLS handshakes in flight at most (more are dropped), and seconds one may take.
    pub max_tls_handshakes: usize,
    pub tls_handshake_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8765".into(),
            allowed_hosts: Vec::new(),
            max_request_bytes: 1 << 20,
            rate_per_minute: None,
            allowed_origins: Vec::new(),
            allow_anonymous_remote: false,
            shutdown_grace_secs: 30,
            tls_cert_file: None,
            tls_key_file: None,
            resume_buffer_bytes: 64 << 20,
            resume_secs: 300,
            metrics_token_sha256: None,
            max_connections: 4096,
            max_connections_per_ip: 1024,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            connection_idle_timeout_secs: 60,
            max_tls_handshakes: 128,
            tls_handshake_timeout_secs: 10,
        }
    }
}

//! Configuration: the server's TOML file and where the Snowflake settings come from.
//!
//! Snowflake settings are layered, highest first:
//!
//! 1. environment variables `SNOWFLAKE_<NAME>` (e.g. `SNOWFLAKE_ACCOUNT`),
//! 2. the `[snowflake]` table of the `--config` file,
//! 3. the section named by `--connection NAME` (or `$SNOWFLAKE_DEFAULT_CONNECTION_NAME`) of
//!    Snowflake's `connections.toml` (`$SNOWFLAKE_HOME/connections.toml`, default
//!    `~/.snowflake/connections.toml`).
//!
//! A key set in a higher layer wins; keys it leaves unset fall through to the layer below.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use snowflake_client::{ConnectionSettings, Error};

/// The `--config` file. Unknown keys are refused so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Snowflake settings, with the names of Snowflake's own connectors.
    #[serde(default)]
    pub snowflake: BTreeMap<String, toml::Value>,
    /// Limits on `run_query`.
    #[serde(default)]
    pub query: QueryConfig,
    /// The pool of Snowflake sessions.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Configured clients; without any, every MCP session is its own anonymous client.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// The policy of anonymous clients.
    #[serde(default)]
    pub anonymous: AnonymousConfig,
    /// MCP session limits.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// The fair scheduler's queues.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// The metadata cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Audit records and history.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Per-warehouse limits (`[warehouses.NAME]`), by warehouse name.
    #[serde(default)]
    pub warehouses: BTreeMap<String, WarehouseConfig>,
    /// Where sessions, quota usage and history live.
    #[serde(default)]
    pub state: StateConfig,
    /// People signing in with the company's identity provider (OAuth 2.1 access tokens).
    pub oauth: Option<crate::oauth::OAuthConfig>,
}

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
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            jsonl_path: None,
            retention_days: 30,
        }
    }
}

/// A context given in config (`default_context = { warehouse = "WH" }`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    pub database: Option<String>,
    pub schema: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
}

/// `[[clients]]`: one identified principal.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: String,
    /// Hex SHA-256 of the bearer token (the token itself is never stored).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// People this entry's policy covers, by the claims of their OAuth access token
    /// (`match = { email = "ana@corp.com" }`, `match = { groups = "analysts" }`).
    #[serde(default, rename = "match")]
    pub people: Option<BTreeMap<String, String>>,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default)]
    pub default_context: ContextConfig,
    /// Tool calls per minute (token bucket); unlimited when unset.
    pub rate_per_minute: Option<u32>,
    /// Bucket size; default one minute's worth.
    pub burst: Option<u32>,
    pub queries_per_day: Option<u64>,
    pub rows_per_day: Option<u64>,
    pub bytes_per_day: Option<u64>,
    pub queries_per_hour: Option<u64>,
    pub rows_per_hour: Option<u64>,
    pub bytes_per_hour: Option<u64>,
    /// Session-time this client's queries may hold, seconds per UTC day (and hour).
    pub statement_seconds_per_day: Option<u64>,
    pub statement_seconds_per_hour: Option<u64>,
    /// Estimated warehouse credits per UTC day (and hour); read as millionths of a credit.
    #[serde(default, deserialize_with = "microcredits")]
    pub credits_per_day: Option<u64>,
    #[serde(default, deserialize_with = "microcredits")]
    pub credits_per_hour: Option<u64>,
    /// Databases this client may use; all when unset.
    pub allowed_databases: Option<Vec<String>>,
    /// Roles this client may switch to; all when unset.
    pub allowed_roles: Option<Vec<String>>,
    /// Warehouses this client may switch to; all when unset.
    pub allowed_warehouses: Option<Vec<String>>,
    /// This client's hard maximum for `max_rows` (below `[query] max_rows`).
    pub max_rows: Option<usize>,
}

fn default_weight() -> u32 {
    1
}

fn default_max_concurrent() -> usize {
    4
}

/// A credit amount (a decimal number of credits) as millionths of a credit.
fn microcredits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let credits: Option<f64> = Option::deserialize(d)?;
    match credits {
        Some(c) if c.is_finite() && c >= 0.0 => Ok(Some(
            (c * crate::store::MICROCREDITS_PER_CREDIT).round() as u64,
        )),
        Some(_) => Err(serde::de::Error::custom("credits must be a number >= 0")),
        None => Ok(None),
    }
}

/// `[anonymous]`: the policy of clients without a token (only when no clients are configured).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AnonymousConfig {
    pub weight: u32,
    pub max_concurrent: usize,
    /// Tool calls per minute for each anonymous client; unlimited when unset.
    pub rate_per_minute: Option<u32>,
    pub burst: Option<u32>,
    /// Statements in flight for all anonymous clients together.
    pub max_concurrent_total: usize,
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig {
            weight: default_weight(),
            max_concurrent: default_max_concurrent(),
            rate_per_minute: None,
            burst: None,
            max_concurrent_total: 8,
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
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            default_max_rows: 100,
            max_rows: 10_000,
            max_result_bytes: 1 << 20,
            statement_timeout_secs: 120,
            max_sql_bytes: 100_000,
        }
    }
}

impl QueryConfig {
    pub fn statement_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.statement_timeout_secs.max(1))
    }

    fn check(&self) -> Result<(), String> {
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

impl Config {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Ok(config)
    }

    /// Values serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        self.query.check()?;
        if self.pool.max_sessions == 0
            || self.pool.max_lifetime_secs == 0
            || self.pool.heartbeat_secs == 0
        {
            return Err(
                "[pool] max_sessions, max_lifetime_secs and heartbeat_secs must be at least 1"
                    .into(),
            );
        }
        match (self.state.backend.as_str(), &self.state.url) {
            ("sqlite", _) | ("redis", Some(_)) => {}
            ("redis", None) => return Err("[state] backend = \"redis\" needs a url".into()),
            _ => return Err("[state] backend must be \"sqlite\" or \"redis\"".into()),
        }
        if !matches!(self.pool.secondary_roles.as_str(), "none" | "keep") {
            return Err("[pool] secondary_roles must be \"none\" or \"keep\"".into());
        }
        if self.scheduler.queue_timeout_secs == 0
            || self.scheduler.max_queue_per_client == 0
            || self.scheduler.max_queue_total == 0
        {
            return Err("[scheduler] values must be at least 1".into());
        }
        if self.sessions.max_total == 0
            || self.sessions.max_per_client == 0
            || self.sessions.idle_timeout_secs == 0
            || self.sessions.max_stored_per_client == 0
            || self.sessions.max_stored_anonymous == 0
            || self.sessions.max_client_info_bytes < 1024
        {
            return Err(
                "[sessions] values must be at least 1 (max_client_info_bytes at least 1024)".into(),
            );
        }
        if self.server.max_connections_per_ip == 0 {
            return Err("[server] max_connections_per_ip must be at least 1".into());
        }
        let mut ids = std::collections::HashSet::new();
        for c in &self.clients {
            if c.id.starts_with(crate::policy::ANONYMOUS_PREFIX) {
                return Err(format!(
                    "client '{}': ids starting with '{}' are reserved for anonymous clients",
                    c.id,
                    crate::policy::ANONYMOUS_PREFIX
                ));
            }
            if c.id.is_empty() || !ids.insert(c.id.as_str()) {
                return Err(format!(
                    "[[clients]] ids must be unique and non-empty ('{}')",
                    c.id
                ));
            }
            if c.id.starts_with(crate::policy::PERSON_PREFIX) {
                return Err(format!(
                    "client '{}': ids starting with '{}' are reserved for people signed in with OAuth",
                    c.id,
                    crate::policy::PERSON_PREFIX
                ));
            }
            match (&c.token_sha256, &c.people) {
                (None, None) => {
                    return Err(format!(
                        "client '{}' needs a token_sha256 or a match (with [oauth])",
                        c.id
                    ))
                }
                (_, Some(m)) if m.is_empty() || self.oauth.is_none() => {
                    return Err(format!(
                        "client '{}': match needs [oauth] and at least one claim",
                        c.id
                    ))
                }
                _ => {}
            }
            if let Some(hash) = &c.token_sha256 {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "client '{}': token_sha256 must be 64 hex digits (sha256sum of the token)",
                        c.id
                    ));
                }
            }
            if c.weight == 0 || c.max_concurrent == 0 {
                return Err(format!(
                    "client '{}': weight and max_concurrent must be at least 1",
                    c.id
                ));
            }
        }
        if let Some(oauth) = &self.oauth {
            oauth.check()?;
        }
        if let Some(name) = self.oauth.as_ref().and_then(|o| o.default_policy.as_ref()) {
            if !ids.contains(name.as_str()) {
                return Err(format!(
                    "[oauth] default_policy names no [[clients]] entry ('{name}')"
                ));
            }
        }
        Ok(())
    }
}

/// The cache directory: `$SNOWFLAKE_MCP_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/snowflake-mcp`.
pub fn cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("SNOWFLAKE_MCP_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("snowflake-mcp")
}

/// Merge the three layers (see the module docs).
pub fn snowflake_settings(
    config: &Config,
    connection: Option<&str>,
) -> Result<ConnectionSettings, Error> {
    let default_name = std::env::var("SNOWFLAKE_DEFAULT_CONNECTION_NAME")
        .ok()
        .filter(|n| !n.is_empty());
    let base = match connection.map(str::to_string).or(default_name) {
        Some(name) => ConnectionSettings::from_connections_file(&name)?,
        None => ConnectionSettings::default(),
    };
    let file = ConnectionSettings::from_table(
        config.snowflake.clone(),
        "the [snowflake] table of the config file",
    )?;
    Ok(base.overlay(file).overlay(ConnectionSettings::from_env()?))
}

#[cfg(test)]
mod tests;

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

mod clients;
mod cortex;
mod oauth;
mod service;
mod writes;

pub use clients::{AnonymousConfig, ClientConfig, ContextConfig};
pub use cortex::{AgentConfig, CortexConfig, SearchConfig};
pub use oauth::{check_provider_url, OAuthConfig};
pub use service::{
    AuditConfig, CacheConfig, PoolConfig, QueryConfig, SchedulerConfig, ServerConfig,
    SessionsConfig, StateConfig, WarehouseConfig,
};
pub use writes::{ConfirmWrites, WriteKind};

/// Credits are counted in millionths: a statement's estimate is rounded once, so a coarser
/// unit would charge short statements far off (500 ms on a Medium warehouse is 556 millionths;
/// in thousandths it was 1, 80 % too much, and under 1.8 s on an X-Small one 0).
pub const MICROCREDITS_PER_CREDIT: f64 = 1_000_000.0;

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
    pub oauth: Option<OAuthConfig>,
    /// The operator's console (off unless configured).
    pub console: Option<ConsoleConfig>,
    /// Snowflake's Cortex services as tools (none unless configured).
    #[serde(default)]
    pub cortex: CortexConfig,
}

/// `[console]`: the operator's console and its JSON API.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Hex SHA-256 of the admin token (the token itself is never stored).
    pub token_sha256: Option<String>,
    /// With `[oauth]`: people whose token's `groups_claim` names one of these are admins.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// The token claim listing a person's groups (an array of strings, or one string of
    /// names separated by spaces or commas).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Allow the console's actions: cancel a statement, end a session, pause a client.
    #[serde(default)]
    pub actions: bool,
}

fn default_groups_claim() -> String {
    "groups".into()
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
        self.cortex.check()?;
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
            if c.id.starts_with(crate::principal::ANONYMOUS_PREFIX) {
                return Err(format!(
                    "client '{}': ids starting with '{}' are reserved for anonymous clients",
                    c.id,
                    crate::principal::ANONYMOUS_PREFIX
                ));
            }
            if c.id.is_empty() || !ids.insert(c.id.as_str()) {
                return Err(format!(
                    "[[clients]] ids must be unique and non-empty ('{}')",
                    c.id
                ));
            }
            if c.id.starts_with(crate::principal::PERSON_PREFIX) {
                return Err(format!(
                    "client '{}': ids starting with '{}' are reserved for people signed in with OAuth",
                    c.id,
                    crate::principal::PERSON_PREFIX
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
            c.check_writes()?;
            let cortex_tools = self.cortex.tool_names();
            if let Some(unknown) = c
                .allowed_cortex
                .iter()
                .flatten()
                .find(|n| !cortex_tools.contains(&n.as_str()))
            {
                return Err(format!(
                    "client '{}': allowed_cortex names '{unknown}', which is not a configured Cortex tool ({})",
                    c.id,
                    cortex_tools.join(", ")
                ));
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
        if let Some(console) = &self.console {
            if let Some(hex) = &console.token_sha256 {
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(
                        "[console] token_sha256 must be 64 hex digits (sha256sum of the token)"
                            .into(),
                    );
                }
            }
            if console.token_sha256.is_none() && console.admin_groups.is_empty() {
                return Err(
                    "[console] needs token_sha256 or admin_groups: nobody could sign in".into(),
                );
            }
            if !console.admin_groups.is_empty() && self.oauth.is_none() {
                return Err("[console] admin_groups needs [oauth] (people sign in with the identity provider)".into());
            }
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

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
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { max_sessions: 8 }
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8765".into(),
            allowed_hosts: Vec::new(),
            max_request_bytes: 1 << 20,
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
            .query
            .check()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        if config.pool.max_sessions == 0 {
            return Err(format!(
                "config file {}: [pool] max_sessions must be at least 1",
                path.display()
            ));
        }
        Ok(config)
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
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("[snowflak]\naccount = 'x'\n").unwrap_err();
        assert!(err.to_string().contains("snowflak"));
    }

    #[test]
    fn limits_have_defaults_and_are_checked() {
        let c: Config = toml::from_str("[query]\nmax_rows = 50\n").unwrap();
        assert_eq!(c.query.max_rows, 50);
        assert_eq!(c.query.default_max_rows, 100);
        assert!(c.query.check().is_err(), "default above max is refused");
        assert_eq!(Config::default().server.listen, "127.0.0.1:8765");
    }

    #[test]
    fn config_file_layer_parses_known_keys() {
        let c: Config =
            toml::from_str("[snowflake]\naccount = 'acme'\nport = 8080\nprotocol = 'http'\n")
                .unwrap();
        let s = ConnectionSettings::from_table(c.snowflake, "t").unwrap();
        assert_eq!(s.account.as_deref(), Some("acme"));
        assert_eq!(s.port, Some(8080));
    }
}

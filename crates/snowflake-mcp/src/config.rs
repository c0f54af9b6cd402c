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
}

impl Config {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }
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
    fn config_file_layer_parses_known_keys() {
        let c: Config =
            toml::from_str("[snowflake]\naccount = 'acme'\nport = 8080\nprotocol = 'http'\n")
                .unwrap();
        let s = ConnectionSettings::from_table(c.snowflake, "t").unwrap();
        assert_eq!(s.account.as_deref(), Some("acme"));
        assert_eq!(s.port, Some(8080));
    }
}

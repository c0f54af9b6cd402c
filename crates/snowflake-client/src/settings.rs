//! Connection settings: where Snowflake is, who we are, and the context to start in.
//!
//! The names are Snowflake's own (the same keys its connectors, its CLI and `connections.toml`
//! use), so a user can copy what they already have. Settings come in layers, each an
//! all-optional [`ConnectionSettings`]; [`ConnectionSettings::overlay`] lets a higher layer
//! override a lower one key by key. The documented precedence, highest first:
//!
//! 1. environment variables `SNOWFLAKE_<NAME>` ([`ConnectionSettings::from_env`]),
//! 2. the application's own config file (e.g. the `[snowflake]` table of the server's config),
//! 3. a named section of `connections.toml` ([`ConnectionSettings::from_connections_file`]).
//!
//! [`ConnectionSettings::endpoint`] turns the merged layers into the base URL; the default host
//! is `<account>.snowflakecomputing.com` over https on port 443.
//!
//! Secrets (`password`, `private_key_file_pwd`, `token`) are held in [`Secret`], whose `Debug`
//! and `Display` never show the value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A string that must never be shown: `Debug`/`Display` print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One layer of connection settings; every key optional. See the module docs for precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ConnectionSettings {
    /// Account identifier, e.g. `myorg-myaccount` or `xy12345.us-east-1`.
    pub account: Option<String>,
    /// Login name.
    pub user: Option<String>,
    /// Password, for the default `snowflake` authenticator.
    pub password: Option<Secret>,
    /// `snowflake` (password, default), `snowflake_jwt` (key pair), `oauth`,
    /// `programmatic_access_token`.
    pub authenticator: Option<String>,
    /// PKCS#8 PEM private key for `snowflake_jwt` (`private_key_path` is accepted too).
    #[serde(alias = "private_key_path")]
    pub private_key_file: Option<PathBuf>,
    /// Passphrase of an encrypted private key (`private_key_passphrase` is accepted too).
    #[serde(alias = "private_key_passphrase")]
    pub private_key_file_pwd: Option<Secret>,
    /// OAuth access token or programmatic access token.
    pub token: Option<Secret>,
    /// Role to start in.
    pub role: Option<String>,
    /// Warehouse to start in.
    pub warehouse: Option<String>,
    /// Database to start in.
    pub database: Option<String>,
    /// Schema to start in.
    pub schema: Option<String>,
    /// Host name; default `<account>.snowflakecomputing.com`.
    pub host: Option<String>,
    /// Port; default 443 for https, 80 for http.
    #[serde(default, deserialize_with = "port_from_int_or_string")]
    pub port: Option<u16>,
    /// `https` (default) or `http` (for local emulators).
    pub protocol: Option<String>,
}

/// Every setting name, in the order documentation lists them.
pub const SETTING_NAMES: [&str; 14] = [
    "account",
    "user",
    "password",
    "authenticator",
    "private_key_file",
    "private_key_file_pwd",
    "token",
    "role",
    "warehouse",
    "database",
    "schema",
    "host",
    "port",
    "protocol",
];

impl ConnectionSettings {
    /// Settings from `SNOWFLAKE_<NAME>` environment variables (e.g. `SNOWFLAKE_ACCOUNT`).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from any `SNOWFLAKE_<NAME>` lookup; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut table = BTreeMap::new();
        for name in SETTING_NAMES {
            if let Some(value) = lookup(&format!("SNOWFLAKE_{}", name.to_ascii_uppercase())) {
                if !value.is_empty() {
                    table.insert(name.to_string(), toml::Value::String(value));
                }
            }
        }
        Self::from_table(table, "environment variables")
    }

    /// Settings from a TOML table, e.g. the `[snowflake]` table of an application config.
    /// `origin` names the source in error messages.
    pub fn from_table(table: BTreeMap<String, toml::Value>, origin: &str) -> Result<Self> {
        toml::Value::Table(table.into_iter().collect())
            .try_into()
            .map_err(|e| Error::config(format!("invalid Snowflake settings in {origin}: {e}")))
    }

    /// The section `name` of Snowflake's `connections.toml`: `$SNOWFLAKE_HOME/connections.toml`
    /// when `SNOWFLAKE_HOME` is set, else `~/.snowflake/connections.toml`.
    pub fn from_connections_file(name: &str) -> Result<Self> {
        Self::from_connections_path(&default_connections_path()?, name)
    }

    /// The section `name` of the `connections.toml` at `path`.
    pub fn from_connections_path(path: &Path, name: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read connections file {}: {e}",
                path.display()
            ))
        })?;
        let mut doc: BTreeMap<String, toml::Value> = toml::from_str(&text)
            .map_err(|e| Error::config(format!("{} is not valid TOML: {e}", path.display())))?;
        // Both layouts exist in the wild: `[name]` at top level and `[connections.name]`.
        let section = match doc.remove(name) {
            Some(section) => Some(section),
            None => match doc.remove("connections") {
                Some(toml::Value::Table(mut t)) => t.remove(name),
                _ => None,
            },
        };
        match section {
            Some(toml::Value::Table(t)) => Self::from_table(
                t.into_iter().collect(),
                &format!("connection '{name}' of {}", path.display()),
            ),
            _ => Err(Error::config(format!(
                "no connection named '{name}' in {}",
                path.display()
            ))),
        }
    }

    /// Layer `higher` over `self`: every key `higher` sets wins.
    pub fn overlay(self, higher: ConnectionSettings) -> ConnectionSettings {
        ConnectionSettings {
            account: higher.account.or(self.account),
            user: higher.user.or(self.user),
            password: higher.password.or(self.password),
            authenticator: higher.authenticator.or(self.authenticator),
            private_key_file: higher.private_key_file.or(self.private_key_file),
            private_key_file_pwd: higher.private_key_file_pwd.or(self.private_key_file_pwd),
            token: higher.token.or(self.token),
            role: higher.role.or(self.role),
            warehouse: higher.warehouse.or(self.warehouse),
            database: higher.database.or(self.database),
            schema: higher.schema.or(self.schema),
            host: higher.host.or(self.host),
            port: higher.port.or(self.port),
            protocol: higher.protocol.or(self.protocol),
        }
    }

    /// The base URL of the service, e.g. `https://xy12345.snowflakecomputing.com:443`.
    pub fn endpoint(&self) -> Result<reqwest::Url> {
        let protocol = match self.protocol.as_deref().map(str::to_ascii_lowercase) {
            None => "https".to_string(),
            Some(p) if p == "https" || p == "http" => p,
            Some(p) => {
                return Err(Error::config(format!(
                    "protocol must be 'https' or 'http', not '{p}'"
                )))
            }
        };
        let host = match (&self.host, &self.account) {
            (Some(host), _) if !host.is_empty() => host.clone(),
            (_, Some(account)) if !account.is_empty() => {
                format!("{}.snowflakecomputing.com", account.to_ascii_lowercase())
            }
            _ => {
                return Err(Error::config(
                    "no Snowflake account: set `account` (or `host`), e.g. SNOWFLAKE_ACCOUNT=myorg-myaccount",
                ))
            }
        };
        let port = self
            .port
            .unwrap_or(if protocol == "https" { 443 } else { 80 });
        reqwest::Url::parse(&format!("{protocol}://{host}:{port}/"))
            .map_err(|e| Error::config(format!("invalid host '{host}': {e}")))
    }
}

/// Where `connections.toml` lives: `$SNOWFLAKE_HOME/connections.toml` or
/// `~/.snowflake/connections.toml`.
pub fn default_connections_path() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("SNOWFLAKE_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home).join("connections.toml"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::config("neither SNOWFLAKE_HOME nor HOME is set"))?;
    Ok(PathBuf::from(home)
        .join(".snowflake")
        .join("connections.toml"))
}

fn port_from_int_or_string<'de, D>(deserializer: D) -> std::result::Result<Option<u16>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Int(i64),
        Text(String),
    }
    let port = match Option::<Port>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Port::Int(n)) => u16::try_from(n).ok(),
        Some(Port::Text(s)) => s.trim().parse::<u16>().ok(),
    };
    match port {
        Some(p) if p > 0 => Ok(Some(p)),
        _ => Err(serde::de::Error::custom(
            "port must be a number from 1 to 65535",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_layer_reads_every_name_and_ignores_empty_values() {
        let env = |name: &str| match name {
            "SNOWFLAKE_ACCOUNT" => Some("acme".to_string()),
            "SNOWFLAKE_PORT" => Some("8080".to_string()),
            "SNOWFLAKE_PASSWORD" => Some("hunter2".to_string()),
            "SNOWFLAKE_ROLE" => Some(String::new()),
            _ => None,
        };
        let s = ConnectionSettings::from_lookup(env).unwrap();
        assert_eq!(s.account.as_deref(), Some("acme"));
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(s.role, None);
    }

    #[test]
    fn bad_port_is_a_config_error() {
        let env = |name: &str| (name == "SNOWFLAKE_PORT").then(|| "eighty".to_string());
        let err = ConnectionSettings::from_lookup(env).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn overlay_prefers_the_higher_layer_key_by_key() {
        let low = ConnectionSettings {
            account: Some("low".into()),
            user: Some("u".into()),
            ..Default::default()
        };
        let high = ConnectionSettings {
            account: Some("high".into()),
            ..Default::default()
        };
        let merged = low.overlay(high);
        assert_eq!(merged.account.as_deref(), Some("high"));
        assert_eq!(merged.user.as_deref(), Some("u"));
    }

    #[test]
    fn endpoint_defaults_to_account_host_https_443() {
        let s = ConnectionSettings {
            account: Some("MyOrg-MyAcct".into()),
            ..Default::default()
        };
        assert_eq!(
            s.endpoint().unwrap().as_str(),
            "https://myorg-myacct.snowflakecomputing.com/"
        );
        let s = ConnectionSettings {
            host: Some("127.0.0.1".into()),
            port: Some(9000),
            protocol: Some("http".into()),
            ..Default::default()
        };
        assert_eq!(s.endpoint().unwrap().as_str(), "http://127.0.0.1:9000/");
        assert!(ConnectionSettings::default().endpoint().is_err());
    }

    #[test]
    fn connections_file_sections_and_aliases() {
        let dir = std::env::temp_dir().join(format!("sfc-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("connections.toml");
        std::fs::write(
            &path,
            "default_connection_name = \"dev\"\n[dev]\naccount = \"a1\"\nuser = \"me\"\nport = 8443\nprivate_key_path = \"/k.p8\"\nclient_session_keep_alive = true\n\n[connections.prod]\naccount = \"p1\"\n",
        )
        .unwrap();
        let dev = ConnectionSettings::from_connections_path(&path, "dev").unwrap();
        assert_eq!(dev.account.as_deref(), Some("a1"));
        assert_eq!(dev.port, Some(8443));
        assert_eq!(dev.private_key_file, Some(PathBuf::from("/k.p8")));
        let prod = ConnectionSettings::from_connections_path(&path, "prod").unwrap();
        assert_eq!(prod.account.as_deref(), Some("p1"));
        let missing = ConnectionSettings::from_connections_path(&path, "nope").unwrap_err();
        assert!(missing.to_string().contains("no connection named 'nope'"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = ConnectionSettings {
            password: Some(Secret::new("hunter2")),
            token: Some(Secret::new("tok-123")),
            private_key_file_pwd: Some(Secret::new("pass-phrase")),
            ..Default::default()
        };
        let shown = format!("{s:?} {}", s.password.as_ref().unwrap());
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("tok-123"));
        assert!(!shown.contains("pass-phrase"));
    }
}

//! Who may call, in the `--config` file: `[[clients]]` (identified principals with their
//! weight, limits, quotas and access), `[anonymous]` (callers without a token, when no client
//! is configured), and the `default_context` both may carry.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::writes::{ConfirmWrites, WriteKind};

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
    /// Semantic views (`DB.SCHEMA.VIEW`) this client may describe and query; all when unset.
    pub allowed_semantic_views: Option<Vec<String>>,
    /// Cortex tools (`ask_analyst`, and `[[cortex.search]]` / `[[cortex.agents]]` names) this
    /// client may call; all configured ones when unset.
    pub allowed_cortex: Option<Vec<String>>,
    /// Whether `ask_analyst` may run the SQL Cortex Analyst writes (on the `run_query` path).
    #[serde(default)]
    pub analyst_execute: bool,
    /// Cortex calls (Analyst, Search, Agents) per UTC day and hour.
    pub cortex_calls_per_day: Option<u64>,
    pub cortex_calls_per_hour: Option<u64>,
    /// Roles this client may switch to; all when unset.
    pub allowed_roles: Option<Vec<String>>,
    /// Warehouses this client may switch to; all when unset.
    pub allowed_warehouses: Option<Vec<String>>,
    /// This client's hard maximum for `max_rows` (below `[query] max_rows`).
    pub max_rows: Option<usize>,
    /// Refuse a query whose plan (EXPLAIN) says it would scan more bytes (`1e12` is read too).
    #[serde(default, deserialize_with = "count")]
    pub max_scan_bytes: Option<u64>,
    /// ... or more micro-partitions.
    #[serde(default, deserialize_with = "count")]
    pub max_scan_partitions: Option<u64>,
    /// Statement kinds this client may run besides reads (none: read-only).
    #[serde(default)]
    pub allow_statements: Vec<WriteKind>,
    /// Where those writes may go: whole databases, and/or `DB.SCHEMA` schemas.
    #[serde(default)]
    pub write_databases: Vec<String>,
    #[serde(default)]
    pub write_schemas: Vec<String>,
    /// Whether a person confirms each write (default `always`).
    #[serde(default)]
    pub confirm_writes: ConfirmWrites,
}

impl ClientConfig {
    /// A client that may write must be told where; a write place must be a name.
    pub(super) fn check_writes(&self) -> Result<(), String> {
        let places = self.write_databases.len() + self.write_schemas.len();
        if !self.allow_statements.is_empty() && places == 0 {
            return Err(format!(
                "client '{}': allow_statements needs write_databases or write_schemas (where its writes may go)",
                self.id
            ));
        }
        for schema in &self.write_schemas {
            let parts: Vec<&str> = schema.split('.').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                return Err(format!(
                    "client '{}': write_schemas entries are DATABASE.SCHEMA ('{schema}')",
                    self.id
                ));
            }
        }
        for view in self.allowed_semantic_views.iter().flatten() {
            let parts = crate::ident::split_parts(view, "a semantic view").map(|p| p.len());
            if parts != Ok(3) {
                return Err(format!(
                    "client '{}': allowed_semantic_views entries are DATABASE.SCHEMA.VIEW ('{view}')",
                    self.id
                ));
            }
        }
        Ok(())
    }
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
            (c * crate::config::MICROCREDITS_PER_CREDIT).round() as u64,
        )),
        Some(_) => Err(serde::de::Error::custom("credits must be a number >= 0")),
        None => Ok(None),
    }
}

/// A count written as an integer or a number such as `1e12`.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: Option<f64> = Option::deserialize(d)?;
    match n {
        Some(n) if n.is_finite() && n >= 0.0 && n <= u64::MAX as f64 => Ok(Some(n.round() as u64)),
        Some(_) => Err(serde::de::Error::custom("must be a number >= 0")),
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

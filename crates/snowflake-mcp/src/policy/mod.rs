//! # Stage: policy — what a caller may do
//!
//! Owns the per-client policy (this file: share, limits, quotas, access), admission (rate
//! limits and quotas, [`admission`], with in-memory token buckets in [`rate`]) and the limits
//! that hold across replicas ([`cluster`]). Its checks fail closed. It must not know who a
//! caller is from a request (identity resolves that), and must not run statements.
//!
//! Policy: what one client may do — the whole of it in one place.
//!
//! A [`ClientPolicy`] is everything the server decides per client: its share of the pool
//! (weight, concurrency, group), its rate limit and quotas, and what it may touch ([`Access`]:
//! databases, roles, warehouses, rows). Identity ([`crate::identity`]) builds policies from the
//! configuration and maps each request to one; admission ([`crate::policy::admission`]) enforces the
//! rate limit and quotas; the tools ask [`Access`] before they touch anything. The checks here
//! fail closed: a restricted role must be named, a context is re-checked at every call.
//!
//! This stage uses only the state store, observation and the shared vocabulary, so every stage
//! above it can ask it.

pub mod admission;
pub mod cluster;
pub mod pause;
pub mod rate;
pub mod writes;

use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::error::ToolError;
use crate::state::WindowLimits;
use crate::Context;

/// What the scheduler needs to know of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientShare {
    pub id: Arc<str>,
    /// How metrics and the console name the client: a signed-in person's `[[clients]]` entry,
    /// `anonymous` for every anonymous client, else its id (never a person's key).
    pub label: Arc<str>,
    pub weight: u32,
    pub max_concurrent: usize,
    /// A group whose members together hold at most this many permits.
    pub group: Option<(Arc<str>, usize)>,
}

/// A client's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPolicy {
    pub id: Arc<str>,
    pub weight: u32,
    pub max_concurrent: usize,
    /// Overrides of the connection's default context for this client's new sessions.
    pub default_context: Context,
    pub anonymous: bool,
    pub rate: Option<RatePolicy>,
    pub quotas: QuotaPolicy,
    pub access: Access,
    /// A group this client shares a concurrency cap with (anonymous clients).
    pub group: Option<(Arc<str>, usize)>,
    /// A signed-in person's: the `[[clients]]` entry whose policy covers them now, and what
    /// their token calls them (`client_claim`). Their `id` is their key (issuer and subject),
    /// never these: the entry follows their token, the name is for people to read.
    pub person: Option<PersonNames>,
}

/// How a signed-in person is named (see [`ClientPolicy::person`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonNames {
    pub entry: Arc<str>,
    pub name: Arc<str>,
}

/// What a client may touch; `None` allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub databases: Option<Vec<String>>,
    /// Semantic views it may use, as `DB.SCHEMA.VIEW` (each part as Snowflake resolves it).
    pub semantic_views: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub warehouses: Option<Vec<String>>,
    pub max_rows: Option<usize>,
    /// The most a query may scan by its plan's estimate: bytes and micro-partitions.
    pub max_scan_bytes: Option<u64>,
    pub max_scan_partitions: Option<u64>,
    /// What it may write, and where (nothing by default).
    pub writes: writes::Writes,
    /// Cortex tools it may call (`ask_analyst`, search and agent names); all when `None`.
    pub cortex: Option<Vec<String>>,
    /// Whether `ask_analyst` runs the SQL Cortex Analyst writes.
    pub analyst_execute: bool,
}

impl Access {
    /// `not_allowed` unless this client may use semantic view `view` (`DB.SCHEMA.VIEW`).
    pub fn check_semantic_view(&self, client: &str, view: &str) -> Result<(), ToolError> {
        match &self.semantic_views {
            Some(allowed) if !allowed.iter().any(|v| v == view) => Err(ToolError::new(
                "not_allowed",
                format!(
                    "client '{client}' may not use semantic view {view}; it may use: {}",
                    allowed.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `not_allowed` unless this client may call Cortex tool `tool`.
    pub fn check_cortex(&self, client: &str, tool: &str) -> Result<(), ToolError> {
        match &self.cortex {
            Some(allowed) if !allowed.iter().any(|t| t == tool) => Err(ToolError::new(
                "not_allowed",
                format!(
                    "client '{client}' may not call {tool}; its Cortex tools are: {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether a query's scan must be estimated before it runs.
    pub fn limits_scans(&self) -> bool {
        self.max_scan_bytes.is_some() || self.max_scan_partitions.is_some()
    }

    /// `Err(cost_exceeded)` when a plan scanning `bytes` in `partitions` is over the limits.
    pub fn check_scan(&self, client: &str, bytes: u64, partitions: u64) -> Result<(), ToolError> {
        let over = match (self.max_scan_bytes, self.max_scan_partitions) {
            (Some(max), _) if bytes > max => Some(format!(
                "{} (limit {})",
                human_bytes(bytes),
                human_bytes(max)
            )),
            (_, Some(max)) if partitions > max => {
                Some(format!("{partitions} micro-partitions (limit {max})"))
            }
            _ => None,
        };
        match over {
            None => Ok(()),
            Some(what) => Err(ToolError::new(
                "cost_exceeded",
                format!(
                    "client '{client}' may not run a query that would scan {what}, by Snowflake's plan. Narrow what it reads: filter on the table's clustering or date columns, select fewer columns, or query a smaller table or an aggregate; a LIMIT does not reduce scanning. explain_query shows the estimate."
                ),
            )),
        }
    }

    fn allows(list: &Option<Vec<String>>, name: &str) -> bool {
        list.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
    }

    pub fn allows_database(&self, name: &str) -> bool {
        Self::allows(&self.databases, name)
    }

    pub fn is_restricted(&self) -> bool {
        self.databases.is_some()
    }

    /// Check a whole context; the error names what is not allowed.
    pub fn check_context(&self, client: &str, ctx: &Context) -> Result<(), ToolError> {
        for (what, list, value) in [
            ("database", &self.databases, &ctx.database),
            ("role", &self.roles, &ctx.role),
            ("warehouse", &self.warehouses, &ctx.warehouse),
        ] {
            match value {
                Some(v) if !Self::allows(list, v) => {
                    return Err(not_allowed(client, what, v, list));
                }
                // A restricted role must be named: no role means the service user's.
                None if what == "role" && list.is_some() => {
                    return Err(not_allowed(client, what, "(none)", list));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn check_database(&self, client: &str, name: &str) -> Result<(), ToolError> {
        if self.allows_database(name) {
            Ok(())
        } else {
            Err(not_allowed(client, "database", name, &self.databases))
        }
    }
}

fn not_allowed(client: &str, what: &str, name: &str, list: &Option<Vec<String>>) -> ToolError {
    ToolError::refused(format!(
        "client '{client}' may not use {what} {name}; allowed: {}",
        list.as_ref().map(|l| l.join(", ")).unwrap_or_default()
    ))
}

impl ClientPolicy {
    /// This client as a metrics label: configured ids as they are, people by their policy entry
    /// (never their name or key), anonymous clients pooled.
    pub fn metric_label(&self) -> String {
        match &self.person {
            _ if self.anonymous => "anonymous".into(),
            Some(person) => person.entry.to_string(),
            None => self.id.to_string(),
        }
    }

    /// The client as people read it (messages, logs): a person's name, else the id.
    pub fn display(&self) -> &str {
        self.person.as_ref().map_or(&self.id, |p| &p.name)
    }

    /// The scheduler's view of this client.
    pub fn share(&self) -> ClientShare {
        ClientShare {
            id: self.id.clone(),
            label: self.metric_label().into(),
            weight: self.weight,
            max_concurrent: self.max_concurrent,
            group: self.group.clone(),
        }
    }
}

#[cfg(test)]
impl ClientPolicy {
    /// A client with defaults everywhere (weight 1, one statement at a time, no limits, every
    /// database), for tests to adjust.
    pub(crate) fn for_test(id: &str) -> ClientPolicy {
        ClientPolicy {
            id: id.into(),
            weight: 1,
            max_concurrent: 1,
            default_context: Context::default(),
            anonymous: false,
            rate: None,
            quotas: QuotaPolicy::default(),
            access: Access::default(),
            group: None,
            person: None,
        }
    }
}

impl ClientPolicy {
    /// The most rows one `run_query` may return: what it asked for, within this client's and the
    /// server's caps.
    pub fn row_cap(
        &self,
        server_max: usize,
        server_default: usize,
        requested: Option<u64>,
    ) -> usize {
        let hard_max = self.access.max_rows.unwrap_or(usize::MAX).min(server_max);
        match requested {
            Some(n) => (n.max(1) as usize).min(hard_max),
            None => server_default.min(hard_max),
        }
    }
}

/// A client's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePolicy {
    pub per_minute: u32,
    pub burst: Option<u32>,
}

impl RatePolicy {
    /// Calls that may come at once: `burst`, default one minute's worth, at least one.
    pub fn burst_size(&self) -> u32 {
        self.burst.unwrap_or(self.per_minute).max(1)
    }
}

/// A client's quotas; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaPolicy {
    pub per_day: WindowLimits,
    pub per_hour: WindowLimits,
    /// Cortex calls per UTC day and hour (`cortex_calls_per_*`), counted apart from queries.
    pub cortex_per_day: Option<u64>,
    pub cortex_per_hour: Option<u64>,
}

impl QuotaPolicy {
    /// Whether a credits quota applies (the warehouse's size is then looked up).
    pub fn counts_credits(&self) -> bool {
        self.per_day.microcredits.is_some() || self.per_hour.microcredits.is_some()
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_day == WindowLimits::default() && self.per_hour == WindowLimits::default()
    }

    /// The windows `now` falls in that have limits, with those limits.
    pub fn windows(&self, now: DateTime<Utc>) -> Vec<(String, WindowLimits)> {
        windows_of(self.per_day, self.per_hour, now)
    }

    /// The Cortex-call windows `now` falls in that have limits (counted as `queries`).
    pub fn cortex_windows(&self, now: DateTime<Utc>) -> Vec<(String, WindowLimits)> {
        let calls = |queries| WindowLimits {
            queries,
            ..WindowLimits::default()
        };
        windows_of(calls(self.cortex_per_day), calls(self.cortex_per_hour), now)
    }
}

/// The day and hour windows `now` falls in, each with its limits when it has any.
fn windows_of(
    per_day: WindowLimits,
    per_hour: WindowLimits,
    now: DateTime<Utc>,
) -> Vec<(String, WindowLimits)> {
    let mut w = Vec::new();
    if per_day != WindowLimits::default() {
        w.push((
            format!("d:{:04}-{:02}-{:02}", now.year(), now.month(), now.day()),
            per_day,
        ));
    }
    if per_hour != WindowLimits::default() {
        w.push((
            format!(
                "h:{:04}-{:02}-{:02}T{:02}",
                now.year(),
                now.month(),
                now.day(),
                now.hour()
            ),
            per_hour,
        ));
    }
    w
}

/// A client limited to some roles (warehouses) runs as one of them from its first statement:
/// without a role of its own it would run as the service user's role, with all its grants.
pub(crate) fn restricted_default(
    mut ctx: Context,
    roles: &Option<Vec<String>>,
    warehouses: &Option<Vec<String>>,
) -> Context {
    for (slot, allowed) in [(&mut ctx.role, roles), (&mut ctx.warehouse, warehouses)] {
        if let (None, Some(first)) = (slot.as_ref(), allowed.as_ref().and_then(|l| l.first())) {
            *slot = Some(first.clone());
        }
    }
    ctx
}

/// `1.5 GB`, `40.0 TB`: bytes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

//! # Stage: backend — the database
//!
//! Owns everything engine-specific: the [`Backend`] trait, Snowflake through a pool of sessions
//! ([`pool`], [`people`] for each signed-in person's own sessions, [`breaker`]), the offline
//! [`demo`], and the `snowflake-mcp check` command ([`check`]). It must not check policy or
//! schedule (the stages above did), and never runs two statements on one session at once.
//!
//! The backend boundary: what the tools need from a database, and nothing more.
//!
//! Tools speak to a [`Backend`]; they never build SQL for a particular engine. Snowflake
//! ([`snowflake::SnowflakeBackend`]) is the product; the offline demo ([`demo::DemoBackend`],
//! SQLite) is one more implementation. Every call carries the calling MCP session's
//! [`Context`], and every answer is plain data the tools render.

pub mod breaker;
pub mod check;
pub mod demo;
pub mod people;
pub mod pool;
pub mod snowflake;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::error::ToolError;
use crate::ident::Ident;

use crate::Context;
pub use snowflake_client::ApiEvent;

/// Standard warehouses' credits per hour by size (Snowflake bills per second, with a 60-second
/// minimum each time a warehouse resumes, so per-statement figures are estimates).
pub fn credits_per_hour(size: &str) -> Option<f64> {
    let key: String = size
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    Some(match key.as_str() {
        "XSMALL" => 1.0,
        "SMALL" => 2.0,
        "MEDIUM" => 4.0,
        "LARGE" => 8.0,
        "XLARGE" => 16.0,
        "2XLARGE" | "XXLARGE" => 32.0,
        "3XLARGE" | "XXXLARGE" => 64.0,
        "4XLARGE" => 128.0,
        "5XLARGE" => 256.0,
        "6XLARGE" => 512.0,
        _ => return None,
    })
}

/// Caps for one `run_query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A named thing (database, schema) with optional details.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Named {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Tables or views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Table,
    View,
}

/// One table or view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectInfo {
    pub name: String,
    pub kind: ObjectKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One column of a described object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A fully qualified object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    pub database: Ident,
    pub schema: Ident,
    pub name: Ident,
}

/// The context's `what` (database or schema) as an identifier, or an error telling the model
/// how to get one.
pub fn current(value: &Option<String>, what: &str) -> Result<Ident, ToolError> {
    value.clone().map(Ident::exact).ok_or_else(|| {
        ToolError::invalid(format!(
            "no current {what}: pass {what}, or choose one with set_context"
        ))
    })
}

impl ObjectName {
    /// `NAME`, `SCHEMA.NAME` or `DB.SCHEMA.NAME`, completed from `ctx`.
    pub fn resolve(text: &str, ctx: &Context) -> Result<ObjectName, ToolError> {
        let parts = crate::ident::split_parts(text, "name")?;
        Ok(match parts.as_slice() {
            [t] => ObjectName {
                database: current(&ctx.database, "database")?,
                schema: current(&ctx.schema, "schema")?,
                name: t.clone(),
            },
            [s, t] => ObjectName {
                database: current(&ctx.database, "database")?,
                schema: s.clone(),
                name: t.clone(),
            },
            [d, s, t] => ObjectName {
                database: d.clone(),
                schema: s.clone(),
                name: t.clone(),
            },
            _ => {
                return Err(ToolError::invalid(format!(
                    "name '{text}' has too many parts; use DB.SCHEMA.NAME at most"
                )))
            }
        })
    }

    pub fn quoted(&self) -> String {
        format!(
            "{}.{}.{}",
            self.database.quoted(),
            self.schema.quoted(),
            self.name.quoted()
        )
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.database, self.schema, self.name)
    }
}

/// A result column: name and SQL type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// The rows of a `run_query` (or a page of its kept result), already capped.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Value>>,
    /// More rows follow these (in the result, or past a cap).
    pub truncated: bool,
    pub query_id: String,
    /// Rows of the whole result, when the engine says.
    pub total_rows: Option<u64>,
}

/// What a query would scan, by its plan (Snowflake's `EXPLAIN USING JSON`), before it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanEstimate {
    /// The plan as the engine gives it (Snowflake: `{GlobalStats, Operations}`).
    pub plan: Value,
    pub partitions_total: u64,
    pub partitions_assigned: u64,
    /// An upper bound: pruning at run time may read less.
    pub bytes_assigned: u64,
}

impl ScanEstimate {
    /// From a plan in Snowflake's JSON shape: its `GlobalStats` hold the totals.
    pub fn from_plan(plan: Value) -> Result<ScanEstimate, ToolError> {
        let stats = &plan["GlobalStats"];
        let number = |k: &str| {
            stats[k]
                .as_u64()
                .or_else(|| stats[k].as_f64().map(|f| f as u64))
        };
        match (
            number("partitionsTotal"),
            number("partitionsAssigned"),
            number("bytesAssigned"),
        ) {
            (Some(total), Some(assigned), Some(bytes)) => Ok(ScanEstimate {
                partitions_total: total,
                partitions_assigned: assigned,
                bytes_assigned: bytes,
                plan,
            }),
            _ => Err(ToolError::new(
                "backend_error",
                "the plan gives no scan totals (GlobalStats)",
            )),
        }
    }
}

/// A statement's kept result, read again by query id.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredPage {
    /// The statement still runs.
    Running,
    /// Rows from the offset asked for, under the caps.
    Done(QueryOutput),
}

/// Only a query id is put into a statement or a URL: Snowflake's are UUIDs, the demo's
/// `demo-<uuid>`.
pub fn check_query_id(query_id: &str) -> Result<(), ToolError> {
    if snowflake_client::is_query_id(query_id) {
        Ok(())
    } else {
        Err(ToolError::internal("a stored query id is malformed"))
    }
}

/// What tools need from a database engine.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and `get_context` ("snowflake", "demo").
    fn name(&self) -> &'static str;

    /// What a client should know about this backend before trusting its answers (the demo says
    /// it is the demo); shown by `get_context` and in the server's instructions.
    fn note(&self) -> Option<&'static str> {
        None
    }

    /// The context a new MCP session starts in.
    async fn default_context(&self) -> Result<Context, ToolError>;

    /// Whether the database answers (for `/readyz`).
    async fn ready(&self) -> Result<(), ToolError>;

    async fn list_databases(&self, ctx: &Context) -> Result<Vec<Named>, ToolError>;

    async fn list_schemas(&self, ctx: &Context, database: &Ident) -> Result<Vec<Named>, ToolError>;

    /// Tables and views of one schema; `pattern` is a LIKE pattern (`%`, `_`), case-insensitive.
    async fn list_objects(
        &self,
        ctx: &Context,
        database: &Ident,
        schema: &Ident,
        kind: Option<ObjectKind>,
        pattern: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, ToolError>;

    async fn describe_object(
        &self,
        ctx: &Context,
        name: &ObjectName,
    ) -> Result<Vec<ColumnInfo>, ToolError>;

    /// Run one statement the read-only guard allowed, under `limits`.
    async fn run_query(
        &self,
        ctx: &Context,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ToolError>;

    /// What `sql` (a read the guard allowed) would scan, by its plan; nothing is executed.
    async fn explain(&self, ctx: &Context, sql: &str) -> Result<ScanEstimate, ToolError>;

    /// Rows `offset..` of query `query_id`'s result as the engine kept it, under `limits` (the
    /// timeout bounds the read) — never by running the statement again; [`StoredPage::Running`]
    /// while it runs. A statement that failed answers its error.
    async fn read_result(
        &self,
        ctx: &Context,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<StoredPage, ToolError>;

    /// Stop query `query_id`, which may run on another process's session (a restart, another
    /// replica); the calls of this process stop theirs by dropping them.
    async fn cancel_query(&self, ctx: &Context, query_id: &str) -> Result<(), ToolError>;

    /// Check that `target` can be used (objects exist, role and warehouse usable) and return the
    /// context as the engine reports it once applied.
    async fn resolve_context(&self, target: &Context) -> Result<Context, ToolError>;

    /// Call Snowflake's REST API `path` (`api/v2/...`: Cortex) with `body`, as the caller's
    /// identity and context, within `timeout`: a JSON answer, or `Null` once an event stream
    /// (handed to `on_event` as it comes) ends.
    async fn call_api(
        &self,
        _ctx: &Context,
        _path: &str,
        _body: &Value,
        _timeout: Duration,
        _on_event: &mut (dyn FnMut(ApiEvent) + Send),
    ) -> Result<Value, ToolError> {
        Err(ToolError::new(
            "unavailable",
            format!(
                "Snowflake's Cortex services need a Snowflake account; the {} backend has none",
                self.name()
            ),
        ))
    }

    /// Release everything (log out of Snowflake) before the process exits.
    async fn shutdown(&self) {}

    /// Pool figures for metrics: (in use, idle, logins, context switches), when there is a pool.
    fn pool_gauges(&self) -> Option<(usize, usize, u64, u64)> {
        None
    }

    /// `Err(unavailable)` while the database is known to be unreachable (an open circuit), so
    /// calls fail at once instead of queueing for it.
    fn available(&self) -> Result<(), ToolError> {
        Ok(())
    }

    /// The size of warehouse `name` as Snowflake names it (`X-Small`, `Medium`, ...), if known.
    async fn warehouse_size(
        &self,
        _ctx: &Context,
        _name: &str,
    ) -> Result<Option<String>, ToolError> {
        Ok(None)
    }

    /// Whether the circuit is open, and the logins that failed so far (metrics).
    fn circuit(&self) -> Option<(bool, u64)> {
        None
    }
}

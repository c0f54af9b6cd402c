//! The Snowflake backend: tools' requests as Snowflake statements on pooled sessions.
//!
//! Metadata comes from `SHOW` and `DESCRIBE` (what Snowflake answers fastest and what every
//! role may run); identifiers are quoted by [`Ident`], patterns passed as string literals.

use async_trait::async_trait;
use serde_json::Value;
use snowflake_client::{RowLimits, Rows};
use tokio::sync::OnceCell;

use std::sync::Arc;

use super::people::{People, PersonConnector};
use super::pool::Pool;
use super::{
    Backend, ColumnInfo, Context, Named, ObjectInfo, ObjectKind, ObjectName, QueryLimits,
    QueryOutput, ResultColumn, ScanEstimate, StoredPage,
};
use crate::error::ToolError;
use crate::ident::{string_literal, Ident};

mod open;
mod run;

use run::{api_on, run_on, stored_on};

/// Metadata answers are capped too; a catalogue bigger than this is truncated.
const METADATA_ROWS: usize = 10_000;
const METADATA_BYTES: usize = 16 << 20;

/// The pool of real Snowflake sessions.
pub type SnowflakePool = Pool<snowflake_client::Client>;

pub struct SnowflakeBackend {
    pool: SnowflakePool,
    /// Signed-in people's own sessions, with `[oauth] snowflake_identity = "token_exchange"`.
    people: Option<Arc<People>>,
    metadata_timeout: std::time::Duration,
    default_context: OnceCell<Context>,
    /// Sessions that call Cortex (`[cortex] max_concurrent` of them), apart from the
    /// statements' pool so a long agent run never holds a session a statement waits for.
    cortex: Option<SnowflakePool>,
}

impl SnowflakeBackend {
    pub fn new(pool: SnowflakePool, metadata_timeout: std::time::Duration) -> Self {
        SnowflakeBackend {
            pool,
            people: None,
            metadata_timeout,
            default_context: OnceCell::new(),
            cortex: None,
        }
    }

    /// Call Cortex on sessions of `pool` (with `[cortex]`).
    pub fn with_cortex(mut self, pool: Option<SnowflakePool>) -> Self {
        self.cortex = pool;
        self
    }

    /// The pool Cortex calls lease from, when configured.
    pub fn cortex_pool(&self) -> Option<&SnowflakePool> {
        self.cortex.as_ref()
    }

    /// Run signed-in people's statements on their own Snowflake sessions.
    pub fn with_people(mut self, people: Option<Arc<People>>) -> Self {
        self.people = people;
        self
    }

    pub fn pool(&self) -> &SnowflakePool {
        &self.pool
    }

    /// The pool of the person the current call runs for, when people have their own.
    fn person_pool(&self) -> Result<Option<Pool<PersonConnector>>, ToolError> {
        match (&self.people, crate::observe::attribution::person()) {
            (Some(people), Some(person)) => people.pool(&person).map(Some),
            _ => Ok(None),
        }
    }

    /// Run one statement on a session of the caller's pool (their own, or the service
    /// user's) and collect it under caps.
    async fn run(
        &self,
        ctx: &Context,
        sql: &str,
        limits: RowLimits,
        timeout: std::time::Duration,
        detached: bool,
    ) -> Result<Rows, ToolError> {
        match self.person_pool()? {
            Some(pool) => run_on(&pool, ctx, sql, limits, timeout, detached).await,
            None => run_on(&self.pool, ctx, sql, limits, timeout, detached).await,
        }
    }

    /// Read a kept result on a session of the caller's pool.
    async fn stored(
        &self,
        ctx: &Context,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<Option<Rows>, ToolError> {
        match self.person_pool()? {
            Some(pool) => stored_on(&pool, ctx, query_id, offset, limits).await,
            None => stored_on(&self.pool, ctx, query_id, offset, limits).await,
        }
    }
}

impl SnowflakeBackend {
    async fn show(&self, ctx: &Context, sql: &str) -> Result<Table, ToolError> {
        let rows = self
            .run(
                ctx,
                sql,
                RowLimits {
                    max_rows: METADATA_ROWS,
                    max_bytes: METADATA_BYTES,
                },
                self.metadata_timeout,
                false,
            )
            .await?;
        Ok(Table(rows))
    }
}

/// A metadata answer with columns looked up by name.
struct Table(Rows);

impl Table {
    fn column(&self, name: &str) -> Option<usize> {
        self.0
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn text(&self, row: &[snowflake_client::Value], col: Option<usize>) -> Option<String> {
        let v = row.get(col?)?;
        (!v.is_null())
            .then(|| v.to_string())
            .filter(|s| !s.is_empty())
    }

    fn named(&self) -> Vec<Named> {
        let (name, comment) = (self.column("name"), self.column("comment"));
        self.0
            .rows
            .iter()
            .filter_map(|r| {
                Some(Named {
                    name: self.text(r, name)?,
                    comment: self.text(r, comment),
                })
            })
            .collect()
    }
}

#[async_trait]
impl Backend for SnowflakeBackend {
    async fn call_api(
        &self,
        ctx: &Context,
        path: &str,
        body: &Value,
        timeout: std::time::Duration,
        on_event: &mut (dyn FnMut(super::ApiEvent) + Send),
    ) -> Result<Value, ToolError> {
        // A signed-in person's call runs as them, on one of their own sessions.
        if let Some(pool) = self.person_pool()? {
            return api_on(&pool, ctx, path, body, timeout, on_event).await;
        }
        match &self.cortex {
            Some(pool) => api_on(pool, ctx, path, body, timeout, on_event).await,
            None => Err(ToolError::new(
                "unavailable",
                "Cortex is not configured ([cortex])",
            )),
        }
    }

    fn name(&self) -> &'static str {
        "snowflake"
    }

    async fn default_context(&self) -> Result<Context, ToolError> {
        self.default_context
            .get_or_try_init(|| async {
                let wanted = self.pool.connector().default_context().clone();
                let mut lease = self.pool.lease(&wanted).await?;
                Ok::<_, ToolError>(lease.session().context().clone())
            })
            .await
            .cloned()
    }

    async fn ready(&self) -> Result<(), ToolError> {
        let ctx = self.default_context().await?;
        self.run(
            &ctx,
            "SELECT 1",
            RowLimits {
                max_rows: 1,
                max_bytes: 64,
            },
            self.metadata_timeout,
            false,
        )
        .await
        .map(|_| ())
    }

    async fn warehouse_size(&self, ctx: &Context, name: &str) -> Result<Option<String>, ToolError> {
        let sql = format!("SHOW WAREHOUSES LIKE {}", string_literal(name));
        let table = self.show(ctx, &sql).await?;
        let (col_name, col_size) = (table.column("name"), table.column("size"));
        Ok(table
            .0
            .rows
            .iter()
            .find(|r| {
                table
                    .text(r, col_name)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|r| table.text(r, col_size)))
    }

    async fn list_databases(&self, ctx: &Context) -> Result<Vec<Named>, ToolError> {
        Ok(self.show(ctx, "SHOW DATABASES").await?.named())
    }

    async fn list_schemas(&self, ctx: &Context, database: &Ident) -> Result<Vec<Named>, ToolError> {
        let sql = format!("SHOW SCHEMAS IN DATABASE {}", database.quoted());
        Ok(self.show(ctx, &sql).await?.named())
    }

    async fn list_objects(
        &self,
        ctx: &Context,
        database: &Ident,
        schema: &Ident,
        kind: Option<ObjectKind>,
        pattern: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, ToolError> {
        let like = pattern
            .map(|p| format!(" LIKE {}", string_literal(p)))
            .unwrap_or_default();
        let place = format!("{}.{}", database.quoted(), schema.quoted());
        let mut objects = Vec::new();
        for (k, noun) in [(ObjectKind::Table, "TABLES"), (ObjectKind::View, "VIEWS")] {
            if kind.is_some_and(|wanted| wanted != k) {
                continue;
            }
            let table = self
                .show(ctx, &format!("SHOW {noun}{like} IN SCHEMA {place}"))
                .await?;
            let (rows_col, comment_col) = (table.column("rows"), table.column("comment"));
            for (named, row) in table.named().into_iter().zip(table.0.rows.iter()) {
                objects.push(ObjectInfo {
                    name: named.name,
                    kind: k,
                    rows: table.text(row, rows_col).and_then(|r| r.parse().ok()),
                    comment: table.text(row, comment_col),
                });
            }
        }
        Ok(objects)
    }

    async fn describe_object(
        &self,
        ctx: &Context,
        name: &ObjectName,
    ) -> Result<Vec<ColumnInfo>, ToolError> {
        let table = self
            .show(ctx, &format!("DESCRIBE TABLE {}", name.quoted()))
            .await
            .map_err(|e| match e.kind {
                "sql_error" => ToolError::new(
                    "not_found",
                    format!(
                        "{name} does not exist or is not visible to this role. Use list_objects to find the right name."
                    ),
                ),
                _ => e,
            })?;
        let (n, t, null, comment) = (
            table.column("name"),
            table.column("type"),
            table.column("null?"),
            table.column("comment"),
        );
        Ok(table
            .0
            .rows
            .iter()
            .filter_map(|r| {
                Some(ColumnInfo {
                    name: table.text(r, n)?,
                    type_name: table.text(r, t).unwrap_or_default(),
                    nullable: table.text(r, null).is_none_or(|v| v != "N"),
                    comment: table.text(r, comment),
                })
            })
            .collect())
    }

    async fn run_query(
        &self,
        ctx: &Context,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ToolError> {
        // Detached: a statement the call leaves running keeps running if this process goes
        // away, and its result is read by query id from anywhere.
        let rows = self
            .run(
                ctx,
                sql,
                RowLimits {
                    max_rows: limits.max_rows,
                    max_bytes: limits.max_bytes,
                },
                limits.timeout,
                true,
            )
            .await?;
        Ok(output(rows))
    }

    async fn explain(&self, ctx: &Context, sql: &str) -> Result<ScanEstimate, ToolError> {
        // Compiled, not run: no warehouse needed (docs: sql-reference/sql/explain).
        let table = self.show(ctx, &format!("EXPLAIN USING JSON {sql}")).await?;
        let content = table
            .column("content")
            .and_then(|c| table.0.rows.first().and_then(|r| table.text(r, Some(c))))
            .ok_or_else(|| ToolError::new("backend_error", "EXPLAIN gave no plan"))?;
        let plan: Value = serde_json::from_str(&content).map_err(|e| {
            ToolError::new("backend_error", format!("EXPLAIN's plan is not JSON: {e}"))
        })?;
        ScanEstimate::from_plan(plan)
    }

    async fn read_result(
        &self,
        ctx: &Context,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<StoredPage, ToolError> {
        Ok(match self.stored(ctx, query_id, offset, limits).await? {
            Some(rows) => StoredPage::Done(output(rows)),
            None => StoredPage::Running,
        })
    }

    async fn cancel_query(&self, ctx: &Context, query_id: &str) -> Result<(), ToolError> {
        // A statement of another session (this process restarted, or another replica runs
        // it): SYSTEM$CANCEL_QUERY stops the user's own statements from any session.
        super::check_query_id(query_id)?;
        let sql = format!("SELECT SYSTEM$CANCEL_QUERY({})", string_literal(query_id));
        self.show(ctx, &sql).await.map(|_| ())
    }

    async fn shutdown(&self) {
        if let Some(people) = &self.people {
            people.shutdown().await;
        }
        if let Some(cortex) = &self.cortex {
            cortex.shutdown(std::time::Duration::from_secs(10)).await;
        }
        self.pool.shutdown(std::time::Duration::from_secs(10)).await;
    }

    fn available(&self) -> Result<(), ToolError> {
        self.pool.breaker().check()
    }

    fn circuit(&self) -> Option<(bool, u64)> {
        Some((
            self.pool.breaker().is_open(),
            self.pool
                .stats()
                .login_failures
                .load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    fn pool_gauges(&self) -> Option<(usize, usize, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.pool.stats();
        // People's own sessions count too: they are Snowflake sessions this server holds.
        let (people_in_use, people_idle) = self.people.as_ref().map_or((0, 0), |p| p.gauges());
        let (cortex_in_use, cortex_idle) = self
            .cortex
            .as_ref()
            .map_or((0, 0), |p| (p.in_use(), p.idle_count()));
        Some((
            self.pool.in_use() + people_in_use + cortex_in_use,
            self.pool.idle_count() + people_idle + cortex_idle,
            stats.logins.load(Relaxed),
            stats.context_switches.load(Relaxed),
        ))
    }

    async fn resolve_context(&self, target: &Context) -> Result<Context, ToolError> {
        // A person's context is checked with their own grants.
        Ok(match self.person_pool()? {
            Some(pool) => pool.lease(target).await?.session().context().clone(),
            None => self.pool.lease(target).await?.session().context().clone(),
        })
    }
}

/// `NUMBER(10,2)`, `VARCHAR`, `TIMESTAMP_NTZ(9)`...
fn sql_type(c: &snowflake_client::Column) -> String {
    use snowflake_client::ColumnType;
    match (&c.column_type, c.precision, c.scale) {
        (ColumnType::Fixed, Some(p), Some(s)) => format!("NUMBER({p},{s})"),
        (t, _, _) => t.sql_name().to_string(),
    }
}

/// Collected rows as the tools see them.
fn output(rows: Rows) -> QueryOutput {
    QueryOutput {
        columns: rows
            .columns
            .iter()
            .map(|c| ResultColumn {
                name: c.name.clone(),
                type_name: sql_type(c),
            })
            .collect(),
        rows: rows
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(snowflake_client::Value::to_json)
                    .collect::<Vec<Value>>()
            })
            .collect(),
        truncated: rows.truncated,
        query_id: rows.query_id,
        total_rows: rows.total,
    }
}

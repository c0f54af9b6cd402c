//! The demo's query engine: Apache DataFusion over the demo's tables held in memory as Arrow.
//!
//! DataFusion was chosen by measurement (BENCHMARKS.md, "The demo's engine"): its SQL front
//! end is sqlparser, which already reads the Snowflake dialect, its types are Arrow's (exact
//! decimals, dates, timestamps, lists), and it runs the window functions, `QUALIFY`, `GROUP BY
//! ALL`, `EXCLUDE` and most functions a model writes; `rewrite.rs` and `functions.rs` add the
//! rest. Names are compared exactly (no folding here: the rewrite folds as Snowflake does).
//!
//! `DEMO.SALES` holds the tables and the view; `DEMO.INFORMATION_SCHEMA` holds `TABLES`,
//! `COLUMNS`, `SCHEMATA` and `VIEWS` built from the catalogue with Snowflake's column names.
//! A statement runs on the engine's own threads as a stream of batches: reading stops at the
//! row and byte caps, and the statement is aborted at its deadline or when its call goes away.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use tokio_stream::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::catalog::{DATABASE, INFORMATION_SCHEMA, SCHEMA, TABLES};
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::kept::Kept;
use super::results::Collector;
use super::turns::taking_turns;
use crate::backend::{QueryLimits, QueryOutput};
use crate::error::ToolError;
use crate::Context;

pub struct Engine {
    ctx: SessionContext,
}

fn internal(e: impl std::fmt::Display) -> String {
    format!("demo engine: {e}")
}

impl Engine {
    /// The engine over `tables` (the demo's data), with the view and the information schema.
    pub async fn new(
        tables: Vec<(&'static super::catalog::TableSpec, RecordBatch)>,
        rows: &std::collections::HashMap<&'static str, usize>,
    ) -> Result<Engine, String> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_target_partitions(2);
        let options = config.options_mut();
        options.sql_parser.enable_ident_normalization = false;
        // Snowflake's number literals are exact: `ROUND(1.005, 2)` is 1.01.
        options.sql_parser.parse_float_as_decimal = true;
        options.sql_parser.dialect = datafusion::config::Dialect::Snowflake;
        let ctx = SessionContext::new_with_config(config);
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let sales = Arc::new(MemorySchemaProvider::new());
        for (spec, batch) in tables {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(internal)?;
            sales
                .register_table(spec.name.into(), Arc::new(table))
                .map_err(internal)?;
        }
        let information = Arc::new(MemorySchemaProvider::new());
        for (name, batch) in super::information::information_schema(rows)? {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(internal)?;
            information
                .register_table(name.into(), Arc::new(table))
                .map_err(internal)?;
        }
        catalog.register_schema(SCHEMA, sales).map_err(internal)?;
        catalog
            .register_schema(INFORMATION_SCHEMA, information)
            .map_err(internal)?;
        ctx.register_catalog(DATABASE, catalog);
        for udf in super::functions::all() {
            ctx.register_udf(udf);
        }
        let engine = Engine { ctx };
        for view in TABLES.iter().filter(|t| t.view.is_some()) {
            let sql = format!(
                "CREATE VIEW {DATABASE}.{SCHEMA}.{} AS {}",
                view.name,
                view.view.unwrap_or_default()
            );
            let plan = engine
                .any_plan(&sql, &Context::default())
                .await
                .map_err(|e| e.message)?;
            engine
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(internal)?;
        }
        Ok(engine)
    }

    /// The plan of any statement (the engine's own views are created with it).
    async fn any_plan(
        &self,
        sql: &str,
        ctx: &Context,
    ) -> Result<datafusion::logical_expr::LogicalPlan, ToolError> {
        let statement = super::rewrite::rewrite(sql, ctx).map_err(sql_error)?;
        self.ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
            .map_err(|e| sql_error(compilation_error(&e.to_string())))
    }

    /// The plan of a client's statement: a read.
    async fn plan(
        &self,
        sql: &str,
        ctx: &Context,
    ) -> Result<datafusion::logical_expr::LogicalPlan, ToolError> {
        use datafusion::logical_expr::LogicalPlan;
        let plan = self.any_plan(sql, ctx).await?;
        // The demo's tables are shared by every client of the process: it only reads, whatever
        // a client's policy would allow against Snowflake.
        match plan {
            LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_) => Err(ToolError::refused(
                "the offline demo only reads; writes need a Snowflake account (or an emulator)",
            )),
            plan => Ok(plan),
        }
    }

    /// The tables and views `sql` reads (subqueries included), by name; none for `SHOW` or a
    /// wait.
    pub async fn scanned(
        &self,
        sql: &str,
        ctx: &Context,
        rows: &std::collections::HashMap<&'static str, usize>,
    ) -> Result<Vec<String>, ToolError> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::logical_expr::LogicalPlan;
        let Statement::Plan(plan) = self.prepare(sql, ctx, rows).await? else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                names.push(scan.table_name.table().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| ToolError::internal(e.to_string()))?;
        Ok(names)
    }

    /// What `sql` does: an answer already made (`SHOW`), a wait, or a plan to execute.
    pub async fn prepare(
        &self,
        sql: &str,
        ctx: &Context,
        rows: &std::collections::HashMap<&'static str, usize>,
    ) -> Result<Statement, ToolError> {
        if let Some(answer) = super::show::answer(sql, rows) {
            return Ok(Statement::Ready(
                answer.map_err(|e| ToolError::new("sql_error", e))?,
            ));
        }
        if let Some(seconds) = wait_seconds(sql) {
            return Ok(Statement::Wait(seconds));
        }
        self.plan(sql, ctx).await.map(Statement::Plan)
    }

    /// Run one prepared statement within `limits`, keeping its whole result in `kept`.
    pub async fn execute(
        &self,
        statement: Statement,
        limits: QueryLimits,
        query_id: String,
        kept: &Arc<Kept>,
    ) -> Result<QueryOutput, ToolError> {
        let engine = self.ctx.clone();
        let (keep, id) = (kept.clone(), query_id.clone());
        // The statement runs on the engine's own threads, so that no request to the server waits
        // for a thread behind it; it is aborted when this call ends, whether it finished, timed
        // out or was cancelled (see `turns.rs` for how the abort reaches a long computation).
        let task = AbortOnDropHandle::new(engine_runtime().spawn(async move {
            let mut kept = keep.begin(&id)?;
            let mut stream = statement.stream(&engine).await?;
            let mut rows = Collector::new(&stream.schema(), limits);
            kept.open(&stream.schema())?;
            let mut full = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| failed(&e.to_string()))?;
                kept.add(&batch);
                if !full {
                    full = !rows.add(&batch);
                }
            }
            let total = kept.finish();
            let mut out = rows.finish(id);
            out.total_rows = Some(total);
            Ok::<_, ToolError>(out)
        }));
        // Until it ends, `cancel_query` can stop it by its id.
        let _running = kept.running(&query_id, task.abort_handle());
        let work = async {
            task.await
                .map_err(|e| ToolError::internal(format!("demo statement failed: {e}")))?
        };
        match tokio::time::timeout(limits.timeout.max(Duration::from_millis(1)), work).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(
                "timeout",
                format!(
                    "the statement ran past its {} s timeout and was stopped",
                    limits.timeout.as_secs()
                ),
            )),
        }
    }
}

/// One statement ready to run.
pub enum Statement {
    /// `SHOW`/`DESCRIBE`, answered from the catalogue.
    Ready(RecordBatch),
    /// `SELECT SYSTEM$WAIT(n)`: waits `n` seconds, as Snowflake's does (for trying long
    /// statements offline).
    Wait(f64),
    Plan(datafusion::logical_expr::LogicalPlan),
}

impl Statement {
    async fn stream(self, engine: &SessionContext) -> Result<SendableRecordBatchStream, ToolError> {
        let ready = |batch: RecordBatch| -> SendableRecordBatchStream {
            Box::pin(RecordBatchStreamAdapter::new(
                batch.schema(),
                tokio_stream::iter(vec![Ok(batch)]),
            ))
        };
        match self {
            Statement::Ready(batch) => Ok(ready(batch)),
            Statement::Wait(seconds) => {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                let schema = Arc::new(Schema::new(vec![Field::new(
                    "SYSTEM$WAIT",
                    DataType::Utf8,
                    false,
                )]));
                let text = format!("waited {seconds} seconds");
                let column = Arc::new(StringArray::from(vec![text])) as ArrayRef;
                let batch = RecordBatch::try_new(schema, vec![column])
                    .map_err(|e| ToolError::internal(e.to_string()))?;
                Ok(ready(batch))
            }
            Statement::Plan(plan) => {
                let physical = engine
                    .state()
                    .create_physical_plan(&plan)
                    .await
                    .map_err(|e| sql_error(compilation_error(&e.to_string())))?;
                let physical =
                    taking_turns(physical).map_err(|e| ToolError::internal(e.to_string()))?;
                datafusion::physical_plan::execute_stream(physical, engine.task_ctx())
                    .map_err(|e| failed(&e.to_string()))
            }
        }
    }
}

/// The seconds of `SELECT SYSTEM$WAIT(n [, 'SECONDS' | 'MILLISECONDS' | ...])`, the whole
/// statement; at most an hour (the statement timeout stops it sooner).
fn wait_seconds(sql: &str) -> Option<f64> {
    let text = sql.trim().trim_end_matches(';').trim();
    let upper = text.to_ascii_uppercase();
    let rest = upper.strip_prefix("SELECT")?.trim_start();
    let args = rest.strip_prefix("SYSTEM$WAIT")?.trim_start();
    let args = args.strip_prefix('(')?.strip_suffix(')')?;
    let mut parts = args.split(',').map(str::trim);
    let amount: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next().map(|u| u.trim_matches('\''));
    if parts.next().is_some() || !(0.0..=3600.0).contains(&amount) {
        return None;
    }
    let scale = match unit {
        None | Some("SECONDS") => 1.0,
        Some("MILLISECONDS") => 0.001,
        Some("MINUTES") => 60.0,
        Some("HOURS") => 3600.0,
        _ => return None,
    };
    Some((amount * scale).min(3600.0))
}

fn sql_error(message: String) -> ToolError {
    ToolError::new("sql_error", message)
}

/// DataFusion's planning errors in Snowflake's words, naming what the demo does not have.
fn compilation_error(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let first = first
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("This feature is not implemented: ");
    if first.starts_with("SQL compilation error") {
        return first.to_string();
    }
    if let Some(node) = first.strip_prefix("Unsupported ast node ") {
        let kind: String = node.chars().take_while(|c| c.is_alphanumeric()).collect();
        let what = match kind.as_str() {
            "TableFunction" => {
                let name = node
                    .split("value: \"")
                    .nth(1)
                    .and_then(|r| r.split('"').next());
                format!("the table function {}", name.unwrap_or("called here"))
            }
            other => other.to_uppercase(),
        };
        return format!("SQL compilation error: {what} is not supported by the offline demo");
    }
    if let Some(name) = first
        .strip_prefix("table function '")
        .and_then(|r| r.split('\'').next())
    {
        return format!(
            "SQL compilation error: the table function {name} is not supported by the offline demo"
        );
    }
    if let Some(name) = first
        .strip_prefix("Invalid function '")
        .and_then(|r| r.split('\'').next())
    {
        return format!(
            "SQL compilation error: Unknown function {} (the offline demo does not have it)",
            name.to_uppercase()
        );
    }
    if let Some(rest) = first.strip_prefix("table '") {
        let name = rest.split('\'').next().unwrap_or(rest);
        return format!("SQL compilation error: Object '{name}' does not exist or not authorized.");
    }
    format!("SQL compilation error: {first}")
}

fn failed(text: &str) -> ToolError {
    sql_error(execution_error(text))
}

fn execution_error(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    format!(
        "SQL execution error: {}",
        first
            .trim_start_matches("Execution error: ")
            .trim_start_matches("Arrow error: ")
    )
}

/// The threads statements run on, apart from the server's: a heavy statement keeps these busy,
/// never the ones that answer requests, health checks and cancellations.
fn engine_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("demo-engine")
                .enable_time()
                .build()
                .expect("the demo engine's threads start")
        })
        .handle()
}

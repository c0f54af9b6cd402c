//! The offline demo: Snowflake SQL answered from a small sales dataset, with no account.
//!
//! `--demo` needs no account: a small sales dataset (regions, customers, products, orders, order
//! items, and a view) is generated deterministically on first use into the cache directory
//! (`data.rs`), read into memory, and queried by the demo's engine (`engine.rs`: DataFusion,
//! with Snowflake's names, functions and types added by `rewrite.rs` and `functions.rs`). It
//! appears as database `DEMO`, schema `SALES` (and `INFORMATION_SCHEMA`); statements run behind
//! the same guard, caps, quotas and cancellation as Snowflake. `SHOW` and `DESCRIBE` are
//! answered from the catalogue (`show.rs`), shaped as Snowflake's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::OnceCell;

use super::{
    Backend, ColumnInfo, Context, Named, ObjectInfo, ObjectKind, ObjectName, QueryLimits,
    QueryOutput, ScanEstimate, StoredPage,
};
use crate::error::ToolError;
use crate::ident::Ident;

mod catalog;
mod data;
mod engine;
mod functions;
mod information;
mod kept;
mod results;
mod rewrite;
mod semantic;
mod show;
mod turns;

use catalog::{DATABASE, ROLE, SCHEMA, WAREHOUSE};
use data::generate;
use engine::Engine;
use kept::Kept;

/// How the demo introduces itself (`get_context`, the server's instructions).
const NOTE: &str = "This is the offline demo, not a Snowflake account: generated sample sales data in DEMO.SALES, answered by a local engine that speaks Snowflake SQL (most functions and syntax; not FLATTEN, PIVOT or GENERATOR).";

/// Bump when the generated data changes, so old cache files are not reused.
const DATASET_VERSION: u32 = 1;

pub struct DemoBackend {
    tables: Vec<(&'static catalog::TableSpec, RecordBatch)>,
    rows: HashMap<&'static str, usize>,
    /// Built on first use (it needs the runtime); every call after shares it.
    engine: OnceCell<Engine>,
    /// Results kept by query id, and the statements running.
    kept: Arc<Kept>,
}

impl DemoBackend {
    /// Open the demo data under `cache_dir`, generating it first if needed.
    pub fn open(cache_dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| format!("cannot create {}: {e}", cache_dir.display()))?;
        let path = cache_dir.join(format!("demo-v{DATASET_VERSION}.sqlite"));
        if !path.exists() {
            let tmp = cache_dir.join(format!(
                "demo-v{DATASET_VERSION}.{}.tmp",
                std::process::id()
            ));
            generate(&tmp).map_err(|e| format!("cannot build the demo database: {e}"))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot move the demo database into place: {e}"))?;
        }
        let tables = data::load(&path)?;
        let rows = tables.iter().map(|(t, b)| (t.name, b.num_rows())).collect();
        Ok(DemoBackend {
            tables,
            rows,
            engine: OnceCell::new(),
            kept: Arc::new(Kept::open(cache_dir)?),
        })
    }

    async fn engine(&self) -> Result<&Engine, ToolError> {
        self.engine
            .get_or_try_init(|| Engine::new(self.tables.clone(), &self.rows))
            .await
            .map_err(ToolError::internal)
    }

    fn check_place(database: &Ident, schema: Option<&Ident>) -> Result<(), ToolError> {
        if database.name() != DATABASE {
            return Err(ToolError::new(
                "not_found",
                format!("database {database} does not exist; the demo has only {DATABASE}"),
            ));
        }
        if let Some(s) = schema.filter(|s| s.name() != SCHEMA) {
            return Err(ToolError::new(
                "not_found",
                format!("schema {s} does not exist; the demo has only {DATABASE}.{SCHEMA}"),
            ));
        }
        Ok(())
    }

    /// Unique across restarts: kept results outlive the process.
    fn next_query_id(&self) -> String {
        format!("demo-{}", uuid::Uuid::new_v4())
    }
}

#[async_trait]
impl Backend for DemoBackend {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn note(&self) -> Option<&'static str> {
        Some(NOTE)
    }

    async fn default_context(&self) -> Result<Context, ToolError> {
        Ok(Context {
            database: Some(DATABASE.into()),
            schema: Some(SCHEMA.into()),
            warehouse: Some(WAREHOUSE.into()),
            role: Some(ROLE.into()),
        })
    }

    async fn ready(&self) -> Result<(), ToolError> {
        self.engine().await.map(|_| ())
    }

    async fn warehouse_size(
        &self,
        _ctx: &Context,
        name: &str,
    ) -> Result<Option<String>, ToolError> {
        Ok((name == WAREHOUSE).then(|| "X-Small".to_string()))
    }

    async fn list_databases(&self, _ctx: &Context) -> Result<Vec<Named>, ToolError> {
        Ok(vec![Named {
            name: DATABASE.into(),
            comment: Some("offline demo data".into()),
        }])
    }

    async fn list_schemas(
        &self,
        _ctx: &Context,
        database: &Ident,
    ) -> Result<Vec<Named>, ToolError> {
        Self::check_place(database, None)?;
        Ok(vec![Named {
            name: SCHEMA.into(),
            comment: Some("sales: customers, products, orders".into()),
        }])
    }

    async fn list_objects(
        &self,
        _ctx: &Context,
        database: &Ident,
        schema: &Ident,
        kind: Option<ObjectKind>,
        pattern: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, ToolError> {
        Self::check_place(database, Some(schema))?;
        let mut out: Vec<ObjectInfo> = catalog::TABLES
            .iter()
            .filter(|t| pattern.is_none_or(|p| show::like(p, t.name)))
            .map(|t| ObjectInfo {
                name: t.name.into(),
                kind: if t.view.is_some() {
                    ObjectKind::View
                } else {
                    ObjectKind::Table
                },
                rows: self.rows.get(t.name).map(|&n| n as u64),
                comment: Some(t.comment.into()),
            })
            .filter(|o| kind.is_none_or(|k| k == o.kind))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn describe_object(
        &self,
        _ctx: &Context,
        name: &ObjectName,
    ) -> Result<Vec<ColumnInfo>, ToolError> {
        Self::check_place(&name.database, Some(&name.schema))?;
        let Some(table) = catalog::table(name.name.name()) else {
            return Err(ToolError::new(
                "not_found",
                format!("{name} does not exist. Use list_objects to find the right name."),
            ));
        };
        Ok(table
            .columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.name.into(),
                type_name: c.snowflake.into(),
                nullable: c.nullable,
                comment: None,
            })
            .collect())
    }

    async fn run_query(
        &self,
        ctx: &Context,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ToolError> {
        let engine = self.engine().await?;
        let statement = engine.prepare(sql, ctx, &self.rows).await?;
        let query_id = self.next_query_id();
        let _ = crate::observe::progress::query_id_cell().set(query_id.clone());
        engine
            .execute(statement, limits, query_id, &self.kept)
            .await
    }

    async fn explain(&self, ctx: &Context, sql: &str) -> Result<ScanEstimate, ToolError> {
        // Snowflake's plan shape, from what the demo holds: each table is one partition, its
        // bytes its size in memory; a view reads the tables its definition names.
        let engine = self.engine().await?;
        let mut operations = Vec::new();
        let mut bytes_total = 0u64;
        for name in engine.scanned(sql, ctx, &self.rows).await? {
            let spec = catalog::TABLES.iter().find(|t| t.name == name);
            let read: Vec<&(&catalog::TableSpec, RecordBatch)> = match spec.and_then(|s| s.view) {
                Some(view) => self
                    .tables
                    .iter()
                    .filter(|(t, _)| view.contains(t.name))
                    .collect(),
                None => self.tables.iter().filter(|(t, _)| t.name == name).collect(),
            };
            for (table, batch) in read {
                let bytes = batch.get_array_memory_size() as u64;
                bytes_total += bytes;
                operations.push(serde_json::json!({"operation": "TableScan",
                    "objects": [format!("{DATABASE}.{SCHEMA}.{}", table.name)],
                    "partitionsTotal": 1, "partitionsAssigned": 1, "bytesAssigned": bytes}));
            }
        }
        let n = operations.len();
        ScanEstimate::from_plan(serde_json::json!({
            "GlobalStats": {"partitionsTotal": n, "partitionsAssigned": n, "bytesAssigned": bytes_total},
            "Operations": [operations],
        }))
    }

    async fn read_result(
        &self,
        _ctx: &Context,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<StoredPage, ToolError> {
        super::check_query_id(query_id)?;
        if self.kept.is_running(query_id) {
            return Ok(StoredPage::Running);
        }
        let kept = self.kept.clone();
        let id = query_id.to_string();
        let read = tokio::task::spawn_blocking(move || kept.read(&id, offset, limits))
            .await
            .map_err(|e| ToolError::internal(e.to_string()))??;
        read.map(StoredPage::Done).ok_or_else(|| {
            ToolError::new(
                "not_found",
                "the demo no longer keeps this result (kept 24 hours; the oldest go first)",
            )
        })
    }

    async fn cancel_query(&self, _ctx: &Context, query_id: &str) -> Result<(), ToolError> {
        self.kept.cancel(query_id);
        Ok(())
    }

    async fn resolve_context(&self, target: &Context) -> Result<Context, ToolError> {
        if let Some(db) = &target.database {
            Self::check_place(
                &Ident::exact(db.clone()),
                target
                    .schema
                    .as_ref()
                    .map(|s| Ident::exact(s.clone()))
                    .as_ref(),
            )?;
        }
        for (what, value, only) in [
            ("warehouse", &target.warehouse, WAREHOUSE),
            ("role", &target.role, ROLE),
        ] {
            if value.as_deref().is_some_and(|v| v != only) {
                return Err(ToolError::new(
                    "not_found",
                    format!(
                        "{what} {} does not exist; the demo has only {only}",
                        value.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let mut resolved = target.clone();
        if resolved.database.is_some() && resolved.schema.is_none() {
            resolved.schema = Some(SCHEMA.into());
        }
        Ok(resolved)
    }
}

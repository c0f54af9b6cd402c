//! The offline demo: an embedded SQLite database standing in for Snowflake.
//!
//! `--demo` needs no account: a small sales dataset (regions, customers, products, orders, order
//! items, and a view) is generated deterministically on first use into the cache directory and
//! opened **read-only** from then on. It appears as database `DEMO`, schema `SALES`; queries
//! run on SQLite (so `SALES.ORDERS` and `ORDERS` work, three-part names and Snowflake-only
//! syntax do not), behind the same guard and limits as Snowflake. `SHOW` and `DESCRIBE`
//! statements are answered from the catalogue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use super::{
    Backend, ColumnInfo, Context, Named, ObjectInfo, ObjectKind, ObjectName, QueryLimits,
    QueryOutput, ResultColumn,
};
use crate::error::ToolError;
use crate::ident::Ident;

mod data;
mod sqlite;

use data::generate;
use sqlite::{internal, run_sqlite, snowflake_type, InterruptOnDrop};

const DATABASE: &str = "DEMO";
const SCHEMA: &str = "SALES";
const WAREHOUSE: &str = "DEMO_WH";
const ROLE: &str = "PUBLIC";
/// Bump when the generated data changes, so old cache files are not reused.
const DATASET_VERSION: u32 = 1;

pub struct DemoBackend {
    path: PathBuf,
    queries: AtomicU64,
}

impl DemoBackend {
    /// Open the demo database under `cache_dir`, generating it first if needed.
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
        Ok(DemoBackend {
            path,
            queries: AtomicU64::new(0),
        })
    }

    /// A read-only connection with the `SALES` schema attached.
    fn connect(path: &Path) -> Result<Connection, ToolError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(internal)?;
        let uri = format!("file:{}?mode=ro", path.display());
        conn.execute("ATTACH DATABASE ?1 AS sales", [uri])
            .map_err(internal)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(internal)?;
        Ok(conn)
    }

    /// Run `work` on a fresh read-only connection on the blocking pool. If the caller stops
    /// waiting (the call was cancelled, its client went away), the statement is interrupted
    /// instead of running on unobserved — as the Snowflake backend aborts its statement.
    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, ToolError> {
        let path = self.path.clone();
        let guard = InterruptOnDrop::default();
        let slot = guard.0.clone();
        let job = tokio::task::spawn_blocking(move || {
            let c = Self::connect(&path)?;
            {
                let mut slot = crate::lock(&slot);
                if slot.0 {
                    return Err(ToolError::new("cancelled", "the call was cancelled"));
                }
                slot.1 = Some(c.get_interrupt_handle());
            }
            work(&c)
        });
        let result = job
            .await
            .map_err(|e| ToolError::internal(format!("demo worker failed: {e}")))?;
        guard.disarm();
        result
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

    fn next_query_id(&self) -> String {
        format!("demo-{}", self.queries.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[async_trait]
impl Backend for DemoBackend {
    fn name(&self) -> &'static str {
        "demo"
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
        self.with_conn(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(internal))
            .await
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
        let pattern = pattern.unwrap_or("%").to_string();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name LIKE ?1 ORDER BY name")
                .map_err(internal)?;
            let rows = stmt
                .query_map([pattern], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(internal)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, t) = row.map_err(internal)?;
                let k = if t == "view" { ObjectKind::View } else { ObjectKind::Table };
                if kind.is_some_and(|wanted| wanted != k) {
                    continue;
                }
                let count: Option<u64> = match k {
                    ObjectKind::Table => c
                        .query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |r| r.get(0))
                        .ok(),
                    ObjectKind::View => None,
                };
                out.push(ObjectInfo { name, kind: k, rows: count, comment: None });
            }
            Ok(out)
        })
        .await
    }

    async fn describe_object(
        &self,
        _ctx: &Context,
        name: &ObjectName,
    ) -> Result<Vec<ColumnInfo>, ToolError> {
        Self::check_place(&name.database, Some(&name.schema))?;
        let table = name.name.name().to_string();
        let shown = name.to_string();
        let columns = self
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT name, type, \"notnull\" FROM pragma_table_info(?1) ORDER BY cid",
                    )
                    .map_err(internal)?;
                let rows = stmt
                    .query_map([table], |r| {
                        Ok(ColumnInfo {
                            name: r.get(0)?,
                            type_name: snowflake_type(&r.get::<_, String>(1)?),
                            nullable: r.get::<_, i64>(2)? == 0,
                            comment: None,
                        })
                    })
                    .map_err(internal)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(internal)
            })
            .await?;
        if columns.is_empty() {
            return Err(ToolError::new(
                "not_found",
                format!("{shown} does not exist. Use list_objects to find the right name."),
            ));
        }
        Ok(columns)
    }

    async fn run_query(
        &self,
        ctx: &Context,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ToolError> {
        let query_id = self.next_query_id();
        if let Some(output) = self.answer_from_catalogue(ctx, sql, &query_id).await? {
            return Ok(output);
        }
        let sql = match strip_keyword(sql, "EXPLAIN") {
            Some(rest) => format!("EXPLAIN QUERY PLAN {rest}"),
            None => sql.to_string(),
        };
        self.with_conn(move |c| run_sqlite(c, &sql, limits, query_id))
            .await
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

impl DemoBackend {
    /// SHOW and DESCRIBE, answered from the catalogue the way Snowflake would shape them.
    async fn answer_from_catalogue(
        &self,
        ctx: &Context,
        sql: &str,
        query_id: &str,
    ) -> Result<Option<QueryOutput>, ToolError> {
        let upper = sql.trim().trim_end_matches(';').to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().collect();
        let db = Ident::exact(DATABASE);
        let schema = Ident::exact(SCHEMA);
        let table = |columns: &[&str], rows: Vec<Vec<Value>>| QueryOutput {
            columns: columns
                .iter()
                .map(|c| ResultColumn {
                    name: (*c).into(),
                    type_name: "VARCHAR".into(),
                })
                .collect(),
            rows,
            truncated: false,
            query_id: query_id.to_string(),
        };
        let named = |items: Vec<Named>| {
            items
                .into_iter()
                .map(|n| vec![json!(n.name), json!(n.comment)])
                .collect()
        };
        Ok(match words.as_slice() {
            ["SHOW", "DATABASES", ..] | ["SHOW", "TERSE", "DATABASES", ..] => Some(table(
                &["name", "comment"],
                named(self.list_databases(ctx).await?),
            )),
            ["SHOW", "SCHEMAS", ..] | ["SHOW", "TERSE", "SCHEMAS", ..] => Some(table(
                &["name", "comment"],
                named(self.list_schemas(ctx, &db).await?),
            )),
            ["SHOW", rest @ ..]
                if rest
                    .iter()
                    .any(|w| matches!(*w, "TABLES" | "VIEWS" | "OBJECTS")) =>
            {
                let kind = if rest.contains(&"TABLES") {
                    Some(ObjectKind::Table)
                } else if rest.contains(&"VIEWS") {
                    Some(ObjectKind::View)
                } else {
                    None
                };
                let objects = self.list_objects(ctx, &db, &schema, kind, None).await?;
                let rows = objects
                    .into_iter()
                    .map(|o| vec![json!(o.name), json!(o.kind), json!(o.rows)])
                    .collect();
                Some(table(&["name", "kind", "rows"], rows))
            }
            ["DESCRIBE" | "DESC", ..] => {
                // The name may be quoted with spaces in it: `DESCRIBE VIEW "Sales Data"."Q1"`.
                let (_, rest) = crate::ident::leading_name(sql.trim().trim_end_matches(';'));
                let (mut name, rest) = crate::ident::leading_name(rest);
                if name.eq_ignore_ascii_case("TABLE") || name.eq_ignore_ascii_case("VIEW") {
                    name = crate::ident::leading_name(rest).0;
                }
                let home = Context {
                    database: Some(DATABASE.into()),
                    schema: Some(SCHEMA.into()),
                    ..Default::default()
                };
                let object = ObjectName::resolve(name, &home)?;
                let cols = self.describe_object(ctx, &object).await?;
                let rows = cols
                    .into_iter()
                    .map(|c| {
                        vec![
                            json!(c.name),
                            json!(c.type_name),
                            json!(if c.nullable { "Y" } else { "N" }),
                        ]
                    })
                    .collect();
                Some(table(&["name", "type", "null?"], rows))
            }
            _ => None,
        })
    }
}

fn strip_keyword<'a>(sql: &'a str, keyword: &str) -> Option<&'a str> {
    let trimmed = sql.trim_start();
    let head = trimmed.get(..keyword.len())?;
    (head.eq_ignore_ascii_case(keyword)
        && trimmed[keyword.len()..].starts_with(char::is_whitespace))
    .then(|| &trimmed[keyword.len()..])
}

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
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::{types::ValueRef, Connection, OpenFlags};
use serde_json::{json, Value};

use super::{
    Backend, ColumnInfo, Context, Named, ObjectInfo, ObjectKind, ObjectName, QueryLimits,
    QueryOutput, ResultColumn,
};
use crate::error::ToolError;
use crate::ident::Ident;

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

fn internal(e: rusqlite::Error) -> ToolError {
    ToolError::internal(format!("demo database: {e}"))
}

fn sql_error(e: rusqlite::Error) -> ToolError {
    let interrupted = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted);
    if interrupted {
        return ToolError::new("timeout", "the statement ran past its time limit and was stopped. Narrow the query and try again.");
    }
    ToolError::new(
        "sql_error",
        format!("{e}. The demo runs SQLite SQL over tables in SALES; fix the SQL and try again."),
    )
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

/// Run one statement on SQLite, stopping at the caps and at the deadline.
/// Interrupts the statement of a [`DemoBackend::with_conn`] whose caller went away: the flag
/// stops a job that has not started, the handle interrupts one that runs.
#[derive(Default)]
struct InterruptOnDrop(
    std::sync::Arc<std::sync::Mutex<(bool, Option<rusqlite::InterruptHandle>)>>,
    bool,
);

impl InterruptOnDrop {
    fn disarm(mut self) {
        self.1 = true;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.1 {
            return;
        }
        let mut slot = crate::lock(&self.0);
        slot.0 = true;
        if let Some(handle) = &slot.1 {
            handle.interrupt();
        }
    }
}

fn run_sqlite(
    c: &Connection,
    sql: &str,
    limits: QueryLimits,
    query_id: String,
) -> Result<QueryOutput, ToolError> {
    let deadline = Instant::now() + limits.timeout;
    c.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let mut stmt = c.prepare(sql).map_err(sql_error)?;
    let mut columns: Vec<ResultColumn> = stmt
        .columns()
        .iter()
        .map(|col| ResultColumn {
            name: col.name().to_ascii_uppercase(),
            type_name: col.decl_type().map(snowflake_type).unwrap_or_default(),
        })
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut cursor = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = cursor.next().map_err(sql_error)? {
        if rows.len() >= limits.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            out.push(match row.get_ref(i).map_err(sql_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => {
                    json!(b.iter().map(|x| format!("{x:02X}")).collect::<String>())
                }
            });
        }
        // Expressions have no declared type: name it after the first value seen.
        for (column, value) in columns.iter_mut().zip(&out) {
            if column.type_name.is_empty() && !value.is_null() {
                column.type_name = match value {
                    Value::Number(n) if n.is_i64() => "NUMBER(38,0)",
                    Value::Number(_) => "FLOAT",
                    _ => "VARCHAR",
                }
                .into();
            }
        }
        let size: usize = out.iter().map(|v| v.to_string().len()).sum();
        if bytes + size > limits.max_bytes {
            truncated = true;
            break;
        }
        bytes += size;
        rows.push(out);
    }
    drop(cursor);
    c.progress_handler(0, None::<fn() -> bool>);
    for column in columns.iter_mut().filter(|c| c.type_name.is_empty()) {
        column.type_name = "VARCHAR".into();
    }
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
        query_id,
    })
}

/// SQLite declared types shown with Snowflake's names.
fn snowflake_type(decl: &str) -> String {
    let d = decl.to_ascii_uppercase();
    if d.starts_with("INT") {
        "NUMBER(38,0)".into()
    } else if d.starts_with("DECIMAL") || d.starts_with("NUMERIC") {
        d.replace("DECIMAL", "NUMBER").replace("NUMERIC", "NUMBER")
    } else if d == "REAL" || d.starts_with("FLOAT") || d.starts_with("DOUBLE") {
        "FLOAT".into()
    } else if d.is_empty() || d.starts_with("TEXT") || d.starts_with("VARCHAR") {
        "VARCHAR".into()
    } else {
        d
    }
}

/// Build the demo dataset at `path`. Deterministic: the same file every time.
fn generate(path: &Path) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut conn = Connection::open(path)?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE REGIONS (REGION_ID INTEGER PRIMARY KEY, NAME TEXT NOT NULL);
         CREATE TABLE CUSTOMERS (CUSTOMER_ID INTEGER PRIMARY KEY, NAME TEXT NOT NULL, EMAIL TEXT, REGION_ID INTEGER NOT NULL REFERENCES REGIONS, SIGNUP_DATE DATE NOT NULL);
         CREATE TABLE PRODUCTS (PRODUCT_ID INTEGER PRIMARY KEY, NAME TEXT NOT NULL, CATEGORY TEXT NOT NULL, UNIT_PRICE DECIMAL(10,2) NOT NULL);
         CREATE TABLE ORDERS (ORDER_ID INTEGER PRIMARY KEY, CUSTOMER_ID INTEGER NOT NULL REFERENCES CUSTOMERS, ORDER_DATE DATE NOT NULL, STATUS TEXT NOT NULL);
         CREATE TABLE ORDER_ITEMS (ORDER_ID INTEGER NOT NULL REFERENCES ORDERS, LINE INTEGER NOT NULL, PRODUCT_ID INTEGER NOT NULL REFERENCES PRODUCTS, QUANTITY INTEGER NOT NULL, PRIMARY KEY (ORDER_ID, LINE));
         CREATE VIEW ORDER_TOTALS AS SELECT O.ORDER_ID, O.CUSTOMER_ID, O.ORDER_DATE, SUM(I.QUANTITY * P.UNIT_PRICE) AS TOTAL
           FROM ORDERS O JOIN ORDER_ITEMS I ON I.ORDER_ID = O.ORDER_ID JOIN PRODUCTS P ON P.PRODUCT_ID = I.PRODUCT_ID GROUP BY O.ORDER_ID;",
    )?;
    let mut rng = Lcg(0x5EED_5A1E5);
    let regions = ["North", "South", "East", "West", "Central"];
    for (i, r) in regions.iter().enumerate() {
        tx.execute(
            "INSERT INTO regions VALUES (?1, ?2)",
            rusqlite::params![i as i64 + 1, r],
        )?;
    }
    let first = [
        "Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena",
    ];
    let last = [
        "Stone", "Rivers", "Park", "Okafor", "Silva", "Novak", "Ito", "Berg", "Khan", "Moreau",
    ];
    let day = |n: u64| {
        (chrono::NaiveDate::from_ymd_opt(2023, 1, 1).expect("date")
            + chrono::Duration::days(n as i64))
        .to_string()
    };
    for id in 1..=1000u64 {
        let name = format!(
            "{} {}",
            first[rng.below(12) as usize],
            last[rng.below(10) as usize]
        );
        let email = format!(
            "{}{id}@example.com",
            name.split(' ').next().unwrap_or("c").to_ascii_lowercase()
        );
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                id as i64,
                name,
                email,
                rng.below(5) as i64 + 1,
                day(rng.below(365))
            ],
        )?;
    }
    let categories = ["Books", "Games", "Garden", "Kitchen", "Tools"];
    for id in 1..=100u64 {
        let category = categories[rng.below(5) as usize];
        let price = format!("{}.{:02}", 2 + rng.below(200), rng.below(100));
        tx.execute(
            "INSERT INTO products VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                id as i64,
                format!("{category} item {id}"),
                category,
                price.parse::<f64>().unwrap_or(1.0)
            ],
        )?;
    }
    let statuses = ["shipped", "shipped", "shipped", "pending", "returned"];
    for id in 1..=5000u64 {
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                id as i64,
                rng.below(1000) as i64 + 1,
                day(365 + rng.below(365)),
                statuses[rng.below(5) as usize]
            ],
        )?;
        for line in 1..=(1 + rng.below(4)) {
            tx.execute(
                "INSERT INTO order_items VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    id as i64,
                    line as i64,
                    rng.below(100) as i64 + 1,
                    rng.below(5) as i64 + 1
                ],
            )?;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)
}

/// A tiny deterministic generator (no dependency, same data on every machine).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

//! The demo's dataset: a small, deterministic sales database (regions, customers, products,
//! orders, order items and a view) written once into the cache directory.

use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use rusqlite::Connection;

/// Build the demo dataset at `path`. Deterministic: the same file every time.
pub(super) fn generate(path: &Path) -> rusqlite::Result<()> {
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
pub(super) struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Read the generated tables into Arrow batches, typed as the catalogue says (dates as dates,
/// prices as exact decimals), for the engine to query.
pub(super) fn load(
    path: &Path,
) -> Result<Vec<(&'static super::catalog::TableSpec, RecordBatch)>, String> {
    use datafusion::arrow::array::{
        ArrayRef, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the demo data: {e}"))?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
    let mut out = Vec::new();
    for spec in super::catalog::TABLES.iter().filter(|t| t.view.is_none()) {
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
        let sql = format!("SELECT {} FROM {} ORDER BY 1", names.join(", "), spec.name);
        let read = |e: rusqlite::Error| format!("cannot read {}: {e}", spec.name);
        let mut stmt = conn.prepare(&sql).map_err(read)?;
        let mut rows = stmt.query([]).map_err(read)?;
        let mut columns: Vec<Vec<rusqlite::types::Value>> = vec![Vec::new(); names.len()];
        while let Some(row) = rows.next().map_err(read)? {
            for (i, column) in columns.iter_mut().enumerate() {
                column.push(row.get(i).map_err(read)?);
            }
        }
        use rusqlite::types::Value as V;
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (c, values) in spec.columns.iter().zip(columns) {
            let array: ArrayRef = match c.arrow() {
                DataType::Int64 => {
                    let mut b = Int64Builder::new();
                    for v in values {
                        b.append_option(match v {
                            V::Integer(i) => Some(i),
                            _ => None,
                        });
                    }
                    std::sync::Arc::new(b.finish())
                }
                DataType::Decimal128(p, s) => {
                    let mut b = Decimal128Builder::new();
                    for v in values {
                        b.append_option(match v {
                            V::Real(f) => Some((f * 10f64.powi(s as i32)).round() as i128),
                            V::Integer(i) => Some(i as i128 * 10i128.pow(s as u32)),
                            _ => None,
                        });
                    }
                    std::sync::Arc::new(
                        b.finish()
                            .with_precision_and_scale(p, s)
                            .map_err(|e| e.to_string())?,
                    )
                }
                DataType::Date32 => {
                    let mut b = Date32Builder::new();
                    for v in values {
                        b.append_option(match v {
                            V::Text(t) => chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                                .ok()
                                .map(|d| (d - epoch).num_days() as i32),
                            _ => None,
                        });
                    }
                    std::sync::Arc::new(b.finish())
                }
                _ => {
                    let mut b = StringBuilder::new();
                    for v in values {
                        match v {
                            V::Text(t) => b.append_value(t),
                            _ => b.append_null(),
                        }
                    }
                    std::sync::Arc::new(b.finish())
                }
            };
            arrays.push(array);
        }
        let schema = Schema::new(
            spec.columns
                .iter()
                .map(|c| Field::new(c.name, c.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(std::sync::Arc::new(schema), arrays)
            .map_err(|e| format!("demo table {}: {e}", spec.name))?;
        out.push((spec, batch));
    }
    Ok(out)
}

//! Raw coverage of DataFusion on the demo corpus: how many of the corpus's Snowflake queries
//! it plans and runs as they are, with the demo's tables (empty, same columns and types) and
//! only configuration (Snowflake dialect, `DEMO.SALES` as the default schema) — no rewrites,
//! no added functions. Usage: probe-datafusion queries.json
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::*;

fn table(cols: &[(&str, DataType)]) -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>(),
    ));
    Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap())
}

#[tokio::main]
async fn main() {
    let path = std::env::args().nth(1).expect("queries.json");
    let corpus: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("demo", "sales")
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true)
        .set_str("datafusion.sql_parser.dialect", "Snowflake");
    let ctx = SessionContext::new_with_config(config);
    use DataType::*;
    let d = || Decimal128(10, 2);
    ctx.register_table("regions", table(&[("region_id", Int64), ("name", Utf8)])).unwrap();
    ctx.register_table("customers", table(&[("customer_id", Int64), ("name", Utf8), ("email", Utf8), ("region_id", Int64), ("signup_date", Date32)])).unwrap();
    ctx.register_table("products", table(&[("product_id", Int64), ("name", Utf8), ("category", Utf8), ("unit_price", d())])).unwrap();
    ctx.register_table("orders", table(&[("order_id", Int64), ("customer_id", Int64), ("order_date", Date32), ("status", Utf8)])).unwrap();
    ctx.register_table("order_items", table(&[("order_id", Int64), ("line", Int64), ("product_id", Int64), ("quantity", Int64)])).unwrap();
    ctx.sql("CREATE VIEW order_totals AS SELECT o.order_id, o.customer_id, o.order_date, SUM(i.quantity * p.unit_price) AS total FROM orders o JOIN order_items i ON i.order_id = o.order_id JOIN products p ON p.product_id = i.product_id GROUP BY o.order_id, o.customer_id, o.order_date").await.unwrap().collect().await.unwrap();
    let (mut ok, mut total) = (0, 0);
    for q in corpus.as_array().unwrap() {
        total += 1;
        let sql = q["snowflake"].as_str().unwrap();
        let ran = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match ran {
            Ok(()) => ok += 1,
            Err(e) => println!("{}: {}", q["id"], e.to_string().lines().next().unwrap_or("")),
        }
    }
    println!("datafusion raw: {ok} of {total} run");
}

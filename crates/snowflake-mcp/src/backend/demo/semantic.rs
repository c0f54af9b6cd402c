//! The demo's one semantic view, `DEMO.SALES.SALES`: orders by customer and region, with the
//! dimensions, facts and metrics Snowflake's semantic views define once for everyone
//! (<https://docs.snowflake.com/en/user-guide/views-semantic/overview>). It answers
//! `SHOW SEMANTIC VIEWS` and `DESCRIBE SEMANTIC VIEW` with Snowflake's output columns
//! (`sql-reference/sql/show-semantic-views`, `desc-semantic-view`), and a
//! `SEMANTIC_VIEW(... METRICS ... DIMENSIONS ... FACTS ... WHERE ...)` table factor is rewritten
//! to the plain query it stands for: the tables joined along their relationships, the inner
//! `WHERE` on dimensions and facts applied before metrics are aggregated, grouped by the
//! dimensions asked for, each column named by its unqualified name
//! (`sql-reference/constructs/semantic_view`).

use super::information::{batch, s, Cell, NULL};
use datafusion::arrow::record_batch::RecordBatch;

/// The view's name in its schema.
pub const NAME: &str = "SALES";
const COMMENT: &str = "Sales orders by customer and region";

/// What a name of the view stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dimension,
    Fact,
    Metric,
}

/// One dimension, fact or metric: its logical table, name, SQL over the joined tables, type,
/// synonyms and comment.
pub struct Item {
    pub kind: Kind,
    pub table: &'static str,
    pub name: &'static str,
    pub sql: &'static str,
    pub data_type: &'static str,
    pub synonyms: &'static [&'static str],
    pub comment: &'static str,
}

const fn item(
    kind: Kind,
    table: &'static str,
    name: &'static str,
    sql: &'static str,
    data_type: &'static str,
    synonyms: &'static [&'static str],
    comment: &'static str,
) -> Item {
    Item {
        kind,
        table,
        name,
        sql,
        data_type,
        synonyms,
        comment,
    }
}

/// The logical tables: (name, base table, primary key, comment).
const TABLES: [(&str, &str, &str, &str); 3] = [
    ("ORDERS", "ORDERS", "ORDER_ID", "One row per order"),
    ("CUSTOMERS", "CUSTOMERS", "CUSTOMER_ID", "Customers"),
    ("REGIONS", "REGIONS", "REGION_ID", "Sales regions"),
];

/// The tables joined along the relationships (orders → customers → regions); an order's
/// amount is its total over its items.
const FROM: &str = "DEMO.SALES.ORDERS AS ORDERS JOIN DEMO.SALES.ORDER_TOTALS AS ORDER_TOTALS ON ORDER_TOTALS.ORDER_ID = ORDERS.ORDER_ID \
JOIN DEMO.SALES.CUSTOMERS AS CUSTOMERS ON CUSTOMERS.CUSTOMER_ID = ORDERS.CUSTOMER_ID \
JOIN DEMO.SALES.REGIONS AS REGIONS ON REGIONS.REGION_ID = CUSTOMERS.REGION_ID";

use Kind::*;
pub const ITEMS: [Item; 11] = [
    item(
        Fact,
        "ORDERS",
        "AMOUNT",
        "ORDER_TOTALS.TOTAL",
        "NUMBER(38,2)",
        &[],
        "An order's amount: the sum of its items",
    ),
    item(
        Dimension,
        "REGIONS",
        "REGION_NAME",
        "REGIONS.NAME",
        "VARCHAR",
        &["region", "territory"],
        "Sales region name",
    ),
    item(
        Dimension,
        "CUSTOMERS",
        "CUSTOMER_NAME",
        "CUSTOMERS.NAME",
        "VARCHAR",
        &["customer"],
        "Customer name",
    ),
    item(
        Dimension,
        "ORDERS",
        "ORDER_DATE",
        "ORDERS.ORDER_DATE",
        "DATE",
        &[],
        "Date the order was placed",
    ),
    item(
        Dimension,
        "ORDERS",
        "ORDER_MONTH",
        "DATE_TRUNC('MONTH', ORDERS.ORDER_DATE)",
        "DATE",
        &["month"],
        "First day of the order's month",
    ),
    item(
        Dimension,
        "ORDERS",
        "ORDER_YEAR",
        "DATE_PART('YEAR', ORDERS.ORDER_DATE)",
        "NUMBER(4,0)",
        &["year"],
        "The order's year",
    ),
    item(
        Dimension,
        "ORDERS",
        "STATUS",
        "ORDERS.STATUS",
        "VARCHAR",
        &[],
        "pending, shipped or returned",
    ),
    item(
        Metric,
        "ORDERS",
        "TOTAL_REVENUE",
        "SUM(ORDER_TOTALS.TOTAL)",
        "NUMBER(38,2)",
        &["revenue", "sales"],
        "Sum of order amounts",
    ),
    item(
        Metric,
        "ORDERS",
        "ORDER_COUNT",
        "COUNT(ORDERS.ORDER_ID)",
        "NUMBER(18,0)",
        &["orders"],
        "Number of orders",
    ),
    item(
        Metric,
        "ORDERS",
        "AVERAGE_ORDER_VALUE",
        "AVG(ORDER_TOTALS.TOTAL)",
        "NUMBER(38,6)",
        &[],
        "Average order amount",
    ),
    item(
        Metric,
        "CUSTOMERS",
        "CUSTOMER_COUNT",
        "COUNT(DISTINCT CUSTOMERS.CUSTOMER_ID)",
        "NUMBER(18,0)",
        &[],
        "Customers who ordered",
    ),
];

/// Whether `view` (resolved against the demo's home) is this view.
pub fn is_view(view: &crate::backend::ObjectName) -> bool {
    view.database.name() == super::catalog::DATABASE
        && view.schema.name() == super::catalog::SCHEMA
        && view.name.name() == NAME
}

/// The item a reference (`table.name` or a unique `name`, upper-cased) stands for.
pub fn find(table: Option<&str>, name: &str) -> Result<&'static Item, String> {
    let mut found = ITEMS
        .iter()
        .filter(|i| i.name == name && table.is_none_or(|t| t == i.table));
    match (found.next(), found.next()) {
        (Some(i), None) => Ok(i),
        (Some(_), Some(_)) => Err(format!(
            "SQL compilation error: '{name}' is ambiguous in semantic view {NAME}; qualify it with its table"
        )),
        (None, _) => Err(format!(
            "SQL compilation error: invalid identifier '{}' in semantic view {NAME}",
            table.map_or(name.to_string(), |t| format!("{t}.{name}"))
        )),
    }
}

/// The query `SEMANTIC_VIEW(...)` stands for: `items` in the order asked (dimensions and
/// facts grouped, metrics aggregated), filtered by `filter` (already in terms of the joined
/// tables).
pub fn query(items: &[&Item], filter: Option<&str>) -> Result<String, String> {
    if items.is_empty() {
        return Err(
            "SQL compilation error: SEMANTIC_VIEW needs METRICS, DIMENSIONS or FACTS".into(),
        );
    }
    let has = |k: Kind| items.iter().any(|i| i.kind == k);
    if has(Fact) && has(Metric) {
        return Err("SQL compilation error: FACTS and METRICS cannot be queried together".into());
    }
    let columns: Vec<String> = items
        .iter()
        .map(|i| format!("{} AS {}", i.sql, i.name))
        .collect();
    let mut sql = format!("SELECT {} FROM {FROM}", columns.join(", "));
    if let Some(f) = filter {
        sql.push_str(&format!(" WHERE {f}"));
    }
    let groups: Vec<&str> = items
        .iter()
        .filter(|i| i.kind != Metric)
        .map(|i| i.sql)
        .collect();
    if has(Metric) && !groups.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
    }
    Ok(sql)
}

fn json_list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// `SHOW SEMANTIC VIEWS` (the view, if `shown`) and `DESCRIBE SEMANTIC VIEW` rows.
pub fn show(shown: bool) -> Result<RecordBatch, String> {
    let rows = if shown {
        vec![vec![
            Cell::Created,
            s(NAME),
            s(super::catalog::DATABASE),
            s(super::catalog::SCHEMA),
            s(COMMENT),
            s(super::catalog::ROLE),
            s("ROLE"),
            NULL,
        ]]
    } else {
        Vec::new()
    };
    batch(
        &[
            "created_on",
            "name",
            "database_name",
            "schema_name",
            "comment",
            "owner",
            "owner_role_type",
            "extension",
        ],
        rows,
    )
}

pub fn describe() -> Result<RecordBatch, String> {
    let row = |kind: Cell, name: Cell, parent: Cell, property: &str, value: String| {
        vec![kind, name, parent, s(property), s(value)]
    };
    let mut rows = vec![row(NULL, NULL, NULL, "COMMENT", COMMENT.into())];
    for (name, base, key, comment) in TABLES {
        let t = || (s("TABLE"), s(name), NULL);
        for (property, value) in [
            (
                "BASE_TABLE_DATABASE_NAME",
                super::catalog::DATABASE.to_string(),
            ),
            ("BASE_TABLE_SCHEMA_NAME", super::catalog::SCHEMA.to_string()),
            ("BASE_TABLE_NAME", base.to_string()),
            ("PRIMARY_KEY", json_list(&[key])),
            ("COMMENT", comment.to_string()),
        ] {
            let (k, n, p) = t();
            rows.push(row(k, n, p, property, value));
        }
    }
    for kind in [Fact, Dimension, Metric] {
        for i in ITEMS.iter().filter(|i| i.kind == kind) {
            let label = match kind {
                Fact => "FACT",
                Dimension => "DIMENSION",
                Metric => "METRIC",
            };
            let mut properties = vec![
                ("TABLE", i.table.to_string()),
                ("EXPRESSION", i.sql.to_string()),
                ("DATA_TYPE", i.data_type.to_string()),
            ];
            if !i.synonyms.is_empty() {
                properties.push(("SYNONYMS", json_list(i.synonyms)));
            }
            properties.push(("COMMENT", i.comment.to_string()));
            if kind != Dimension {
                properties.push(("ACCESS_MODIFIER", "PUBLIC".to_string()));
            }
            for (property, value) in properties {
                rows.push(row(s(label), s(i.name), s(i.table), property, value));
            }
        }
    }
    batch(
        &[
            "object_kind",
            "object_name",
            "parent_entity",
            "property",
            "property_value",
        ],
        rows,
    )
}

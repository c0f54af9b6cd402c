//! What the demo holds, described once: its database, schema, tables, columns (with Snowflake's
//! type names and the Arrow types the engine stores them as) and view. `list_objects`,
//! `describe_object`, `SHOW`, `DESCRIBE` and the `INFORMATION_SCHEMA` views all read this, so
//! they cannot disagree with each other or with the data.

use datafusion::arrow::datatypes::DataType;

pub const DATABASE: &str = "DEMO";
pub const SCHEMA: &str = "SALES";
pub const INFORMATION_SCHEMA: &str = "INFORMATION_SCHEMA";
pub const WAREHOUSE: &str = "DEMO_WH";
pub const ROLE: &str = "PUBLIC";

/// One column as Snowflake would describe it.
pub struct ColumnSpec {
    pub name: &'static str,
    /// Snowflake's type, as `DESCRIBE TABLE` shows it.
    pub snowflake: &'static str,
    pub nullable: bool,
}

impl ColumnSpec {
    /// How the engine stores it.
    pub fn arrow(&self) -> DataType {
        match self.snowflake {
            "NUMBER(38,0)" => DataType::Int64,
            "NUMBER(10,2)" => DataType::Decimal128(10, 2),
            "DATE" => DataType::Date32,
            _ => DataType::Utf8,
        }
    }

    /// `INFORMATION_SCHEMA.COLUMNS.DATA_TYPE`: the type's family, as Snowflake names it there.
    pub fn data_type(&self) -> &'static str {
        match self.snowflake {
            s if s.starts_with("NUMBER") => "NUMBER",
            s if s.starts_with("VARCHAR") => "TEXT",
            other => other,
        }
    }
}

/// A table or view of `DEMO.SALES`.
pub struct TableSpec {
    pub name: &'static str,
    pub view: Option<&'static str>,
    pub comment: &'static str,
    pub columns: &'static [ColumnSpec],
}

const fn col(name: &'static str, snowflake: &'static str, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        snowflake,
        nullable,
    }
}

const N: &str = "NUMBER(38,0)";
const V: &str = "VARCHAR(16777216)";

/// The view's definition, in the SQL the demo answers.
pub const ORDER_TOTALS_SQL: &str = "SELECT O.ORDER_ID, O.CUSTOMER_ID, O.ORDER_DATE, SUM(I.QUANTITY * P.UNIT_PRICE) AS TOTAL \
     FROM ORDERS O JOIN ORDER_ITEMS I ON I.ORDER_ID = O.ORDER_ID JOIN PRODUCTS P ON P.PRODUCT_ID = I.PRODUCT_ID \
     GROUP BY O.ORDER_ID, O.CUSTOMER_ID, O.ORDER_DATE";

pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "CUSTOMERS",
        view: None,
        comment: "one row per customer",
        columns: &[
            col("CUSTOMER_ID", N, false),
            col("NAME", V, false),
            col("EMAIL", V, true),
            col("REGION_ID", N, false),
            col("SIGNUP_DATE", "DATE", false),
        ],
    },
    TableSpec {
        name: "ORDERS",
        view: None,
        comment: "one row per order",
        columns: &[
            col("ORDER_ID", N, false),
            col("CUSTOMER_ID", N, false),
            col("ORDER_DATE", "DATE", false),
            col("STATUS", V, false),
        ],
    },
    TableSpec {
        name: "ORDER_ITEMS",
        view: None,
        comment: "the lines of each order",
        columns: &[
            col("ORDER_ID", N, false),
            col("LINE", N, false),
            col("PRODUCT_ID", N, false),
            col("QUANTITY", N, false),
        ],
    },
    TableSpec {
        name: "ORDER_TOTALS",
        view: Some(ORDER_TOTALS_SQL),
        comment: "each order's total value",
        columns: &[
            col("ORDER_ID", N, false),
            col("CUSTOMER_ID", N, false),
            col("ORDER_DATE", "DATE", false),
            col("TOTAL", "NUMBER(38,2)", true),
        ],
    },
    TableSpec {
        name: "PRODUCTS",
        view: None,
        comment: "the catalogue, with unit prices",
        columns: &[
            col("PRODUCT_ID", N, false),
            col("NAME", V, false),
            col("CATEGORY", V, false),
            col("UNIT_PRICE", "NUMBER(10,2)", false),
        ],
    },
    TableSpec {
        name: "REGIONS",
        view: None,
        comment: "sales regions",
        columns: &[col("REGION_ID", N, false), col("NAME", V, false)],
    },
];

/// The table or view `name` (exact, upper-case for unquoted names).
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// The demo's own database and schema, against which names are resolved.
pub fn home() -> crate::Context {
    crate::Context {
        database: Some(DATABASE.into()),
        schema: Some(SCHEMA.into()),
        ..Default::default()
    }
}

//! The names the guard knows by heart. Lists that allow are matched exactly (a quoted
//! lower-case `"flatten"` is not the built-in); lists that refuse are matched ignoring case
//! and quoting, so that a look-alike spelling is refused too.

/// `SYSTEM$` functions that only read. Every other `SYSTEM$` function is refused: many cancel
/// queries, abort sessions, send mail or change objects.
pub const READ_ONLY_SYSTEM_FUNCTIONS: &[&str] = &[
    "SYSTEM$CLUSTERING_INFORMATION",
    "SYSTEM$CLUSTERING_DEPTH",
    "SYSTEM$TYPEOF",
    "SYSTEM$WAIT",
    "SYSTEM$EXPLAIN_PLAN_JSON",
    "SYSTEM$EXPLAIN_JSON_TO_TEXT",
    "SYSTEM$GET_TAG",
    "SYSTEM$PIPE_STATUS",
    "SYSTEM$WHITELIST",
    "SYSTEM$ALLOWLIST",
];

/// Functions that read other clients' results, statements or logins: every client runs as the
/// same Snowflake user on shared sessions.
pub const CROSS_CLIENT_FUNCTIONS: &[&str] = &[
    "RESULT_SCAN",
    "LAST_QUERY_ID",
    "LAST_TRANSACTION",
    "QUERY_HISTORY",
    "QUERY_HISTORY_BY_SESSION",
    "QUERY_HISTORY_BY_USER",
    "QUERY_HISTORY_BY_WAREHOUSE",
    "LOGIN_HISTORY",
    "LOGIN_HISTORY_BY_USER",
    "GET_QUERY_OPERATOR_STATS",
];

/// Views (in `SNOWFLAKE.ACCOUNT_USAGE` and its siblings) that show the statements, accesses or
/// logins of every client on the shared user.
pub const HISTORY_VIEWS: &[&str] = &[
    "QUERY_HISTORY",
    "ACCESS_HISTORY",
    "LOGIN_HISTORY",
    "SESSIONS",
    "AGGREGATE_QUERY_HISTORY",
    "AGGREGATE_ACCESS_HISTORY",
    "QUERY_ACCELERATION_ELIGIBLE",
    "QUERY_ATTRIBUTION_HISTORY",
    "QUERY_INSIGHTS",
    "LOCK_WAIT_HISTORY",
    "TABLE_QUERY_PRUNING_HISTORY",
    "COLUMN_QUERY_PRUNING_HISTORY",
];

/// Schemas of the `SNOWFLAKE` database whose views cover the whole account.
pub const USAGE_SCHEMAS: &[&str] = &[
    "ACCOUNT_USAGE",
    "READER_ACCOUNT_USAGE",
    "ORGANIZATION_USAGE",
    "DATA_SHARING_USAGE",
];

/// Functions that read staged files or hand out URLs to them.
pub const STAGE_FUNCTIONS: &[&str] = &[
    "GET_PRESIGNED_URL",
    "BUILD_SCOPED_FILE_URL",
    "BUILD_STAGE_FILE_URL",
    "GET_STAGE_LOCATION",
    "GET_RELATIVE_PATH",
    "GET_ABSOLUTE_PATH",
    "INFER_SCHEMA",
    "DIRECTORY",
    "TO_FILE",
    "TRY_TO_FILE",
    "VALIDATE",
    "VALIDATE_PIPE_LOAD",
];

/// Functions that run SQL given as text, or start work that outlives the query
/// (`SNOWFLAKE.CORTEX.FINETUNE('CREATE', ...)` starts a fine-tuning job).
pub const ACTING_FUNCTIONS: &[&str] = &["TO_QUERY", "FINETUNE"];

/// `SNOWFLAKE.CORTEX` functions that work on the text they are given, and read no object.
pub const TEXT_CORTEX_FUNCTIONS: &[&str] = &[
    "COMPLETE",
    "SUMMARIZE",
    "TRANSLATE",
    "SENTIMENT",
    "EXTRACT_ANSWER",
    "CLASSIFY_TEXT",
    "EMBED_TEXT_768",
    "EMBED_TEXT_1024",
    "COUNT_TOKENS",
    "SPLIT_TEXT_RECURSIVE_CHARACTER",
];

/// Built-in table functions allowed in `FROM` / `TABLE(...)` / `LATERAL`. Any other name there
/// could be a stored procedure (`SELECT * FROM TABLE(my_proc())` runs it, writes and all).
pub const BUILT_IN_TABLE_FUNCTIONS: &[&str] = &[
    "FLATTEN",
    "GENERATOR",
    "SPLIT_TO_TABLE",
    "STRTOK_SPLIT_TO_TABLE",
];

/// One-part functions that take object names as text (`GET_DDL('DATABASE', 'OTHER')`), or
/// `INFORMATION_SCHEMA` table functions reachable unqualified when it is the current schema.
/// A client limited to some databases may not call them: the names can't be resolved.
pub const NAME_TAKING_FUNCTIONS: &[&str] = &[
    "GET_DDL",
    "GET_OBJECT_REFERENCES",
    "EXTRACT_SEMANTIC_CATEGORIES",
    "POLICY_CONTEXT",
    "TAG_REFERENCES",
    "TAG_REFERENCES_ALL_COLUMNS",
    "TAG_REFERENCES_WITH_LINEAGE",
    "POLICY_REFERENCES",
    "COPY_HISTORY",
    "TASK_HISTORY",
    "TASK_DEPENDENTS",
    "DATABASE_STORAGE_USAGE_HISTORY",
    "STAGE_STORAGE_USAGE_HISTORY",
    "WAREHOUSE_LOAD_HISTORY",
    "WAREHOUSE_METERING_HISTORY",
    "AUTOMATIC_CLUSTERING_HISTORY",
    "MATERIALIZED_VIEW_REFRESH_HISTORY",
    "PIPE_USAGE_HISTORY",
    "REPLICATION_USAGE_HISTORY",
    "SEARCH_OPTIMIZATION_HISTORY",
    "SERVERLESS_TASK_HISTORY",
    "EXTERNAL_FUNCTIONS_HISTORY",
    "EXTERNAL_TABLE_FILES",
    "EXTERNAL_TABLE_FILE_REGISTRATION_HISTORY",
    "DATA_TRANSFER_HISTORY",
    "DYNAMIC_TABLE_REFRESH_HISTORY",
    "DYNAMIC_TABLE_GRAPH_HISTORY",
    "DYNAMIC_TABLES",
    "ALERT_HISTORY",
    "NOTIFICATION_HISTORY",
    "CURRENT_TASK_GRAPHS",
    "COMPLETE_TASK_GRAPHS",
    "REST_EVENT_HISTORY",
    "AUTO_REFRESH_REGISTRATION_HISTORY",
    "STAGE_DIRECTORY_FILE_REGISTRATION_HISTORY",
    "DATA_METRIC_FUNCTION_REFERENCES",
];

/// `INFORMATION_SCHEMA` views that describe only their own database; the others
/// (`DATABASES`, `ENABLED_ROLES`, ...) cover the account.
pub const DATABASE_INFORMATION_SCHEMA_VIEWS: &[&str] = &[
    "TABLES",
    "COLUMNS",
    "VIEWS",
    "SCHEMATA",
    "FUNCTIONS",
    "PROCEDURES",
    "SEQUENCES",
    "STAGES",
    "FILE_FORMATS",
    "PIPES",
    "TABLE_CONSTRAINTS",
    "REFERENTIAL_CONSTRAINTS",
    "TABLE_STORAGE_METRICS",
    "OBJECT_PRIVILEGES",
    "TABLE_PRIVILEGES",
    "USAGE_PRIVILEGES",
    "EXTERNAL_TABLES",
    "EVENT_TABLES",
    "HYBRID_TABLES",
    "LOAD_HISTORY",
    "ELEMENT_TYPES",
    "FIELDS",
    "INFORMATION_SCHEMA_CATALOG_NAME",
];

/// `INFORMATION_SCHEMA` views about the whole account; unqualified, they would be read from the
/// current schema when that is `INFORMATION_SCHEMA`.
pub const ACCOUNT_INFORMATION_SCHEMA_VIEWS: &[&str] = &[
    "DATABASES",
    "ENABLED_ROLES",
    "APPLICABLE_ROLES",
    "REPLICATION_DATABASES",
    "REPLICATION_GROUPS",
];

/// True when `list` holds `name`, compared as written (for lists that allow).
pub fn allows(list: &[&str], name: &str) -> bool {
    list.contains(&name)
}

/// True when `list` holds `name` ignoring case (for lists that refuse).
pub fn names(list: &[&str], name: &str) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(name))
}

//! Clients limited to some databases: every reachable object must resolve to a database, and
//! what can't be resolved is refused. The current database is `CUR`; anything that lets a
//! statement reach `OTHER` (or an unknown database) while reporting only `CUR` is a bypass.

use super::{check_read_only, referenced_databases, Refusal};

/// What `run_query` checks for a limited client: read-only, then the databases reached.
pub(super) fn reach(sql: &str, current: Option<&str>) -> Result<Vec<String>, Refusal> {
    check_read_only(sql)?;
    referenced_databases(sql, current, &[])
}

/// True when a client limited to `CUR` would be let through.
pub(super) fn escapes_to_cur_only(sql: &str) -> bool {
    matches!(reach(sql, Some("CUR")), Ok(dbs) if dbs.iter().all(|d| d == "CUR"))
}

/// Statements that reach beyond `CUR` without naming it in a table reference.
pub(super) const BYPASSES: &[&str] = &[
    // Names the relation visitor did not see.
    "SELECT * FROM IDENTIFIER('OTHER.S.T')",
    "SELECT * FROM identifier('OTHER.S.T') JOIN t ON TRUE",
    "SELECT * FROM IDENTIFIER($t)",
    "SELECT * FROM TABLE('OTHER.S.T')",
    "SELECT * FROM TABLE($t)",
    // Table functions and UDFs of another database.
    "SELECT * FROM TABLE(OTHER.S.F())",
    "SELECT * FROM OTHER.S.F(1)",
    "SELECT OTHER.S.F(1)",
    "SELECT x FROM t WHERE OTHER.S.IS_VIP(x)",
    "SELECT * FROM t, LATERAL OTHER.S.EXPLODE(t.v)",
    "SELECT OTHER..F(1)",
    // Object names given as text.
    "SELECT GET_DDL('DATABASE', 'OTHER')",
    "SELECT GET_DDL('TABLE', 'OTHER.S.T')",
    "SELECT SYSTEM$CLUSTERING_INFORMATION('OTHER.S.T')",
    "SELECT SYSTEM$GET_TAG('OTHER.S.TAG', 'OTHER.S.T', 'table')",
    "SELECT SYSTEM$EXPLAIN_PLAN_JSON('SELECT * FROM OTHER.S.T')",
    "SELECT * FROM TABLE(INFORMATION_SCHEMA.TAG_REFERENCES('OTHER.S.T', 'table'))",
    "SELECT * FROM TABLE(CUR.INFORMATION_SCHEMA.POLICY_REFERENCES(REF_ENTITY_NAME => 'OTHER.S.T', REF_ENTITY_DOMAIN => 'table'))",
    "SELECT * FROM TABLE(TAG_REFERENCES('OTHER.S.T', 'table'))",
    "SELECT * FROM TABLE(GET_OBJECT_REFERENCES(DATABASE_NAME => 'OTHER', SCHEMA_NAME => 'S', OBJECT_NAME => 'V'))",
    "SELECT * FROM t AT(STREAM => 'OTHER.S.ST')",
    "SELECT SNOWFLAKE.CORE.GET_LINEAGE('OTHER.S.T', 'TABLE', 'DOWNSTREAM')",
    "SELECT SNOWFLAKE.CORTEX.SEARCH_PREVIEW('OTHER.S.SVC', '{\"query\": \"x\"}')",
    // Catalogue views of other databases, or of the whole account.
    "SELECT * FROM OTHER.INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM INFORMATION_SCHEMA.DATABASES",
    "SELECT * FROM CUR.INFORMATION_SCHEMA.ENABLED_ROLES",
    "SELECT * FROM DATABASES",
    "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.TABLES",
    "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.COLUMNS WHERE table_catalog = 'OTHER'",
    "SELECT * FROM ACCOUNT_USAGE.TABLES",
    "SELECT * FROM SNOWFLAKE.INFORMATION_SCHEMA.TABLES",
    // Stages and variables.
    "SELECT $1 FROM @OTHER.S.STAGE",
    "SELECT * FROM t WHERE a = $v",
    // Other databases in every position.
    "SELECT * FROM OTHER.S.T",
    "SELECT * FROM \"OTHER\".S.T",
    "SELECT * FROM OTHER..T",
    "SELECT * FROM t WHERE x IN (SELECT y FROM OTHER.S.U)",
    "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM OTHER.S.U)",
    "WITH x AS (SELECT * FROM OTHER.S.T) SELECT * FROM x",
    "SELECT (SELECT MAX(a) FROM OTHER.S.T) FROM t",
    "SELECT * FROM t JOIN LATERAL (SELECT * FROM OTHER.S.U) u",
    "SELECT * FROM OTHER.S.T AT(OFFSET => -60)",
    "SELECT * FROM t UNION ALL SELECT * FROM OTHER.S.T",
    "SELECT * FROM (SELECT * FROM OTHER.S.T) PIVOT (SUM(a) FOR b IN ('x'))",
    "SELECT * FROM SEMANTIC_VIEW(OTHER.S.SV DIMENSIONS c.region METRICS o.total)",
    "EXPLAIN SELECT * FROM OTHER.S.T",
    "EXPLAIN USING TEXT SELECT * FROM OTHER.S.T",
    // SHOW and DESCRIBE of other databases, or of the account.
    "SHOW DATABASES",
    "SHOW TABLES",
    "SHOW TABLES IN ACCOUNT",
    "SHOW SCHEMAS IN DATABASE OTHER",
    "SHOW TABLES IN SCHEMA OTHER.S",
    "SHOW TABLES IN OTHER.S",
    "SHOW TABLES IN OTHER",
    "SHOW COLUMNS IN OTHER.S.T",
    "SHOW COLUMNS IN TABLE OTHER.S.T",
    "SHOW PRIMARY KEYS IN TABLE OTHER.S.T",
    "SHOW GRANTS",
    "SHOW GRANTS TO ROLE analyst",
    "SHOW GRANTS ON DATABASE OTHER",
    "SHOW GRANTS ON TABLE OTHER.S.T",
    "SHOW FUTURE GRANTS IN SCHEMA OTHER.S",
    "SHOW USER FUNCTIONS",
    "SHOW WAREHOUSES",
    "SHOW PARAMETERS IN SESSION",
    "SHOW PARAMETERS IN DATABASE OTHER",
    "DESCRIBE TABLE OTHER.S.T",
    "DESCRIBE VIEW OTHER.S.V",
    "DESCRIBE SCHEMA OTHER.S",
    "DESCRIBE DATABASE OTHER",
    "DESCRIBE FUNCTION OTHER.S.F(NUMBER)",
    "DESCRIBE WAREHOUSE wh",
    "DESCRIBE USER bob",
];

#[test]
fn no_bypass_reaches_beyond_the_current_database() {
    let escaped: Vec<String> = BYPASSES
        .iter()
        .filter(|sql| escapes_to_cur_only(sql))
        .map(|sql| format!("{sql}: {:?}", referenced_databases(sql, Some("CUR"), &[])))
        .collect();
    assert!(
        escaped.is_empty(),
        "{} statements reach beyond CUR:\n{}",
        escaped.len(),
        escaped.join("\n")
    );
}

#[test]
fn identifier_and_text_names_are_refused_not_resolved_to_the_current_database() {
    for sql in [
        "SELECT * FROM IDENTIFIER('OTHER.S.T')",
        "SELECT GET_DDL('DATABASE', 'OTHER')",
        "SELECT SYSTEM$CLUSTERING_INFORMATION('OTHER.S.T')",
        "SELECT * FROM INFORMATION_SCHEMA.DATABASES",
        "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.TABLES",
        "SHOW TABLES IN ACCOUNT",
        "SHOW TABLES",
        "DESCRIBE WAREHOUSE wh",
    ] {
        assert!(
            referenced_databases(sql, Some("CUR"), &[]).is_err(),
            "{sql} was resolved: {:?}",
            referenced_databases(sql, Some("CUR"), &[])
        );
    }
}

#[test]
fn other_databases_are_reported() {
    for (sql, expected) in [
        ("SELECT OTHER.S.F(1)", vec!["OTHER"]),
        (
            "SELECT * FROM OTHER.INFORMATION_SCHEMA.TABLES",
            vec!["OTHER"],
        ),
        (
            "SELECT * FROM \"other\".s.t JOIN t ON TRUE",
            vec!["CUR", "other"],
        ),
        ("SELECT * FROM OTHER..T", vec!["OTHER"]),
        ("SHOW TABLES IN SCHEMA OTHER.S", vec!["OTHER"]),
        ("SHOW SCHEMAS IN DATABASE other", vec!["OTHER"]),
        ("SHOW TABLES IN OTHER.S", vec!["CUR", "OTHER"]),
        ("SHOW COLUMNS IN OTHER.S.T", vec!["OTHER"]),
        ("DESCRIBE TABLE OTHER.S.T", vec!["OTHER"]),
        (
            "DESCRIBE FUNCTION OTHER.S.F(NUMBER, VARCHAR)",
            vec!["OTHER"],
        ),
        ("SHOW GRANTS ON TABLE OTHER.S.T", vec!["OTHER"]),
        ("EXPLAIN USING JSON SELECT * FROM OTHER.S.T", vec!["OTHER"]),
    ] {
        assert_eq!(
            referenced_databases(sql, Some("CUR"), &[]),
            Ok(expected.iter().map(|s| s.to_string()).collect()),
            "{sql}"
        );
    }
}

#[test]
fn reads_of_the_current_database_resolve() {
    for (sql, expected) in [
        ("SELECT 1", vec![]),
        ("SELECT * FROM t", vec!["CUR"]),
        ("SELECT * FROM s.t JOIN CUR.s.u USING (id)", vec!["CUR"]),
        ("SELECT UPPER(a), s.f(b) FROM t", vec!["CUR"]),
        (
            "SELECT * FROM TABLE(FLATTEN(input => PARSE_JSON('[1]')))",
            vec![],
        ),
        (
            "SELECT f.value FROM t, LATERAL FLATTEN(input => t.v) f",
            vec!["CUR"],
        ),
        ("SELECT SNOWFLAKE.CORTEX.COMPLETE('m', 'hello')", vec![]),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", vec!["CUR"]),
        ("SELECT * FROM CUR.INFORMATION_SCHEMA.COLUMNS", vec!["CUR"]),
        ("WITH x AS (SELECT * FROM t) SELECT * FROM x", vec!["CUR"]),
        ("SHOW TABLES IN SCHEMA CUR.S", vec!["CUR"]),
        ("SHOW TABLES IN SCHEMA S", vec!["CUR"]),
        ("SHOW TABLES IN CUR", vec!["CUR"]),
        ("SHOW SCHEMAS IN DATABASE", vec!["CUR"]),
        ("SHOW PRIMARY KEYS IN TABLE CUR.S.T", vec!["CUR"]),
        ("SHOW GRANTS ON TABLE s.t", vec!["CUR"]),
        ("DESCRIBE TABLE CUR.S.T TYPE = COLUMNS", vec!["CUR"]),
        ("DESCRIBE TABLE t", vec!["CUR"]),
        ("DESCRIBE VIEW s.v", vec!["CUR"]),
        ("DESCRIBE FUNCTION CUR.S.F(NUMBER(38, 0))", vec!["CUR"]),
        ("DESCRIBE SCHEMA CUR.S", vec!["CUR"]),
        ("DESCRIBE DATABASE CUR", vec!["CUR"]),
    ] {
        assert_eq!(
            referenced_databases(sql, Some("CUR"), &[]),
            Ok(expected.iter().map(|s| s.to_string()).collect()),
            "{sql}"
        );
    }
    assert_eq!(
        referenced_databases("SELECT * FROM \"My Db\".s.t", None, &[]),
        Ok(vec!["My Db".to_string()])
    );
}

#[test]
fn short_names_need_a_current_database() {
    for sql in [
        "SELECT * FROM t",
        "SELECT * FROM s.t",
        "SELECT s.f(1)",
        "SHOW TABLES IN SCHEMA s",
        "DESCRIBE TABLE t",
    ] {
        let err = referenced_databases(sql, None, &[]).unwrap_err();
        assert!(err.0.contains("set_context"), "{sql}: {err}");
    }
    assert_eq!(referenced_databases("SELECT 1", None, &[]), Ok(vec![]));
}

#[test]
fn limited_refusals_say_what_to_write_instead() {
    for (sql, expected) in [
        ("SELECT GET_DDL('DATABASE', 'OTHER')", "describe_object"),
        ("SHOW TABLES", "IN SCHEMA"),
        ("SHOW DATABASES", "list_databases"),
        (
            "SELECT * FROM INFORMATION_SCHEMA.DATABASES",
            "INFORMATION_SCHEMA.TABLES",
        ),
        (
            "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.TABLES",
            "your own databases",
        ),
        ("SELECT * FROM t AT(STREAM => 'x')", "AT(TIMESTAMP"),
    ] {
        let err = referenced_databases(sql, Some("CUR"), &[]).unwrap_err();
        assert!(err.0.contains(expected), "{sql}: {err}");
        assert!(err.0.contains("limited to some databases"), "{sql}: {err}");
    }
}

//! The guard with writes allowed: each kind recognised from the parsed statement in its plain
//! form, everything else refused whatever the client may write.

use super::{check, check_read_only, referenced_databases, Write};
use crate::config::WriteKind::{self, *};

const ALL: &[WriteKind] = &WriteKind::ALL;

fn write(sql: &str) -> Write {
    match check(sql, ALL) {
        Ok(Some(w)) => w,
        other => panic!("{sql}: expected a write, got {other:?}"),
    }
}

#[test]
fn each_kind_is_recognised_with_its_target() {
    let cases: &[(&str, WriteKind, &[&str], Option<WriteKind>)] = &[
        ("INSERT INTO t VALUES (1, 'a')", Insert, &["T"], None),
        ("insert into Scratch.Public.\"Mixed\" (a, b) select a, b from s.x where a > 1", Insert, &["SCRATCH", "PUBLIC", "Mixed"], None),
        ("INSERT OVERWRITE INTO s.t SELECT * FROM u", Insert, &["S", "T"], Some(Truncate)),
        ("UPDATE t SET a = 1 WHERE b = 2", Update, &["T"], None),
        ("UPDATE d.s.t SET a = o.a FROM d.s.o WHERE t.id = o.id", Update, &["D", "S", "T"], None),
        ("DELETE FROM t WHERE a IN (SELECT a FROM u)", Delete, &["T"], None),
        ("DELETE FROM t USING u WHERE t.a = u.a", Delete, &["T"], None),
        ("MERGE INTO t USING (SELECT * FROM u) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.a = s.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)", Merge, &["T"], None),
        ("CREATE TABLE t (id INT NOT NULL DEFAULT 0 COMMENT 'key', name VARCHAR(10), PRIMARY KEY (id))", CreateTable, &["T"], None),
        ("CREATE TRANSIENT TABLE IF NOT EXISTS s.t AS SELECT * FROM u", CreateTable, &["S", "T"], None),
        ("CREATE OR REPLACE TABLE t AS SELECT 1 AS a", CreateTable, &["T"], Some(DropTable)),
        ("CREATE VIEW v AS SELECT a FROM t", CreateView, &["V"], None),
        ("CREATE OR REPLACE SECURE VIEW d.s.v (x) AS SELECT a FROM t", CreateView, &["D", "S", "V"], Some(DropView)),
        ("TRUNCATE TABLE t", Truncate, &["T"], None),
        ("TRUNCATE TABLE IF EXISTS s.t", Truncate, &["S", "T"], None),
        ("DROP TABLE t", DropTable, &["T"], None),
        ("DROP VIEW IF EXISTS s.v", DropView, &["S", "V"], None),
    ];
    for (sql, kind, target, also) in cases {
        let w = write(sql);
        assert_eq!(w.kind, *kind, "{sql}");
        assert_eq!(w.target, target.to_vec(), "{sql}");
        assert_eq!(w.also, *also, "{sql}");
        // A read-only client is refused every one of them.
        assert!(check_read_only(sql).is_err(), "{sql}");
        assert!(check(sql, &[]).is_err(), "{sql}");
    }
    // Reads stay reads for a client that may write.
    assert_eq!(check("SELECT * FROM t", ALL), Ok(None));
    assert_eq!(check("SHOW TABLES IN SCHEMA d.s", ALL), Ok(None));
}

#[test]
fn a_kind_the_client_may_not_run_is_refused_naming_what_it_may() {
    let e = check("DELETE FROM t", &[Insert]).unwrap_err().0;
    assert!(
        e.starts_with("DELETE is not allowed for this client") && e.ends_with("or one INSERT"),
        "{e}"
    );
    // CREATE OR REPLACE drops what it replaces: it needs DROP TABLE too.
    let e = check("CREATE OR REPLACE TABLE t (a INT)", &[CreateTable])
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("CREATE TABLE and DROP TABLE is not allowed"),
        "{e}"
    );
    assert!(check(
        "CREATE OR REPLACE TABLE t (a INT)",
        &[CreateTable, DropTable]
    )
    .is_ok());
    let e = check("INSERT OVERWRITE INTO t SELECT 1", &[Insert])
        .unwrap_err()
        .0;
    assert!(e.starts_with("INSERT and TRUNCATE is not allowed"), "{e}");
    // Statements that are no write kind at all say what they are.
    let e = check("ALTER TABLE t ADD COLUMN b INT", &[Insert])
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("ALTER TABLE is not allowed for this client"),
        "{e}"
    );
}

#[test]
fn never_allowed_whatever_the_client_may_write() {
    for sql in [
        "GRANT SELECT ON TABLE t TO ROLE r",
        "REVOKE SELECT ON TABLE t FROM ROLE r",
        "GRANT OWNERSHIP ON TABLE t TO ROLE r",
        "EXECUTE IMMEDIATE 'DELETE FROM t'",
        "CALL p()",
        "INSERT INTO t VALUES (1); DELETE FROM t",
        "DELETE FROM t; SELECT 1",
        "CREATE TABLE t CLONE other.s.t",
        "CREATE TABLE t LIKE u",
        "CREATE OR REPLACE TABLE t COPY GRANTS AS SELECT 1 AS a",
        "CREATE TEMPORARY TABLE t (a INT)",
        "CREATE TEMP TABLE t AS SELECT 1 AS a",
        "CREATE TEMPORARY VIEW v AS SELECT 1 AS a",
        "CREATE TABLE t (a INT WITH MASKING POLICY p)",
        "CREATE TABLE t (a INT) WITH ROW ACCESS POLICY p ON (a)",
        "CREATE TABLE t (a INT) WITH TAG (cost_center = 'x')",
        "CREATE TABLE t (a INT REFERENCES other.s.u (a))",
        "CREATE MATERIALIZED VIEW v AS SELECT 1 AS a",
        "CREATE EXTERNAL TABLE t (a INT) LOCATION = @s",
        "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' WAREHOUSE = w AS SELECT 1 AS a",
        "DROP DATABASE d",
        "DROP SCHEMA d.s",
        "DROP TABLE t, u",
        "DROP ROLE r",
        "UNDROP TABLE t",
        "ALTER TABLE t RENAME TO other.s.t",
        "ALTER ACCOUNT SET x = 1",
        "CREATE USER u",
        "CREATE ROLE r",
        "USE ROLE ACCOUNTADMIN",
        "COPY INTO t FROM @stage",
        "INSERT INTO t SELECT * FROM @stage",
        "INSERT INTO t VALUES (s.nextval)",
        "INSERT INTO IDENTIFIER('t') VALUES (1)",
        "INSERT INTO t SELECT * FROM snowflake.account_usage.query_history",
        "INSERT INTO t SELECT * FROM TABLE(my_proc())",
        "INSERT INTO t SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))",
        "INSERT ALL INTO t VALUES (1) INTO u VALUES (2) SELECT 1",
        "DELETE FROM t RETURNING *",
        "UPDATE t SET a = 1 RETURNING a",
        "EXPLAIN INSERT INTO t VALUES (1)",
        "EXPLAIN USING JSON DELETE FROM t",
        "WITH x AS (DELETE FROM t) SELECT 1",
        "SELECT * INTO u FROM t",
        "SELECT * FROM t FOR UPDATE",
    ] {
        let refused = check(sql, ALL);
        assert!(refused.is_err(), "{sql}: {refused:?}");
    }
}

#[test]
fn the_databases_a_write_reaches_include_its_target() {
    let reached = |sql: &str| referenced_databases(sql, Some("CUR"), ALL);
    assert_eq!(
        reached("INSERT INTO scratch.s.t SELECT * FROM sales.s.orders"),
        Ok(vec!["SALES".to_string(), "SCRATCH".to_string()])
    );
    assert_eq!(reached("DELETE FROM s.t"), Ok(vec!["CUR".to_string()]));
    assert_eq!(
        reached("CREATE VIEW scratch.s.v AS SELECT * FROM other.s.t"),
        Ok(vec!["OTHER".to_string(), "SCRATCH".to_string()])
    );
    // Without the kind, the write is refused here too.
    assert!(referenced_databases("DELETE FROM s.t", Some("CUR"), &[Insert]).is_err());
}

#[test]
fn table_comments_and_clustering_are_plain_forms() {
    for sql in [
        "CREATE TABLE t (a INT) COMMENT = 'staging'",
        "CREATE TABLE t (a INT, d DATE) CLUSTER BY (d)",
        "CREATE VIEW v COMMENT = 'x' AS SELECT 1 AS a",
        "CREATE TABLE t (id INT AUTOINCREMENT, a VARCHAR COLLATE 'en-ci')",
    ] {
        assert!(check(sql, ALL).is_ok(), "{sql}: {:?}", check(sql, ALL));
    }
}

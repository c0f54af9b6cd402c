//! The corpus in `tests/data/guard_corpus.txt`, every line, and the read-only guard's own cases.

use super::check_read_only;

const CORPUS: &str = include_str!("../../../tests/data/guard_corpus.txt");

/// One corpus line.
pub(super) struct Case {
    pub allow: bool,
    pub sql: String,
    pub theme: String,
}

pub(super) fn corpus() -> Vec<Case> {
    let mut theme = String::new();
    let mut cases = Vec::new();
    for line in CORPUS.lines() {
        if let Some(header) = line.strip_prefix("# theme: ") {
            theme = header
                .split(" — ")
                .next()
                .unwrap_or(header)
                .trim()
                .to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (verdict, sql) = line.split_once('\t').expect("verdict<TAB>statement");
        let allow = match verdict {
            "allow" => true,
            "refuse" => false,
            other => panic!("bad verdict {other:?}"),
        };
        cases.push(Case {
            allow,
            sql: sql.replace("\\n", "\n"),
            theme: theme.clone(),
        });
    }
    cases
}

#[test]
fn corpus_is_big_enough() {
    let c = corpus();
    let allowed = c.iter().filter(|c| c.allow).count();
    let mut themes: Vec<(String, bool, usize)> = Vec::new();
    for case in &c {
        match themes
            .iter_mut()
            .find(|(t, a, _)| *t == case.theme && *a == case.allow)
        {
            Some(entry) => entry.2 += 1,
            None => themes.push((case.theme.clone(), case.allow, 1)),
        }
    }
    for (theme, allow, n) in &themes {
        println!(
            "{:7} {n:4}  {theme}",
            if *allow { "allow" } else { "refuse" }
        );
    }
    println!("{allowed} allowed, {} refused", c.len() - allowed);
    assert!(c.len() >= 400, "{} statements", c.len());
    assert!(allowed >= 150, "{allowed} allowed");
    assert!(c.len() - allowed >= 150, "{} refused", c.len() - allowed);
    assert!(
        c.iter().all(|c| !c.theme.is_empty()),
        "every line has a theme"
    );
}

#[test]
fn no_refused_statement_is_allowed() {
    let wrong: Vec<String> = corpus()
        .into_iter()
        .filter(|c| !c.allow && check_read_only(&c.sql).is_ok())
        .map(|c| format!("[{}] {:?}", c.theme, c.sql))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} refusals were allowed:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn at_most_two_percent_of_legitimate_reads_are_refused() {
    let reads: Vec<Case> = corpus().into_iter().filter(|c| c.allow).collect();
    let refused: Vec<String> = reads
        .iter()
        .filter_map(|c| {
            check_read_only(&c.sql)
                .err()
                .map(|r| format!("[{}] {:?}: {r}", c.theme, c.sql))
        })
        .collect();
    let rate = refused.len() as f64 / reads.len() as f64;
    println!(
        "false refusals: {} of {} legitimate reads ({:.2} %)\n{}",
        refused.len(),
        reads.len(),
        rate * 100.0,
        refused.join("\n")
    );
    assert!(rate <= 0.02, "{}", refused.join("\n"));
}

#[test]
fn refusals_name_what_was_refused() {
    let msg = |sql: &str| check_read_only(sql).unwrap_err().0;
    for (sql, expected) in [
        ("DELETE FROM t", "refused: DELETE"),
        ("CREATE OR REPLACE TABLE t (a INT)", "CREATE TABLE"),
        ("ALTER SESSION SET QUERY_TAG = 'x'", "ALTER SESSION"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELEC 1", "could not be parsed"),
        ("WITH x AS (SELECT 1) DELETE FROM t", "DELETE"),
        ("SELECT SYSTEM$ABORT_SESSION(1)", "SYSTEM$ABORT_SESSION"),
        ("SELECT seq.NEXTVAL", "NEXTVAL (it advances a sequence"),
        ("SELECT $1 FROM @stage", "stage reference"),
        ("SHOW GRANTS ->> SELECT 1", "->> flow operator"),
        ("SELECT * FROM IDENTIFIER('t')", "write the name itself"),
        (
            "SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY",
            "query_history tool",
        ),
        ("SELECT * FROM TABLE(my_proc())", "stored procedure"),
        ("SHOW TABLES IN SCHEMA s EXECUTE", "unexpected `EXECUTE`"),
        ("DESCRIBE RESULT LAST_QUERY_ID()", "LAST_QUERY_ID"),
        ("SELECT 1 # c", "# comment"),
        ("SELECT $x", "session variable $x"),
    ] {
        let m = msg(sql);
        assert!(m.contains(expected), "{sql}: {m}");
    }
}

#[test]
fn look_alike_and_invisible_characters_outside_quotes_are_refused() {
    for sql in [
        "SELECT 1;\u{200B}DELETE FROM t",
        "SELECT\u{200B}1",
        "SELECT\u{00A0}1",
        "SELECT 1\u{FEFF}",
        "SELECT\u{3000}1",
        "SELECT 1 FROM t WHERE a \u{FF1D} 1",
        "SELECT 1\u{202E}",
        "SELECT\u{0B}1",
    ] {
        let r = check_read_only(sql);
        assert!(r.is_err(), "{sql:?} was allowed");
    }
    // Inside strings and quoted identifiers they are data.
    for sql in [
        "SELECT 'a\u{200B}b', \"Gr\u{00F6}\u{00DF}e\u{00A0}x\" FROM t",
        "SELECT 1 /* caf\u{00E9} */",
    ] {
        assert_eq!(check_read_only(sql), Ok(()), "{sql:?}");
    }
}

#[test]
fn line_breaks_a_reader_could_end_a_comment_with_are_refused() {
    for sql in [
        "SELECT 1 -- x\rDELETE FROM t",
        "SELECT 1 -- x\u{2028}DELETE FROM t",
        "SELECT 1 -- x\u{2029}DELETE FROM t",
        "SELECT 1 -- x\u{85}DELETE FROM t",
        "SELECT 1 -- x\u{0C}DELETE FROM t",
    ] {
        assert!(check_read_only(sql).is_err(), "{sql:?} was allowed");
    }
    assert_eq!(check_read_only("SELECT 1 -- windows line end\r\n"), Ok(()));
}

/// Issue 19: three legitimate reads of a corpus kept apart from these tests were refused.
#[test]
fn quoted_names_and_show_clauses_that_were_refused_are_allowed() {
    for sql in [
        r#"SELECT "NEXTVAL", "LAST_QUERY_ID" FROM t"#,
        r#"SELECT a AS "NEXTVAL" FROM t WHERE "NEXTVAL" > 0"#,
        "SHOW DATABASES STARTS WITH 'X' LIMIT 10",
        "SHOW TERSE DATABASES LIKE 'S%' STARTS WITH 'S' LIMIT 5 FROM 'SA'",
        r#"describe view "Sales Data"."Q1 Summary""#,
        r#"DESCRIBE VIEW "Sales Data"."Q1 Reports"."Q1 Summary""#,
    ] {
        assert_eq!(check_read_only(sql), Ok(()), "{sql}");
    }
    // For a client limited to some databases, the quoted names resolve whole.
    let reached = |sql: &str| super::referenced_databases(sql, Some("CUR"), &[]);
    assert_eq!(
        reached(r#"describe view "Sales Data"."Q1 Summary""#),
        Ok(vec!["CUR".to_string()])
    );
    assert_eq!(
        reached(r#"DESCRIBE VIEW "Sales Data"."Q1 Reports"."Q1 Summary""#),
        Ok(vec!["Sales Data".to_string()])
    );
    assert_eq!(
        reached(r#"SELECT "NEXTVAL", "LAST_QUERY_ID" FROM t"#),
        Ok(vec!["CUR".to_string()])
    );
    // Their near relatives that do advance a sequence or read other clients' results still
    // don't pass.
    for sql in [
        r#"SELECT seq."NEXTVAL""#,
        r#"SELECT "My Seq" . "NEXTVAL" FROM t"#,
        r#"SELECT * FROM TABLE("GETNEXTVAL"(seq))"#,
        r#"SELECT "LAST_QUERY_ID"()"#,
        "SHOW DATABASES LIMIT 10 EXECUTE IMMEDIATE 'DROP DATABASE x'",
        "SHOW DATABASES STARTS WITH 'X' LIMIT 10; DROP DATABASE x",
    ] {
        assert!(check_read_only(sql).is_err(), "{sql} was allowed");
    }
}

//! The corpus in `tests/data/guard_corpus.txt`, every line.

use super::check_read_only;

const CORPUS: &str = include_str!("../../tests/data/guard_corpus.txt");

fn corpus() -> Vec<(bool, String)> {
    CORPUS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (verdict, sql) = l.split_once('\t').expect("verdict<TAB>statement");
            let allow = match verdict {
                "allow" => true,
                "refuse" => false,
                other => panic!("bad verdict {other:?}"),
            };
            (allow, sql.replace("\\n", "\n"))
        })
        .collect()
}

#[test]
fn corpus_is_big_enough() {
    let c = corpus();
    assert!(c.len() >= 80, "{} statements", c.len());
    assert!(c.iter().filter(|(a, _)| *a).count() >= 30);
    assert!(c.iter().filter(|(a, _)| !*a).count() >= 40);
}

#[test]
fn every_corpus_statement_gets_its_verdict() {
    let mut wrong = Vec::new();
    for (allow, sql) in corpus() {
        let got = check_read_only(&sql);
        if got.is_ok() != allow {
            wrong.push(format!(
                "{sql:?}: expected {}, got {got:?}",
                if allow { "allow" } else { "refuse" }
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn refusals_name_what_was_refused() {
    let msg = |sql: &str| check_read_only(sql).unwrap_err().0;
    assert!(
        msg("DELETE FROM t").contains("refused: DELETE"),
        "{}",
        msg("DELETE FROM t")
    );
    assert!(
        msg("CREATE OR REPLACE TABLE t (a INT)").contains("CREATE TABLE"),
        "{}",
        msg("CREATE OR REPLACE TABLE t (a INT)")
    );
    assert!(msg("ALTER SESSION SET QUERY_TAG = 'x'").contains("ALTER SESSION"));
    assert!(msg("SELECT 1; SELECT 2").contains("2 statements"));
    assert!(msg("SELEC 1").contains("could not be parsed"));
    assert!(msg("WITH x AS (SELECT 1) DELETE FROM t").contains("DELETE"));
    assert!(msg("SELECT SYSTEM$ABORT_SESSION(1)").contains("SYSTEM$ABORT_SESSION"));
}

#[test]
fn referenced_databases_resolve_short_names_against_the_context() {
    use super::referenced_databases;
    let dbs = referenced_databases(
        "SELECT * FROM a.s.t JOIN s2.u ON 1=1 JOIN v ON 1=1",
        Some("CUR"),
    )
    .unwrap();
    assert_eq!(dbs, ["A", "CUR"]);
    let dbs = referenced_databases(
        "WITH x AS (SELECT * FROM \"Other\".s.t) SELECT * FROM x",
        Some("CUR"),
    )
    .unwrap();
    assert!(dbs.contains(&"Other".to_string()), "{dbs:?}");
    assert!(referenced_databases("SELECT * FROM t", None).is_err());
    assert_eq!(
        referenced_databases("SELECT 1", None).unwrap(),
        Vec::<String>::new()
    );
}

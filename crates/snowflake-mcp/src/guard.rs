//! The read-only guard: which SQL text `run_query` lets through.
//!
//! Text is parsed with sqlparser's Snowflake dialect and allowed only when it is exactly one
//! statement of these kinds: a query (SELECT, WITH, VALUES, set operations) with no
//! data-modifying part, SHOW, DESCRIBE, or EXPLAIN of such a query. Everything else is refused,
//! and so is text that does not parse — a guard that guesses is no guard. The refusal names what
//! was refused so the model can change course.
//!
//! Inside an allowed query we also refuse what would change something despite the SELECT on top:
//! a nested non-query statement (`WITH x AS (DELETE ...)`), `SELECT ... INTO`, row locks
//! (`FOR UPDATE`), and `SYSTEM$` functions other than a list of known read-only ones (many
//! cancel queries, abort sessions or send mail).
//!
//! And what would cross between clients: every client's statements run as the same Snowflake
//! user on shared sessions, so `RESULT_SCAN`, `LAST_QUERY_ID` and the `QUERY_HISTORY` table
//! functions could read another client's results or SQL. They are refused; `query_history`
//! (the tool) shows a client its own.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Select, Statement, Visit, Visitor};
use sqlparser::dialect::SnowflakeDialect;
use sqlparser::parser::Parser;

/// Why a statement is not allowed; the message is meant for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `SYSTEM$` functions that only read.
const READ_ONLY_SYSTEM_FUNCTIONS: [&str; 9] = [
    "SYSTEM$CLUSTERING_INFORMATION",
    "SYSTEM$CLUSTERING_DEPTH",
    "SYSTEM$TYPEOF",
    "SYSTEM$EXPLAIN_PLAN_JSON",
    "SYSTEM$EXPLAIN_JSON_TO_TEXT",
    "SYSTEM$GET_TAG",
    "SYSTEM$PIPE_STATUS",
    "SYSTEM$WHITELIST",
    "SYSTEM$ALLOWLIST",
];

/// Functions that would read other clients' results or statements on a shared server.
const CROSS_CLIENT_FUNCTIONS: [&str; 6] = [
    "RESULT_SCAN",
    "LAST_QUERY_ID",
    "QUERY_HISTORY",
    "QUERY_HISTORY_BY_SESSION",
    "QUERY_HISTORY_BY_USER",
    "QUERY_HISTORY_BY_WAREHOUSE",
];

const ALLOWED: &str =
    "only one read-only statement (SELECT, WITH, SHOW, DESCRIBE or EXPLAIN) is allowed";

/// Allow `sql` only if it is a single read-only statement.
pub fn check_read_only(sql: &str) -> Result<(), Refusal> {
    let statements = Parser::parse_sql(&SnowflakeDialect {}, sql).map_err(|e| {
        Refusal(format!(
            "the statement could not be parsed, so it was refused ({e}); {ALLOWED}"
        ))
    })?;
    let statement = match statements.as_slice() {
        [] => return Err(Refusal(format!("no statement was given; {ALLOWED}"))),
        [one] => one,
        many => {
            return Err(Refusal(format!(
                "{} statements were given; {ALLOWED}. Send them one at a time",
                many.len()
            )))
        }
    };
    match statement {
        Statement::Query(_) => {}
        Statement::Explain {
            statement: inner,
            analyze,
            ..
        } => {
            if *analyze {
                return Err(refused("EXPLAIN ANALYZE (it runs the statement)"));
            }
            if !matches!(inner.as_ref(), Statement::Query(_)) {
                return Err(refused(&format!("EXPLAIN {}", kind(inner))));
            }
        }
        Statement::ExplainTable { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowObjects(_)
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowCharset(_) => return Ok(()),
        other => return Err(refused(&kind(other))),
    }
    let mut inspector = ReadOnlyInspector { root: true };
    match statement.visit(&mut inspector) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn refused(what: &str) -> Refusal {
    Refusal(format!("{ALLOWED}; refused: {what}"))
}

/// The statement's leading keywords, e.g. `DELETE`, `CREATE TABLE`, `ALTER SESSION`.
fn kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace().map(str::to_ascii_uppercase);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "CREATE" | "ALTER" | "DROP" | "UNDROP" | "COPY" | "SHOW" => {
            let mut second = words.next().unwrap_or_default();
            if second == "OR" {
                // CREATE OR REPLACE <kind>
                second = words.nth(1).unwrap_or_default();
            }
            format!("{first} {second}")
        }
        _ => first,
    }
}

struct ReadOnlyInspector {
    root: bool,
}

impl Visitor for ReadOnlyInspector {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        if std::mem::take(&mut self.root) {
            return ControlFlow::Continue(());
        }
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(refused(&format!("{} inside a query", kind(other)))),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(refused("SELECT ... FOR UPDATE (row locks)"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            return ControlFlow::Break(refused("SELECT ... INTO (it creates a table)"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_uppercase();
            let last = name.rsplit('.').next().unwrap_or(&name).trim_matches('"');
            if CROSS_CLIENT_FUNCTIONS.contains(&last) {
                return ControlFlow::Break(refused(&format!(
                    "{last} (on a shared server it could read other clients' queries; use the query_history tool)"
                )));
            }
            if last.starts_with("SYSTEM$") && !READ_ONLY_SYSTEM_FUNCTIONS.contains(&last) {
                return ControlFlow::Break(refused(&format!(
                    "{last} (SYSTEM$ functions may change state)"
                )));
            }
        }
        ControlFlow::Continue(())
    }
}

/// True when `sql` is a query (SELECT, WITH, VALUES, or EXPLAIN of one) rather than a
/// SHOW or DESCRIBE of the catalogue.
pub fn is_query(sql: &str) -> bool {
    match Parser::parse_sql(&SnowflakeDialect {}, sql).as_deref() {
        Ok([Statement::Query(_)]) => true,
        Ok([Statement::Explain { statement, .. }]) => {
            matches!(statement.as_ref(), Statement::Query(_))
        }
        _ => false,
    }
}

/// The databases a read-only statement reads from: three-part names name theirs, shorter
/// names resolve against `current_database`. `Err` names what cannot be resolved.
pub fn referenced_databases(
    sql: &str,
    current_database: Option<&str>,
) -> Result<Vec<String>, Refusal> {
    let statements = Parser::parse_sql(&SnowflakeDialect {}, sql)
        .map_err(|e| Refusal(format!("the statement could not be parsed ({e})")))?;
    let mut databases = Vec::new();
    let mut unresolved = false;
    let _ = sqlparser::ast::visit_relations(&statements, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(|i| {
                if i.quote_style.is_some() {
                    i.value.clone()
                } else {
                    i.value.to_ascii_uppercase()
                }
            })
            .collect();
        match (parts.len(), current_database) {
            (3.., _) => databases.push(parts[parts.len() - 3].clone()),
            (_, Some(db)) => databases.push(db.to_string()),
            (_, None) => unresolved = true,
        }
        ControlFlow::<()>::Continue(())
    });
    if unresolved {
        return Err(Refusal("the statement names a table without a database and no database is set; use DB.SCHEMA.TABLE or set_context".into()));
    }
    databases.sort();
    databases.dedup();
    Ok(databases)
}

#[cfg(test)]
mod tests;

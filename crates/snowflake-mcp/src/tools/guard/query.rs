//! Checks on a parsed query: what would change something or cross between clients despite the
//! SELECT on top.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, Select, Statement, TableFactor, Visit, Visitor,
};

use super::lists::{allows, names, BUILT_IN_TABLE_FUNCTIONS, HISTORY_VIEWS, USAGE_SCHEMAS};
use super::{kind, normalized, refused, Refusal};

/// Refuse what a query must not do: nested statements (`WITH x AS (DELETE ...)`),
/// `SELECT ... INTO`, row locks, dynamic names, other table functions than the built-in ones
/// (a stored procedure can be called in `FROM`), and the history views.
pub(super) fn inspect(statement: &Statement) -> Result<(), Refusal> {
    let mut inspector = ReadOnlyInspector { root: true };
    match statement.visit(&mut inspector) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
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
            other => ControlFlow::Break(refused(&format!(
                "{} inside a query; only reads are allowed",
                kind(other)
            ))),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(refused(
                "SELECT ... FOR UPDATE (row locks); leave out FOR UPDATE",
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            return ControlFlow::Break(refused(
                "SELECT ... INTO (it creates a table or sets variables); leave out INTO",
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        to_flow(check_relation(relation))
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        to_flow(match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => check_table_function(name),
            TableFactor::TableFunction { expr, .. } => match expr {
                Expr::Function(f) => check_table_function(&f.name),
                _ => Err(refused(
                    "TABLE(<text or variable>) (a table named by text can't be checked); write the table's name itself, e.g. FROM DB.SCHEMA.TABLE",
                )),
            },
            _ => Ok(()),
        })
    }
}

fn to_flow(result: Result<(), Refusal>) -> ControlFlow<Refusal> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(refusal) => ControlFlow::Break(refusal),
    }
}

/// The parts of a name, upper-cased whatever their quoting (for lists that refuse), or `None`
/// when a part is computed (`IDENTIFIER(...)`).
pub(super) fn upper_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.to_ascii_uppercase()))
        .collect()
}

/// The parts of a name as Snowflake resolves them, or `None` when a part is computed.
pub(super) fn normalized_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(normalized(&i.value, i.quote_style.is_some())),
            _ => None,
        })
        .collect()
}

/// A table or view name: no computed parts, and none of the views that show every client's
/// statements — qualified by their schema, or unqualified (the current schema could be
/// `SNOWFLAKE.ACCOUNT_USAGE`).
fn check_relation(name: &ObjectName) -> Result<(), Refusal> {
    let Some(parts) = upper_parts(name) else {
        return Err(refused(
            "IDENTIFIER(...) (a name given as text or in a variable can't be checked); write the name itself, e.g. DB.SCHEMA.TABLE",
        ));
    };
    let Some((last, qualifiers)) = parts.split_last() else {
        return Ok(());
    };
    if !names(HISTORY_VIEWS, last) {
        return Ok(());
    }
    let in_usage_schema = match qualifiers {
        [] => last != "SESSIONS",
        [.., schema] => {
            names(USAGE_SCHEMAS, schema)
                || schema == "INFORMATION_SCHEMA"
                || qualifiers.len() > 1 && qualifiers[0] == "SNOWFLAKE"
        }
    };
    if in_usage_schema {
        return Err(refused(&format!(
            "{} (every client shares this Snowflake user, so it shows other clients' statements); the query_history tool shows your own. If it is your own table, qualify it as SCHEMA.{last}",
            parts.join(".")
        )));
    }
    Ok(())
}

/// A table function in `FROM`: only the built-in ones (unqualified, so no UDF or procedure of
/// the same name is meant) and `INFORMATION_SCHEMA`'s. Anything else could be a stored
/// procedure, which `SELECT * FROM TABLE(proc())` runs.
fn check_table_function(name: &ObjectName) -> Result<(), Refusal> {
    let written = name.to_string();
    let Some(parts) = normalized_parts(name) else {
        return Err(refused(&format!(
            "the table function {written} (its name is computed and can't be checked); write the name itself"
        )));
    };
    let built_in = match parts.as_slice() {
        [one] => allows(BUILT_IN_TABLE_FUNCTIONS, one),
        [.., schema, _] => schema.eq_ignore_ascii_case("INFORMATION_SCHEMA"),
        [] => false,
    };
    if built_in {
        Ok(())
    } else {
        Err(refused(&format!(
            "the table function {written} (a stored procedure called in FROM can change data, and the guard can't tell it from a table function); query tables and views, or use FLATTEN, GENERATOR, SPLIT_TO_TABLE, STRTOK_SPLIT_TO_TABLE or INFORMATION_SCHEMA table functions"
        )))
    }
}

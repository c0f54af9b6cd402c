//! Which databases a statement reaches, for clients limited to some databases.
//!
//! This check fails closed: every table, view, function and SHOW/DESCRIBE target must resolve to
//! a database, and a statement with a reference that can't be resolved is refused. Three-part
//! names name their database; shorter names (and two-part function names) resolve to the
//! current database; one-part built-in functions read no database. Refused as unresolvable:
//! account-wide views and scopes (`SNOWFLAKE.ACCOUNT_USAGE`, `INFORMATION_SCHEMA.DATABASES`,
//! `SHOW ... IN ACCOUNT`, `SHOW` without `IN`, account-level objects), functions that take
//! object names as text (`GET_DDL`, `SYSTEM$...`, `INFORMATION_SCHEMA` table functions), and
//! `AT(STREAM => '...')`. Dynamic names (`IDENTIFIER`, `TABLE('...')`, `$variables`) and stages
//! are refused for every client by the read-only guard.
//!
//! What parsing cannot see is left to Snowflake's access control, which is the real boundary:
//! a view or secure UDF in an allowed database may read other databases, and a session or
//! account `SEARCH_PATH` other than the default (`$current, $public`) would change where
//! unqualified names resolve.

use std::ops::ControlFlow;

use sqlparser::ast::{ObjectName, TableFactor, Visit, Visitor};
use sqlparser::tokenizer::Token;

use super::catalog::{Command, Scope};
use super::lexical::{calls, Part};
use super::lists::{
    names, ACCOUNT_INFORMATION_SCHEMA_VIEWS, DATABASE_INFORMATION_SCHEMA_VIEWS,
    NAME_TAKING_FUNCTIONS, TEXT_CORTEX_FUNCTIONS, USAGE_SCHEMAS,
};
use super::query::normalized_parts;
use super::{analyze, Analyzed, Refusal};
use crate::config::WriteKind;

/// The databases a statement reads from or writes to: three-part names name theirs, shorter
/// names resolve against `current_database`. `Err` names what cannot be resolved, and what to
/// write instead; a statement the guard refuses (allowing the write kinds `writes`) is refused
/// here too.
pub fn referenced_databases(
    sql: &str,
    current_database: Option<&str>,
    writes: &[WriteKind],
) -> Result<Vec<String>, Refusal> {
    let mut found = Found {
        current: current_database,
        databases: Vec::new(),
    };
    match analyze(sql, writes)? {
        Analyzed::Catalog(command) => found.scope(&command)?,
        Analyzed::Query {
            statement, lexed, ..
        } => {
            let significant = lexed.significant();
            found.streams_named_as_text(&significant)?;
            for call in calls(&significant) {
                found.function(&call)?;
            }
            let mut relations = Relations { found: &mut found };
            if let ControlFlow::Break(refusal) = statement.visit(&mut relations) {
                return Err(refusal);
            }
        }
    }
    let mut databases = found.databases;
    databases.sort();
    databases.dedup();
    Ok(databases)
}

fn limited(what: &str, instead: &str) -> Refusal {
    Refusal(format!(
        "this client is limited to some databases, and {what} can't be resolved to one of them, so the statement was refused; {instead}"
    ))
}

const QUALIFY: &str = "name tables as DB.SCHEMA.TABLE, or set a database with set_context";

struct Found<'a> {
    current: Option<&'a str>,
    databases: Vec<String>,
}

impl Found<'_> {
    /// The current database, for a name without one.
    fn in_current(&mut self, what: &str) -> Result<(), Refusal> {
        match self.current {
            Some(db) => {
                self.databases.push(db.to_string());
                Ok(())
            }
            None => Err(limited(&format!("{what} (no database is set)"), QUALIFY)),
        }
    }

    fn database(&mut self, db: &str) -> Result<(), Refusal> {
        if db.eq_ignore_ascii_case("SNOWFLAKE") {
            return Err(limited(
                "the SNOWFLAKE database (its views cover the whole account)",
                "query your own databases' tables, or use the list_* tools",
            ));
        }
        self.databases.push(db.to_string());
        Ok(())
    }

    /// A table or view name.
    fn relation(&mut self, name: &ObjectName) -> Result<(), Refusal> {
        let written = name.to_string();
        let Some(parts) = normalized_parts(name) else {
            return Err(limited(
                &format!("{written} (a computed name)"),
                "write the name itself",
            ));
        };
        let upper: Vec<String> = parts.iter().map(|p| p.to_ascii_uppercase()).collect();
        match upper.as_slice() {
            [.., schema, _] if names(USAGE_SCHEMAS, schema) => Err(limited(
                &format!("{written} (account-wide usage views)"),
                "query your own databases' tables",
            )),
            [.., schema, view]
                if schema == "INFORMATION_SCHEMA"
                    && !names(DATABASE_INFORMATION_SCHEMA_VIEWS, view) =>
            {
                Err(limited(
                    &format!("{written} (it covers the whole account)"),
                    &format!(
                        "read one of INFORMATION_SCHEMA.{} in an allowed database, or use the list_* tools",
                        DATABASE_INFORMATION_SCHEMA_VIEWS[..4].join("/")
                    ),
                ))
            }
            [view] if names(ACCOUNT_INFORMATION_SCHEMA_VIEWS, view) => Err(limited(
                &format!("{written} (unqualified, it may be the account-wide INFORMATION_SCHEMA view)"),
                &format!("qualify your own table as SCHEMA.{written}"),
            )),
            [_] | [_, _] => self.in_current(&written),
            [_, _, _] if !parts[0].is_empty() => self.database(&parts[0]),
            _ => Err(limited(&written, QUALIFY)),
        }
    }

    /// A function call: `DB.SCHEMA.F()` names a database, `SCHEMA.F()` is in the current one,
    /// `F()` is a built-in or a function of the current database — except those that take
    /// object names as text.
    fn function(&mut self, call: &[Part]) -> Result<(), Refusal> {
        let written: Vec<String> = call.iter().map(|p| p.value.clone()).collect();
        let written = written.join(".");
        let upper: Vec<String> = call.iter().map(Part::upper).collect();
        match upper.as_slice() {
            [name] if name.starts_with("SYSTEM$") || names(NAME_TAKING_FUNCTIONS, name) => {
                Err(limited(
                    &format!("{written}(...) (it takes object names as text)"),
                    "use describe_object or the list_* tools, or query the objects by name",
                ))
            }
            [_] => Ok(()),
            [.., schema, _] if schema == "INFORMATION_SCHEMA" => Err(limited(
                &format!("{written}(...) (INFORMATION_SCHEMA table functions take object names as text or cover the account)"),
                "query INFORMATION_SCHEMA views such as TABLES and COLUMNS of an allowed database",
            )),
            [_, _] => self.in_current(&format!("{written}(...)")),
            [db, schema, name]
                if db == "SNOWFLAKE" && schema == "CORTEX" && names(TEXT_CORTEX_FUNCTIONS, name) =>
            {
                Ok(())
            }
            [db, _, _] if !db.is_empty() => self.database(&call[0].normalized()),
            _ => Err(limited(&format!("{written}(...)"), QUALIFY)),
        }
    }

    /// `AT(STREAM => 'name')` names a stream as text.
    fn streams_named_as_text(&mut self, significant: &[&Token]) -> Result<(), Refusal> {
        let named = significant.windows(2).any(|w| {
            matches!(w[0], Token::Word(word) if word.value.eq_ignore_ascii_case("STREAM"))
                && *w[1] == Token::RArrow
        });
        if named {
            return Err(limited(
                "AT(STREAM => '...') (it names a stream as text)",
                "use AT(TIMESTAMP => ...) or AT(OFFSET => ...)",
            ));
        }
        Ok(())
    }

    /// A SHOW or DESCRIBE target.
    fn scope(&mut self, command: &Command) -> Result<(), Refusal> {
        let what = &command.what;
        match &command.scope {
            Scope::Account => Err(limited(
                &format!("{what} (it covers the whole account)"),
                "use list_databases, list_schemas, list_objects and describe_object, or SHOW ... IN SCHEMA DB.SCHEMA",
            )),
            Scope::Unscoped => Err(limited(
                &format!("{what} without IN (its scope depends on the session)"),
                "add IN DATABASE <db> or IN SCHEMA <db>.<schema> (for grants: SHOW GRANTS ON TABLE <db>.<schema>.<table>)",
            )),
            Scope::Database(None) => self.in_current(what),
            Scope::Database(Some(db)) => self.database(db),
            Scope::Schema(None) => self.in_current(what),
            Scope::Schema(Some(parts)) => match parts.as_slice() {
                [db, _] => self.database(db),
                _ => self.in_current(&format!("{what} {}", parts.join("."))),
            },
            Scope::Object(parts) => match parts.as_slice() {
                [db, _, _] => self.database(db),
                _ => self.in_current(&format!("{what} {}", parts.join("."))),
            },
            // `IN x` is database x or schema x of the current database, `IN x.y` schema y of
            // database x or table y of schema x: both must be allowed.
            Scope::Bare(parts) => match parts.as_slice() {
                [db, _, _] => self.database(db),
                [first, ..] => {
                    self.database(first)?;
                    self.in_current(&format!("{what} IN {}", parts.join(".")))
                }
                [] => Err(limited(what, QUALIFY)),
            },
        }
    }
}

/// Visits every table and view name, and semantic views.
struct Relations<'a, 'b> {
    found: &'a mut Found<'b>,
}

impl Visitor for Relations<'_, '_> {
    type Break = Refusal;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        match self.found.relation(relation) {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => ControlFlow::Break(r),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        if let TableFactor::SemanticView { name, .. } = factor {
            if let Err(r) = self.found.relation(name) {
                return ControlFlow::Break(r);
            }
        }
        ControlFlow::Continue(())
    }
}

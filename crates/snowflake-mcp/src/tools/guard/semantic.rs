//! Which semantic views a statement uses, for clients limited to some
//! (`allowed_semantic_views`): every `SEMANTIC_VIEW(...)` in a query and the view of a
//! `DESCRIBE SEMANTIC VIEW`, each resolved against the session's database and schema to
//! `DB.SCHEMA.VIEW`. A name that cannot be resolved, and `SHOW SEMANTIC ...` (it lists views
//! the client may not use; `list_semantic_views` lists the allowed ones), are refused: the
//! check fails closed.

use std::ops::ControlFlow;

use sqlparser::ast::{TableFactor, Visit, Visitor};

use super::catalog::Scope;
use super::query::normalized_parts;
use super::{analyze, refused, Analyzed, Refusal, WriteKind};

/// `parts` completed from the current database and schema, as `DB.SCHEMA.VIEW`.
fn resolve(parts: &[String], db: Option<&str>, schema: Option<&str>) -> Result<String, Refusal> {
    let full = match (parts, db, schema) {
        ([d, s, v], _, _) => [d.clone(), s.clone(), v.clone()],
        ([s, v], Some(d), _) => [d.to_string(), s.clone(), v.clone()],
        ([v], Some(d), Some(s)) => [d.to_string(), s.to_string(), v.clone()],
        _ => {
            return Err(refused(
                "a semantic view named without its database and schema while the session has none; name it DB.SCHEMA.VIEW",
            ))
        }
    };
    Ok(full.join("."))
}

struct Views<'a> {
    db: Option<&'a str>,
    schema: Option<&'a str>,
    found: Vec<String>,
}

impl Visitor for Views<'_> {
    type Break = Refusal;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        if let TableFactor::SemanticView { name, .. } = factor {
            let resolved = normalized_parts(name)
                .ok_or_else(|| refused("a semantic view named by IDENTIFIER(...)"))
                .and_then(|parts| resolve(&parts, self.db, self.schema));
            match resolved {
                Ok(view) => self.found.push(view),
                Err(r) => return ControlFlow::Break(r),
            }
        }
        ControlFlow::Continue(())
    }
}

/// The semantic views `sql` uses, as `DB.SCHEMA.VIEW`.
pub fn referenced_semantic_views(
    sql: &str,
    db: Option<&str>,
    schema: Option<&str>,
    writes: &[WriteKind],
) -> Result<Vec<String>, Refusal> {
    match analyze(sql, writes)? {
        Analyzed::Catalog(command) if command.what.contains("SEMANTIC") => {
            match (command.what.starts_with("DESC"), &command.scope) {
                (true, Scope::Object(parts)) => Ok(vec![resolve(parts, db, schema)?]),
                _ => Err(refused(&format!(
                    "{} for a client limited to some semantic views; list_semantic_views lists them",
                    command.what
                ))),
            }
        }
        Analyzed::Catalog(_) => Ok(Vec::new()),
        Analyzed::Query { statement, .. } => {
            let mut views = Views {
                db,
                schema,
                found: Vec::new(),
            };
            if let ControlFlow::Break(r) = statement.visit(&mut views) {
                return Err(r);
            }
            Ok(views.found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_views_are_resolved_or_refused() {
        let found = |sql: &str| referenced_semantic_views(sql, Some("DEMO"), Some("SALES"), &[]);
        assert_eq!(
            found("SELECT * FROM SEMANTIC_VIEW(sales METRICS o.m) JOIN SEMANTIC_VIEW(\"Other\".S.\"v\" METRICS o.m) ON TRUE").unwrap(),
            vec!["DEMO.SALES.SALES".to_string(), "Other.S.v".to_string()]
        );
        assert_eq!(
            found("DESCRIBE SEMANTIC VIEW x.y").unwrap(),
            vec!["DEMO.X.Y".to_string()]
        );
        assert!(found("SHOW SEMANTIC VIEWS IN SCHEMA DEMO.SALES").is_err());
        assert!(found("SELECT 1").unwrap().is_empty());
        let unscoped =
            referenced_semantic_views("SELECT * FROM SEMANTIC_VIEW(v METRICS m)", None, None, &[]);
        assert!(unscoped.is_err());
    }
}

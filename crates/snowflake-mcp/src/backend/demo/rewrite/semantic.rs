//! `SEMANTIC_VIEW(...)` in FROM, rewritten to the derived table it stands for (see
//! [`crate::backend::demo::semantic`]): each requested dimension, fact and metric resolved by
//! its name (`table.name`, or a name unique in the view), the inner `WHERE`'s names replaced by
//! their definitions, and the whole parsed back as a subquery named like the view.

use std::ops::ControlFlow;

use sqlparser_datafusion::ast::{visit_expressions_mut, Expr, SetExpr, TableFactor};
use sqlparser_datafusion::dialect::SnowflakeDialect;
use sqlparser_datafusion::parser::Parser;

use crate::backend::demo::catalog::home;
use crate::backend::demo::semantic::{self, Item};
use crate::backend::ObjectName;

/// The item an expression names, or an error naming what was not understood.
fn item_of(e: &Expr) -> Result<&'static Item, String> {
    match e {
        Expr::Identifier(name) => semantic::find(None, &name.value),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            semantic::find(Some(&parts[0].value), &parts[1].value)
        }
        other => Err(format!(
            "SQL compilation error: the demo's semantic view takes names (table.name), not '{other}'"
        )),
    }
}

/// Rewrite `table` when it is a `SEMANTIC_VIEW(...)` of the demo's view.
pub fn rewrite(table: &mut TableFactor) -> Result<(), String> {
    let TableFactor::SemanticView {
        name,
        dimensions,
        metrics,
        facts,
        where_clause,
        alias,
    } = table
    else {
        return Ok(());
    };
    // Resolved as any name of the demo (quoted parts keep their case).
    let view = ObjectName::resolve(&name.to_string(), &home()).map_err(|e| e.message)?;
    if !semantic::is_view(&view) {
        return Err(format!(
            "SQL compilation error: Semantic view '{name}' does not exist or not authorized."
        ));
    }
    let mut items = Vec::new();
    for e in dimensions.iter().chain(metrics.iter()).chain(facts.iter()) {
        items.push(item_of(e)?);
    }
    // Snowflake orders the columns as written; the AST keeps the clauses apart, so the demo
    // answers dimensions first, then metrics, then facts (the order query_semantic_view writes).
    let filter = match where_clause.take() {
        Some(mut w) => {
            let mut error = None;
            let _ = visit_expressions_mut(&mut w, |e| {
                if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    match item_of(e) {
                        Ok(i) if i.kind != semantic::Kind::Metric => {
                            *e = Expr::Nested(Box::new(Expr::Identifier(
                                sqlparser_datafusion::ast::Ident::new(format!("\u{1}{}", i.name)),
                            )));
                        }
                        Ok(i) => {
                            error = Some(format!("SQL compilation error: metric {} cannot be used in the WHERE of SEMANTIC_VIEW; filter its result outside", i.name));
                        }
                        Err(e) => error = Some(e),
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            if let Some(e) = error {
                return Err(e);
            }
            // Each placeholder becomes the item's definition (longest names first, so none is
            // taken for the start of another).
            let mut text = w.to_string();
            let mut by_length: Vec<&Item> = semantic::ITEMS.iter().collect();
            by_length.sort_by_key(|i| std::cmp::Reverse(i.name.len()));
            for i in by_length {
                text = text.replace(&format!("\u{1}{}", i.name), i.sql);
            }
            Some(text)
        }
        None => None,
    };
    let label = alias
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| semantic::NAME.to_string());
    let inner = semantic::query(&items, filter.as_deref())?;
    let text = format!("SELECT * FROM ({inner}) AS {label}");
    let query = Parser::new(&SnowflakeDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| format!("SQL compilation error: {e}"))?;
    if let SetExpr::Select(s) = *query.body {
        if let Some(from) = s.from.into_iter().next() {
            *table = from.relation;
        }
    }
    Ok(())
}

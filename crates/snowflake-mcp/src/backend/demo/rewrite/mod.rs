//! From the Snowflake SQL a model writes to the SQL the engine runs, on sqlparser's syntax tree
//! (Snowflake dialect).
//!
//! * Identifiers: Snowflake folds unquoted names to upper case and keeps quoted ones exact;
//!   the engine compares names exactly, so unquoted words are upper-cased before parsing
//!   (except the keys of a `value:path`, which are case-sensitive in Snowflake).
//! * Functions Snowflake has and the engine lacks are written in the engine's terms (`IFF` as
//!   `CASE`, `COUNT_IF` as a filtered count, `LISTAGG … WITHIN GROUP` as `string_agg(… ORDER
//!   BY …)`, date parts named by bare words as strings, …) or routed to `functions.rs`.
//! * `a / b` divides as Snowflake does (never integer division); `TOP n` is a `LIMIT`;
//!   `SAMPLE` keeps a share of rows (or a number of them); `CURRENT_DATABASE()` and its
//!   relatives are the session's.
//!
//! Function semantics follow Snowflake's SQL reference
//! (<https://docs.snowflake.com/en/sql-reference-functions>).

use std::ops::ControlFlow;

use std::fmt::Display;

use sqlparser_datafusion::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, CastKind, Expr, LimitClause, Query,
    SelectItem, SetExpr, SetOperator, Statement, Subscript, TableFactor, TableSampleKind,
    TableSampleUnit, TopQuantity, Value, VisitMut, VisitorMut,
};
use sqlparser_datafusion::dialect::SnowflakeDialect;
use sqlparser_datafusion::parser::Parser;
use sqlparser_datafusion::tokenizer::{Token, Tokenizer};

use crate::Context;

mod functions;
mod semantic;

/// The statement the engine runs for `sql`, or Snowflake's kind of compilation error.
pub fn rewrite(sql: &str, ctx: &Context) -> Result<Statement, String> {
    let dialect = SnowflakeDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| format!("SQL compilation error: {e}"))?;
    let tokens = fold_case(tokens);
    let mut statements = Parser::new(&dialect)
        .with_tokens(tokens)
        .parse_statements()
        .map_err(|e| format!("SQL compilation error: {e}"))?;
    if statements.len() != 1 {
        return Err("SQL compilation error: exactly one statement is run at a time".into());
    }
    let mut statement = statements.remove(0);
    let mut rewriter = Rewriter { ctx, error: None };
    let _ = statement.visit(&mut rewriter);
    match rewriter.error {
        Some(e) => Err(e),
        None => Ok(statement),
    }
}

/// Unquoted words to upper case, except the keys of a semi-structured path (`v:Key.sub`).
fn fold_case(tokens: Vec<Token>) -> Vec<Token> {
    let mut in_path = false;
    tokens
        .into_iter()
        .map(|token| match token {
            Token::Colon => {
                in_path = true;
                token
            }
            Token::Word(mut w) if w.quote_style.is_none() => {
                if !in_path {
                    w.value = w.value.to_uppercase();
                }
                Token::Word(w)
            }
            Token::Word(_) | Token::Period | Token::LBracket | Token::RBracket => token,
            Token::Number(..) | Token::SingleQuotedString(_) if in_path => token,
            other => {
                in_path = false;
                other
            }
        })
        .collect()
}

struct Rewriter<'a> {
    ctx: &'a Context,
    error: Option<String>,
}

/// Parse one expression of the engine's SQL (built from already rewritten parts).
fn expr(text: &str) -> Result<Expr, String> {
    Parser::new(&SnowflakeDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("SQL compilation error: {e} (in {text})"))
}

fn string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A part of the tree as SQL text to build on: string literals re-escaped, since the text is
/// parsed again (Snowflake reads `\\` in a string as one backslash).
fn render<T: VisitMut + Display + Clone>(part: &T) -> String {
    let mut part = part.clone();
    let _ = visit_expressions_mut(&mut part, |e| {
        if let Expr::Value(v) = e {
            if let Value::SingleQuotedString(s) = &mut v.value {
                *s = s.replace('\\', "\\\\");
            }
        }
        ControlFlow::<()>::Continue(())
    });
    part.to_string()
}

/// A date part given as a bare word or a string, as a string.
fn part(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => string(s),
            other => other.to_string(),
        },
        other => string(&other.to_string()),
    }
}

/// A Snowflake type name in the engine's words.
fn engine_type(snowflake: &str) -> String {
    let t = snowflake.to_uppercase();
    let base = t.split('(').next().unwrap_or("").trim();
    match base {
        "NUMBER" | "NUMERIC" | "DECIMAL" | "DEC" => {
            let args = t
                .split_once('(')
                .map(|(_, a)| a.trim_end_matches(')'))
                .unwrap_or("38,0");
            let mut parts = args.split(',').map(str::trim);
            let p = parts.next().unwrap_or("38");
            let s = parts.next().unwrap_or("0");
            format!("DECIMAL({p},{s})")
        }
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => "BIGINT".into(),
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "REAL" | "DOUBLE PRECISION" => "DOUBLE".into(),
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER" | "NVARCHAR" => "VARCHAR".into(),
        "TIMESTAMP_NTZ" | "DATETIME" | "TIMESTAMP" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => {
            "TIMESTAMP".into()
        }
        "BOOLEAN" | "DATE" | "TIME" => base.into(),
        _ => t,
    }
}

/// What makes a semi-structured value (JSON text typed VARIANT).
fn is_variant(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if matches!(
        f.name.to_string().to_lowercase().as_str(),
        "variant_get" | "parse_json" | "object_construct"
    ))
}

impl Rewriter<'_> {
    fn replace(&mut self, e: &mut Expr, text: Option<String>) {
        if let Some(text) = text {
            match expr(&text) {
                Ok(new) => *e = new,
                Err(err) => self.error = Some(err),
            }
        }
    }
}

fn render_window(w: &sqlparser_datafusion::ast::WindowType) -> String {
    match w {
        sqlparser_datafusion::ast::WindowType::WindowSpec(spec) => format!("({})", spec),
        named => named.to_string(),
    }
}

/// `MINUS` is Snowflake's `EXCEPT`.
fn minus_is_except(body: &mut SetExpr) {
    if let SetExpr::SetOperation {
        op, left, right, ..
    } = body
    {
        if *op == SetOperator::Minus {
            *op = SetOperator::Except;
        }
        minus_is_except(left);
        minus_is_except(right);
    }
}

/// Snowflake lets a select list (and its WHERE, GROUP BY, HAVING and QUALIFY) use an alias
/// defined earlier in the same list; the engine needs the expression itself. A name that is a
/// column of a demo table is left alone (the column wins, as in Snowflake).
fn lateral_aliases(select: &mut sqlparser_datafusion::ast::Select) {
    let columns: std::collections::HashSet<&str> = super::catalog::TABLES
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| c.name))
        .collect();
    let mut aliases: Vec<(String, Expr)> = Vec::new();
    let substitute = |e: &mut Expr, aliases: &[(String, Expr)]| {
        let _ = visit_expressions_mut(e, |x| {
            if let Expr::Identifier(id) = x {
                if let Some((_, expr)) = aliases.iter().find(|(a, _)| *a == id.value) {
                    *x = Expr::Nested(Box::new(expr.clone()));
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    for item in select.projection.iter_mut() {
        if let SelectItem::ExprWithAlias { expr, alias } = item {
            substitute(expr, &aliases);
            if !columns.contains(alias.value.as_str()) {
                aliases.push((alias.value.clone(), expr.clone()));
            }
        } else if let SelectItem::UnnamedExpr(expr) = item {
            substitute(expr, &aliases);
        }
    }
    if aliases.is_empty() {
        return;
    }
    if let Some(w) = select.selection.as_mut() {
        substitute(w, &aliases);
    }
    if let Some(q) = select.qualify.as_mut() {
        substitute(q, &aliases);
    }
}

/// Snowflake's date format elements as chrono's.
fn chrono_format(snowflake: &str) -> String {
    let mut out = String::new();
    let mut rest = snowflake;
    const ELEMENTS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("YY", "%y"),
        ("MMMM", "%B"),
        ("MON", "%b"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("DY", "%a"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("HH", "%H"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("FF", "%f"),
        ("AM", "%p"),
        ("PM", "%p"),
    ];
    'next: while !rest.is_empty() {
        for (from, to) in ELEMENTS {
            if rest.len() >= from.len() && rest[..from.len()].eq_ignore_ascii_case(from) {
                out += to;
                rest = &rest[from.len()..];
                continue 'next;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '%' {
            out += "%%";
        } else if c != '"' {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        minus_is_except(query.body.as_mut());
        if let Some(fetch) = query.fetch.take() {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: fetch.quantity,
                offset: None,
                limit_by: vec![],
            });
        }
        if let SetExpr::Select(select) = query.body.as_mut() {
            lateral_aliases(select);
            if let Some(top) = select.top.take() {
                let limit = match top.quantity {
                    Some(TopQuantity::Constant(n)) => {
                        Some(Expr::value(Value::Number(n.to_string(), false)))
                    }
                    Some(TopQuantity::Expr(e)) => Some(e),
                    None => None,
                };
                query.limit_clause = Some(LimitClause::LimitOffset {
                    limit,
                    offset: None,
                    limit_by: vec![],
                });
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, table: &mut TableFactor) -> ControlFlow<()> {
        if let Err(e) = semantic::rewrite(table) {
            self.error = Some(e);
            return ControlFlow::Continue(());
        }
        if let TableFactor::Table {
            name,
            alias,
            sample,
            ..
        } = table
        {
            let Some(
                TableSampleKind::BeforeTableAlias(kind) | TableSampleKind::AfterTableAlias(kind),
            ) = sample.take()
            else {
                return ControlFlow::Continue(());
            };
            let Some(quantity) = kind.quantity else {
                return ControlFlow::Continue(());
            };
            let n = render(&quantity.value);
            let filter = match quantity.unit {
                Some(TableSampleUnit::Rows) => format!("LIMIT {n}"),
                _ => format!("WHERE random() * 100 < {n}"),
            };
            let label = alias
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_else(|| name.0.last().map(|p| p.to_string()).unwrap_or_default());
            let text = format!("SELECT * FROM (SELECT * FROM {name} {filter}) AS {label}");
            match Parser::new(&SnowflakeDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_query())
            {
                Ok(q) => {
                    if let SetExpr::Select(s) = *q.body {
                        if let Some(from) = s.from.into_iter().next() {
                            *table = from.relation;
                        }
                    }
                }
                Err(e) => self.error = Some(format!("SQL compilation error: {e}")),
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let op = if matches!(e, Expr::ILike { .. }) {
            "ILIKE"
        } else {
            "LIKE"
        };
        let text = match e {
            Expr::Function(f) => match self.function(f) {
                Ok(text) => text,
                Err(err) => {
                    self.error = Some(err);
                    return ControlFlow::Break(());
                }
            },
            Expr::BinaryOp { left, op: BinaryOperator::Divide, right } => Some(format!(
                "(CAST({} AS DOUBLE) / {})",
                render(left.as_ref()),
                render(right.as_ref())
            )),
            Expr::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
                // Snowflake counts array elements from 0, the engine from 1.
                [AccessExpr::Subscript(Subscript::Index { index })] => Some(if is_variant(root) {
                    format!("variant_get({}, concat('[', CAST({} AS VARCHAR), ']'))", render(root.as_ref()), render(index))
                } else {
                    format!("array_element({}, ({}) + 1)", render(root.as_ref()), render(index))
                }),
                _ => None,
            },
            Expr::JsonAccess { value, path }
                if !is_variant(value)
                    && path.path.iter().all(|p| matches!(p, sqlparser_datafusion::ast::JsonPathElem::Bracket { key: Expr::Value(v) } if matches!(v.value, Value::Number(..)))) =>
            {
                // `SPLIT(…)[1]` on an array the engine holds as a list: elements count from 0.
                let mut text = render(value.as_ref());
                for elem in &path.path {
                    if let sqlparser_datafusion::ast::JsonPathElem::Bracket { key } = elem {
                        text = format!("array_element({text}, {} + 1)", render(key));
                    }
                }
                Some(text)
            }
            Expr::JsonAccess { value, path } => {
                let mut steps = String::new();
                for elem in &path.path {
                    match elem {
                        sqlparser_datafusion::ast::JsonPathElem::Dot { key, .. } => {
                            if !steps.is_empty() {
                                steps.push('.');
                            }
                            steps += key;
                        }
                        sqlparser_datafusion::ast::JsonPathElem::Bracket { key } => match key {
                            Expr::Value(v) => match &v.value {
                                Value::SingleQuotedString(k) => {
                                    if !steps.is_empty() {
                                        steps.push('.');
                                    }
                                    steps += k;
                                }
                                other => steps += &format!("[{other}]"),
                            },
                            other => steps += &format!("[{other}]"),
                        },
                        _ => {}
                    }
                }
                Some(format!("variant_get({}, {})", render(value.as_ref()), string(&steps)))
            }
            Expr::Cast { kind, expr: inner, data_type, .. } => {
                let target = engine_type(&data_type.to_string());
                let cast = match kind {
                    CastKind::TryCast | CastKind::SafeCast => "TRY_CAST",
                    _ => "CAST",
                };
                let was_variant = is_variant(inner);
                let raw = render(inner.as_ref());
                let inner = if was_variant {
                    format!("variant_text({raw})")
                } else {
                    raw.clone()
                };
                // Snowflake rounds to the target's scale; the engine would truncate.
                let scale = target
                    .strip_prefix("DECIMAL(")
                    .and_then(|r| r.trim_end_matches(')').split(',').nth(1))
                    .map(str::to_string);
                if target == "VARIANT" || target == "OBJECT" || target == "ARRAY" {
                    Some(if was_variant { raw } else { format!("to_variant({inner})") })
                } else if target == "BIGINT" {
                    Some(format!("{cast}(round({cast}({inner} AS DOUBLE)) AS BIGINT)"))
                } else if let Some(scale) = scale {
                    Some(format!("{cast}(round({cast}({inner} AS DOUBLE), {scale}) AS {target})"))
                } else {
                    Some(format!("{cast}({inner} AS {target})"))
                }
            }
            Expr::Like { negated, any: true, expr: target, pattern, .. }
            | Expr::ILike { negated, any: true, expr: target, pattern, .. } => {
                let target = render(target.as_ref());
                let patterns: Vec<String> = match pattern.as_ref() {
                    Expr::Tuple(items) => items.iter().map(render).collect(),
                    Expr::Nested(p) => vec![render(p.as_ref())],
                    other => vec![render(other)],
                };
                let any = patterns
                    .iter()
                    .map(|p| format!("{target} {op} {p}"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                Some(if *negated { format!("NOT ({any})") } else { format!("({any})") })
            }
            Expr::RLike { negated, expr: target, pattern, .. } => {
                let not = if *negated { "NOT " } else { "" };
                Some(format!(
                    "{not}regexp_like({}, concat('^(?:', {}, ')$'))",
                    render(target.as_ref()),
                    render(pattern.as_ref())
                ))
            }
            _ => None,
        };
        self.replace(e, text);
        if self.error.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests;

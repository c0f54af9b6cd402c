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
//!   `SAMPLE` reads the whole table; `CURRENT_DATABASE()` and its relatives are the session's.
//!
//! Function semantics follow Snowflake's SQL reference
//! (<https://docs.snowflake.com/en/sql-reference-functions>).

use std::ops::ControlFlow;

use std::fmt::Display;

use sqlparser_datafusion::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, CastKind, Expr, FunctionArg,
    FunctionArgExpr, FunctionArguments, LimitClause, Query, SelectItem, SetExpr, SetOperator,
    Statement, Subscript, TableFactor, TableSampleKind, TableSampleUnit, TopQuantity, Value,
    VisitMut, VisitorMut,
};
use sqlparser_datafusion::dialect::SnowflakeDialect;
use sqlparser_datafusion::parser::Parser;
use sqlparser_datafusion::tokenizer::{Token, Tokenizer};

use crate::Context;

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
    fn function(&self, f: &sqlparser_datafusion::ast::Function) -> Result<Option<String>, String> {
        let name = f.name.to_string().to_uppercase();
        let FunctionArguments::List(list) = &f.args else {
            return Ok(match name.as_str() {
                "CURRENT_TIMESTAMP" | "LOCALTIMESTAMP" | "SYSDATE" | "GETDATE" => {
                    Some("now()".into())
                }
                _ => None,
            });
        };
        let args: Vec<String> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => render(e),
                other => other.to_string(),
            })
            .collect();
        let exprs: Vec<Option<&Expr>> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect();
        let a = |i: usize| args.get(i).cloned().unwrap_or_default();
        let n = args.len();
        let distinct = if list.duplicate_treatment.is_some() {
            "DISTINCT "
        } else {
            ""
        };
        let order = if f.within_group.is_empty() {
            String::new()
        } else {
            let by: Vec<String> = f.within_group.iter().map(render).collect();
            format!(" ORDER BY {}", by.join(", "))
        };
        let ctx = |v: &Option<String>| v.as_deref().map(string).unwrap_or("NULL".into());
        let date_part = |unit: &str| format!("CAST(date_part('{unit}', {}) AS BIGINT)", a(0));
        Ok(Some(match (name.as_str(), n) {
            ("DATE_FROM_PARTS", 3) => format!("make_date({}, {}, {})", a(0), a(1), a(2)),
            ("MAX_BY", 2) => format!("first_value({} ORDER BY {} DESC NULLS LAST)", a(0), a(1)),
            ("MIN_BY", 2) => format!("first_value({} ORDER BY {} ASC NULLS LAST)", a(0), a(1)),
            ("MEDIAN", 1) => format!("median({distinct}CAST({} AS DOUBLE))", a(0)),
            ("SIGN", 1) => format!("CAST(signum({}) AS BIGINT)", a(0)),
            ("RATIO_TO_REPORT", 1) => match &f.over {
                Some(over) => format!("(CAST({0} AS DOUBLE) / sum({0}) OVER {1})", a(0), render_window(over)),
                None => return Ok(None),
            },
            ("TO_VARIANT", 1) => format!("to_variant({})", a(0)),
            ("IFF", 3) => format!("CASE WHEN {} THEN {} ELSE {} END", a(0), a(1), a(2)),
            ("COUNT_IF", 1) => format!("count(CASE WHEN {} THEN 1 END)", a(0)),
            ("ZEROIFNULL", 1) => format!("coalesce({}, 0)", a(0)),
            ("NULLIFZERO", 1) => format!("nullif({}, 0)", a(0)),
            ("DIV0", 2) => format!(
                "CASE WHEN {1} = 0 THEN 0 ELSE CAST({0} AS DOUBLE) / {1} END",
                a(0),
                a(1)
            ),
            ("DIV0NULL", 2) => format!(
                "CASE WHEN {1} = 0 OR {1} IS NULL THEN 0 ELSE CAST({0} AS DOUBLE) / {1} END",
                a(0),
                a(1)
            ),
            ("EQUAL_NULL", 2) => format!("({} IS NOT DISTINCT FROM {})", a(0), a(1)),
            ("DECODE", n) if n >= 3 => {
                let mut text = String::from("CASE");
                let mut i = 1;
                while i + 1 < n {
                    text += &format!(" WHEN {} IS NOT DISTINCT FROM {} THEN {}", a(0), a(i), a(i + 1));
                    i += 2;
                }
                if i < n {
                    text += &format!(" ELSE {}", a(i));
                }
                text + " END"
            }
            ("DATEADD" | "TIMEADD" | "TIMESTAMPADD", 3) => {
                let unit = part(exprs[0].unwrap_or(&Expr::value(Value::Null)));
                let sub_day = ["'H", "'HH", "'HR", "'HOUR", "'M", "'MI", "'MIN", "'MINUTE", "'S", "'SEC", "'SECOND", "'N", "'NS", "'NANOSECOND"]
                    .iter()
                    .any(|u| unit.trim_end_matches('\'').trim_end_matches('S') == *u || unit.trim_end_matches('\'') == *u);
                if sub_day {
                    format!("snow_dateadd({unit}, {}, CAST({} AS TIMESTAMP))", a(1), a(2))
                } else {
                    format!("snow_dateadd({unit}, {}, {})", a(1), a(2))
                }
            }
            ("DATEDIFF" | "TIMEDIFF" | "TIMESTAMPDIFF", 3) => {
                format!("snow_datediff({}, {}, {})", part(exprs[0].unwrap_or(&Expr::value(Value::Null))), a(1), a(2))
            }
            ("DATE_TRUNC", 2) => format!(
                "snow_date_trunc({}, {})",
                part(exprs[0].unwrap_or(&Expr::value(Value::Null))),
                a(1)
            ),
            ("TRUNC" | "TRUNCATE", 2)
                if exprs[1].is_some_and(|e| matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))) =>
            {
                format!("snow_date_trunc({}, {})", a(1), a(0))
            }
            ("DATE_PART", 2) => format!(
                "CAST(date_part({}, {}) AS BIGINT)",
                part(exprs[0].unwrap_or(&Expr::value(Value::Null))),
                a(1)
            ),
            ("YEAR", 1) => date_part("year"),
            ("QUARTER", 1) => date_part("quarter"),
            ("MONTH", 1) => date_part("month"),
            ("WEEK" | "WEEKOFYEAR" | "WEEKISO", 1) => date_part("week"),
            ("DAY" | "DAYOFMONTH", 1) => date_part("day"),
            ("DAYOFWEEK", 1) => date_part("dow"),
            ("DAYOFWEEKISO", 1) => format!("(CAST(date_part('dow', {0}) + 6 AS BIGINT) % 7 + 1)", a(0)),
            ("DAYOFYEAR", 1) => date_part("doy"),
            ("HOUR", 1) => date_part("hour"),
            ("MINUTE", 1) => date_part("minute"),
            ("SECOND", 1) => date_part("second"),
            ("DAYNAME", 1) => format!("to_char({}, '%a')", a(0)),
            ("MONTHNAME", 1) => format!("to_char({}, '%b')", a(0)),
            ("TO_CHAR" | "TO_VARCHAR", 1) => format!("CAST({} AS VARCHAR)", a(0)),
            ("TO_CHAR" | "TO_VARCHAR", 2) => match exprs[1] {
                Some(Expr::Value(v)) => match &v.value {
                    Value::SingleQuotedString(f) => {
                        format!("to_char({}, {})", a(0), string(&chrono_format(f)))
                    }
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            },
            ("TO_DATE" | "DATE", 1) => format!("CAST({} AS DATE)", a(0)),
            ("TRY_TO_DATE", 1) => format!("TRY_CAST({} AS DATE)", a(0)),
            ("TO_DATE" | "DATE" | "TRY_TO_DATE", 2) => match exprs[1] {
                Some(Expr::Value(v)) => match &v.value {
                    Value::SingleQuotedString(f) => {
                        format!("to_date({}, {})", a(0), string(&chrono_format(f)))
                    }
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            },
            ("TO_TIMESTAMP" | "TO_TIMESTAMP_NTZ" | "TO_TIMESTAMP_LTZ", 1) => {
                format!("CAST({} AS TIMESTAMP)", a(0))
            }
            ("TO_NUMBER" | "TO_DECIMAL" | "TO_NUMERIC" | "TRY_TO_NUMBER" | "TRY_TO_DECIMAL"
            | "TRY_TO_NUMERIC", 1..=4) => {
                let cast = if name.starts_with("TRY_") { "TRY_CAST" } else { "CAST" };
                // An optional format comes first when the second argument is a string.
                let rest: Vec<String> = (1..n)
                    .filter(|&i| !matches!(exprs[i], Some(Expr::Value(v)) if matches!(v.value, Value::SingleQuotedString(_))))
                    .map(a)
                    .collect();
                let p = rest.first().cloned().unwrap_or("38".into());
                let s = rest.get(1).cloned().unwrap_or("0".into());
                format!("{cast}({} AS DECIMAL({p},{s}))", a(0))
            }
            ("TO_DOUBLE" | "TRY_TO_DOUBLE", 1) => {
                let cast = if name.starts_with("TRY_") { "TRY_CAST" } else { "CAST" };
                format!("{cast}({} AS DOUBLE)", a(0))
            }
            ("TO_BOOLEAN" | "TRY_TO_BOOLEAN", 1) => format!("CAST({} AS BOOLEAN)", a(0)),
            ("LISTAGG", 1 | 2) => {
                let sep = if n == 2 { a(1) } else { "''".into() };
                if distinct.is_empty() {
                    format!("string_agg(CAST({} AS VARCHAR), {sep}{order})", a(0))
                } else {
                    format!("string_agg(DISTINCT {}, {sep}{order})", a(0))
                }
            }
            ("ARRAY_AGG" | "ARRAYAGG", 1) if !order.is_empty() => {
                format!("array_agg({distinct}{}{order})", a(0))
            }
            ("APPROX_COUNT_DISTINCT" | "HLL", 1) => format!("count(DISTINCT {})", a(0)),
            ("CHARINDEX", 2) => format!("strpos({}, {})", a(1), a(0)),
            ("POSITION", 2) => format!("strpos({}, {})", a(1), a(0)),
            ("CONTAINS", 2) => format!("(strpos({}, {}) > 0)", a(0), a(1)),
            ("STARTSWITH", 2) => format!("starts_with({}, {})", a(0), a(1)),
            ("ENDSWITH", 2) => format!("ends_with({}, {})", a(0), a(1)),
            ("LEN", 1) => format!("length({})", a(0)),
            ("EDITDISTANCE", 2) => format!("levenshtein({}, {})", a(0), a(1)),
            ("SPLIT", 2) => format!("string_to_array({}, {})", a(0), a(1)),
            ("REGEXP_SUBSTR", 2) => {
                format!("array_element(regexp_match({}, concat('(', {}, ')')), 1)", a(0), a(1))
            }
            ("RLIKE" | "REGEXP_LIKE", 2) => {
                format!("regexp_like({}, concat('^(?:', {}, ')$'))", a(0), a(1))
            }
            ("REGEXP_REPLACE", 2) => format!("regexp_replace({}, {}, '', 'g')", a(0), a(1)),
            ("REGEXP_REPLACE", 3) => format!("regexp_replace({}, {}, {}, 'g')", a(0), a(1), a(2)),
            ("BOOLOR_AGG", 1) => format!("bool_or({})", a(0)),
            ("BOOLAND_AGG", 1) => format!("bool_and({})", a(0)),
            ("ARRAY_SIZE", 1) => format!("cardinality({})", a(0)),
            ("ARRAY_CONSTRUCT", _) => format!("make_array({})", args.join(", ")),
            ("ARRAY_CONTAINS", 2) => {
                // The needle is usually `value::VARIANT`; the engine's arrays hold plain values.
                let needle = match exprs[0] {
                    Some(Expr::Function(g)) if g.name.to_string() == "to_variant" => match &g.args {
                        FunctionArguments::List(l) => l.args.first().map(|x| x.to_string()).unwrap_or(a(0)),
                        _ => a(0),
                    },
                    _ => a(0),
                };
                format!("array_has({}, {needle})", a(1))
            }
            ("TRY_PARSE_JSON", 1) => format!("parse_json({})", a(0)),
            ("GET_PATH" | "GET", 2) => format!("variant_get({}, CAST({} AS VARCHAR))", a(0), a(1)),
            ("SQUARE", 1) => format!("power({}, 2)", a(0)),
            ("MOD", 2) => format!("({} % {})", a(0), a(1)),
            ("UNIFORM", 3) => format!("({} + floor(random() * ({} - {} + 1)))", a(0), a(1), a(0)),
            ("CURRENT_TIMESTAMP" | "LOCALTIMESTAMP" | "SYSDATE" | "GETDATE", 0) => "now()".into(),
            ("CURRENT_DATABASE", 0) => ctx(&self.ctx.database),
            ("CURRENT_SCHEMA", 0) => ctx(&self.ctx.schema),
            ("CURRENT_WAREHOUSE", 0) => ctx(&self.ctx.warehouse),
            ("CURRENT_ROLE", 0) => ctx(&self.ctx.role),
            ("CURRENT_USER", 0) => "'DEMO_USER'".into(),
            ("CURRENT_ACCOUNT", 0) => "'DEMO'".into(),
            ("CURRENT_REGION", 0) => "'OFFLINE'".into(),
            ("CURRENT_VERSION", 0) => "'demo'".into(),
            _ => return Ok(None),
        }))
    }

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
mod tests {
    use super::*;

    fn run(sql: &str) -> String {
        rewrite(sql, &Context::default()).unwrap().to_string()
    }

    #[test]
    fn unquoted_names_fold_to_upper_case_and_quoted_ones_stay() {
        assert_eq!(
            run(r#"select o.order_id, "Mixed" from demo.sales.orders o"#),
            r#"SELECT O.ORDER_ID, "Mixed" FROM DEMO.SALES.ORDERS O"#
        );
    }

    #[test]
    fn snowflake_functions_become_the_engines() {
        let sql = run(
            "select iff(a > 1, 'x', 'y'), count_if(b), dateadd(day, -30, current_date()) from t",
        );
        assert!(
            sql.contains("CASE WHEN A > 1 THEN 'x' ELSE 'y' END"),
            "{sql}"
        );
        assert!(sql.contains("count(CASE WHEN B THEN 1 END)"), "{sql}");
        assert!(
            sql.contains("snow_dateadd('DAY', -30, CURRENT_DATE())"),
            "{sql}"
        );
    }

    #[test]
    fn top_becomes_limit_and_division_is_never_integer_division() {
        let sql = run("select top 5 a / b from t");
        assert!(sql.ends_with("LIMIT 5"), "{sql}");
        assert!(sql.contains("CAST(A AS DOUBLE) / B"), "{sql}");
    }

    #[test]
    fn path_keys_keep_their_case() {
        let sql = run("select parse_json(j):Name.first::string from t");
        assert!(sql.contains("'Name.first'"), "{sql}");
    }

    #[test]
    fn date_formats_translate() {
        assert_eq!(chrono_format("YYYY-MM-DD HH24:MI"), "%Y-%m-%d %H:%M");
        assert_eq!(chrono_format("Mon DD, YYYY"), "%b %d, %Y");
    }
}

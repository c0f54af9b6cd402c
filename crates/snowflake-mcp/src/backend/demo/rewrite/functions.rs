//! Snowflake's functions in the engine's words: each call the engine lacks is written as SQL it
//! has (or as a call to one of `demo/functions.rs`), from the call's already rewritten
//! arguments. Semantics follow Snowflake's SQL reference
//! (<https://docs.snowflake.com/en/sql-reference-functions>).

use sqlparser_datafusion::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value};

use super::{chrono_format, part, render, render_window, string, Rewriter};

impl Rewriter<'_> {
    pub(super) fn function(
        &self,
        f: &sqlparser_datafusion::ast::Function,
    ) -> Result<Option<String>, String> {
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
}

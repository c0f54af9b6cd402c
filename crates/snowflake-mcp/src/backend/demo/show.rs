//! The demo's catalogue as Snowflake shows it: `SHOW DATABASES/SCHEMAS/TABLES/VIEWS/OBJECTS/
//! COLUMNS` and `DESCRIBE TABLE/VIEW` with Snowflake's output columns (lower-case names, as
//! Snowflake prints them). All of it is read from `catalog.rs`.
//!
//! Column lists follow Snowflake's reference pages for each command
//! (<https://docs.snowflake.com/en/sql-reference/sql/show-tables>, `show-columns`,
//! `desc-table`, and <https://docs.snowflake.com/en/sql-reference/info-schema>).

use std::collections::HashMap;

use datafusion::arrow::record_batch::RecordBatch;

use super::catalog::{TableSpec, DATABASE, INFORMATION_SCHEMA, ROLE, SCHEMA, TABLES};
use super::information::{batch, precision_scale, s, Cell, NULL};
use crate::backend::ObjectName;
use crate::ident::leading_name;

/// SQL `LIKE` as `SHOW … LIKE` uses it: case-insensitive, `%` and `_`.
pub fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(&p[1..], &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

/// `SHOW SEMANTIC VIEWS [LIKE ...] [IN ...]` and `DESCRIBE SEMANTIC VIEW <name>`.
fn semantic_answer(
    text: &str,
    words: &[&str],
    like_matches: bool,
) -> Option<Result<RecordBatch, String>> {
    match (words.first().copied()?, words.get(2).copied()?) {
        ("SHOW", "VIEWS") => {
            // In the account, or a scope naming the demo's database or schema.
            let scope = words
                .iter()
                .position(|w| *w == "IN")
                .map(|i| &words[i + 1..]);
            let here = scope.is_none_or(|s| {
                s.iter().any(|w| {
                    let w = w.trim_matches('"');
                    w == "ACCOUNT"
                        || w.split('.').any(|p| {
                            p.trim_matches('"') == DATABASE || p.trim_matches('"') == SCHEMA
                        })
                })
            });
            Some(super::semantic::show(like_matches && here))
        }
        ("DESCRIBE" | "DESC", "VIEW") => {
            // The name after DESCRIBE SEMANTIC VIEW, resolved as any object name of the demo.
            let (_, rest) = leading_name(text);
            let (_, rest) = leading_name(rest);
            let name = leading_name(leading_name(rest).1).0;
            let view = match ObjectName::resolve(name, &super::catalog::home()) {
                Ok(view) => view,
                Err(e) => return Some(Err(e.message)),
            };
            Some(if super::semantic::is_view(&view) {
                super::semantic::describe()
            } else {
                Err(format!(
                    "SQL compilation error: Semantic view '{view}' does not exist or not authorized."
                ))
            })
        }
        _ => None,
    }
}

/// The answer to a `SHOW` or `DESCRIBE` statement, or `None` for anything else.
pub fn answer(sql: &str, rows: &HashMap<&str, usize>) -> Option<Result<RecordBatch, String>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let upper = text.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let pattern = text
        .find(['\'', '"'])
        .filter(|_| upper.contains(" LIKE "))
        .and_then(|start| {
            let quote = text[start..].chars().next()?;
            let rest = &text[start + 1..];
            rest.find(quote).map(|end| rest[..end].to_string())
        });
    let matches = |name: &str| pattern.as_deref().is_none_or(|p| like(p, name));
    let what = words
        .iter()
        .skip(1)
        .find(|w| **w != "TERSE")
        .copied()
        .unwrap_or("");
    if words.get(1) == Some(&"SEMANTIC") {
        return semantic_answer(text, &words, matches(super::semantic::NAME));
    }
    Some(match (words.first().copied()?, what) {
        ("SHOW", "DATABASES") => batch(
            &[
                "created_on",
                "name",
                "is_default",
                "is_current",
                "origin",
                "owner",
                "comment",
                "options",
                "retention_time",
                "kind",
                "budget",
                "owner_role_type",
            ],
            [DATABASE]
                .iter()
                .filter(|d| matches(d))
                .map(|d| {
                    vec![
                        Cell::Created,
                        s(*d),
                        s("N"),
                        s("Y"),
                        s(""),
                        s(ROLE),
                        s("offline demo data"),
                        s(""),
                        s("1"),
                        s("STANDARD"),
                        NULL,
                        s("ROLE"),
                    ]
                })
                .collect(),
        ),
        ("SHOW", "SCHEMAS") => batch(
            &[
                "created_on",
                "name",
                "is_default",
                "is_current",
                "database_name",
                "owner",
                "comment",
                "options",
                "retention_time",
                "owner_role_type",
                "budget",
            ],
            [INFORMATION_SCHEMA, SCHEMA]
                .iter()
                .filter(|n| matches(n))
                .map(|n| {
                    vec![
                        Cell::Created,
                        s(*n),
                        s("N"),
                        s(if *n == SCHEMA { "Y" } else { "N" }),
                        s(DATABASE),
                        s(ROLE),
                        s(""),
                        s(""),
                        s("1"),
                        s("ROLE"),
                        NULL,
                    ]
                })
                .collect(),
        ),
        ("SHOW", "TABLES") => batch(
            &[
                "created_on",
                "name",
                "database_name",
                "schema_name",
                "kind",
                "comment",
                "cluster_by",
                "rows",
                "bytes",
                "owner",
                "retention_time",
                "automatic_clustering",
                "change_tracking",
                "is_external",
                "enable_schema_evolution",
                "owner_role_type",
                "is_event",
                "budget",
                "is_hybrid",
                "is_iceberg",
                "is_dynamic",
                "is_immutable",
            ],
            objects(|t| t.view.is_none() && matches(t.name))
                .map(|t| {
                    let n = rows.get(t.name).copied().unwrap_or(0) as i64;
                    vec![
                        Cell::Created,
                        s(t.name),
                        s(DATABASE),
                        s(SCHEMA),
                        s("TABLE"),
                        s(t.comment),
                        s(""),
                        Cell::N(Some(n)),
                        Cell::N(Some(n * 64)),
                        s(ROLE),
                        s("1"),
                        s("OFF"),
                        s("OFF"),
                        s("N"),
                        s("N"),
                        s("ROLE"),
                        s("N"),
                        NULL,
                        s("N"),
                        s("N"),
                        s("N"),
                        s("N"),
                    ]
                })
                .collect(),
        ),
        ("SHOW", "VIEWS") => batch(
            &[
                "created_on",
                "name",
                "reserved",
                "database_name",
                "schema_name",
                "owner",
                "comment",
                "text",
                "is_secure",
                "is_materialized",
                "owner_role_type",
                "change_tracking",
            ],
            objects(|t| t.view.is_some() && matches(t.name))
                .map(|t| {
                    vec![
                        Cell::Created,
                        s(t.name),
                        s(""),
                        s(DATABASE),
                        s(SCHEMA),
                        s(ROLE),
                        s(t.comment),
                        s(format!(
                            "CREATE VIEW {} AS {}",
                            t.name,
                            t.view.unwrap_or("")
                        )),
                        s("false"),
                        s("false"),
                        s("ROLE"),
                        s("OFF"),
                    ]
                })
                .collect(),
        ),
        ("SHOW", "OBJECTS") => batch(
            &[
                "created_on",
                "name",
                "database_name",
                "schema_name",
                "kind",
                "comment",
                "cluster_by",
                "rows",
                "bytes",
                "owner",
                "retention_time",
                "owner_role_type",
            ],
            objects(|t| matches(t.name))
                .map(|t| {
                    let n = t
                        .view
                        .is_none()
                        .then(|| rows.get(t.name).copied().unwrap_or(0) as i64);
                    vec![
                        Cell::Created,
                        s(t.name),
                        s(DATABASE),
                        s(SCHEMA),
                        s(if t.view.is_some() { "VIEW" } else { "TABLE" }),
                        s(t.comment),
                        s(""),
                        Cell::N(n),
                        Cell::N(n.map(|n| n * 64)),
                        s(ROLE),
                        s("1"),
                        s("ROLE"),
                    ]
                })
                .collect(),
        ),
        ("SHOW", "COLUMNS") => {
            let target = match in_table(text, &words) {
                Some(Ok(table)) => Some(table.name),
                Some(Err(e)) => return Some(Err(e)),
                None => None,
            };
            batch(
                &[
                    "table_name",
                    "schema_name",
                    "column_name",
                    "data_type",
                    "null?",
                    "default",
                    "kind",
                    "expression",
                    "comment",
                    "database_name",
                    "autoincrement",
                    "schema_evolution_record",
                ],
                objects(|t| target.is_none_or(|n| n == t.name))
                    .flat_map(|t| t.columns.iter().map(move |c| (t, c)))
                    .filter(|(_, c)| matches(c.name))
                    .map(|(t, c)| {
                        vec![
                            s(t.name),
                            s(SCHEMA),
                            s(c.name),
                            s(type_json(c.snowflake, c.nullable)),
                            s(if c.nullable { "true" } else { "false" }),
                            s(""),
                            s("COLUMN"),
                            s(""),
                            s(""),
                            s(DATABASE),
                            s(""),
                            NULL,
                        ]
                    })
                    .collect(),
            )
        }
        ("DESCRIBE" | "DESC", _) => {
            let table = match named_table(leading_name(text).1) {
                Ok(table) => table,
                Err(e) => return Some(Err(e)),
            };
            batch(
                &[
                    "name",
                    "type",
                    "kind",
                    "null?",
                    "default",
                    "primary key",
                    "unique key",
                    "check",
                    "expression",
                    "comment",
                    "policy name",
                    "privacy domain",
                ],
                table
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            s(c.name),
                            s(c.snowflake),
                            s("COLUMN"),
                            s(if c.nullable { "Y" } else { "N" }),
                            NULL,
                            s("N"),
                            s("N"),
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                        ]
                    })
                    .collect(),
            )
        }
        _ => return None,
    })
}

fn objects(keep: impl Fn(&TableSpec) -> bool) -> impl Iterator<Item = &'static TableSpec> {
    let mut all: Vec<&'static TableSpec> = TABLES.iter().filter(|t| keep(t)).collect();
    all.sort_by_key(|t| t.name);
    all.into_iter()
}

/// The table or view `SHOW COLUMNS … IN [TABLE|VIEW] name` names, if it names one (not `IN
/// SCHEMA`, `IN DATABASE` or `IN ACCOUNT`).
fn in_table(text: &str, words: &[&str]) -> Option<Result<&'static TableSpec, String>> {
    let at = words.iter().position(|w| *w == "IN")?;
    if words
        .get(at + 1)
        .is_some_and(|w| matches!(*w, "SCHEMA" | "DATABASE" | "ACCOUNT"))
    {
        return None;
    }
    // The same word count into the original text, whose quoted names keep their case.
    let mut rest = text;
    for _ in 0..=at {
        rest = leading_name(rest).1;
    }
    Some(named_table(rest))
}

/// The demo's table or view a statement names (`[TABLE|VIEW] name`), resolved as Snowflake
/// resolves names, with `DEMO.SALES` as home: `ORDERS`, `sales.orders`, `DEMO.SALES."ORDERS"`.
fn named_table(text: &str) -> Result<&'static TableSpec, String> {
    let (mut name, rest) = leading_name(text);
    if name.eq_ignore_ascii_case("TABLE") || name.eq_ignore_ascii_case("VIEW") {
        name = leading_name(rest).0;
    }
    let object = ObjectName::resolve(name, &super::catalog::home()).map_err(|e| e.message)?;
    (object.database.name() == DATABASE && object.schema.name() == SCHEMA)
        .then(|| super::catalog::table(object.name.name()))
        .flatten()
        .ok_or_else(|| {
            format!("SQL compilation error: Table '{object}' does not exist or not authorized.")
        })
}

/// `SHOW COLUMNS`' `data_type`: Snowflake's JSON description of the type.
fn type_json(snowflake: &str, nullable: bool) -> String {
    let (p, sc) = precision_scale(snowflake);
    let v = match (p, snowflake) {
        (Some(p), _) => {
            serde_json::json!({"type": "FIXED", "precision": p, "scale": sc.unwrap_or(0), "nullable": nullable})
        }
        (None, "DATE") => serde_json::json!({"type": "DATE", "nullable": nullable}),
        _ => {
            serde_json::json!({"type": "TEXT", "length": 16_777_216, "byteLength": 16_777_216, "nullable": nullable, "fixed": false})
        }
    };
    v.to_string()
}

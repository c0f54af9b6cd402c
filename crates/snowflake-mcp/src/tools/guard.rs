//! The read-only guard: which SQL text `run_query` lets through.
//!
//! Allowed is exactly one statement of these kinds: a query (SELECT, WITH, VALUES, set
//! operations), SHOW, DESCRIBE, or EXPLAIN [USING TEXT|JSON|TABULAR] of a query. Everything else
//! is refused, and so is text that does not parse — a guard that guesses is no guard. Refusals
//! are read by a model: each says what was refused and what to write instead.
//!
//! The text goes through three layers, each refusing on its own:
//!
//! 1. Tokens (`lexical`): what must never appear, wherever a parser would put it — Snowflake's
//!    `->>` flow operator (it chains statements; sqlparser reads `SHOW GRANTS ->> EXECUTE
//!    IMMEDIATE '...'` as one SHOW), stage references (`@stage`, `@~`, `@%t`) and file
//!    functions, sequence `NEXTVAL`, session variables and `IDENTIFIER(...)` (names that can't
//!    be checked), `SYSTEM$` functions other than a few read-only ones (many cancel queries,
//!    abort sessions or send mail), `TO_QUERY` (SQL as text), and functions that read other
//!    clients' statements or results. Also text where sqlparser and Snowflake could disagree on
//!    what is code: invisible and look-alike characters outside quotes, line breaks other than
//!    `\n` inside `--` comments, `#` comments, `$tag$` strings, `` `backtick` `` identifiers.
//! 2. Statement: the tokens must hold one statement. SHOW and DESCRIBE are read by a strict
//!    recognizer of their read-only grammar (`catalog`), because sqlparser parses many of their
//!    forms as a catch-all that drops what it doesn't understand. Everything else is parsed by
//!    sqlparser's Snowflake dialect and must be a query or an EXPLAIN of one.
//! 3. Query (`query`): inside an allowed query, what would change something despite the SELECT
//!    on top — a nested non-query statement (`WITH x AS (DELETE ...)`), `SELECT ... INTO`, row
//!    locks (`FOR UPDATE`), table functions other than the built-in ones (a stored procedure
//!    called as `SELECT * FROM TABLE(proc())` can write) — or cross between clients: every
//!    client's statements run as the same Snowflake user on shared sessions, so
//!    `SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY` and the other history views are refused like
//!    `RESULT_SCAN` and the `QUERY_HISTORY` table functions; `query_history` (the tool) shows a
//!    client its own statements.
//!
//! For clients limited to some databases, [`referenced_databases`] resolves every object a
//! statement reaches to its database, and fails closed on what it cannot resolve.
//!
//! What a parser can't see is left to Snowflake's access control: a view, UDF or external
//! function may do more than its name says.

mod catalog;
mod databases;
mod lexical;
mod lists;
mod memo;
mod query;
mod semantic;
mod write;

use std::sync::Arc;

use sqlparser::ast::Statement;
use sqlparser::dialect::SnowflakeDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

pub use databases::referenced_databases;
pub use semantic::referenced_semantic_views;
pub use write::Write;

use crate::config::WriteKind;

/// Why a statement is not allowed; the message is meant for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const ALLOWED: &str =
    "only one read-only statement (SELECT, WITH, SHOW, DESCRIBE or EXPLAIN) is allowed";

/// Allow `sql` only if it is a single read-only statement.
pub fn check_read_only(sql: &str) -> Result<(), Refusal> {
    analyze(sql, &[]).map(|_| ())
}

/// Allow `sql` if it is a single read-only statement, or a write of one of the kinds in
/// `writes` (see [`write`]); for a write, what it writes. Where it writes is the caller's to
/// check.
pub fn check(sql: &str, writes: &[WriteKind]) -> Result<Option<Write>, Refusal> {
    match analyze(sql, writes)? {
        Analyzed::Query { write, .. } => Ok(write),
        Analyzed::Catalog(_) => Ok(None),
    }
}

/// [`check`] for `client`: a text this thread checked moments ago for the same client with the
/// same `writes` gets the same answer without being parsed again ([`memo`]).
pub fn check_for(
    client: &Arc<str>,
    sql: &str,
    writes: &[WriteKind],
) -> Result<Option<Write>, Refusal> {
    memo::remembered(client, sql, writes, || check(sql, writes))
}

/// An allowed statement, as the database check needs it.
enum Analyzed {
    /// A query (for EXPLAIN, the query explained), or an allowed write with its reads.
    Query {
        statement: Box<Statement>,
        lexed: lexical::Lexed,
        write: Option<Write>,
    },
    /// A SHOW or DESCRIBE.
    Catalog(catalog::Command),
}

/// Run every check on `sql`, allowing the write kinds in `writes` besides reads.
fn analyze(sql: &str, writes: &[WriteKind]) -> Result<Analyzed, Refusal> {
    let lexed = lexical::screen(sql)?;
    let significant = lexed.significant();
    let statement = single_statement(&significant)?;
    let first = match statement.first() {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    match first.as_str() {
        "SHOW" => return catalog::show(statement).map(Analyzed::Catalog),
        "DESC" | "DESCRIBE" => return catalog::describe(statement).map(Analyzed::Catalog),
        _ => {}
    }
    let (statement, explained) = parse_statement(&lexed)?;
    let write = match &statement {
        Statement::Query(_) => None,
        other if explained => {
            return Err(refused(&format!(
                "EXPLAIN {} (only queries can be explained here); write EXPLAIN <query>",
                kind(other)
            )))
        }
        other if writes.is_empty() => {
            return Err(refused(&format!(
                "{}; run_query only reads: write a SELECT, SHOW, DESCRIBE or EXPLAIN",
                kind(other)
            )))
        }
        other => match write::classify(other)? {
            Some(write) if write.needs().all(|k| writes.contains(&k)) => Some(write),
            found => {
                let what = match &found {
                    Some(w) => w
                        .needs()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    None => kind(other),
                };
                let may: Vec<&str> = writes.iter().map(|k| k.name()).collect();
                return Err(Refusal(format!(
                    "{what} is not allowed for this client; it may run one read-only statement (SELECT, WITH, SHOW, DESCRIBE or EXPLAIN) or one {}",
                    may.join(", ")
                )));
            }
        },
    };
    query::inspect(&statement)?;
    Ok(Analyzed::Query {
        statement: Box::new(statement),
        lexed,
        write,
    })
}

/// The significant tokens of the one statement in the text; semicolons at the end are fine.
fn single_statement<'a>(significant: &'a [&'a Token]) -> Result<&'a [&'a Token], Refusal> {
    let statements: Vec<&[&Token]> = significant
        .split(|t| **t == Token::SemiColon)
        .filter(|s| !s.is_empty())
        .collect();
    match statements.as_slice() {
        [] => Err(Refusal(format!("no statement was given; {ALLOWED}"))),
        [one] => Ok(one),
        many => Err(Refusal(format!(
            "{} statements were given; {ALLOWED}. Send them one at a time",
            many.len()
        ))),
    }
}

/// Parse the one statement; for `EXPLAIN [USING TEXT|JSON|TABULAR]`, the statement explained,
/// and `true`.
fn parse_statement(lexed: &lexical::Lexed) -> Result<(Statement, bool), Refusal> {
    // sqlparser does not know `EXPLAIN USING <format>`: parse what follows the format.
    let (tokens, explain_using) = match explain_using_end(&lexed.tokens) {
        Some(end) => (lexed.tokens[end..].to_vec(), true),
        None => (lexed.tokens.clone(), false),
    };
    let statements = Parser::new(&SnowflakeDialect {})
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| unparsable(&e.to_string()))?;
    let [statement] = <[Statement; 1]>::try_from(statements).map_err(|s| {
        Refusal(format!(
            "{} statements were given; {ALLOWED}. Send them one at a time",
            s.len()
        ))
    })?;
    Ok(match statement {
        Statement::Explain {
            statement,
            analyze,
            verbose,
            query_plan,
            estimate,
            format,
            options,
            ..
        } if !explain_using => {
            if analyze {
                return Err(refused(
                    "EXPLAIN ANALYZE (it runs the statement); write EXPLAIN <query>",
                ));
            }
            if verbose || query_plan || estimate || format.is_some() || options.is_some() {
                return Err(refused(
                    "this EXPLAIN form; write EXPLAIN [USING TEXT|JSON|TABULAR] <query>",
                ));
            }
            (*statement, true)
        }
        other => (other, explain_using),
    })
}

/// For `EXPLAIN USING TEXT|JSON|TABULAR <query>`, the index of the first token after the format.
fn explain_using_end(tokens: &[sqlparser::tokenizer::TokenWithSpan]) -> Option<usize> {
    let expected = ["EXPLAIN", "USING", "TEXT|JSON|TABULAR"];
    let mut matched = 0;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w)
                if w.quote_style.is_none()
                    && expected[matched]
                        .split('|')
                        .any(|e| w.value.eq_ignore_ascii_case(e)) =>
            {
                matched += 1;
                if matched == expected.len() {
                    return Some(i + 1);
                }
            }
            _ => return None,
        }
    }
    None
}

fn refused(what: &str) -> Refusal {
    Refusal(format!("{ALLOWED}; refused: {what}"))
}

fn unparsable(error: &str) -> Refusal {
    Refusal(format!(
        "the statement could not be parsed, so it was refused ({error}); {ALLOWED}"
    ))
}

/// A name as Snowflake resolves it: unquoted names are upper-cased.
fn normalized(value: &str, quoted: bool) -> String {
    if quoted {
        value.to_string()
    } else {
        value.to_ascii_uppercase()
    }
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

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod restricted_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;

//! Checks on the token stream, before any parsing: what must never appear, wherever the parser
//! would place it — the `->>` flow operator, stage references, sequence `NEXTVAL`, session
//! variables, `IDENTIFIER(...)`, refused functions — and text where sqlparser and Snowflake
//! could disagree about what is code (invisible or look-alike characters, odd line breaks in
//! comments, `#` comments, `$tag$` strings).

use sqlparser::dialect::SnowflakeDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace, Word};

use super::lists::{
    allows, names, ACTING_FUNCTIONS, CROSS_CLIENT_FUNCTIONS, READ_ONLY_SYSTEM_FUNCTIONS,
    STAGE_FUNCTIONS,
};
use super::{normalized, refused, unparsable, Refusal};

/// The tokens of a statement that passed the lexical checks.
pub(super) struct Lexed {
    pub tokens: Vec<TokenWithSpan>,
}

impl Lexed {
    /// The tokens without whitespace and comments.
    pub fn significant(&self) -> Vec<&Token> {
        self.tokens
            .iter()
            .map(|t| &t.token)
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect()
    }
}

/// One part of a dotted name, as written.
#[derive(Clone, Debug)]
pub(super) struct Part {
    pub value: String,
    pub quoted: bool,
}

impl Part {
    fn of(word: &Word) -> Part {
        Part {
            value: word.value.clone(),
            quoted: word.quote_style.is_some(),
        }
    }

    /// The name Snowflake resolves: unquoted names are upper-cased.
    pub fn normalized(&self) -> String {
        normalized(&self.value, self.quoted)
    }

    /// The name upper-cased whatever its quoting, for lists that refuse.
    pub fn upper(&self) -> String {
        self.value.to_ascii_uppercase()
    }
}

/// Tokenize `sql` and refuse what must never appear in it.
pub(super) fn screen(sql: &str) -> Result<Lexed, Refusal> {
    let tokens = Tokenizer::new(&SnowflakeDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| unparsable(&e.to_string()))?;
    check_characters(sql, &tokens)?;
    let lexed = Lexed { tokens };
    let significant = lexed.significant();
    check_operators(&significant)?;
    check_words(&significant)?;
    for call in calls(&significant) {
        check_call(&call)?;
    }
    Ok(lexed)
}

/// Characters outside quotes must be plain: no invisible or look-alike characters, no
/// whitespace other than space, tab and line breaks, no `#` comments, no line comment that
/// another reader could end early; and only the quotes Snowflake knows (no `$tag$` strings, no
/// `` `identifiers` ``).
fn check_characters(sql: &str, tokens: &[TokenWithSpan]) -> Result<(), Refusal> {
    let lines: Vec<Vec<char>> = sql.split('\n').map(|l| l.chars().collect()).collect();
    for t in tokens {
        match &t.token {
            Token::Char(c) if !c.is_ascii() => return Err(odd_character(*c)),
            Token::Whitespace(Whitespace::Space) => {
                // sqlparser reads any Unicode whitespace as a space: look at the character.
                let (line, column) = (t.span.start.line as usize, t.span.start.column as usize);
                let c = lines
                    .get(line.wrapping_sub(1))
                    .and_then(|l| l.get(column.wrapping_sub(1)))
                    .copied()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                if c != ' ' {
                    return Err(odd_character(c));
                }
            }
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) => {
                check_line_comment(comment, prefix)?;
            }
            Token::Whitespace(Whitespace::MultiLineComment(comment)) if comment.contains("->>") => {
                return Err(flow_operator());
            }
            Token::Word(w) if w.quote_style.is_some_and(|q| q != '"') => {
                return Err(refused(&format!(
                    "the identifier {w} (Snowflake quotes identifiers only with \"...\", so it would read the text as SQL); write \"{}\"",
                    w.value
                )));
            }
            Token::DollarQuotedString(s) if s.tag.is_some() => {
                return Err(refused(
                    "a $tag$ string (Snowflake only knows $$...$$, so it would read the text as SQL); write '...' or $$...$$",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A line comment must be one Snowflake reads to the same end: `--` or `//`, with no other
/// line break than the final newline; and no `->>` in it.
fn check_line_comment(comment: &str, prefix: &str) -> Result<(), Refusal> {
    if prefix == "#" {
        return Err(refused(
            "a # comment (Snowflake has none, so it would read the rest of the line as SQL); write -- or /* */ comments",
        ));
    }
    let body = comment.strip_suffix('\r').unwrap_or(comment);
    if let Some(c) = body.chars().find(|c| breaks_line(*c)) {
        return Err(refused(&format!(
            "a -- comment containing the line break U+{:04X} (Snowflake may end the comment there and run the rest); end comments with a plain newline or use /* */",
            c as u32
        )));
    }
    if comment.contains("->>") {
        return Err(flow_operator());
    }
    Ok(())
}

/// A character that some reader could take for the end of a line comment.
fn breaks_line(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn odd_character(c: char) -> Refusal {
    refused(&format!(
        "the character U+{:04X} outside quotes (invisible, look-alike and unusual whitespace characters are refused); retype the statement in plain ASCII, keeping other characters inside '...' strings or \"...\" identifiers",
        c as u32
    ))
}

fn flow_operator() -> Refusal {
    refused("the ->> flow operator (it chains another statement onto this one); send a single statement without ->>")
}

/// Operators, with whitespace and comments between tokens ignored: `->>` in any spelling, and
/// `@` (stage references such as `@stage`, `@~`, `@%table`).
fn check_operators(significant: &[&Token]) -> Result<(), Refusal> {
    let shape: String = significant
        .iter()
        .map(|t| match t {
            Token::Word(_) => " w ".to_string(),
            Token::Number(..) => " 0 ".to_string(),
            t if is_literal(t) => " 's' ".to_string(),
            t => t.to_string(),
        })
        .collect::<String>()
        .split_whitespace()
        .collect();
    if shape.contains("->>") {
        return Err(flow_operator());
    }
    if shape.contains('@') {
        return Err(refused(
            "a stage reference (@stage, @~ or @%table: staged files are not tables, and may hold other clients' files); query tables and views instead",
        ));
    }
    Ok(())
}

/// True for string literals of any quoting.
fn is_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

/// Words: sequence `NEXTVAL`, `SYSTEM$` functions other than the read-only ones, and session
/// variables (`$name`; `$1` column positions are fine).
fn check_words(significant: &[&Token]) -> Result<(), Refusal> {
    for (i, token) in significant.iter().enumerate() {
        match token {
            Token::Word(w) => {
                let upper = w.value.to_ascii_uppercase();
                if (upper == "NEXTVAL" || upper == "GETNEXTVAL")
                    && !column_named_like(significant, i)
                {
                    return Err(refused(&format!(
                        "{upper} (it advances a sequence, which changes state); read tables and views instead"
                    )));
                }
                if upper.starts_with("SYSTEM$")
                    && !allows(
                        READ_ONLY_SYSTEM_FUNCTIONS,
                        &normalized(&w.value, w.quote_style.is_some()),
                    )
                {
                    return Err(refused(&format!(
                        "{upper} (SYSTEM$ functions may change state; the read-only ones allowed are {})",
                        READ_ONLY_SYSTEM_FUNCTIONS.join(", ")
                    )));
                }
            }
            Token::Placeholder(p)
                if p.starts_with('$') && !p[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                return Err(refused(&format!(
                    "the session variable {p} (variables can't be set here, and a name held in one can't be checked); write the value or the name itself"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when the word at `i` is a quoted name standing alone — `"NEXTVAL"`, neither a part of a
/// dotted name (`seq."NEXTVAL"` may advance a sequence) nor called (`"GETNEXTVAL"(seq)`): a
/// column or alias that only shares a function's name.
fn column_named_like(significant: &[&Token], i: usize) -> bool {
    let quoted = matches!(significant[i], Token::Word(w) if w.quote_style == Some('"'));
    let before = i.checked_sub(1).and_then(|j| significant.get(j));
    let after = significant.get(i + 1);
    quoted
        && !matches!(before, Some(Token::Period))
        && !matches!(after, Some(Token::Period | Token::LParen))
}

/// The dotted names written right before `(`: function calls, and a few keywords (`IN (`,
/// `OVER (`) that no list names.
pub(super) fn calls(significant: &[&Token]) -> Vec<Vec<Part>> {
    let mut calls = Vec::new();
    for (i, token) in significant.iter().enumerate() {
        if **token != Token::LParen || i == 0 {
            continue;
        }
        let Token::Word(last) = significant[i - 1] else {
            continue;
        };
        let mut parts = vec![Part::of(last)];
        // Walk back over `a.` and `a..` (the PUBLIC schema); `j` is the name's first word.
        let mut j = i - 1;
        while j >= 2 && *significant[j - 1] == Token::Period {
            match significant[j - 2] {
                Token::Word(w) => {
                    parts.push(Part::of(w));
                    j -= 2;
                }
                Token::Period if j >= 3 => {
                    let Token::Word(w) = significant[j - 3] else {
                        break;
                    };
                    parts.push(Part {
                        value: String::new(),
                        quoted: false,
                    });
                    parts.push(Part::of(w));
                    j -= 3;
                }
                _ => break,
            }
        }
        parts.reverse();
        calls.push(parts);
    }
    calls
}

/// A call refused for everyone: dynamic names, other clients' results, staged files, SQL in text.
fn check_call(call: &[Part]) -> Result<(), Refusal> {
    let Some(last) = call.last() else {
        return Ok(());
    };
    let name = last.upper();
    if name == "IDENTIFIER" {
        return Err(refused(
            "IDENTIFIER(...) (a name given as text or in a variable can't be checked); write the name itself, e.g. DB.SCHEMA.TABLE",
        ));
    }
    if names(CROSS_CLIENT_FUNCTIONS, &name) {
        return Err(refused(&format!(
            "{name} (every client shares this Snowflake user, so it could read other clients' statements or results); the query_history tool shows your own"
        )));
    }
    if names(STAGE_FUNCTIONS, &name) || name.starts_with("FL_") {
        return Err(refused(&format!(
            "{name} (it reads staged files or hands out links to them); query tables and views instead"
        )));
    }
    if names(ACTING_FUNCTIONS, &name) {
        return Err(refused(&format!(
            "{name} (it runs SQL given as text, which can't be checked, or starts a job); write the query itself"
        )));
    }
    Ok(())
}

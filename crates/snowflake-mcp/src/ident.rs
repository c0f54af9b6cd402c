//! Identifiers that arrive as tool arguments, validated and quoted — never pasted raw into SQL.
//!
//! Snowflake's rule: an unquoted identifier (`sales`, `My_Table$1`) is case-insensitive and
//! stored upper-case; a double-quoted one (`"My Table"`) keeps its case and may hold any
//! character. We accept both forms from the model, resolve them the way Snowflake would, and
//! always emit the quoted form (`"SALES"`, `"My Table"`), doubling embedded quotes.
//! Dotted names (`db.schema.table`) are split on dots outside quotes.

use std::fmt;

use crate::error::ToolError;

/// Longest identifier Snowflake allows.
const MAX_LEN: usize = 255;

/// One resolved identifier (its exact stored name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Parse one identifier part, quoted or not.
    pub fn parse(text: &str, what: &str) -> Result<Ident, ToolError> {
        let parts = split_parts(text, what)?;
        match parts.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(ToolError::invalid(format!(
                "{what} must be a single name, not '{text}'"
            ))),
        }
    }

    /// An identifier already in its stored form (e.g. reported by Snowflake).
    pub fn exact(name: impl Into<String>) -> Ident {
        Ident(name.into())
    }

    /// The stored name, e.g. `SALES`.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The SQL form, always quoted: `"SALES"`, `"my ""odd"" name"`.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dotted name `text` starts with, up to the first whitespace outside quotes (a quoted part
/// such as `"Sales Data"` may hold spaces), and the rest of the text.
pub fn leading_name(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c.is_whitespace() && !quoted {
            return (&text[..i], &text[i..]);
        }
    }
    (text, "")
}

/// Split `a.b."c.d"` into resolved parts.
pub fn split_parts(text: &str, what: &str) -> Result<Vec<Ident>, ToolError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ToolError::invalid(format!("{what} is empty")));
    }
    if text.len() > 3 * (MAX_LEN + 3) {
        return Err(ToolError::invalid(format!("{what} is too long")));
    }
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let part = if chars.peek() == Some(&'"') {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => {
                        return Err(ToolError::invalid(format!(
                            "{what} '{text}' has an unclosed quote"
                        )))
                    }
                }
            }
            name
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                chars.next();
                name.push(c);
            }
            let valid_start = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !valid_start
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            {
                return Err(ToolError::invalid(format!(
                    "{what} '{text}' is not a valid identifier: use letters, digits, _ and $, or double quotes for other names"
                )));
            }
            name.to_ascii_uppercase()
        };
        if part.is_empty() || part.len() > MAX_LEN {
            return Err(ToolError::invalid(format!(
                "{what} '{text}' has an empty or over-long part"
            )));
        }
        parts.push(Ident(part));
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => {
                return Err(ToolError::invalid(format!(
                    "{what} '{text}' has text after a quoted name"
                )))
            }
        }
    }
    Ok(parts)
}

/// Quote a string literal for SQL: `'it''s'`.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_names_resolve_upper_case_and_quoted_keep_case() {
        assert_eq!(Ident::parse("sales", "database").unwrap().name(), "SALES");
        assert_eq!(
            Ident::parse("My_Tab$1", "t").unwrap().quoted(),
            "\"MY_TAB$1\""
        );
        assert_eq!(
            Ident::parse("\"My \"\"odd\"\" db\"", "d").unwrap().name(),
            "My \"odd\" db"
        );
        assert_eq!(
            Ident::parse("\"My \"\"odd\"\" db\"", "d").unwrap().quoted(),
            "\"My \"\"odd\"\" db\""
        );
    }

    #[test]
    fn a_leading_name_keeps_the_spaces_inside_its_quotes() {
        assert_eq!(
            leading_name(r#" "Sales Data"."Q1 Summary" TYPE = COLUMNS"#),
            (r#""Sales Data"."Q1 Summary""#, " TYPE = COLUMNS")
        );
        assert_eq!(leading_name("orders"), ("orders", ""));
        assert_eq!(leading_name("db.s.t\n"), ("db.s.t", "\n"));
        assert_eq!(leading_name("a\tb"), ("a", "\tb"));
        assert_eq!(leading_name(r#""a b" c"#), (r#""a b""#, " c"));
    }

    #[test]
    fn dotted_names_split_outside_quotes() {
        let parts = split_parts("db.\"a.b\".t", "name").unwrap();
        let names: Vec<&str> = parts.iter().map(Ident::name).collect();
        assert_eq!(names, ["DB", "a.b", "T"]);
    }

    #[test]
    fn injection_attempts_are_refused() {
        for bad in [
            "x; DROP TABLE t",
            "x\" ; DROP",
            "1abc",
            "a b",
            "",
            "a..b",
            "\"unclosed",
            "\"a\"b",
            "t--",
        ] {
            assert!(split_parts(bad, "name").is_err(), "{bad:?} was accepted");
        }
        assert_eq!(string_literal("it's"), "'it''s'");
        assert_eq!(string_literal("a\\'"), "'a\\\\'''");
    }
}

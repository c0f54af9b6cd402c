//! A strict recognizer for the read-only SHOW and DESCRIBE forms, on tokens.
//!
//! sqlparser parses only some of Snowflake's SHOW and DESCRIBE forms, and parses the others as
//! a catch-all `SHOW <words>` that silently drops what it doesn't understand (`SHOW GRANTS ->>
//! EXECUTE IMMEDIATE '...'` came out as one harmless SHOW). So these two commands are read here
//! from the tokens, by their exact grammar — keywords, names, `LIKE '...'`, `IN <scope>`,
//! `STARTS WITH '...'`, `LIMIT n [FROM '...']`, `TYPE = COLUMNS` — and anything unexpected is
//! refused. The caller has already split off a single statement and run the lexical checks.

use sqlparser::tokenizer::Token;

use super::{normalized, refused, Refusal};

/// Where a SHOW or DESCRIBE looks, for clients limited to some databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// Account-level objects (`SHOW WAREHOUSES`, `DESCRIBE USER u`) or `IN ACCOUNT`.
    Account,
    /// No `IN` clause: the current database, or the whole account when there is none.
    Unscoped,
    /// `IN DATABASE [db]`, `DESCRIBE DATABASE db`; `None` is the current database.
    Database(Option<String>),
    /// `IN SCHEMA [db.]s`, `DESCRIBE SCHEMA [db.]s`; `None` is the current schema.
    Schema(Option<Vec<String>>),
    /// A table, view or other object in a schema: `[[db.]s.]name`.
    Object(Vec<String>),
    /// `IN <name>` without a kind: a database, a schema or a table, by how Snowflake reads it.
    Bare(Vec<String>),
}

/// A recognized SHOW or DESCRIBE.
#[derive(Clone, Debug)]
pub(super) struct Command {
    /// Its leading words, e.g. `SHOW TABLES`, for messages.
    pub what: String,
    pub scope: Scope,
}

/// How a kind of object is named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Naming {
    Database,
    Schema,
    /// In a schema: up to three parts.
    Contained,
    /// A function or procedure: a contained name and its argument types.
    Routine,
    /// An account-level object.
    Account,
}

/// Object kinds after DESCRIBE and SHOW GRANTS ON, longest first where one starts another.
const OBJECT_KINDS: &[(&str, Naming)] = &[
    ("MATERIALIZED VIEW", Naming::Contained),
    ("SEMANTIC VIEW", Naming::Contained),
    ("EXTERNAL TABLE", Naming::Contained),
    ("DYNAMIC TABLE", Naming::Contained),
    ("EVENT TABLE", Naming::Contained),
    ("HYBRID TABLE", Naming::Contained),
    ("ICEBERG TABLE", Naming::Contained),
    ("FILE FORMAT", Naming::Contained),
    ("MASKING POLICY", Naming::Contained),
    ("ROW ACCESS POLICY", Naming::Contained),
    ("CORTEX SEARCH SERVICE", Naming::Contained),
    ("EXTERNAL FUNCTION", Naming::Routine),
    ("DATABASE ROLE", Naming::Account),
    ("NETWORK POLICY", Naming::Account),
    ("COMPUTE POOL", Naming::Account),
    ("TABLE", Naming::Contained),
    ("VIEW", Naming::Contained),
    ("SEQUENCE", Naming::Contained),
    ("STAGE", Naming::Contained),
    ("PIPE", Naming::Contained),
    ("STREAM", Naming::Contained),
    ("TASK", Naming::Contained),
    ("ALERT", Naming::Contained),
    ("TAG", Naming::Contained),
    ("NOTEBOOK", Naming::Contained),
    ("STREAMLIT", Naming::Contained),
    ("MODEL", Naming::Contained),
    ("FUNCTION", Naming::Routine),
    ("PROCEDURE", Naming::Routine),
    ("SCHEMA", Naming::Schema),
    ("DATABASE", Naming::Database),
    ("WAREHOUSE", Naming::Account),
    ("USER", Naming::Account),
    ("ROLE", Naming::Account),
    ("INTEGRATION", Naming::Account),
    ("SHARE", Naming::Account),
    ("APPLICATION", Naming::Account),
];

/// What SHOW lists: objects inside databases (scoped with `IN`), longest first.
const SHOW_CONTAINED: &[&str] = &[
    "EXTERNAL TABLES",
    "DYNAMIC TABLES",
    "EVENT TABLES",
    "HYBRID TABLES",
    "ICEBERG TABLES",
    "MATERIALIZED VIEWS",
    "SEMANTIC VIEWS",
    "USER FUNCTIONS",
    "EXTERNAL FUNCTIONS",
    "USER PROCEDURES",
    "FILE FORMATS",
    "MASKING POLICIES",
    "ROW ACCESS POLICIES",
    "CORTEX SEARCH SERVICES",
    "DATABASE ROLES",
    "PRIMARY KEYS",
    "UNIQUE KEYS",
    "IMPORTED KEYS",
    "EXPORTED KEYS",
    "TABLES",
    "VIEWS",
    "OBJECTS",
    "COLUMNS",
    "SCHEMAS",
    "FUNCTIONS",
    "PROCEDURES",
    "SEQUENCES",
    "STAGES",
    "PIPES",
    "STREAMS",
    "TASKS",
    "ALERTS",
    "TAGS",
    "NOTEBOOKS",
    "STREAMLITS",
    "MODELS",
];

/// What SHOW lists: account-level objects (no `IN`).
const SHOW_ACCOUNT: &[&str] = &[
    "NETWORK POLICIES",
    "RESOURCE MONITORS",
    "REPLICATION DATABASES",
    "REPLICATION GROUPS",
    "FAILOVER GROUPS",
    "COMPUTE POOLS",
    "APPLICATION PACKAGES",
    "DATABASES",
    "WAREHOUSES",
    "ROLES",
    "USERS",
    "SHARES",
    "INTEGRATIONS",
    "REGIONS",
    "APPLICATIONS",
    "CONNECTIONS",
];

/// Words that end an optional name (`IN DATABASE LIMIT 5`).
const CLAUSE_WORDS: &[&str] = &["LIKE", "IN", "STARTS", "LIMIT", "FROM", "TYPE"];

const SHOW_FORMS: &str = "the accepted forms are SHOW [TERSE] <objects> [HISTORY] [LIKE '<pattern>'] [IN ACCOUNT | DATABASE [<db>] | SCHEMA [<db>.<schema>] | TABLE <name> | VIEW <name> | <name>] [STARTS WITH '<prefix>'] [LIMIT <n> [FROM '<name>']], SHOW [FUTURE] GRANTS [ON <kind> <name> | TO|OF <grantee kind> <name> | IN SCHEMA|DATABASE <name>] and SHOW PARAMETERS [LIKE '<pattern>'] [IN <kind> [<name>]]";

const DESCRIBE_FORMS: &str = "the accepted forms are DESCRIBE <kind> <name> (e.g. DESCRIBE TABLE db.schema.t [TYPE = COLUMNS|STAGE], DESCRIBE FUNCTION db.schema.f(NUMBER, VARCHAR)) and DESCRIBE <table>";

/// A cursor over a statement's significant tokens.
struct Cursor<'a> {
    tokens: &'a [&'a Token],
    at: usize,
    forms: &'static str,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.at).copied()
    }

    /// The next token is the unquoted keyword `kw`.
    fn at_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    /// Consume the keyword `kw` if it is next.
    fn keyword(&mut self, kw: &str) -> bool {
        let found = self.at_keyword(kw);
        self.at += usize::from(found);
        found
    }

    /// Consume the space-separated keywords `phrase` if they are all next.
    fn phrase(&mut self, phrase: &str) -> bool {
        let start = self.at;
        if phrase.split(' ').all(|kw| self.keyword(kw)) {
            true
        } else {
            self.at = start;
            false
        }
    }

    /// Consume the first of `phrases` that is next.
    fn one_of<T: Copy>(&mut self, phrases: &[(&'static str, T)]) -> Option<(&'static str, T)> {
        phrases.iter().copied().find(|(p, _)| self.phrase(p))
    }

    fn unexpected(&self) -> Refusal {
        let found = match self.peek() {
            Some(t) => format!("unexpected `{t}`"),
            None => "it ends too early".to_string(),
        };
        refused(&format!(
            "this SHOW/DESCRIBE form ({found}); {}",
            self.forms
        ))
    }

    fn expect(&mut self, kw: &str) -> Result<(), Refusal> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn string(&mut self) -> Result<(), Refusal> {
        match self.peek() {
            Some(Token::SingleQuotedString(_)) => {
                self.at += 1;
                Ok(())
            }
            _ => Err(self.unexpected()),
        }
    }

    fn number(&mut self) -> Result<(), Refusal> {
        match self.peek() {
            Some(Token::Number(..)) => {
                self.at += 1;
                Ok(())
            }
            _ => Err(self.unexpected()),
        }
    }

    fn end(&self) -> Result<(), Refusal> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected()),
        }
    }

    /// A dotted name of at most `max` parts, each normalized as Snowflake resolves it.
    fn name(&mut self, max: usize) -> Result<Vec<String>, Refusal> {
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Word(w)) => {
                    parts.push(normalized(&w.value, w.quote_style.is_some()));
                    self.at += 1;
                }
                _ => return Err(self.unexpected()),
            }
            if parts.len() == max || self.peek() != Some(&Token::Period) {
                return Ok(parts);
            }
            self.at += 1;
        }
    }

    /// A name, unless the next token is the end or a clause keyword.
    fn optional_name(&mut self, max: usize) -> Result<Option<Vec<String>>, Refusal> {
        if self.peek().is_none() || CLAUSE_WORDS.iter().any(|kw| self.at_keyword(kw)) {
            Ok(None)
        } else {
            self.name(max).map(Some)
        }
    }

    /// A function's argument types: `(NUMBER, VARCHAR(10), DOUBLE PRECISION)`.
    fn signature(&mut self) -> Result<(), Refusal> {
        if self.peek() != Some(&Token::LParen) {
            return Err(self.unexpected());
        }
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(Token::LParen) if depth < 2 => depth += 1,
                Some(Token::RParen) => depth -= 1,
                Some(Token::Word(w)) if w.quote_style.is_none() => {}
                Some(Token::Number(..) | Token::Comma) => {}
                _ => return Err(self.unexpected()),
            }
            self.at += 1;
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// The name of an object of the given kind, as a scope.
    fn object(&mut self, naming: Naming) -> Result<Scope, Refusal> {
        Ok(match naming {
            Naming::Database => Scope::Database(Some(self.name(1)?.remove(0))),
            Naming::Schema => Scope::Schema(Some(self.name(2)?)),
            Naming::Contained => Scope::Object(self.name(3)?),
            Naming::Routine => {
                let name = self.name(3)?;
                self.signature()?;
                Scope::Object(name)
            }
            Naming::Account => {
                self.name(3)?;
                Scope::Account
            }
        })
    }
}

/// Recognize `SHOW ...`; `tokens` are the statement's significant tokens, starting with SHOW.
pub(super) fn show(tokens: &[&Token]) -> Result<Command, Refusal> {
    let mut c = Cursor {
        tokens,
        at: 0,
        forms: SHOW_FORMS,
    };
    c.expect("SHOW")?;
    c.keyword("TERSE");
    let (kind, scope) = if c.phrase("FUTURE GRANTS") {
        ("FUTURE GRANTS", future_grants(&mut c)?)
    } else if c.keyword("GRANTS") {
        ("GRANTS", grants(&mut c)?)
    } else if c.keyword("PARAMETERS") {
        ("PARAMETERS", parameters(&mut c)?)
    } else if let Some(kind) = SHOW_ACCOUNT.iter().find(|k| c.phrase(k)) {
        c.keyword("HISTORY");
        if c.keyword("LIKE") {
            c.string()?;
        }
        starts_with_and_limit(&mut c)?;
        (*kind, Scope::Account)
    } else if let Some(kind) = SHOW_CONTAINED.iter().find(|k| c.phrase(k)) {
        (*kind, contained(&mut c)?)
    } else {
        return Err(c.unexpected());
    };
    c.end()?;
    Ok(Command {
        what: format!("SHOW {kind}"),
        scope,
    })
}

/// After `SHOW <objects>`: `[HISTORY] [LIKE '...'] [IN ...] [STARTS WITH '...'] [LIMIT n [FROM '...']]`.
fn contained(c: &mut Cursor) -> Result<Scope, Refusal> {
    c.keyword("HISTORY");
    if c.keyword("LIKE") {
        c.string()?;
    }
    let scope = if c.keyword("IN") {
        in_scope(c)?
    } else {
        Scope::Unscoped
    };
    starts_with_and_limit(c)?;
    Ok(scope)
}

/// `[STARTS WITH '...'] [LIMIT n [FROM '...']]`, which ends most SHOW forms (`SHOW DATABASES
/// STARTS WITH 'X' LIMIT 10` as much as `SHOW TABLES`).
fn starts_with_and_limit(c: &mut Cursor) -> Result<(), Refusal> {
    if c.phrase("STARTS WITH") {
        c.string()?;
    }
    if c.keyword("LIMIT") {
        c.number()?;
        if c.keyword("FROM") {
            c.string()?;
        }
    }
    Ok(())
}

/// `IN ACCOUNT | DATABASE [db] | SCHEMA [db.s] | TABLE t | VIEW v | <name>`, after `IN`.
fn in_scope(c: &mut Cursor) -> Result<Scope, Refusal> {
    if c.keyword("ACCOUNT") {
        Ok(Scope::Account)
    } else if c.keyword("DATABASE") {
        Ok(Scope::Database(
            c.optional_name(1)?.map(|mut n| n.remove(0)),
        ))
    } else if c.keyword("SCHEMA") {
        Ok(Scope::Schema(c.optional_name(2)?))
    } else if c.keyword("TABLE") || c.keyword("VIEW") {
        Ok(Scope::Object(c.name(3)?))
    } else {
        Ok(Scope::Bare(c.name(3)?))
    }
}

/// After `SHOW GRANTS`: `ON ACCOUNT`, `ON <kind> <name>`, `TO|OF <grantee kind> <name>`, or
/// nothing (the current user's grants).
fn grants(c: &mut Cursor) -> Result<Scope, Refusal> {
    if c.keyword("ON") {
        if c.keyword("ACCOUNT") {
            return Ok(Scope::Account);
        }
        let (_, naming) = c.one_of(OBJECT_KINDS).ok_or_else(|| c.unexpected())?;
        return c.object(naming);
    }
    if c.keyword("TO") || c.keyword("OF") {
        grantee(c)?;
        return Ok(Scope::Account);
    }
    Ok(Scope::Unscoped)
}

/// `ROLE r`, `USER u`, `SHARE s`, `DATABASE ROLE db.r`, `APPLICATION [ROLE] a`.
fn grantee(c: &mut Cursor) -> Result<(), Refusal> {
    let kinds = [
        ("DATABASE ROLE", ()),
        ("APPLICATION ROLE", ()),
        ("APPLICATION", ()),
        ("ROLE", ()),
        ("USER", ()),
        ("SHARE", ()),
    ];
    c.one_of(&kinds).ok_or_else(|| c.unexpected())?;
    c.name(2).map(|_| ())
}

/// After `SHOW FUTURE GRANTS`: `IN SCHEMA s`, `IN DATABASE d`, `TO ROLE r`.
fn future_grants(c: &mut Cursor) -> Result<Scope, Refusal> {
    if c.keyword("IN") {
        if c.keyword("DATABASE") {
            return Ok(Scope::Database(Some(c.name(1)?.remove(0))));
        }
        c.expect("SCHEMA")?;
        return Ok(Scope::Schema(Some(c.name(2)?)));
    }
    c.expect("TO")?;
    grantee(c)?;
    Ok(Scope::Account)
}

/// After `SHOW PARAMETERS`: `[LIKE '...'] [IN|FOR SESSION | ACCOUNT | <kind> [<name>]]`.
fn parameters(c: &mut Cursor) -> Result<Scope, Refusal> {
    if c.keyword("LIKE") {
        c.string()?;
    }
    if !(c.keyword("IN") || c.keyword("FOR")) {
        return Ok(Scope::Unscoped);
    }
    if c.keyword("SESSION") || c.keyword("ACCOUNT") {
        return Ok(Scope::Account);
    }
    if c.keyword("USER") || c.keyword("WAREHOUSE") {
        c.optional_name(1)?;
        return Ok(Scope::Account);
    }
    if c.keyword("DATABASE") {
        return Ok(Scope::Database(
            c.optional_name(1)?.map(|mut n| n.remove(0)),
        ));
    }
    if c.keyword("SCHEMA") {
        return Ok(Scope::Schema(c.optional_name(2)?));
    }
    if c.keyword("TABLE") || c.keyword("TASK") {
        return Ok(Scope::Object(c.name(3)?));
    }
    Err(c.unexpected())
}

/// Recognize `DESC[RIBE] ...`; `tokens` start with DESC or DESCRIBE.
pub(super) fn describe(tokens: &[&Token]) -> Result<Command, Refusal> {
    let mut c = Cursor {
        tokens,
        at: 0,
        forms: DESCRIBE_FORMS,
    };
    if !(c.keyword("DESCRIBE") || c.keyword("DESC")) {
        return Err(c.unexpected());
    }
    if c.keyword("RESULT") {
        return Err(refused(
            "DESCRIBE RESULT (every client shares this Snowflake user, so it could describe other clients' results); run the query itself",
        ));
    }
    let (kind, naming) = c
        .one_of(OBJECT_KINDS)
        .unwrap_or(("TABLE", Naming::Contained));
    let scope = c.object(naming)?;
    if naming == Naming::Contained && c.keyword("TYPE") {
        if c.peek() != Some(&Token::Eq) {
            return Err(c.unexpected());
        }
        c.at += 1;
        if !(c.keyword("COLUMNS") || c.keyword("STAGE")) {
            return Err(c.unexpected());
        }
    }
    c.end()?;
    Ok(Command {
        what: format!("DESCRIBE {kind}"),
        scope,
    })
}

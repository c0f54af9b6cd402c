//! A deterministic property test: mutating a refused statement — comments between tokens, case
//! changes, extra whitespace, look-alike and invisible characters, quoted identifiers, trailing
//! semicolons and comments — never makes it allowed. Same for the restricted-client bypasses.

use sqlparser::dialect::SnowflakeDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::check_read_only;
use super::restricted_tests::{escapes_to_cur_only, BYPASSES};
use super::tests::corpus;

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A token's place in the text, and whether it is an unquoted word (and a keyword).
struct Span {
    start: usize,
    end: usize,
    word: Option<bool>,
}

/// The byte ranges of the tokens of `sql`, or `None` when it does not tokenize.
fn spans(sql: &str) -> Option<Vec<Span>> {
    let tokens = Tokenizer::new(&SnowflakeDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    // Byte offset of each (line, column), both 1-based, columns counted in characters.
    let mut line_starts = vec![0];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts
            .get(line as usize - 1)
            .copied()
            .unwrap_or(sql.len());
        sql[start..]
            .char_indices()
            .nth(column as usize - 1)
            .map_or(sql.len(), |(i, _)| start + i)
    };
    Some(
        tokens
            .iter()
            .map(|t| Span {
                start: offset(t.span.start.line, t.span.start.column),
                end: offset(t.span.end.line, t.span.end.column),
                word: match &t.token {
                    Token::Word(w) if w.quote_style.is_none() => {
                        Some(w.keyword != Keyword::NoKeyword)
                    }
                    _ => None,
                },
            })
            .collect(),
    )
}

const BETWEEN_TOKENS: &[&str] = &[
    " /* x */ ",
    " /**/ ",
    " -- c\n",
    "\n",
    "\t",
    "   ",
    "\r\n",
    " /* ; */ ",
    "\n\n\t ",
    " // c\n",
];
const INVISIBLE: &[char] = &[
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00A0}',
];
const TRAILING: &[&str] = &[
    ";",
    " ;",
    "; -- end",
    " -- end",
    " /* end */",
    ";;",
    "\n;\n",
    ";\n-- bye",
];
const LEADING: &[&str] = &["\n", "/* start */ ", "-- start\n", "  \t", "\r\n"];

/// A look-alike of an ASCII letter: its fullwidth form, or a Cyrillic twin.
fn look_alike(c: char, rng: &mut Rng) -> char {
    let cyrillic = match c {
        'a' => Some('\u{0430}'),
        'e' => Some('\u{0435}'),
        'o' => Some('\u{043E}'),
        'c' => Some('\u{0441}'),
        'E' => Some('\u{0415}'),
        'T' => Some('\u{0422}'),
        _ => None,
    };
    match cyrillic {
        Some(twin) if rng.below(2) == 0 => twin,
        _ => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
    }
}

/// The mutations: 0 inserts comments or whitespace between tokens, 1 changes case, 2 puts in a
/// look-alike letter, 3 an invisible character, 4 quotes an identifier, 5 adds a trailing
/// semicolon or comment, 6 a leading comment or whitespace, 7 swaps a space for other whitespace.
const ALL: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7];
/// The mutations that keep the meaning of any statement.
const HARMLESS: &[usize] = &[0, 1, 5, 6, 7];

/// One mutation of `sql`, chosen from `ops`, keeping what is inside quotes as it is.
fn mutate(sql: &str, ops: &[usize], rng: &mut Rng) -> String {
    let Some(spans) = spans(sql) else {
        return format!("{sql}{}", rng.pick(TRAILING));
    };
    let boundary = |rng: &mut Rng| {
        if spans.is_empty() {
            0
        } else {
            spans[rng.below(spans.len())].start
        }
    };
    let words: Vec<&Span> = spans.iter().filter(|s| s.word.is_some()).collect();
    match *rng.pick(ops) {
        0 => {
            let at = boundary(rng);
            format!("{}{}{}", &sql[..at], rng.pick(BETWEEN_TOKENS), &sql[at..])
        }
        1 if !words.is_empty() => {
            // Change the case of a word.
            let w = rng.pick(&words);
            let changed: String = sql[w.start..w.end]
                .chars()
                .map(|c| {
                    if rng.below(2) == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect();
            format!("{}{changed}{}", &sql[..w.start], &sql[w.end..])
        }
        2 if !words.is_empty() => {
            // A look-alike letter in a word.
            let w = rng.pick(&words);
            let word: Vec<char> = sql[w.start..w.end].chars().collect();
            let i = rng.below(word.len());
            let mut changed = word.clone();
            if changed[i].is_ascii_alphabetic() {
                changed[i] = look_alike(changed[i], rng);
            }
            let changed: String = changed.into_iter().collect();
            format!("{}{changed}{}", &sql[..w.start], &sql[w.end..])
        }
        3 => {
            // An invisible character between tokens or inside a word.
            let at = if !words.is_empty() && rng.below(2) == 0 {
                let w = rng.pick(&words);
                let inside: Vec<usize> = sql[w.start..w.end]
                    .char_indices()
                    .map(|(i, _)| w.start + i)
                    .collect();
                *rng.pick(&inside)
            } else {
                boundary(rng)
            };
            format!("{}{}{}", &sql[..at], rng.pick(INVISIBLE), &sql[at..])
        }
        4 => {
            // Quote an identifier that is not a keyword, as Snowflake stores it.
            let names: Vec<&&Span> = words.iter().filter(|w| w.word == Some(false)).collect();
            if names.is_empty() {
                return format!("{sql}{}", rng.pick(TRAILING));
            }
            let w = rng.pick(&names);
            let quoted = format!("\"{}\"", sql[w.start..w.end].to_ascii_uppercase());
            format!("{}{quoted}{}", &sql[..w.start], &sql[w.end..])
        }
        5 => format!("{sql}{}", rng.pick(TRAILING)),
        6 => format!("{}{sql}", rng.pick(LEADING)),
        _ => {
            // Replace a space between tokens with other whitespace.
            let spaces: Vec<usize> = sql.match_indices(' ').map(|(i, _)| i).collect();
            let outside_quotes = |i: &usize| {
                spans
                    .iter()
                    .any(|s| s.start == *i && s.end == i + 1 && s.word.is_none())
            };
            let spaces: Vec<usize> = spaces.into_iter().filter(outside_quotes).collect();
            if spaces.is_empty() {
                return format!("{}{sql}", rng.pick(LEADING));
            }
            let at = *rng.pick(&spaces);
            let with = *rng.pick(&["\t", "\n", "  ", "\r\n", "\n\t"]);
            format!("{}{with}{}", &sql[..at], &sql[at + 1..])
        }
    }
}

/// Mutants of `sql`: `n` of them, each one to three mutations deep.
fn mutants(sql: &str, n: usize, ops: &[usize], rng: &mut Rng) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut m = sql.to_string();
            for _ in 0..=rng.below(3) {
                m = mutate(&m, ops, rng);
            }
            m
        })
        .collect()
}

const MUTANTS_PER_STATEMENT: usize = 24;

#[test]
fn mutations_never_turn_a_refusal_into_an_allowed_statement() {
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut tried = 0;
    let mut allowed = Vec::new();
    for case in corpus().into_iter().filter(|c| !c.allow) {
        for m in mutants(&case.sql, MUTANTS_PER_STATEMENT, ALL, &mut rng) {
            tried += 1;
            if check_read_only(&m).is_ok() {
                allowed.push(format!("[{}] {:?} -> {m:?}", case.theme, case.sql));
            }
        }
    }
    println!(
        "{tried} mutations of refused statements, {} allowed",
        allowed.len()
    );
    assert!(tried >= 5000, "{tried}");
    assert!(allowed.is_empty(), "{}", allowed.join("\n"));
}

#[test]
fn mutations_never_let_a_limited_client_out_of_its_database() {
    let mut rng = Rng(0x5EED_CAFE_F00D_0002);
    let mut tried = 0;
    let mut escaped = Vec::new();
    for sql in BYPASSES {
        for m in mutants(sql, MUTANTS_PER_STATEMENT, ALL, &mut rng) {
            tried += 1;
            if escapes_to_cur_only(&m) {
                escaped.push(format!("{sql:?} -> {m:?}"));
            }
        }
    }
    println!("{tried} mutations of bypasses, {} escaped", escaped.len());
    assert!(escaped.is_empty(), "{}", escaped.join("\n"));
}

/// Mutations that keep the meaning (comments, whitespace, case, semicolons) keep an allowed
/// read allowed.
#[test]
fn harmless_mutations_keep_legitimate_reads_allowed() {
    let mut rng = Rng(0x5EED_CAFE_F00D_0003);
    let (mut tried, mut refused) = (0, Vec::new());
    let allowed = corpus()
        .into_iter()
        .filter(|c| c.allow && check_read_only(&c.sql).is_ok());
    for case in allowed {
        for m in mutants(&case.sql, 8, HARMLESS, &mut rng) {
            tried += 1;
            if let Err(r) = check_read_only(&m) {
                refused.push(format!("{m:?}: {r}"));
            }
        }
    }
    println!(
        "{tried} harmless mutations of legitimate reads, {} refused",
        refused.len()
    );
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

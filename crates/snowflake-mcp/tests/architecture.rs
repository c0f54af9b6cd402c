//! The folders of `src/` are the stages of a call, and they hold as layers: a module may use
//! its own stage and the stages below it, never one above, and no modules use each other in a
//! circle. The order is the one written in `lib.rs` (its `text` block), so the doc and this test
//! cannot drift apart. Doc comments and `//` comments do not count; `crate::` paths and
//! `super::` paths that leave a stage do.
//!
//! Also here: no source file in any crate's `src/` grows much past 500 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A little over 500 lines, so one more function does not fail the build; a file this long
/// should be split by concern.
const MAX_LINES: usize = 520;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layers from `lib.rs`, lowest first, and the root modules listed as vocabulary.
fn layers() -> (Vec<String>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut inside = false;
    let mut stages = Vec::new();
    let mut vocabulary = BTreeSet::new();
    for line in lib.lines() {
        let text = line.trim_start_matches("//!").trim();
        if text == "```text" {
            inside = true;
        } else if inside && text == "```" {
            break;
        } else if inside {
            let mut words = text.split_whitespace();
            let stage = words.next().unwrap().to_string();
            if stage == "vocabulary" {
                for word in words {
                    vocabulary.insert(word.trim_matches(',').to_string());
                }
            }
            stages.push(stage);
        }
    }
    stages.reverse();
    assert_eq!(
        stages.first().map(String::as_str),
        Some("vocabulary"),
        "lib.rs's layer table must end with the vocabulary line"
    );
    (stages, vocabulary)
}

/// The code of a file without comments (doc comments included) and without the contents of
/// string and character literals.
fn code(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        let word_start = i == 0 || !is_ident(c[i - 1]);
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            i += 2;
            while i < c.len() && !(c[i] == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i += 2;
        } else if word_start && c[i] == 'r' && (at(i + 1) == '#' || at(i + 1) == '"') {
            // r"…" or r#"…"#: ends at a quote followed by as many hashes.
            let mut hashes = 0;
            i += 1;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#')) {
                i += 1;
            }
            i += 1 + hashes;
            out.push_str("\"\"");
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && at(i + 1) == '\\' {
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && at(i + 2) == '\'' {
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the code names starting at `crate::` (grouped imports expanded one level) or at
/// a chain of `super::`: `(number of supers, segments)`, with 0 supers for `crate::`.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let (supers, mut j) = if starts_word && rest.starts_with("crate::") {
            (0, i + 7)
        } else if starts_word && rest.starts_with("super::") {
            let mut k = i;
            let mut n = 0;
            while bytes[k..].iter().take(7).collect::<String>() == "super::" {
                n += 1;
                k += 7;
            }
            (n, k)
        } else {
            i += 1;
            continue;
        };
        let prefix = segments(&bytes, &mut j);
        if bytes.get(j) == Some(&'{') {
            // `crate::a::{b::C, d}`: one path per member.
            let mut depth = 0;
            let mut member = String::new();
            let mut members = Vec::new();
            for &c in &bytes[j + 1..] {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => members.push(std::mem::take(&mut member)),
                    _ => {}
                }
                member.push(c);
            }
            members.push(member);
            for m in members {
                let m: Vec<char> = m.trim_start_matches(',').trim().chars().collect();
                let mut k = 0;
                let mut path = prefix.clone();
                path.extend(segments(&m, &mut k));
                out.push((supers, path));
            }
        } else {
            out.push((supers, prefix));
        }
        i = j.max(i + 1);
    }
    out
}

/// `a::b::c` from `at`, leaving `at` after the last `::` or segment.
fn segments(chars: &[char], at: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let start = *at;
        while *at < chars.len() && is_ident(chars[*at]) {
            *at += 1;
        }
        if *at == start {
            break;
        }
        out.push(chars[start..*at].iter().collect());
        if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
            *at += 2;
        } else {
            break;
        }
    }
    out
}

/// The module path of a source file: `src/a/b.rs` is `[a, b]`, `src/a/mod.rs` is `[a]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The node of the module graph a path lands in: `stage/module` inside a stage folder (or the
/// stage itself for its `mod.rs`), the module's name at the root.
fn node(path: &[String], stages: &[String]) -> Option<String> {
    let top = path.first()?;
    if stages.contains(top) {
        match path.get(1) {
            Some(sub) if src().join(top).join(format!("{sub}.rs")).exists() => {
                Some(format!("{top}/{sub}"))
            }
            Some(sub) if src().join(top).join(sub).join("mod.rs").exists() => {
                Some(format!("{top}/{sub}"))
            }
            _ => Some(top.clone()),
        }
    } else if src().join(format!("{top}.rs")).exists() || src().join(top).is_dir() {
        Some(top.clone())
    } else {
        None // an item of lib.rs
    }
}

struct Import {
    file: PathBuf,
    from: Vec<String>,
    to: Vec<String>,
}

fn imports() -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        if file.ends_with("main.rs") {
            continue; // the binary wires every stage together
        }
        let from = module_path(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        for (supers, segments) in paths(&code(&text)) {
            let mut to = from.clone();
            if supers > 0 {
                // Inline `mod tests` blocks make a `super` one level shallower than the file
                // suggests; resolving against the file errs toward staying in the same stage.
                to.truncate(from.len().saturating_sub(supers));
            } else {
                to.clear();
            }
            to.extend(segments);
            out.push(Import {
                file: file.clone(),
                from: from.clone(),
                to,
            });
        }
    }
    out
}

fn stage_of(path: &[String], stages: &[String]) -> usize {
    match path.first() {
        Some(top) => stages.iter().position(|s| s == top).unwrap_or(0),
        None => 0,
    }
}

#[test]
fn every_module_at_the_root_is_vocabulary_named_in_lib_rs() {
    let (stages, vocabulary) = layers();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        assert!(
            stages.contains(&name) || vocabulary.contains(&name),
            "src/{name} is neither a stage nor vocabulary: add it to the layer table in lib.rs"
        );
    }
    for stage in &stages[1..] {
        assert!(
            src().join(stage).join("mod.rs").exists(),
            "stage {stage} in lib.rs has no src/{stage}/mod.rs"
        );
    }
}

#[test]
fn no_module_imports_from_a_stage_above_its_own() {
    let (stages, _) = layers();
    let mut upward = Vec::new();
    for import in imports() {
        let (from, to) = (
            stage_of(&import.from, &stages),
            stage_of(&import.to, &stages),
        );
        if to > from {
            upward.push(format!(
                "{} ({}) uses {} ({})",
                import.file.strip_prefix(src()).unwrap().display(),
                stages[from],
                import.to.join("::"),
                stages[to],
            ));
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports against the layers of lib.rs (a stage may use only the stages below it):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let (stages, _) = layers();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in imports() {
        let (Some(from), Some(to)) = (node(&import.from, &stages), node(&import.to, &stages))
        else {
            continue;
        };
        if from != to {
            edges.entry(from).or_default().insert(to);
        }
    }
    assert!(edges.len() > 20, "only {} modules found", edges.len());
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut circle = path[at..].to_vec();
            circle.push(n.to_string());
            circles.push(circle.join(" → "));
            return;
        }
        if !done.insert(n.to_string()) {
            return;
        }
        path.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            visit(next, edges, path, done, circles);
        }
        path.pop();
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(
        circles.is_empty(),
        "modules that import each other in a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_the_way_the_compiler_does() {
    let text = "use crate::policy::{ClientPolicy, admission::Admission}; // crate::transport::x\n\
                /// [`crate::transport::server`]\n\
                let s = \"crate::tools\"; let t = super::super::backend::Backend;";
    let found = paths(&code(text));
    assert_eq!(
        found,
        vec![
            (0, vec!["policy".into(), "ClientPolicy".into()]),
            (
                0,
                vec!["policy".into(), "admission".into(), "Admission".into()]
            ),
            (2, vec!["backend".into(), "Backend".into()]),
        ]
    );
}

#[test]
fn no_source_file_is_much_over_500_lines() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut long = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path().join("src");
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files to split by concern (at most {MAX_LINES} lines):\n{}",
        long.join("\n")
    );
}

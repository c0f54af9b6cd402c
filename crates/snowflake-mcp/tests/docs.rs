//! The documentation stays findable and true: every relative link in `README.md` and `docs/`
//! resolves (file and heading), every key the config file accepts is in the configuration
//! reference, and everything the reference shows is a key the server accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("a docs/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `[text](target)` links outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_front_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; details belong in docs/"
    );
    for needed in ["serve --demo", "scripts/test", "docs/configuration.md"] {
        assert!(readme.contains(needed), "README.md lacks {needed}");
    }
}

/// The keys of the config structs (`pub name:` fields of every `#[derive(... Deserialize ...)]`
/// struct named `*Config` in `src/config/`), with serde renames applied.
fn accepted_keys() -> BTreeSet<String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&config)
        .expect("src/config/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut keys = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut in_config = false;
        let mut deserialize = false;
        let mut rename: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("#[derive(") {
                deserialize = t.contains("Deserialize");
            } else if let Some(rest) = t.strip_prefix("pub struct ") {
                let name = rest.split(|c: char| !c.is_alphanumeric()).next().unwrap();
                in_config = deserialize && name.ends_with("Config");
            } else if t == "}" {
                in_config = false;
            } else if in_config && t.starts_with("#[serde(") && t.contains("rename = \"") {
                rename = t
                    .split("rename = \"")
                    .nth(1)
                    .map(|r| r.split('"').next().unwrap().to_string());
            } else if in_config {
                if let Some(field) = t.strip_prefix("pub ") {
                    let name = field.split(':').next().unwrap().trim();
                    keys.insert(rename.take().unwrap_or_else(|| name.to_string()));
                }
            }
        }
    }
    assert!(
        keys.len() > 60,
        "only {} keys found: is the parser broken?",
        keys.len()
    );
    keys
}

#[test]
fn every_config_key_the_server_accepts_is_in_the_configuration_reference() {
    let reference = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let missing: Vec<String> = accepted_keys()
        .into_iter()
        .filter(|key| {
            let as_key = format!("{key} =");
            let as_section = [
                format!("[{key}]"),
                format!("[[{key}]]"),
                format!("[{key}."),
                format!(".{key}]]"),
            ];
            !reference.contains(&as_key) && !as_section.iter().any(|s| reference.contains(s))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn every_key_the_configuration_reference_shows_is_accepted() {
    let reference = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    // The reference's first TOML block is the whole file, every key with an example value.
    let block = reference
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a TOML block in docs/configuration.md");
    let parsed: Result<snowflake_mcp::config::Config, _> = toml::from_str(block);
    assert!(
        parsed.is_ok(),
        "the reference shows a key the server refuses: {:?}",
        parsed.err()
    );
}

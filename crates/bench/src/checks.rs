//! Targets a run is held to (`--check`): each scenario records its ratios against their
//! targets here; with `--check` the benchmark prints them and exits non-zero when one is
//! missed — a regression guard to run before a release, not a timed test.

use std::fmt::Write as _;
use std::sync::Mutex;

struct Check {
    what: String,
    value: f64,
    target: f64,
    /// Whether the value must be at least the target (else at most).
    at_least: bool,
}

static CHECKS: Mutex<Vec<Check>> = Mutex::new(Vec::new());

/// `what` measured `value`, which must be at least `target`.
pub fn at_least(what: impl Into<String>, value: f64, target: f64) {
    record(what.into(), value, target, true);
}

/// `what` measured `value`, which must be at most `target`.
pub fn at_most(what: impl Into<String>, value: f64, target: f64) {
    record(what.into(), value, target, false);
}

fn record(what: String, value: f64, target: f64, at_least: bool) {
    CHECKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Check {
            what,
            value,
            target,
            at_least,
        });
}

/// The checks as a Markdown table, and whether they all held.
pub fn report(out: &mut String) -> bool {
    let checks = CHECKS.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(
        out,
        "## Targets\n\n| check | measured | target | held |\n|---|---|---|---|"
    );
    let mut all = true;
    for c in checks.iter() {
        let held = if c.at_least {
            c.value >= c.target
        } else {
            c.value <= c.target
        };
        all &= held;
        let sign = if c.at_least { "≥" } else { "≤" };
        let _ = writeln!(
            out,
            "| {} | {:.3} | {sign} {} | {} |",
            c.what,
            c.value,
            c.target,
            if held { "yes" } else { "**no**" }
        );
    }
    all
}

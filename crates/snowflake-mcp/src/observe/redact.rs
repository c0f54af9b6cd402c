//! Keeps MCP session ids out of the logs, at every level.
//!
//! A session id lets whoever reads it try to act in that session's name (the door checks the
//! principal too, but ids stay secret all the same). Our own log lines name sessions by an
//! internal number; rmcp's name them by id — "create new session", "failed to persist session
//! <id>", "Failed to close session <id>" — at levels from debug to error. [`Redacting`] wraps
//! the log formatter: a line from rmcp has every UUID and long hex run (session, stream and
//! event ids) replaced by `<redacted>` before it is written, whatever the level or format.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A log formatter that redacts ids from rmcp's lines (see the module doc).
pub struct Redacting<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for Redacting<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !event.metadata().target().starts_with("rmcp") {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&redact_ids(&line))
    }
}

/// `text` with every hyphenated UUID and every run of 32 or more hex digits replaced.
pub fn redact_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let len = id_at(&bytes[i..]);
            if len > 0 {
                out.push_str(&text[copied..i]);
                out.push_str("<redacted>");
                i += len;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of the id starting `bytes`, or 0 when none does.
fn id_at(bytes: &[u8]) -> usize {
    let hex_run = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
    };
    let run = hex_run(0);
    if run >= 32 {
        return run;
    }
    // 8-4-4-4-12
    let mut at = 0;
    for (n, group) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if hex_run(at) != group {
            return 0;
        }
        at += group;
        if n < 4 {
            if bytes.get(at) != Some(&b'-') {
                return 0;
            }
            at += 1;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_long_hex_runs_are_redacted_and_nothing_else() {
        let id = "4f9c2d1e-8a7b-4c3d-9e2f-0a1b2c3d4e5f";
        assert_eq!(
            redact_ids(&format!("Failed to close session {id}: gone")),
            "Failed to close session <redacted>: gone"
        );
        assert_eq!(
            redact_ids(&format!(
                "session_id={id}, event 0123456789abcdef0123456789abcdef."
            )),
            "session_id=<redacted>, event <redacted>."
        );
        for kept in [
            "count 12345 rows",
            "deadbeef",
            "abc-def",
            "x4f9c2d1e-8a7b",
            "café",
        ] {
            assert_eq!(redact_ids(kept), kept);
        }
    }
}

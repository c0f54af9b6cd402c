//! The guard's verdicts on the statement texts a thread checked last, per client.
//!
//! Agents, dashboards and retries send the same statement text again and again, and the guard's
//! verdict ([`super::check`]) depends on nothing but the text and the write kinds the client may
//! run: no context, no time, no state. Tokenising and parsing it is the larger part of the
//! guard's cost, which was about 3 % of the server's CPU per instant call (`BENCHMARKS.md`, the
//! fast path). So each thread keeps the verdicts of the texts it checked recently and answers a
//! repeat from them.
//!
//! What keeps this as safe as checking every time:
//! * a verdict is reused only for the byte-identical text *and* the identical list of write
//!   kinds — a client allowed fewer writes never sees a verdict made for one allowed more;
//! * and only for the client it was made for: verdicts are the same for every client, but how
//!   fast one comes back (remembered or parsed) must not tell a client which statements another
//!   client sent moments ago;
//! * refusals are kept as well as permissions, so a repeated refusal stays refused;
//! * the checks that depend on the session's context (the databases and semantic views a
//!   restricted client reaches) are not memoised here: they run on every call.
//!
//! Bounded: per thread at most [`ENTRIES`] texts of at most [`MAX_TEXT`] bytes (longer texts
//! are checked every time), so at most 2 MiB of text per worker thread. The verdicts are found
//! by a hash of the client, the text and the write kinds, and checked against all three on a
//! hit, so a lookup costs the same however many clients take turns on a thread (a list of 32
//! scanned in order missed every time once more than a few dozen did). When the table is full
//! a new text takes the place of one picked by the table's order, in effect at random: unlike
//! oldest-first, that keeps most of a working set a little larger than the table. Per thread,
//! not shared, so no lock is taken that every client's calls would meet.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Refusal, Write};
use crate::config::WriteKind;

/// Texts remembered per thread.
const ENTRIES: usize = 1024;
/// Longer texts are not remembered (they are rarely repeated, and would hold memory).
const MAX_TEXT: usize = 2048;

type Verdict = Result<Option<Write>, Refusal>;

struct Entry {
    client: Arc<str>,
    sql: Box<str>,
    writes: Box<[WriteKind]>,
    verdict: Verdict,
}

thread_local! {
    /// The verdicts, by [`key`].
    static RECENT: RefCell<HashMap<u64, Entry>> = RefCell::default();
}

/// Where `client`'s `sql` with `writes` is kept. Two pairs may share a key: an entry answers
/// only when all three match, and the newer pair takes the older one's place.
fn key(client: &str, sql: &str, writes: &[WriteKind]) -> u64 {
    let mut h = DefaultHasher::new();
    (client, sql, writes).hash(&mut h);
    h.finish()
}

/// `check()`'s verdict on `sql` for `client`, answered from this thread's recent verdicts when
/// the same client's same text with the same write kinds was checked before.
pub(super) fn remembered(
    client: &Arc<str>,
    sql: &str,
    writes: &[WriteKind],
    check: impl FnOnce() -> Verdict,
) -> Verdict {
    if sql.len() > MAX_TEXT {
        return check();
    }
    let key = key(client, sql, writes);
    let found = RECENT.with_borrow(|recent| {
        recent
            .get(&key)
            .filter(|e| *e.sql == *sql && *e.writes == *writes && e.client == *client)
            .map(|e| e.verdict.clone())
    });
    if let Some(verdict) = found {
        return verdict;
    }
    // Checked outside the borrow: nothing the check calls may reach back in here, but a
    // panic inside it must not leave the cell borrowed either.
    let verdict = check();
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= ENTRIES && !recent.contains_key(&key) {
            if let Some(&gone) = recent.keys().next() {
                recent.remove(&gone);
            }
        }
        recent.insert(
            key,
            Entry {
                client: client.clone(),
                sql: sql.into(),
                writes: writes.into(),
                verdict: verdict.clone(),
            },
        );
    });
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Arc<str> {
        id.into()
    }

    fn remembered_count() -> usize {
        RECENT.with_borrow(|r| r.len())
    }

    #[test]
    fn a_verdict_is_reused_only_for_the_same_client_text_and_write_kinds() {
        let checks = std::cell::Cell::new(0);
        let check_by = |who: &Arc<str>, sql: &str, writes: &[WriteKind]| {
            remembered(who, sql, writes, || {
                checks.set(checks.get() + 1);
                super::super::check(sql, writes)
            })
        };
        let analyst = client("analyst");
        let check = |sql: &str, writes: &[WriteKind]| check_by(&analyst, sql, writes);
        let insert = "INSERT INTO t VALUES (1)";
        assert!(check(insert, &[WriteKind::Insert]).unwrap().is_some());
        assert!(check(insert, &[WriteKind::Insert]).unwrap().is_some());
        // The same text for a client that may not write is checked anew, and refused.
        assert!(check(insert, &[]).is_err());
        assert!(check(insert, &[]).is_err(), "a refusal is remembered too");
        // One byte more is another text.
        assert!(check("INSERT INTO t VALUES (1);", &[]).is_err());
        assert!(check("SELECT 1", &[]).unwrap().is_none());
        assert_eq!(
            checks.get(),
            4,
            "two repeats answered from memory, four texts checked"
        );
        // Another client's same text is checked for it: the time a check takes must not say
        // what the analyst sent.
        assert!(check_by(&client("bot"), "SELECT 1", &[]).unwrap().is_none());
        assert_eq!(checks.get(), 5, "another client's text is parsed anew");
    }

    #[test]
    fn memory_is_bounded_in_entries_and_text_length() {
        let one = client("analyst");
        let mut checks = 0;
        for i in 0..ENTRIES * 3 {
            let sql = format!("SELECT {i}");
            remembered(&one, &sql, &[], || {
                checks += 1;
                Ok(None)
            })
            .unwrap();
            assert!(remembered_count() <= ENTRIES);
        }
        assert_eq!(checks, ENTRIES * 3);
        assert_eq!(
            remembered_count(),
            ENTRIES,
            "the table stays full, not larger"
        );
        // The newest is remembered.
        let newest = format!("SELECT {}", ENTRIES * 3 - 1);
        remembered(&one, &newest, &[], || panic!("was remembered")).unwrap();
        let long = format!("SELECT '{}'", "x".repeat(MAX_TEXT));
        let mut long_checks = 0;
        for _ in 0..2 {
            remembered(&one, &long, &[], || {
                long_checks += 1;
                Ok(None)
            })
            .unwrap();
        }
        assert_eq!(long_checks, 2, "a long text is checked every time");
    }

    #[test]
    fn many_clients_taking_turns_are_each_remembered() {
        // What a list of 32 scanned in order lost: a thousand clients on one thread, each
        // repeating its text.
        let clients: Vec<Arc<str>> = (0..1000).map(|i| client(&format!("c{i}"))).collect();
        let mut checks = 0;
        for _round in 0..3 {
            for c in &clients {
                remembered(c, "SELECT 1", &[], || {
                    checks += 1;
                    Ok(None)
                })
                .unwrap();
            }
        }
        assert_eq!(
            checks, 1000,
            "each client's text checked once, its repeats remembered"
        );
    }
}

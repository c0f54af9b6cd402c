//! The store contract, kept by both stores: the SQLite file and Redis (a real Valkey server
//! per test). Usage is exact under concurrency, settlements give back what was not used, owners
//! are written once, histories are per client; plus what is particular to each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use rusqlite::Connection;
use testkit::Valkey;

mod particular;
mod quotas;
mod records;

use quotas::*;
use records::*;

/// A store under test, and what it needs alive (the Valkey server).
type Under = (Arc<dyn StateStore>, Option<Valkey>);

fn sqlite(name: &str) -> Under {
    (Arc::new(SqliteStore::open(&temp_path(name)).unwrap()), None)
}

fn redis() -> Under {
    let server = Valkey::start();
    let store = RedisStore::open(RedisOptions {
        url: server.url(),
        key_prefix: "test:".into(),
        session_ttl: Duration::from_secs(600),
        history_max: 100,
        history_retention: Duration::from_secs(3600),
    })
    .unwrap();
    (store, Some(server))
}

/// Each contract test, once per store.
macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _server) = super::sqlite(stringify!($name));
                super::$name(store).await
            })*
        }
        mod redis_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _server) = super::redis();
                super::$name(store).await
            })*
        }
    };
}

for_both_stores!(
    a_hundred_concurrent_reservations_against_ten_admit_exactly_ten,
    grants_settlements_and_row_quotas,
    concurrent_row_grants_never_add_up_past_the_quota,
    session_owners_are_written_once,
    history_is_per_client_newest_first,
    statement_seconds_are_reserved_and_cap_the_statement,
    concurrent_statements_split_the_seconds_left,
    credits_cap_the_session_time_reserved,
    handles_keep_their_owner_and_expire,
    a_taken_handle_is_taken_once,
    the_operator_reads_every_clients_trail_filtered,
);

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "snowflake-mcp-store-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("state.db")
}

fn day(limit: u64) -> Vec<(String, WindowLimits)> {
    vec![(
        "d:2026-11-24".into(),
        WindowLimits {
            queries: Some(limit),
            ..Default::default()
        },
    )]
}

//! The store contract, kept by both stores: the SQLite file and Redis (a real Valkey server
//! per test). Usage is exact under concurrency, settlements give back what was not used, owners
//! are written once, histories are per client; plus what is particular to each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use rusqlite::Connection;
use testkit::Valkey;

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

async fn a_hundred_concurrent_reservations_against_ten_admit_exactly_ten(
    store: Arc<dyn StateStore>,
) {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve("c", &day(10), Amounts::default(), Cost::default())
                .await
                .unwrap()
                .is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 10);
    assert_eq!(store.usage("c", "d:2026-11-24").await.unwrap().queries, 10);
    let refused = store
        .reserve("c", &day(10), Amounts::default(), Cost::default())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((refused.quota, refused.limit), ("queries", 10));
}

async fn grants_settlements_and_row_quotas(store: Arc<dyn StateStore>) {
    let w = vec!["d:x".to_string(), "h:x".to_string()];
    let limits = vec![
        (
            "d:x".to_string(),
            WindowLimits {
                queries: Some(5),
                rows: Some(100),
                ..Default::default()
            },
        ),
        ("h:x".to_string(), WindowLimits::default()),
    ];
    let want = Amounts {
        rows: 500,
        bytes: 4096,
    };
    let granted = store
        .reserve("c", &limits, want, Cost::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        granted.amounts,
        Amounts {
            rows: 100,
            bytes: 4096
        },
        "rows capped to what is left"
    );
    store
        .settle(
            "c",
            &w,
            &granted,
            Amounts::default(),
            false,
            Spent::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.usage("c", "d:x").await.unwrap(),
        Usage::default(),
        "a query that never ran costs nothing"
    );
    let granted = store
        .reserve("c", &limits, want, Cost::default())
        .await
        .unwrap()
        .unwrap();
    let used = Amounts {
        rows: 60,
        bytes: 2048,
    };
    store
        .settle("c", &w, &granted, used, true, Spent::default())
        .await
        .unwrap();
    assert_eq!(
        store.usage("c", "h:x").await.unwrap(),
        Usage {
            queries: 1,
            rows: 60,
            bytes: 2048,
            ..Default::default()
        }
    );
    let granted = store
        .reserve("c", &limits, want, Cost::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(granted.amounts.rows, 40, "only the rest of the day's rows");
    let all = granted.amounts;
    store
        .settle("c", &w, &granted, all, true, Spent::default())
        .await
        .unwrap();
    let e = store
        .reserve("c", &limits, want, Cost::default())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (e.quota, e.window.as_str()),
        ("rows", "d:x"),
        "at the row limit, no more queries"
    );
    assert_eq!(
        store.usage("other", "d:x").await.unwrap(),
        Usage::default(),
        "clients are separate"
    );
}

async fn concurrent_row_grants_never_add_up_past_the_quota(store: Arc<dyn StateStore>) {
    let limits = vec![(
        "d:x".to_string(),
        WindowLimits {
            rows: Some(10),
            ..Default::default()
        },
    )];
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (store, limits) = (store.clone(), limits.clone());
        tasks.push(tokio::spawn(async move {
            let want = Amounts {
                rows: 100,
                bytes: 1 << 20,
            };
            match store
                .reserve("c", &limits, want, Cost::default())
                .await
                .unwrap()
            {
                // Each query returns all it was granted.
                Ok(g) => {
                    store
                        .settle(
                            "c",
                            &["d:x".to_string()],
                            &g,
                            g.amounts,
                            true,
                            Spent::default(),
                        )
                        .await
                        .unwrap();
                    g.amounts.rows
                }
                Err(_) => 0,
            }
        }));
    }
    let mut rows = 0;
    for t in tasks {
        rows += t.await.unwrap();
    }
    assert_eq!(
        rows, 10,
        "100 concurrent 100-row queries against 10 rows get 10 in all"
    );
    assert_eq!(store.usage("c", "d:x").await.unwrap().rows, 10);
}

#[tokio::test]
async fn sqlite_sessions_and_usage_survive_reopening() {
    let path = temp_path("reopen");
    {
        let store = SqliteStore::open(&path).unwrap();
        let ctx = Context {
            database: Some("DB".into()),
            schema: Some("S".into()),
            ..Default::default()
        };
        store
            .save_session(&StoredSession {
                id: "s1".into(),
                client_id: Some("c".into()),
                context: Some(ctx),
                created: 10,
                last_seen: 20,
                ..Default::default()
            })
            .await
            .unwrap();
        // A later save without a client or context keeps what was there, and the owner is
        // written once: a save naming another client does not take the session over.
        store
            .save_session(&StoredSession {
                id: "s1".into(),
                client_id: Some("intruder".into()),
                init_params: Some("{}".into()),
                created: 10,
                last_seen: 30,
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .reserve("c", &day(5), Amounts::default(), Cost::default())
            .await
            .unwrap()
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let s = store.load_session("s1").await.unwrap().unwrap();
    assert_eq!(s.client_id.as_deref(), Some("c"));
    assert_eq!(s.context.unwrap().schema.as_deref(), Some("S"));
    assert_eq!((s.init_params.as_deref(), s.last_seen), (Some("{}"), 30));
    assert_eq!(store.usage("c", "d:2026-11-24").await.unwrap().queries, 1);
    assert_eq!(store.expire_sessions(31).await.unwrap(), 1);
    assert!(store.load_session("s1").await.unwrap().is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

async fn history_is_per_client_newest_first(store: Arc<dyn StateStore>) {
    for (t, client, sql) in [
        (1, "a", "SELECT 1"),
        (2, "b", "SELECT secret"),
        (3, "a", "SELECT 3"),
    ] {
        let r = AuditRecord {
            time_ms: t,
            client_id: client.into(),
            tool: "run_query".into(),
            statement: Some(sql.into()),
            status: "ok".into(),
            ..Default::default()
        };
        store.record(&r).await.unwrap();
    }
    let a = store.history("a", 10).await.unwrap();
    let sqls: Vec<_> = a.iter().map(|r| r.statement.clone().unwrap()).collect();
    assert_eq!(sqls, ["SELECT 3", "SELECT 1"]);
    assert_eq!(store.history("a", 1).await.unwrap().len(), 1);
    assert_eq!(store.history("b", 10).await.unwrap()[0].status, "ok");
    assert!(store.history("nobody", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_history_is_pruned_by_age() {
    let (store, _) = sqlite("prune");
    for t in [1, 3] {
        let r = AuditRecord {
            time_ms: t,
            client_id: "a".into(),
            tool: "run_query".into(),
            status: "ok".into(),
            ..Default::default()
        };
        store.record(&r).await.unwrap();
    }
    assert_eq!(store.prune_audit(2).await.unwrap(), 1);
    assert_eq!(store.history("a", 10).await.unwrap().len(), 1);
}

/// A statement that may run two minutes, on a warehouse of unknown size.
const TWO_MINUTES: Cost = Cost {
    ms: 120_000,
    microcredits_per_hour: 0,
};

async fn statement_seconds_are_reserved_and_cap_the_statement(store: Arc<dyn StateStore>) {
    let limits = vec![(
        "d:x".to_string(),
        WindowLimits {
            seconds: Some(10),
            microcredits: Some(5_000_000),
            ..Default::default()
        },
    )];
    let w = vec!["d:x".to_string()];
    let short = Cost {
        ms: 2_000,
        ..TWO_MINUTES
    };
    let g = store
        .reserve("c", &limits, Amounts::default(), short)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.ms, Some(2_000), "never more than the statement's timeout");
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!(u.ms, 2_000, "reserved before the statement starts");
    let spent = Spent {
        ms: 500,
        microcredits: 2_000,
    };
    store
        .settle("c", &w, &g, g.amounts, true, spent)
        .await
        .unwrap();
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!((u.ms, u.microcredits), (500, 2_000), "the rest went back");
    // Statements that each run to their timeout: each is granted half of what is left, in
    // whole seconds (at least one), until nothing is.
    let mut grants = Vec::new();
    loop {
        match store
            .reserve("c", &limits, Amounts::default(), TWO_MINUTES)
            .await
            .unwrap()
        {
            Ok(g) => {
                let ms = g.ms.unwrap();
                grants.push(ms);
                let spent = Spent {
                    ms,
                    microcredits: 0,
                };
                store
                    .settle("c", &w, &g, g.amounts, true, spent)
                    .await
                    .unwrap();
            }
            Err(e) => {
                assert_eq!(e.quota, "statement seconds");
                assert_eq!(e.limit, 10);
                break;
            }
        }
        assert!(grants.len() < 20, "{grants:?}");
    }
    assert_eq!(grants, [4_000, 2_000, 1_000, 1_000, 1_000, 1_000]);
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!(
        (u.ms, u.microcredits),
        (10_500, 2_000),
        "overrun by less than a second"
    );
}

/// Issue 19: four 3-second statements started at once against 4 seconds held Snowflake for
/// 12 s, each allowed all that was left.
async fn concurrent_statements_split_the_seconds_left(store: Arc<dyn StateStore>) {
    let limits = vec![
        (
            "d:x".to_string(),
            WindowLimits {
                seconds: Some(4),
                ..Default::default()
            },
        ),
        (
            "h:x".to_string(),
            WindowLimits {
                queries: Some(100),
                ..Default::default()
            },
        ),
    ];
    let w: Vec<String> = limits.iter().map(|(w, _)| w.clone()).collect();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (store, limits, w) = (store.clone(), limits.clone(), w.clone());
            tokio::spawn(async move {
                let g = store
                    .reserve("c", &limits, Amounts::default(), TWO_MINUTES)
                    .await
                    .unwrap()
                    .ok()?;
                // The statement takes 3 s, or is stopped at its timeout, capped to its grant.
                let ms = g.ms.unwrap().min(3_000);
                let spent = Spent {
                    ms,
                    microcredits: 0,
                };
                store
                    .settle("c", &w, &g, g.amounts, true, spent)
                    .await
                    .unwrap();
                Some(g.ms.unwrap())
            })
        })
        .collect();
    let mut grants = Vec::new();
    for run in runs {
        grants.extend(run.await.unwrap());
    }
    grants.sort_unstable();
    assert_eq!(grants, [1_000, 1_000, 2_000], "split, never 4 s each");
    for window in &w {
        let u = store.usage("c", window).await.unwrap();
        assert!(u.ms <= 5_000, "{window}: charged {} ms of 4 s", u.ms);
    }
}

async fn credits_cap_the_session_time_reserved(store: Arc<dyn StateStore>) {
    // 0.004 credits on a Medium warehouse (4 credits/h) buy 3.6 s.
    let limits = vec![(
        "d:x".to_string(),
        WindowLimits {
            microcredits: Some(4_000),
            ..Default::default()
        },
    )];
    let w = vec!["d:x".to_string()];
    let medium = Cost {
        ms: 120_000,
        microcredits_per_hour: 4_000_000,
    };
    let g = store
        .reserve("c", &limits, Amounts::default(), medium)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.ms, g.microcredits), (Some(1_000), 1_112));
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!((u.ms, u.microcredits), (1_000, 1_112));
    let spent = Spent {
        ms: 500,
        microcredits: 556,
    };
    store
        .settle("c", &w, &g, g.amounts, true, spent)
        .await
        .unwrap();
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!((u.ms, u.microcredits), (500, 556));
    // A warehouse of unknown size: credits cannot cap the statement.
    let g = store
        .reserve("c", &limits, Amounts::default(), TWO_MINUTES)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.ms, g.microcredits), (None, 0));
}

#[tokio::test]
async fn a_store_that_counted_thousandths_of_a_credit_is_read_in_millionths() {
    let path = temp_path("millicredits");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE usage (client_id TEXT NOT NULL, window TEXT NOT NULL,
                queries INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0,
                bytes INTEGER NOT NULL DEFAULT 0, ms INTEGER NOT NULL DEFAULT 0,
                millicredits INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, window));
             INSERT INTO usage (client_id, window, queries, ms, millicredits)
                VALUES ('c', 'd:x', 3, 9000, 12);",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let u = store.usage("c", "d:x").await.unwrap();
    assert_eq!((u.queries, u.ms, u.microcredits), (3, 9000, 12_000));
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    let u = again.usage("c", "d:x").await.unwrap();
    assert_eq!(u.microcredits, 12_000, "converted once");
}

async fn session_owners_are_written_once(store: Arc<dyn StateStore>) {
    let ctx = Context {
        database: Some("DB".into()),
        schema: Some("S".into()),
        ..Default::default()
    };
    let first = StoredSession {
        id: "s1".into(),
        client_id: Some("c".into()),
        client_name: Some("claude".into()),
        context: Some(ctx),
        created: 10,
        last_seen: 20,
        ..Default::default()
    };
    store.save_session(&first).await.unwrap();
    // A later save without a context keeps it; one naming another owner does not take over;
    // last_seen never goes back.
    for last_seen in [30, 25] {
        store
            .save_session(&StoredSession {
                id: "s1".into(),
                client_id: Some("intruder".into()),
                init_params: Some("{}".into()),
                created: 99,
                last_seen,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let s = store.load_session("s1").await.unwrap().unwrap();
    assert_eq!(s.client_id.as_deref(), Some("c"));
    assert_eq!(s.client_name.as_deref(), Some("claude"));
    assert_eq!(s.context.unwrap().schema.as_deref(), Some("S"));
    assert_eq!(
        (s.init_params.as_deref(), s.created, s.last_seen),
        (Some("{}"), 10, 30)
    );
    store.delete_session("s1").await.unwrap();
    // Gone, or (shared stores) a tombstone without an owner, which every check refuses.
    let deleted = store.load_session("s1").await.unwrap();
    assert!(
        deleted.as_ref().is_none_or(|s| s.client_id.is_none()),
        "{deleted:?}"
    );
    assert!(store.load_session("never").await.unwrap().is_none());
}

#[tokio::test]
async fn redis_settlement_is_applied_once_and_keys_expire() {
    let (store, server) = redis();
    let server = server.unwrap();
    let limits = vec![(
        "h:2026-11-24T10".to_string(),
        WindowLimits {
            queries: Some(5),
            seconds: Some(100),
            ..Default::default()
        },
    )];
    let w = vec![limits[0].0.clone()];
    let g = store
        .reserve("c", &limits, Amounts::default(), Cost::default())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(g.reservation, 0);
    // The reservation record exists until its settlement, with a TTL of its own.
    let res_key = format!("test:{{c:c}}:res:{}", g.reservation);
    assert_eq!(server.command(&["EXISTS", &res_key]), "1");
    let ttl: i64 = server.command(&["TTL", &res_key]).parse().unwrap();
    assert!((1..=2 * 86_400).contains(&ttl), "reservation TTL {ttl}");
    // Reservation ids are random, not a counter: a second one differs.
    let g2 = store
        .reserve("c", &limits, Amounts::default(), Cost::default())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(g2.reservation, g.reservation);
    let spent = Spent {
        ms: 1_000,
        microcredits: 7,
    };
    for _ in 0..3 {
        // A replica retrying a settlement whose reply it lost.
        store
            .settle("c", &w, &g, Amounts::default(), false, spent)
            .await
            .unwrap();
    }
    // The settled reservation's record is gone (that is what makes a retry change nothing).
    assert_eq!(server.command(&["EXISTS", &res_key]), "0");
    let u = store.usage("c", &w[0]).await.unwrap();
    // g2 is still outstanding: its query and its reserved session-time count; g's query was
    // refunded once, not three times, and what g spent replaced what it had reserved.
    let g2_ms = g2.ms.expect("a seconds quota reserves session-time");
    assert_eq!(
        (u.queries, u.ms, u.microcredits),
        (1, 1_000 + g2_ms, 7 + g2.microcredits)
    );
    // The client's keys share one hash tag; windows and sessions expire on their own.
    let key = "test:{c:c}:usage:h:2026-11-24T10";
    let ttl: i64 = server.command(&["TTL", key]).parse().unwrap();
    assert!((3600..=3600 + 86_400).contains(&ttl), "window TTL {ttl}");
    store
        .save_session(&StoredSession {
            id: "s".into(),
            client_id: Some("c".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ttl: i64 = server.command(&["TTL", "test:session:s"]).parse().unwrap();
    assert!((590..=600).contains(&ttl), "session TTL {ttl}");
    let g2_key = format!("test:{{c:c}}:res:{}", g2.reservation);
    assert_eq!(server.command(&["EXISTS", &g2_key]), "1");
    store
        .settle("c", &w, &g2, Amounts::default(), false, Spent::default())
        .await
        .unwrap();
    assert_eq!(server.command(&["EXISTS", &g2_key]), "0");
}

#[tokio::test]
async fn redis_refuses_a_prefix_that_breaks_hash_tags() {
    let e = RedisStore::open(RedisOptions {
        url: "redis://127.0.0.1:1/0".into(),
        key_prefix: "a{b}".into(),
        session_ttl: Duration::from_secs(1),
        history_max: 1,
        history_retention: Duration::from_secs(1),
    })
    .err()
    .unwrap();
    assert!(e.0.contains("key_prefix"), "{e}");
}

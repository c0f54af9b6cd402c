//! What is particular to each store: SQLite reopening a file and pruning by age, reading an
//! older file's units; Redis applying a settlement once, expiring keys, checking its prefix.

use super::*;

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

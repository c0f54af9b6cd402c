//! What the store remembers: each client's history, and each session's owner.

use super::*;

pub(super) async fn history_is_per_client_newest_first(store: Arc<dyn StateStore>) {
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
    // A write keeps what it wrote and who confirmed it.
    let w = AuditRecord {
        time_ms: 4,
        client_id: "a".into(),
        tool: "run_query".into(),
        status: "ok".into(),
        write: Some("INSERT SCRATCH.PUBLIC.T".into()),
        confirmed: Some("ana, through elicitation".into()),
        ..Default::default()
    };
    store.record(&w).await.unwrap();
    assert_eq!(store.history("a", 1).await.unwrap()[0], w);
}

pub(super) async fn session_owners_are_written_once(store: Arc<dyn StateStore>) {
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

pub(super) async fn handles_keep_their_owner_and_expire(store: Arc<dyn StateStore>) {
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    assert!(store
        .save_handle("h1", "ana", "{\"v\":1}", later)
        .await
        .unwrap());
    assert!(
        !store
            .save_handle("h1", "bob", "{\"v\":2}", later)
            .await
            .unwrap(),
        "another owner's save changes nothing"
    );
    assert!(store
        .save_handle("h1", "ana", "{\"v\":3}", later)
        .await
        .unwrap());
    let got = store.load_handle("h1").await.unwrap().unwrap();
    assert_eq!(
        (got.owner.as_str(), got.record.as_str()),
        ("ana", "{\"v\":3}")
    );
    assert_eq!(store.load_handle("h2").await.unwrap(), None);
    // An expired handle is gone.
    let past = chrono::Utc::now().timestamp_millis() + 300;
    store.save_handle("h3", "ana", "{}", past).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(store.load_handle("h3").await.unwrap(), None);
}

pub(super) async fn a_taken_handle_is_taken_once(store: Arc<dyn StateStore>) {
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    store.save_handle("t1", "ana", "{}", later).await.unwrap();
    // Ten callers race for it: exactly one gets it.
    let takers = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_handle("t1").await.unwrap() })
    });
    let mut got = 0;
    for taker in takers {
        if let Some(h) = taker.await.unwrap() {
            assert_eq!((h.owner.as_str(), h.record.as_str()), ("ana", "{}"));
            got += 1;
        }
    }
    assert_eq!(got, 1);
    assert_eq!(store.load_handle("t1").await.unwrap(), None);
    assert_eq!(store.take_handle("never").await.unwrap(), None);
    // An expired one is not given.
    let soon = chrono::Utc::now().timestamp_millis() + 300;
    store.save_handle("t2", "ana", "{}", soon).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(store.take_handle("t2").await.unwrap(), None);
}

pub(super) async fn the_operator_reads_every_clients_trail_filtered(store: Arc<dyn StateStore>) {
    for (t, client, tool, status) in [
        (10, "ana", "run_query", "ok"),
        (20, "bob", "run_query", "sql_error"),
        (30, "ana", "list_databases", "ok"),
        (40, "bob", "run_query", "ok"),
    ] {
        let r = AuditRecord {
            time_ms: t,
            client_id: client.into(),
            tool: tool.into(),
            status: status.into(),
            ..Default::default()
        };
        store.record(&r).await.unwrap();
    }
    let times = |f: AuditFilter, limit| {
        let store = store.clone();
        async move {
            let got = store.recent_audit(&f, limit).await.unwrap();
            got.iter().map(|r| r.time_ms).collect::<Vec<_>>()
        }
    };
    assert_eq!(times(AuditFilter::default(), 10).await, [40, 30, 20, 10]);
    assert_eq!(times(AuditFilter::default(), 2).await, [40, 30]);
    let bob = AuditFilter {
        client: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(times(bob, 10).await, [40, 20]);
    let failed = AuditFilter {
        status: Some("sql_error".into()),
        ..Default::default()
    };
    assert_eq!(times(failed, 10).await, [20]);
    let queries_since = AuditFilter {
        tool: Some("run_query".into()),
        since_ms: Some(15),
        ..Default::default()
    };
    assert_eq!(times(queries_since, 10).await, [40, 20]);
}

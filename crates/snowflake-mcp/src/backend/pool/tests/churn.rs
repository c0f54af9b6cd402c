//! The pool's promises under churn: never more sessions on Snowflake than `max_sessions`, even
//! while retired, expired or evicted sessions are still logging out, and every login logged
//! out by shutdown — also a login a cancelled caller abandoned, and a lease dropped late.

use super::*;

fn limits(max_sessions: usize) -> PoolLimits {
    PoolLimits {
        max_sessions,
        min_idle: 0,
        max_lifetime: Duration::from_secs(60),
        heartbeat_every: Duration::from_secs(600),
        secondary_roles_none: false,
        login_timeout: Duration::from_secs(20),
        max_concurrent_logins: 2,
    }
}

fn peak(log: &Log) -> usize {
    log.peak_open.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_holds_its_place_until_its_logout_finished() {
    let (p, log) = pool_limits(limits(2));
    log.logout_ms.store(100, Ordering::SeqCst);
    let old = p.lease(&ctx("A", "S")).await.unwrap();
    tokio::time::advance(Duration::from_secs(40)).await;
    let young = p.lease(&ctx("B", "S")).await.unwrap();
    drop((old, young));
    tokio::time::advance(Duration::from_secs(30)).await;
    // The old one is past max_lifetime: retired (its logout takes 100 ms) while B is lent.
    let b = p.lease(&ctx("B", "S")).await.unwrap();
    let c = p.lease(&ctx("C", "S")).await.unwrap();
    assert!(
        peak(&log) <= 2,
        "{} sessions on Snowflake at once",
        peak(&log)
    );
    drop((b, c));
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(log.open.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn warming_up_and_failed_heartbeats_never_make_one_session_too_many() {
    let (p, log) = pool_limits(PoolLimits {
        min_idle: 2,
        heartbeat_every: Duration::from_secs(10),
        ..limits(2)
    });
    log.logout_ms.store(100, Ordering::SeqCst);
    let held = p.lease(&ctx("A", "S")).await.unwrap();
    p.maintain().await;
    assert!(peak(&log) <= 2, "warm-up: {}", peak(&log));
    assert_eq!(p.idle_count(), 1, "room for one more only");
    // The idle one fails its heartbeat and is retired; a lease meanwhile waits for its logout.
    tokio::time::advance(Duration::from_secs(11)).await;
    log.heartbeat_fails.store(true, Ordering::SeqCst);
    let (p2, c) = (p.clone(), ctx("B", "S"));
    let lease = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        p2.lease(&c).await.map(|_| ())
    });
    p.maintain().await;
    lease.await.unwrap().unwrap();
    assert!(peak(&log) <= 2, "heartbeat: {}", peak(&log));
    drop(held);
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(log.open.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_login_abandoned_by_a_cancelled_caller_during_shutdown_is_logged_out() {
    let (p, log) = pool_limits(limits(2));
    let (p2, c) = (p.clone(), ctx("D", "S"));
    let caller = tokio::spawn(async move { p2.lease(&c).await.map(|_| ()) });
    // 10 ms into its 50 ms login the caller goes away, and shutdown starts.
    tokio::time::sleep(Duration::from_millis(10)).await;
    caller.abort();
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        log.open.load(Ordering::SeqCst),
        0,
        "shutdown waited for the login and logged it out"
    );
    assert_eq!(
        log.logouts.load(Ordering::SeqCst),
        p.stats().logins.load(Ordering::SeqCst) as usize
    );
    assert!(
        p.lease(&ctx("D", "S")).await.is_err(),
        "nothing logs in after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_returned_after_shutdown_began_is_logged_out_and_waited_for() {
    let (p, log) = pool_limits(limits(2));
    let lease = p.lease(&ctx("D", "S")).await.unwrap();
    let p2 = p.clone();
    let shutdown = tokio::spawn(async move { p2.shutdown(Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the lent session"
    );
    drop(lease);
    shutdown.await.unwrap();
    assert_eq!(log.open.load(Ordering::SeqCst), 0);
    assert_eq!(p.idle_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_statement_without_an_answer_retires_its_session_and_counts_towards_the_circuit() {
    let (p, log) = pool_limits(limits(4));
    // Three established sessions; then Snowflake goes silent on each.
    let mut leases = Vec::new();
    for db in ["A", "B", "C"] {
        leases.push(p.lease(&ctx(db, "S")).await.unwrap());
    }
    for mut lease in leases {
        log.hang_next.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        let e = lease
            .session()
            .execute("SELECT 1", deadline)
            .await
            .unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5),
            "bounded by the deadline"
        );
        lease.retire_if_broken(&e);
        assert!(lease.session.is_none(), "retired");
    }
    assert!(
        p.breaker().is_open(),
        "Snowflake not answering opens the circuit"
    );
    assert_eq!(p.stats().retired.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_lease_waits_for_a_session_only_until_its_deadline() {
    let (p, _log) = pool_limits(limits(1));
    let _held = p.lease(&ctx("A", "S")).await.unwrap();
    let started = Instant::now();
    let e = p
        .lease_by(&ctx("A", "S"), started + Duration::from_secs(3))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, "busy", "{e:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn under_churn_snowflake_never_sees_more_sessions_than_the_pool_and_every_login_is_logged_out(
) {
    let (p, log) = pool_limits(PoolLimits {
        min_idle: 2,
        heartbeat_every: Duration::from_secs(2),
        max_lifetime: Duration::from_secs(5),
        ..limits(3)
    });
    log.logout_ms.store(30, Ordering::SeqCst);
    let upkeep = {
        let p = p.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(700)).await;
                p.maintain().await;
            }
        })
    };
    let mut callers = Vec::new();
    for i in 0..300u64 {
        let p = p.clone();
        let caller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 37 % 9_000)).await;
            let Ok(mut lease) = p.lease(&ctx(&format!("DB{}", i % 5), "S")).await else {
                return;
            };
            let _ = lease
                .session()
                .execute("SELECT 1", Instant::now() + Duration::from_secs(1))
                .await;
            if i % 7 == 0 {
                lease.retire();
            }
            tokio::time::sleep(Duration::from_millis(i % 50)).await;
        });
        callers.push(caller);
    }
    // Some callers go away mid-lease or mid-login.
    for (i, c) in callers.iter().enumerate() {
        if i % 11 == 0 {
            c.abort();
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    log.heartbeat_fails.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Shutdown in the middle of the traffic.
    p.shutdown(Duration::from_secs(30)).await;
    upkeep.abort();
    for c in callers {
        let _ = c.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(peak(&log) <= 3, "peak {}", peak(&log));
    assert_eq!(log.overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(log.open.load(Ordering::SeqCst), 0, "every login logged out");
    assert_eq!(
        log.logouts.load(Ordering::SeqCst),
        p.stats().logins.load(Ordering::SeqCst) as usize
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_that_does_not_fit_stays_when_there_is_room_for_another() {
    let (p, log) = pool_limits(limits(2));
    drop(p.lease(&ctx("A", "S")).await.unwrap());
    drop(p.lease(&Context::default()).await.unwrap());
    assert_eq!(p.idle_count(), 2, "the A session was kept, not dropped");
    assert_eq!(log.open.load(Ordering::SeqCst), 2);
    // A third context with no room: the least recently used makes room, logged out first.
    log.logout_ms.store(100, Ordering::SeqCst);
    let only_b = Context {
        database: Some("B".into()),
        ..Default::default()
    };
    drop(p.lease(&only_b).await.unwrap());
    assert!(peak(&log) <= 2, "{}", peak(&log));
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(log.open.load(Ordering::SeqCst), 0);
}

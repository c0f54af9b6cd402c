use super::*;
use crate::policy::QuotaPolicy;
use crate::state::WindowLimits;
use chrono::TimeZone;

#[tokio::test(start_paused = true)]
async fn one_client_cannot_drain_the_servers_rate_for_the_others() {
    let t0 = Instant::now();
    let mut server = ServerRate::new(60, t0);
    let (heavy, light): (Arc<str>, Arc<str>) = ("heavy".into(), "light".into());
    let mut got = 0;
    while server.take(&heavy, 1, t0).is_ok() {
        got += 1;
    }
    assert!(
        (30..=31).contains(&got),
        "alone, a client gets about half: {got}"
    );
    for i in 0..15 {
        assert!(server.take(&light, 1, t0).is_ok(), "light call {i}");
    }
    assert!(
        server.take(&heavy, 1, t0).is_err(),
        "the heaviest is refused first"
    );
    // A new minute starts afresh.
    let t1 = t0 + Duration::from_secs(61);
    assert!(server.take(&heavy, 1, t1).is_ok());
}

#[tokio::test(start_paused = true)]
async fn buckets_allow_a_burst_then_refill_at_the_rate() {
    let t0 = Instant::now();
    let mut b = Bucket::new(60, Some(3), t0);
    for _ in 0..3 {
        b.take(t0).unwrap();
    }
    let wait = b.take(t0).unwrap_err();
    assert_eq!(
        wait,
        Duration::from_secs(1),
        "one token per second at 60/min"
    );
    assert!(b.take(t0 + Duration::from_millis(999)).is_err());
    assert!(b.take(t0 + Duration::from_millis(1000)).is_ok());
    assert_eq!(
        b.available(t0 + Duration::from_secs(100)),
        3,
        "never more than the burst"
    );
    let mut d = Bucket::new(120, None, t0);
    assert_eq!(d.available(t0), 120, "burst defaults to one minute's worth");
    d.take(t0).unwrap();
    d.give_back();
    assert_eq!(d.available(t0), 120);
}

#[test]
fn credits_are_estimated_closely_even_for_short_statements() {
    // 500 ms on a Medium warehouse (4 credits/h): 0.000556 credits.
    assert_eq!(estimated_microcredits(500, 4.0), 556);
    // 100 ms on an X-Small one (1 credit/h) is not free.
    assert_eq!(estimated_microcredits(100, 1.0), 28);
    assert_eq!(estimated_microcredits(3_600_000, 1.0), 1_000_000);
    assert_eq!(estimated_microcredits(1_000, 0.0), 0);
}

#[test]
fn windows_and_their_edges() {
    let q = QuotaPolicy {
        per_day: WindowLimits {
            queries: Some(5),
            ..Default::default()
        },
        per_hour: WindowLimits {
            rows: Some(10),
            ..Default::default()
        },
        ..Default::default()
    };
    let just_before_midnight = Utc.with_ymd_and_hms(2026, 11, 24, 23, 59, 59).unwrap();
    let w = q.windows(just_before_midnight);
    assert_eq!(w[0].0, "d:2026-11-24");
    assert_eq!(w[1].0, "h:2026-11-24T23");
    assert_eq!(
        until_reset(&w[0].0, just_before_midnight),
        Duration::from_secs(1)
    );
    assert_eq!(
        until_reset(&w[1].0, just_before_midnight),
        Duration::from_secs(1)
    );
    let midnight = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    assert_eq!(
        q.windows(midnight)[0].0,
        "d:2026-11-25",
        "a new day is a new window"
    );
    assert_eq!(
        until_reset("d:2026-11-25", midnight),
        Duration::from_secs(86_400)
    );
    assert!(QuotaPolicy::default().windows(midnight).is_empty());
}

fn client(id: &str, rate: Option<RatePolicy>, quotas: QuotaPolicy) -> ClientPolicy {
    ClientPolicy {
        max_concurrent: 4,
        rate,
        quotas,
        ..ClientPolicy::for_test(id)
    }
}

fn store(name: &str) -> Arc<dyn StateStore> {
    let dir = std::env::temp_dir().join(format!(
        "snowflake-mcp-admission-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(crate::state::SqliteStore::open(&dir.join("state.db")).unwrap())
}

/// Issue 19: the per-client buckets grew with every client ever seen (anonymous ids are never
/// reused).
#[tokio::test(start_paused = true)]
async fn idle_rate_buckets_are_pruned() {
    let admission = Admission::new(store("buckets"), None, None);
    let rate = Some(RatePolicy {
        per_minute: 60,
        burst: None,
    });
    for i in 0..1000 {
        let c = client(&format!("anon-{i}"), rate, QuotaPolicy::default());
        admission.check_rate(&c).await.unwrap();
    }
    assert_eq!(lock(&admission.buckets).len(), 1000);
    // A client still short of tokens keeps its bucket: forgetting it would refill it.
    let slow = Some(RatePolicy {
        per_minute: 1,
        burst: Some(5),
    });
    let busy = client("busy", slow, QuotaPolicy::default());
    for _ in 0..5 {
        admission.check_rate(&busy).await.unwrap();
    }
    assert!(admission.check_rate(&busy).await.is_err());
    tokio::time::advance(Duration::from_secs(61)).await;
    let newcomer = client("newcomer", rate, QuotaPolicy::default());
    admission.check_rate(&newcomer).await.unwrap();
    assert_eq!(
        lock(&admission.buckets).len(),
        2,
        "only the newcomer's and the busy client's buckets are left"
    );
    admission.check_rate(&busy).await.unwrap();
    assert!(
        admission.check_rate(&busy).await.is_err(),
        "the busy client's bucket was kept, not refilled"
    );
}

/// Issue 19: four 3-second statements started at once against `statement_seconds_per_day = 4`
/// held Snowflake for 12 s.
#[tokio::test]
async fn four_statements_at_once_against_four_seconds_charge_at_most_five() {
    let admission = Admission::new(store("seconds"), None, None);
    let c = client(
        "c",
        None,
        QuotaPolicy {
            per_day: WindowLimits {
                seconds: Some(4),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let cost = Cost {
        ms: 120_000,
        microcredits_per_hour: 0,
    };
    let want = Amounts {
        rows: 10,
        bytes: 1000,
    };
    let admission = Arc::new(admission);
    // All four are admitted (or refused) before any of them ends.
    let together = Arc::new(tokio::sync::Barrier::new(4));
    let statements: Vec<_> = (0..4)
        .map(|_| {
            let (admission, c, together) = (admission.clone(), c.clone(), together.clone());
            tokio::spawn(crate::observe::progress::scope(None, async move {
                let ticket = admission.reserve(&c, want, cost).await;
                together.wait().await;
                let ticket = match ticket {
                    Ok(t) => t.unwrap(),
                    Err(e) => {
                        assert_eq!(e.kind, "quota_exceeded", "{}", e.message);
                        return None;
                    }
                };
                let timeout = ticket.granted().ms.unwrap();
                // It runs 3 s or is stopped at its timeout, capped to its reservation.
                crate::observe::progress::report(crate::observe::progress::Stage::Running);
                crate::observe::progress::held(Duration::from_millis(timeout.min(3_000)));
                ticket.settle(Ok(Amounts::default())).await;
                Some(timeout)
            }))
        })
        .collect();
    let mut timeouts = Vec::new();
    for s in statements {
        timeouts.extend(s.await.unwrap());
    }
    assert!(
        !timeouts.is_empty() && timeouts.iter().sum::<u64>() <= 5_000,
        "reservations {timeouts:?}"
    );
    let window = &c.quotas.windows(Utc::now())[0].0;
    let used = admission.store().usage("c", window).await.unwrap();
    assert!(
        (3_000..=5_000).contains(&used.ms),
        "charged {} ms against 4 s",
        used.ms
    );
}

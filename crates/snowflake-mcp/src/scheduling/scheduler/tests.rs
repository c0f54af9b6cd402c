//! Deterministic scheduler tests on tokio's paused clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

fn limits(capacity: usize) -> SchedulerLimits {
    SchedulerLimits {
        capacity,
        max_queue_per_client: 1_000,
        max_queue_total: 10_000,
        queue_timeout: Duration::from_secs(600),
        warehouse_caps: HashMap::new(),
    }
}

fn client(id: &str, weight: u32, max_concurrent: usize) -> ClientShare {
    ClientShare {
        id: id.into(),
        label: id.into(),
        weight,
        max_concurrent,
        group: None,
    }
}

/// Each client submits `n` requests at once, each holding its permit for 10 ms; returns the
/// order in which requests were granted.
async fn flood(s: &Scheduler, clients: &[(ClientShare, usize)]) -> Vec<String> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (c, n) in clients {
        for _ in 0..*n {
            let (s, c, order) = (s.clone(), c.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = s.acquire(&c).await.unwrap();
                order.lock().unwrap().push(c.id.to_string());
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(permit);
            }));
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = order.lock().unwrap().clone();
    v
}

#[tokio::test(start_paused = true)]
async fn shares_follow_weights_under_contention() {
    let s = Scheduler::new(limits(1));
    let clients = [
        (client("a", 1, 8), 70),
        (client("b", 2, 8), 70),
        (client("c", 4, 8), 70),
    ];
    let order = flood(&s, &clients).await;
    // While all three are backlogged (the first 70 grants), shares follow 1:2:4.
    let window = &order[..70];
    let count = |id: &str| window.iter().filter(|x| *x == id).count() as f64;
    for (id, expected) in [("a", 10.0), ("b", 20.0), ("c", 40.0)] {
        assert!(
            (count(id) - expected).abs() <= 2.0,
            "{id}: {} of 70 (expected {expected})",
            count(id)
        );
    }
    assert_eq!(s.stats(), SchedulerStats::default());
}

#[tokio::test(start_paused = true)]
async fn a_flooding_client_does_not_starve_a_late_one() {
    let s = Scheduler::new(limits(2));
    let heavy = client("heavy", 1, 8);
    let light = client("light", 1, 8);
    let order = flood(&s, &[(heavy, 100), (light, 5)]).await;
    let last_light = order.iter().rposition(|x| x == "light").unwrap();
    assert!(
        last_light < 20,
        "light finished only at grant {last_light}: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_concurrent_is_never_exceeded() {
    let s = Scheduler::new(limits(8));
    let peak = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, peak, running) = (s.clone(), peak.clone(), running.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = s.acquire(&client("capped", 1, 2)).await.unwrap();
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            running.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn queues_are_bounded_and_waits_time_out() {
    let s = Scheduler::new(SchedulerLimits {
        capacity: 1,
        max_queue_per_client: 1,
        max_queue_total: 2,
        queue_timeout: Duration::from_secs(2),
        warehouse_caps: HashMap::new(),
    });
    let held = s.acquire(&client("a", 1, 4)).await.unwrap();
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(&client("a", 1, 4)).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    let e = s.acquire(&client("a", 1, 4)).await.err().unwrap();
    assert_eq!(e.kind, "busy");
    assert!(e.retry_after_ms.is_some());
    let other = {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(&client("b", 1, 4)).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    let full = s.acquire(&client("c", 1, 4)).await.err().unwrap();
    assert!(full.message.contains("queue is full"), "{}", full.message);

    let started = tokio::time::Instant::now();
    let timed_out = waiting.await.unwrap().unwrap_err();
    assert_eq!(timed_out.kind, "busy");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(other.await.unwrap().is_err());
    assert_eq!(
        s.stats(),
        SchedulerStats {
            running: 1,
            queued: 0,
            warehouses: vec![]
        }
    );
    drop(held);
    assert_eq!(s.stats(), SchedulerStats::default());
    // Every client that ended, gave up or was refused is forgotten: nothing left per client.
    assert!(
        lock(&s.inner.state).clients.is_empty(),
        "idle clients are kept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let s = Scheduler::new(limits(1));
    let held = s.acquire(&client("a", 1, 4)).await.unwrap();
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(&client("b", 1, 4)).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    assert_eq!(s.stats().queued, 1);
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(
        s.stats(),
        SchedulerStats {
            running: 1,
            queued: 0,
            warehouses: vec![]
        }
    );
    drop(held);
    assert_eq!(s.stats(), SchedulerStats::default());
    // The slot is free for the next comer at once.
    let again = tokio::time::timeout(Duration::from_millis(1), s.acquire(&client("c", 1, 1))).await;
    assert!(again.is_ok());
}

#[tokio::test(start_paused = true)]
async fn many_equal_clients_in_closed_loops_share_equally() {
    let s = Scheduler::new(limits(4));
    let counts = Arc::new(Mutex::new(vec![0usize; 100]));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (s, counts) = (s.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let me = client(&format!("anonymous-{i}"), 1, 4);
            let end = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::time::Instant::now() < end {
                let permit = s.acquire(&me).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(permit);
                counts.lock().unwrap()[i] += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "unequal service: min {min}, max {max}");
}

#[tokio::test(start_paused = true)]
async fn a_group_cap_holds_across_its_members_and_leaves_others_alone() {
    let s = Scheduler::new(limits(8));
    let member = |id: &str| ClientShare {
        group: Some(("anonymous".into(), 2)),
        ..client(id, 1, 4)
    };
    let mut held = Vec::new();
    for i in 0..6 {
        let share = member(&format!("anon-{i}"));
        if let Ok(p) = tokio::time::timeout(Duration::from_millis(10), s.acquire(&share)).await {
            held.push(p.unwrap());
        }
    }
    assert_eq!(
        held.len(),
        2,
        "six anonymous clients hold two permits together"
    );
    let other = s.acquire(&client("configured", 1, 4)).await.unwrap();
    assert_eq!(
        s.stats().running,
        3,
        "a client outside the group is not held back"
    );
    drop(held.pop());
    let share = member("anon-late");
    let late = tokio::time::timeout(Duration::from_millis(10), s.acquire(&share)).await;
    assert!(
        late.is_ok(),
        "a freed group permit goes to a waiting member"
    );
    drop(other);
}

/// Clients in closed loops, each statement holding its permit for the client's own duration,
/// for `run` of virtual time; returns each client's total session-time.
async fn closed_loops(
    s: &Scheduler,
    clients: &[(ClientShare, Duration, usize)],
    run: Duration,
) -> HashMap<String, Duration> {
    let held = Arc::new(Mutex::new(HashMap::<String, Duration>::new()));
    let end = tokio::time::Instant::now() + run;
    let mut tasks = Vec::new();
    for (c, length, parallel) in clients {
        for _ in 0..*parallel {
            let (s, c, held, length) = (s.clone(), c.clone(), held.clone(), *length);
            tasks.push(tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    let permit = s.acquire(&c).await.unwrap();
                    let start = tokio::time::Instant::now();
                    tokio::time::sleep(length.min(end.saturating_duration_since(start))).await;
                    *held.lock().unwrap().entry(c.id.to_string()).or_default() += start.elapsed();
                    drop(permit);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = held.lock().unwrap().clone();
    h
}

#[tokio::test(start_paused = true)]
async fn session_time_is_shared_by_weight_whatever_the_statement_lengths() {
    let s = Scheduler::new(limits(4));
    let held = closed_loops(
        &s,
        &[
            (client("long", 1, 8), Duration::from_secs(2), 8),
            (client("short", 1, 8), Duration::from_millis(50), 8),
        ],
        Duration::from_secs(600),
    )
    .await;
    let (long, short) = (held["long"].as_secs_f64(), held["short"].as_secs_f64());
    let share = short / (long + short);
    assert!(
        (share - 0.5).abs() <= 0.05,
        "short statements' share of session-time: {share:.3}"
    );

    let s = Scheduler::new(limits(4));
    let held = closed_loops(
        &s,
        &[
            (client("w1", 1, 8), Duration::from_millis(700), 8),
            (client("w2", 2, 8), Duration::from_millis(50), 8),
            (client("w4", 4, 8), Duration::from_millis(300), 8),
        ],
        Duration::from_secs(900),
    )
    .await;
    let total: f64 = held.values().map(Duration::as_secs_f64).sum();
    for (id, target) in [("w1", 1.0 / 7.0), ("w2", 2.0 / 7.0), ("w4", 4.0 / 7.0)] {
        let share = held[id].as_secs_f64() / total;
        assert!(
            (share - target).abs() <= 0.05 * target + 0.01,
            "{id}: share {share:.3}, target {target:.3}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_light_client_waits_at_most_about_one_heavy_statement() {
    let s = Scheduler::new(limits(2));
    let heavy = tokio::spawn({
        let s = s.clone();
        async move {
            closed_loops(
                &s,
                &[(client("heavy", 1, 8), Duration::from_secs(2), 16)],
                Duration::from_secs(120),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let asked = tokio::time::Instant::now();
        let permit = s.acquire(&client("light", 1, 8)).await.unwrap();
        worst = worst.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(permit);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(
        worst <= Duration::from_millis(2100),
        "the light client waited {worst:?}"
    );
    heavy.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_warehouse_at_its_cap_never_holds_up_another_warehouse() {
    let mut l = limits(8);
    l.warehouse_caps.insert("FLOODED".into(), 2);
    let s = Scheduler::new(l);
    let a = client("a", 1, 8);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(s.acquire_on(&a, Some("FLOODED")).await.unwrap());
    }
    // Same client: a third statement on the flooded warehouse waits...
    let third = {
        let (s, a) = (s.clone(), a.clone());
        tokio::spawn(async move { s.acquire_on(&a, Some("FLOODED")).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    // ...while its statement on another warehouse goes straight through.
    let other =
        tokio::time::timeout(Duration::from_millis(1), s.acquire_on(&a, Some("OTHER"))).await;
    assert!(other.is_ok(), "no head-of-line blocking across warehouses");
    let stats = s.stats();
    assert!(
        stats.warehouses.contains(&("FLOODED".to_string(), 2, 1)),
        "{:?}",
        stats.warehouses
    );
    drop(held.pop());
    assert!(
        third.await.unwrap().is_ok(),
        "a freed warehouse slot goes to its waiter"
    );
}

#[tokio::test(start_paused = true)]
async fn release_says_whether_it_let_a_waiter_in() {
    let s = Scheduler::new(limits(1));
    // Nobody waits: giving the permit back grants nothing.
    let alone = s.acquire(&client("a", 1, 4)).await.unwrap();
    assert!(!alone.release());
    assert_eq!(s.stats(), SchedulerStats::default());
    // Someone waits: the release grants it, and the permit is not given back twice.
    let held = s.acquire(&client("a", 1, 4)).await.unwrap();
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(&client("b", 1, 4)).await.map(|p| p.release()) })
    };
    tokio::task::yield_now().await;
    assert_eq!(s.stats().queued, 1);
    assert!(held.release());
    assert!(
        !waiter.await.unwrap().unwrap(),
        "nobody else waited behind b"
    );
    assert_eq!(s.stats(), SchedulerStats::default());
}

/// The scan [`ready`] replaced: every client with a waiting request that may take a permit,
/// smallest (virtual time, chosen request's id) first.
fn next_grant_by_scan(inner: &Inner, state: &State) -> Option<(Arc<str>, usize)> {
    state
        .clients
        .iter()
        .filter(|(_, c)| !c.waiters.is_empty() && inner.may_take(state, c))
        .filter_map(|(id, c)| {
            let pos = c
                .waiters
                .iter()
                .position(|w| inner.warehouse_has_room(state, w.warehouse.as_deref()))?;
            Some(((c.vtime, c.waiters[pos].id), id.clone(), pos))
        })
        .min_by_key(|(key, _, _)| *key)
        .map(|(_, id, pos)| (id, pos))
}

/// The serving-order index holds exactly the waiting clients at their current places, and
/// picks whom the full scan would pick; whether the pick is a real one.
fn check_index(s: &Scheduler) -> bool {
    let state = lock(&s.inner.state);
    let mut expected: Vec<_> = state
        .clients
        .values()
        .filter_map(|c| c.place().map(|p| (p, c.id.clone())))
        .collect();
    expected.sort();
    assert_eq!(state.ready.entries(), expected);
    for c in state.clients.values() {
        assert_eq!(c.place, c.place(), "client {} out of place", c.id);
    }
    let picked = s.inner.next_grant(&state);
    assert_eq!(picked, next_grant_by_scan(&s.inner, &state));
    picked.is_some()
}

#[tokio::test(start_paused = true)]
async fn the_serving_order_index_agrees_with_a_full_scan() {
    let mut caps = limits(3);
    caps.warehouse_caps.insert("W1".into(), 1);
    let s = Scheduler::new(caps);
    // Weights 1–3, caps of 1 and 2, a group of four capped at 2, three warehouses (one capped).
    let shares: Vec<ClientShare> = (0..12)
        .map(|i| ClientShare {
            group: (i % 3 == 0).then(|| ("g".into(), 2)),
            ..client(&format!("c{i}"), 1 + (i % 3) as u32, 1 + i % 2)
        })
        .collect();
    let warehouses = [None, Some("W1"), Some("W2")];
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut pick = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut requests = Vec::new();
    let mut contended = 0;
    for _ in 0..3_000 {
        match pick(4) {
            // A request that holds its permit until its sender is dropped.
            0 | 1 => {
                let (s, share) = (s.clone(), shares[pick(shares.len())].clone());
                let warehouse = warehouses[pick(warehouses.len())];
                let (release, held) = oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    if let Ok(_permit) = s.acquire_on(&share, warehouse).await {
                        let _ = held.await;
                    }
                });
                requests.push((task, release));
            }
            // One ends: its statement finishes, or its caller goes away (waiting or running).
            _ if !requests.is_empty() => {
                let (task, release) = requests.swap_remove(pick(requests.len()));
                if pick(2) == 0 {
                    task.abort();
                }
                drop(release);
            }
            _ => {}
        }
        tokio::time::advance(Duration::from_millis(pick(5) as u64)).await;
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        contended += usize::from(check_index(&s));
    }
    assert!(
        contended > 500,
        "only {contended} checks had a waiting client that could go next"
    );
    requests.clear();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(s.stats(), SchedulerStats::default());
    assert!(lock(&s.inner.state).ready.entries().is_empty());
}

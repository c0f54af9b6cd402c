//! Deterministic pool tests: a scripted connector on tokio's paused clock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use snowflake_client::ErrorKind;

/// Everything the fake sessions did, for assertions.
#[derive(Default)]
struct Log {
    statements: Mutex<Vec<(usize, String)>>,
    busy: Mutex<HashSet<usize>>,
    overlaps: AtomicUsize,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    next_id: AtomicUsize,
    fail_next: AtomicBool,
    /// How logins behave: 0 works, 1 fails at once, 2 never answers.
    connect_mode: std::sync::atomic::AtomicU8,
    connecting: AtomicUsize,
    peak_connecting: AtomicUsize,
    /// The next statement gets no answer (it waits out its deadline).
    hang_next: AtomicBool,
    /// Heartbeats fail.
    heartbeat_fails: AtomicBool,
    /// A logout takes this long before Snowflake has it (ms).
    logout_ms: std::sync::atomic::AtomicU64,
    logouts: AtomicUsize,
}

struct FakeConnector {
    default: Context,
    log: Arc<Log>,
}

struct FakeSession {
    id: usize,
    context: Context,
    log: Arc<Log>,
}

#[async_trait]
impl Connector for FakeConnector {
    type Session = FakeSession;
    fn default_context(&self) -> &Context {
        &self.default
    }
    async fn connect(&self, ctx: &Context) -> Result<FakeSession, SfError> {
        let now = self.log.connecting.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.peak_connecting.fetch_max(now, Ordering::SeqCst);
        let _done = Decrement(&self.log.connecting);
        let mode = self.log.connect_mode.load(Ordering::SeqCst);
        if mode == 0 {
            // Like Snowflake, the session exists once the login arrives, before its answer.
            let open = self.log.open.fetch_add(1, Ordering::SeqCst) + 1;
            self.log.peak_open.fetch_max(open, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        match mode {
            1 => return Err(SfError::new(ErrorKind::Network, "connection refused")),
            2 => std::future::pending::<()>().await,
            _ => {}
        }
        Ok(FakeSession {
            id: self.log.next_id.fetch_add(1, Ordering::SeqCst),
            context: ctx.clone(),
            log: self.log.clone(),
        })
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl PooledSession for FakeSession {
    fn context(&self) -> &Context {
        &self.context
    }
    fn record_context(&mut self, known: &Context) {
        if known.role.is_some() {
            self.context.role.clone_from(&known.role);
        }
        if known.warehouse.is_some() {
            self.context.warehouse.clone_from(&known.warehouse);
        }
    }
    fn is_poisoned(&self) -> bool {
        false
    }
    async fn execute(&mut self, sql: &str, deadline: Instant) -> Result<(), SfError> {
        if !self.log.busy.lock().unwrap().insert(self.id) {
            self.log.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        if self.log.hang_next.swap(false, Ordering::SeqCst) {
            // Like the client: no answer by the deadline is a timeout without a code.
            tokio::time::sleep_until(deadline).await;
            self.log.busy.lock().unwrap().remove(&self.id);
            return Err(SfError::new(ErrorKind::Timeout, "no answer"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.log.busy.lock().unwrap().remove(&self.id);
        self.log
            .statements
            .lock()
            .unwrap()
            .push((self.id, sql.to_string()));
        if self.log.fail_next.swap(false, Ordering::SeqCst) {
            return Err(SfError::new(ErrorKind::Network, "connection reset"));
        }
        // Emulate Snowflake: USE SCHEMA "D"."S" / USE DATABASE "D" move the session.
        let names: Vec<String> = sql
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if sql.starts_with("USE SCHEMA") {
            self.context.database = Some(names[0].clone());
            self.context.schema = Some(names[1].clone());
        } else if sql.starts_with("USE DATABASE") {
            self.context.database = Some(names[0].clone());
            self.context.schema = Some("PUBLIC".into());
        }
        Ok(())
    }
    async fn heartbeat(&mut self) -> Result<(), SfError> {
        if self.log.heartbeat_fails.load(Ordering::SeqCst) {
            return Err(SfError::new(ErrorKind::Network, "connection reset"));
        }
        Ok(())
    }
    async fn close(self) {
        let ms = self.log.logout_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.log.open.fetch_sub(1, Ordering::SeqCst);
        self.log.logouts.fetch_add(1, Ordering::SeqCst);
    }
}

fn pool(max_sessions: usize) -> (Pool<FakeConnector>, Arc<Log>) {
    pool_with(max_sessions, false)
}

fn pool_with(max_sessions: usize, secondary_roles_none: bool) -> (Pool<FakeConnector>, Arc<Log>) {
    pool_limits(PoolLimits {
        max_sessions,
        min_idle: 0,
        max_lifetime: Duration::from_secs(3600),
        heartbeat_every: Duration::from_secs(600),
        secondary_roles_none,
        login_timeout: Duration::from_secs(20),
        max_concurrent_logins: 2,
    })
}

fn pool_limits(limits: PoolLimits) -> (Pool<FakeConnector>, Arc<Log>) {
    let log = Arc::new(Log::default());
    let connector = FakeConnector {
        default: Context::default(),
        log: log.clone(),
    };
    (Pool::new(connector, limits), log)
}

fn ctx(db: &str, schema: &str) -> Context {
    Context {
        database: Some(db.into()),
        schema: Some(schema.into()),
        warehouse: Some("WH".into()),
        role: None,
    }
}

#[tokio::test(start_paused = true)]
async fn only_differing_use_statements_run_and_matching_sessions_are_preferred() {
    let (pool, log) = pool(4);
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    let first: Vec<String> = log
        .statements
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(first, ["USE WAREHOUSE \"WH\"", "USE SCHEMA \"A\".\"S\""]);
    drop(pool.lease(&ctx("B", "T")).await.unwrap());
    // B could reuse the idle A session with one USE SCHEMA (the warehouse already matches).
    assert_eq!(
        log.statements.lock().unwrap().last().unwrap().1,
        "USE SCHEMA \"B\".\"T\""
    );
    let switches = pool.stats().context_switches.load(Ordering::SeqCst);
    drop(pool.lease(&ctx("B", "T")).await.unwrap());
    assert_eq!(
        pool.stats().context_switches.load(Ordering::SeqCst),
        switches,
        "an exact match pays no switch"
    );
    assert_eq!(pool.stats().logins.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_is_never_shared_and_the_pool_never_grows_past_its_size() {
    let (pool, log) = pool(3);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let wanted = ctx(&format!("DB{}", i % 7), "S");
            let mut lease = pool.lease(&wanted).await.unwrap();
            assert_eq!(lease.session().context().database, wanted.database);
            lease
                .session()
                .execute("SELECT 1", Instant::now() + Duration::from_secs(1))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        log.overlaps.load(Ordering::SeqCst),
        0,
        "two statements ran on one session at once"
    );
    assert!(
        log.peak_open.load(Ordering::SeqCst) <= 3,
        "peak {}",
        log.peak_open.load(Ordering::SeqCst)
    );
    assert_eq!(pool.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_session_broken_mid_lease_is_replaced() {
    let (pool, log) = pool(1);
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    log.fail_next.store(true, Ordering::SeqCst);
    let err = pool.lease(&ctx("B", "S")).await.err().unwrap();
    assert_eq!(err.kind, "unavailable", "{err}");
    assert_eq!(pool.stats().retired.load(Ordering::SeqCst), 1);
    let mut lease = pool.lease(&ctx("B", "S")).await.unwrap();
    assert_eq!(lease.session().context().database.as_deref(), Some("B"));
    assert_eq!(
        pool.stats().logins.load(Ordering::SeqCst),
        2,
        "a fresh session replaced the broken one"
    );
}

#[tokio::test(start_paused = true)]
async fn no_session_forgets_a_database_for_a_request_without_one() {
    let (pool, _log) = pool(2);
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    let mut lease = pool.lease(&Context::default()).await.unwrap();
    assert_eq!(lease.session().context().database, None);
    assert_eq!(pool.stats().logins.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn old_sessions_retire_and_idle_ones_get_heartbeats() {
    let (pool, log) = pool(2);
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    tokio::time::advance(Duration::from_secs(601)).await;
    pool.maintain().await;
    assert_eq!(pool.stats().heartbeats.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
    tokio::time::advance(Duration::from_secs(3000)).await;
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    assert_eq!(
        pool.stats().retired.load(Ordering::SeqCst),
        1,
        "past max_lifetime"
    );
    assert_eq!(pool.stats().logins.load(Ordering::SeqCst), 2);
    tokio::task::yield_now().await;
    assert_eq!(log.open.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn every_new_session_switches_secondary_roles_off_before_use_and_is_dropped_if_it_cannot() {
    let (pool, log) = pool_with(2, true);
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    let statements: Vec<String> = log
        .statements
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(statements[0], "USE SECONDARY ROLES NONE", "{statements:?}");
    // A reused session does not repeat it.
    drop(pool.lease(&ctx("A", "S")).await.unwrap());
    let count = |log: &Log| {
        log.statements
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.contains("SECONDARY"))
            .count()
    };
    assert_eq!(count(&log), 1);
    // A session on which it fails is closed, never lent.
    let (pool, log) = pool_with(2, true);
    log.fail_next.store(true, Ordering::SeqCst);
    assert!(pool.lease(&ctx("A", "S")).await.is_err());
    assert!(
        log.statements
            .lock()
            .unwrap()
            .iter()
            .all(|(_, s)| s.contains("SECONDARY")),
        "nothing ran on it"
    );
    tokio::task::yield_now().await;
    assert_eq!(
        log.open.load(Ordering::SeqCst),
        0,
        "the session was logged out"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_snowflake_trips_the_circuit_and_a_probe_closes_it_when_it_is_back() {
    let (pool, log) = pool(4);
    log.connect_mode.store(2, Ordering::SeqCst); // accepts, never answers
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        let e = pool.lease(&ctx("A", "S")).await.err().unwrap();
        assert_eq!(e.kind, "unavailable", "{e:?}");
    }
    assert!(
        started.elapsed() <= Duration::from_secs(61),
        "three logins, each bounded by the login timeout: {:?}",
        started.elapsed()
    );
    assert!(pool.breaker().is_open());
    // Open: refused at once, with a retry hint, no login attempted.
    let logins = pool.stats().logins.load(Ordering::SeqCst);
    let before = tokio::time::Instant::now();
    let e = pool.lease(&ctx("A", "S")).await.err().unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
    assert!(
        e.retry_after_ms.is_some() && e.message.contains("not answering"),
        "{e:?}"
    );
    assert_eq!(pool.stats().logins.load(Ordering::SeqCst), logins);
    // Snowflake comes back: the background probe closes the circuit by itself.
    log.connect_mode.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!pool.breaker().is_open(), "recovered without a restart");
    assert!(pool.lease(&ctx("A", "S")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_new_sessions_logs_in_a_few_at_a_time() {
    let (pool, log) = pool(8);
    let mut leases = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        leases.push(tokio::spawn(async move {
            pool.lease(&ctx("A", "S")).await.is_ok()
        }));
    }
    for l in leases {
        assert!(l.await.unwrap());
    }
    assert_eq!(
        log.peak_connecting.load(Ordering::SeqCst),
        2,
        "at most two logins at once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_dropped_while_logging_in_leaves_no_session_behind() {
    let (p, log) = pool(2);
    let c = ctx("D", "S");
    // Cancelled 10 ms into its 50 ms login: the login finishes anyway and the session is
    // kept, not forgotten open.
    let p2 = p.clone();
    let c2 = c.clone();
    let cancelled = tokio::spawn(async move { p2.lease(&c2).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    cancelled.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.idle_count(), 1, "the orphaned login joined the idle list");
    assert_eq!(p.in_use(), 0, "and gave its permit back");
    drop(p.lease(&c).await.unwrap());
    assert_eq!(
        log.open.load(Ordering::SeqCst),
        1,
        "and was reused, not logged in again"
    );
    p.close_idle().await;
    assert_eq!(
        log.open.load(Ordering::SeqCst),
        0,
        "every login was logged out"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retired_session_holds_its_place_until_it_is_logged_out() {
    let (p, log) = pool(1);
    let c = ctx("D", "S");
    let mut lease = p.lease(&c).await.unwrap();
    lease.retire();
    assert_eq!(p.in_use(), 1, "the permit waits for the logout");
    drop(lease);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(p.in_use(), 0);
    drop(p.lease(&c).await.unwrap());
    assert!(log.peak_open.load(Ordering::SeqCst) <= 1);
}

mod churn;

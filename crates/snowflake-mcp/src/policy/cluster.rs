//! Limits that hold across replicas: a client's rate limit, a client's `max_concurrent` and a
//! warehouse's `max_concurrent`, coordinated through the shared store ([`Coordinator`], kept
//! by `state/redis.rs`) — and what each does when the store cannot be reached.
//!
//! Each replica's own weighted fair scheduler still decides whose request tries next; a
//! request it grants then takes a cluster-wide [`Lease`] for its client and, when the
//! warehouse is capped, for the warehouse, waiting (within the queue deadline) while another
//! replica holds the last place. Leases live in sorted sets scored by their expiry, are
//! renewed every few seconds while the statement runs and released when it ends; a replica
//! that dies leaves its leases to expire within [`LEASE_TTL`].
//!
//! When the store fails (every call is bounded by [`CALL_DEADLINE`]):
//! * rate limits fail **open** to a local token bucket at this replica's share of the limit
//!   (the limit divided by the replicas last seen alive);
//! * concurrency caps fall back to the same static share, counted locally;
//! * quotas are not here: they fail **closed** (`unavailable`), see `admission.rs`.
//!
//! Recovery is automatic: the next call tries the store again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ToolError;
use crate::lock;
use crate::policy::rate::{Bucket, Buckets};
use crate::policy::{ClientShare, RatePolicy};
use crate::principal::ANONYMOUS_PREFIX;
use crate::state::coordinator::{Coordinator, RateOp, Scope};
use crate::state::StoreError;

/// A lease not renewed for this long is gone (its replica died or lost the store).
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Leases are renewed, and the replica's heartbeat written, this often.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The longest one coordination round trip may take before the local fallback decides.
pub const CALL_DEADLINE: Duration = Duration::from_millis(500);

/// This replica's view of the cluster.
pub struct Cluster {
    coordinator: Arc<dyn Coordinator>,
    /// This replica's name in the store (random per process).
    replica: String,
    /// Capped warehouses (upper-case names) and their caps.
    warehouse_caps: HashMap<String, usize>,
    /// How long a granted request may wait for its leases.
    queue_timeout: Duration,
    /// Replicas last seen alive (at least this one).
    replicas: AtomicUsize,
    next: AtomicU64,
    /// Leases held in the store, for renewal.
    held: Mutex<HashMap<u64, Vec<(Scope, usize)>>>,
    /// Places taken locally while the store was unreachable.
    fallback: Mutex<HashMap<Scope, usize>>,
    /// Rate buckets used while the store is unreachable.
    buckets: Mutex<Buckets>,
    /// The last coordination call failed.
    degraded: AtomicBool,
}

impl Cluster {
    /// Start coordinating through `coordinator`: the heartbeat and lease renewal run every few
    /// seconds for as long as the cluster lives.
    pub fn start(
        coordinator: Arc<dyn Coordinator>,
        warehouse_caps: HashMap<String, usize>,
        queue_timeout: Duration,
    ) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            coordinator,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            warehouse_caps,
            queue_timeout,
            replicas: AtomicUsize::new(1),
            next: AtomicU64::new(1),
            held: Mutex::default(),
            fallback: Mutex::default(),
            buckets: Mutex::new(Buckets::new(Instant::now())),
            degraded: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            loop {
                tick.tick().await;
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                cluster.upkeep().await;
            }
        });
        cluster
    }

    /// Replicas last seen alive.
    pub fn replicas(&self) -> usize {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// True while the store cannot be reached and local fallbacks decide.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// One bounded coordination call; `None` (and degraded) when it failed or timed out.
    async fn ask<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        match tokio::time::timeout(CALL_DEADLINE, call).await {
            Ok(Ok(v)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "the shared state store answers again; cluster-wide limits are back"
                    );
                }
                Some(v)
            }
            failed => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".to_string(),
                    };
                    tracing::error!(error = %why, "the shared state store is unreachable; rate limits and concurrency caps fall back to this replica's share");
                }
                None
            }
        }
    }

    /// This replica's share of a cluster-wide `limit`.
    fn share(&self, limit: u64) -> u64 {
        (limit / self.replicas() as u64).max(1)
    }

    /// Take one call of `client` at `rate`, or say how long to wait.
    pub async fn take_rate(&self, client: &Arc<str>, rate: RatePolicy) -> Result<(), Duration> {
        let burst = rate.burst_size();
        if rate.per_minute == 0 {
            return Err(Duration::from_secs(3600));
        }
        let asked = self
            .coordinator
            .rate(client, rate.per_minute, burst, RateOp::Take);
        match self.ask(asked).await {
            Some((1, _)) => Ok(()),
            Some((_, wait)) => Err(Duration::from_millis(wait.max(1) as u64)),
            None => {
                let now = Instant::now();
                let per_minute = self.share(u64::from(rate.per_minute)) as u32;
                let burst = self.share(u64::from(burst)) as u32;
                lock(&self.buckets).take(client, || Bucket::new(per_minute, Some(burst), now), now)
            }
        }
    }

    /// Undo one [`Cluster::take_rate`] (a later check refused the call).
    pub async fn give_back(&self, client: &Arc<str>, rate: RatePolicy) {
        let burst = rate.burst_size();
        let asked = self
            .coordinator
            .rate(client, rate.per_minute, burst, RateOp::GiveBack);
        if self.ask(asked).await.is_none() {
            if let Some(b) = lock(&self.buckets).get_mut(client) {
                b.give_back();
            }
        }
    }

    /// Calls `client` may make now.
    pub async fn available(&self, client: &Arc<str>, rate: RatePolicy) -> u64 {
        let burst = rate.burst_size();
        let asked = self
            .coordinator
            .rate(client, rate.per_minute, burst, RateOp::Peek);
        match self.ask(asked).await {
            Some((n, _)) => n.max(0) as u64,
            None => lock(&self.buckets)
                .get_mut(client)
                .map_or(u64::from(burst), |b| b.available(Instant::now())),
        }
    }

    /// The cluster-wide places a granted request needs: its client's (`max_concurrent`) and,
    /// on a capped warehouse, the warehouse's. Anonymous clients are capped per replica only.
    fn scopes(&self, client: &ClientShare, warehouse: Option<&str>) -> Vec<(Scope, usize)> {
        let mut scopes = Vec::new();
        if !client.id.starts_with(ANONYMOUS_PREFIX) {
            scopes.push((Scope::Client(client.id.to_string()), client.max_concurrent));
        }
        if let Some(w) = warehouse.map(str::to_ascii_uppercase) {
            if let Some(&cap) = self.warehouse_caps.get(&w) {
                scopes.push((Scope::Warehouse(w), cap));
            }
        }
        scopes
    }

    /// Take the cluster-wide places for one statement of `client` on `warehouse`, waiting while
    /// other replicas hold them (up to the queue timeout, then `busy`).
    pub async fn lease(
        self: &Arc<Self>,
        client: &ClientShare,
        warehouse: Option<&str>,
    ) -> Result<Lease, ToolError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let holder = format!("{}:{id}", self.replica);
        let mut lease = Lease {
            cluster: self.clone(),
            id,
            holder,
            shared: Vec::new(),
            local: Vec::new(),
            uncertain: Vec::new(),
        };
        let deadline = Instant::now() + self.queue_timeout;
        let mut pause = Duration::from_millis(5);
        for (scope, cap) in self.scopes(client, warehouse) {
            loop {
                let asked = self
                    .coordinator
                    .lease(&scope, &lease.holder, cap, LEASE_TTL, false);
                let taken = match self.ask(asked).await {
                    Some((held, _)) => held.then(|| {
                        lease.shared.push((scope.clone(), cap));
                        // Renewed from now on, also while the next place is awaited.
                        lock(&self.held).insert(lease.id, lease.shared.clone());
                    }),
                    None => {
                        // No answer in time is not "not taken": the script may have run in the
                        // store. The place is released with the lease, not left to block the
                        // client's (warehouse's) slot until it expires.
                        if !lease.uncertain.contains(&scope) {
                            lease.uncertain.push(scope.clone());
                        }
                        self.take_local(&scope, cap)
                            .then(|| lease.local.push(scope.clone()))
                    }
                };
                if taken.is_some() {
                    break;
                }
                if Instant::now() + pause > deadline {
                    let what = match &scope {
                        Scope::Warehouse(w) => format!(
                            "warehouse {w} is at its cap of {cap} statements across the cluster"
                        ),
                        _ => format!(
                            "client '{}' has {cap} statements running across the cluster",
                            client.id
                        ),
                    };
                    let mut e = ToolError::new("busy", format!("{what}; retry in a moment"));
                    e.retry_after_ms = Some(500);
                    return Err(e);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
        Ok(lease)
    }

    fn take_local(&self, scope: &Scope, cap: usize) -> bool {
        let share = self.share(cap as u64) as usize;
        let mut fallback = lock(&self.fallback);
        let n = fallback.entry(scope.clone()).or_insert(0);
        if *n < share {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// Heartbeat, count the live replicas, and renew every lease held.
    async fn upkeep(&self) {
        let beat = self.coordinator.lease(
            &Scope::Replicas,
            &self.replica,
            usize::MAX,
            LEASE_TTL,
            false,
        );
        if let Some((_, alive)) = self.ask(beat).await {
            self.replicas.store(alive.max(1), Ordering::Relaxed);
        }
        let held: Vec<(u64, Vec<(Scope, usize)>)> = lock(&self.held)
            .iter()
            .map(|(id, scopes)| (*id, scopes.clone()))
            .collect();
        for (id, scopes) in held {
            let holder = format!("{}:{id}", self.replica);
            for (scope, cap) in scopes {
                // Renewal only: a lease that expired meanwhile is not taken again over the cap.
                let renewed = self
                    .coordinator
                    .lease(&scope, &holder, cap, LEASE_TTL, true);
                if let Some((false, _)) = self.ask(renewed).await {
                    tracing::warn!(?scope, "a cluster lease expired while its statement ran");
                }
            }
        }
    }
}

/// One statement's places in the cluster; given back when dropped.
pub struct Lease {
    cluster: Arc<Cluster>,
    id: u64,
    holder: String,
    shared: Vec<(Scope, usize)>,
    local: Vec<Scope>,
    /// Places asked for whose answer did not come in time: perhaps taken in the store.
    uncertain: Vec<Scope>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let cluster = &self.cluster;
        if !self.local.is_empty() {
            let mut fallback = lock(&cluster.fallback);
            for scope in &self.local {
                if let Some(n) = fallback.get_mut(scope) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        let mut scopes: Vec<Scope> = self.shared.drain(..).map(|(scope, _)| scope).collect();
        for scope in self.uncertain.drain(..) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return;
        }
        lock(&cluster.held).remove(&self.id);
        let (cluster, holder) = (cluster.clone(), std::mem::take(&mut self.holder));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for scope in scopes {
                    // A release that fails leaves the place to expire within LEASE_TTL.
                    let released = cluster.coordinator.release(&scope, &holder);
                    cluster.ask(released).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;

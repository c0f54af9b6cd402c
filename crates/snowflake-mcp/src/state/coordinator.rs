//! The narrow interface through which replicas coordinate: cluster-wide rate limits (GCRA on
//! the store's clock) and leases (places in a capped scope, renewed while held, expiring when a
//! replica dies). The policy stage's `Cluster` decides what to do with the answers and how to
//! fall back when the store cannot be reached; this module only says what the store must do.
//! `state/redis.rs` keeps it for several replicas, `state/sqlite.rs` for one.

use std::time::Duration;

use async_trait::async_trait;

use crate::state::StoreError;

/// What a lease is on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One client's statements in flight.
    Client(String),
    /// Statements in flight on one capped warehouse.
    Warehouse(String),
    /// The live replicas (each holds one place, renewed as its heartbeat).
    Replicas,
}

/// A rate-limit operation.
#[derive(Clone, Copy, Debug)]
pub enum RateOp {
    Take,
    GiveBack,
    Peek,
}

/// What the shared store does for the cluster.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// GCRA on the store's clock. `Take`: `(1, 0)` taken or `(0, ms to wait)`; `GiveBack`
    /// undoes one take; `Peek`: `(calls available now, 0)`.
    async fn rate(
        &self,
        client: &str,
        per_minute: u32,
        burst: u32,
        op: RateOp,
    ) -> Result<(i64, i64), StoreError>;
    /// Take (or renew) `holder`'s place in `scope` if fewer than `cap` hold one; with
    /// `renew_only`, only renew a place still held. Returns whether it is held and how many
    /// holders there are.
    async fn lease(
        &self,
        scope: &Scope,
        holder: &str,
        cap: usize,
        ttl: Duration,
        renew_only: bool,
    ) -> Result<(bool, usize), StoreError>;
    async fn release(&self, scope: &Scope, holder: &str) -> Result<(), StoreError>;
}

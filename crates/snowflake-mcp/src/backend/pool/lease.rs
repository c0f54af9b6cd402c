//! A [`Lease`]: one pooled session lent to one request, and what becomes of it afterwards —
//! back to the idle list with its slot, or retired (logged out, then its slot given back).

use snowflake_client::{Error as SfError, ErrorKind};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Connector, Idle, Inner, PooledSession};

/// One session lent to one request. Dropping it returns the session to the pool, unless it was
/// interrupted mid-statement, retired, or the pool is shutting down.
pub struct Lease<C: Connector> {
    pub(super) session: Option<C::Session>,
    /// The session's place on Snowflake; goes back with it to the idle list, or is given back
    /// once a retired session is logged out.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) born: Instant,
    pub(super) pool: Arc<Inner<C>>,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl<C: Connector> Lease<C> {
    pub fn session(&mut self) -> &mut C::Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }

    /// Do not return this session to the pool.
    pub fn retire(&mut self) {
        if let (Some(s), Some(slot)) = (self.session.take(), self.slot.take()) {
            self.pool.retire(s, slot);
        }
    }

    /// A statement on this session worked: Snowflake answers.
    pub fn succeeded(&self) {
        self.pool.breaker.success();
    }

    /// Retire the session if `e` suggests it is no longer healthy. Snowflake not answering at
    /// all (the network failed, or a statement got no answer by its deadline) also counts
    /// towards opening the circuit.
    pub fn retire_if_broken(&mut self, e: &SfError) {
        if e.is_unanswered() {
            self.pool.failed();
        }
        if matches!(
            e.kind(),
            ErrorKind::Network
                | ErrorKind::Protocol
                | ErrorKind::SessionExpired
                | ErrorKind::Timeout
        ) {
            self.retire();
        }
    }
}

impl<C: Connector> Drop for Lease<C> {
    fn drop(&mut self) {
        if let (Some(session), Some(slot)) = (self.session.take(), self.slot.take()) {
            if session.is_poisoned() || self.born.elapsed() >= self.pool.limits.max_lifetime {
                self.pool.retire(session, slot);
            } else {
                self.pool.shelve(Idle {
                    session,
                    slot,
                    born: self.born,
                    used: Instant::now(),
                });
            }
        }
    }
}

//! Which waiting client goes next, without looking at every client.
//!
//! A freed permit goes to the client with the smallest virtual time among those that may take
//! one now (under their own cap, their group's, and with a request whose warehouse has room),
//! ties going to the request that has waited longest. Finding it by scanning every client made
//! each grant cost as much as there are clients: with a thousand clients waiting it was the
//! largest single cost of a call (BENCHMARKS.md, "Less work per call"). This index keeps the
//! clients with waiting requests ordered by their [`Place`] — virtual time, then the id of
//! their first waiting request — so the next grant is usually its first entry. Only clients
//! that cannot take a permit now are stepped over, as the scan stepped over them.
//!
//! The index is only correct if every change to a client's virtual time or queue is followed
//! by [`State::reposition`](super::State::reposition); the scheduler's tests check it against
//! the full scan after random operations.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{ClientState, Inner, State};

/// A waiting client's place in the order: its virtual time, then its first request's id.
pub(super) type Place = (u128, u64);

/// The clients with waiting requests, in the order they would be served if nothing held
/// them back.
#[derive(Default)]
pub(super) struct Ready {
    order: BTreeSet<(Place, Arc<str>)>,
}

impl Ready {
    /// Move `client` from `old` to `new` (`None`: not waiting).
    pub(super) fn moved(&mut self, client: &Arc<str>, old: Option<Place>, new: Option<Place>) {
        if old == new {
            return;
        }
        if let Some(place) = old {
            self.order.remove(&(place, client.clone()));
        }
        if let Some(place) = new {
            self.order.insert((place, client.clone()));
        }
    }

    /// Every entry, in order (for the tests' check of the index).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(Place, Arc<str>)> {
        self.order.iter().cloned().collect()
    }
}

impl ClientState {
    /// Where this client belongs in [`Ready`] now.
    pub(super) fn place(&self) -> Option<Place> {
        self.waiters.front().map(|w| (self.vtime, w.id))
    }
}

impl Inner {
    /// Whether `warehouse` may take one more statement.
    pub(super) fn warehouse_has_room(&self, state: &State, warehouse: Option<&str>) -> bool {
        let Some(w) = warehouse else { return true };
        match self.limits.warehouse_caps.get(w) {
            None => true,
            Some(cap) => state.warehouses.get(w).copied().unwrap_or(0) < (*cap).max(1),
        }
    }

    /// Whether `c` may hold one more permit: under its own cap and its group's.
    pub(super) fn may_take(&self, state: &State, c: &ClientState) -> bool {
        c.running < c.share.max_concurrent.max(1)
            && c.share
                .group
                .as_ref()
                .is_none_or(|(g, cap)| state.groups.get(g).copied().unwrap_or(0) < (*cap).max(1))
    }

    /// The client whose request is granted next and that request's position in its queue:
    /// among clients that may take a permit, the first request whose warehouse has room (a
    /// request for a full warehouse never blocks the client's others), smallest (virtual time,
    /// request id) first.
    pub(super) fn next_grant(&self, state: &State) -> Option<(Arc<str>, usize)> {
        let mut best: Option<(Place, &Arc<str>, usize)> = None;
        for (place, id) in &state.ready.order {
            // A client's chosen request is never older than its first one, so nobody from
            // here on can come before the best found.
            if best.is_some_and(|(found, _, _)| *place >= found) {
                break;
            }
            let Some(c) = state.clients.get(id) else {
                continue;
            };
            if !self.may_take(state, c) {
                continue;
            }
            let Some(pos) = c
                .waiters
                .iter()
                .position(|w| self.warehouse_has_room(state, w.warehouse.as_deref()))
            else {
                continue;
            };
            let key = (c.vtime, c.waiters[pos].id);
            if best.is_none_or(|(found, _, _)| key < found) {
                best = Some((key, id, pos));
            }
        }
        best.map(|(_, id, pos)| (id.clone(), pos))
    }
}

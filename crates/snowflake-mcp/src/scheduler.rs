//! The fair scheduler: who gets the next Snowflake session when there are not enough.
//!
//! Every statement (queries and metadata alike) first takes a [`Permit`]. At most `capacity`
//! permits exist (the pool size) and a client never holds more than its `max_concurrent`. When
//! none is free, requests wait in per-client queues and a freed permit goes to the waiting
//! client with the smallest *virtual time* — weighted fair queuing: each grant advances the
//! client's virtual time by `1 / weight`, so under contention clients are served in proportion
//! to their weights, never first-come-first-served across clients. A client that was idle
//! re-enters at the current virtual time, so idleness earns no burst credit.
//!
//! A client may belong to a group with a cap of its own (all anonymous clients together:
//! `[anonymous] max_concurrent_total`), so opening a hundred anonymous sessions does not buy a
//! hundred shares of the pool.
//!
//! Queues are bounded per client and in total (a full queue is refused at once with a busy
//! error), and a request that waits longer than the queue timeout gives up with a busy error and
//! a retry hint. A waiter that is cancelled (its future dropped) leaves the queue; a grant that
//! races with the cancellation is handed straight on. The state lock is never held across an
//! `.await`.

use crate::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::ToolError;

/// Virtual-time units per grant at weight 1 (fixed point keeps the arithmetic exact).
const SCALE: u128 = 1 << 32;

/// Scheduler limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerLimits {
    /// Permits in total (the pool size).
    pub capacity: usize,
    /// Waiting requests per client.
    pub max_queue_per_client: usize,
    /// Waiting requests in total.
    pub max_queue_total: usize,
    /// Longest wait for a permit.
    pub queue_timeout: Duration,
}

/// What the scheduler needs to know of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientShare {
    pub id: Arc<str>,
    pub weight: u32,
    pub max_concurrent: usize,
    /// A group whose members together hold at most this many permits.
    pub group: Option<(Arc<str>, usize)>,
}

#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    limits: SchedulerLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    queued: usize,
    /// Virtual time of the last grant; newly backlogged clients start here.
    now: u128,
    next_waiter: u64,
    clients: HashMap<Arc<str>, ClientState>,
    /// Permits held per group.
    groups: HashMap<Arc<str>, usize>,
}

impl State {
    /// One permit of `client` more (`+1`) or less (`-1`), in its own and its group's counts.
    fn count(&mut self, client: &str, delta: isize) {
        self.running = self.running.saturating_add_signed(delta);
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        c.running = c.running.saturating_add_signed(delta);
        if let Some((group, _)) = &c.share.group {
            let n = self.groups.entry(group.clone()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.groups.remove(group);
            }
        }
    }
}

struct ClientState {
    share: ClientShare,
    running: usize,
    vtime: u128,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// Permission to run one statement; dropping it frees the slot for the next waiter.
pub struct Permit {
    inner: Arc<Inner>,
    client: Arc<str>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = lock(&self.inner.state);
        state.count(&self.client, -1);
        self.inner.dispatch(&mut state);
    }
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub running: usize,
    pub queued: usize,
}

impl Scheduler {
    pub fn new(limits: SchedulerLimits) -> Self {
        Scheduler {
            inner: Arc::new(Inner {
                limits: SchedulerLimits {
                    capacity: limits.capacity.max(1),
                    ..limits
                },
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn stats(&self) -> SchedulerStats {
        let s = lock(&self.inner.state);
        SchedulerStats {
            running: s.running,
            queued: s.queued,
        }
    }

    /// Running statements of one client.
    pub fn running_of(&self, client: &str) -> usize {
        lock(&self.inner.state)
            .clients
            .get(client)
            .map_or(0, |c| c.running)
    }

    /// Wait for a permit for `client`. Cancel by dropping the future.
    pub async fn acquire(&self, client: &ClientShare) -> Result<Permit, ToolError> {
        let limits = self.inner.limits;
        let (id, rx) = {
            let mut state = lock(&self.inner.state);
            let now = state.now;
            let c = state
                .clients
                .entry(client.id.clone())
                .or_insert_with(|| ClientState {
                    share: client.clone(),
                    running: 0,
                    vtime: now,
                    waiters: VecDeque::new(),
                });
            c.share = client.clone();
            if c.waiters.len() >= limits.max_queue_per_client {
                let n = limits.max_queue_per_client;
                drop(state);
                return Err(busy(
                    format!("{n} of your requests are already waiting; retry when some finish"),
                    limits.queue_timeout,
                ));
            }
            if state.queued >= limits.max_queue_total {
                drop(state);
                return Err(busy(
                    "the server's queue is full".into(),
                    limits.queue_timeout,
                ));
            }
            let c = state.clients.get_mut(&client.id).expect("inserted above");
            if c.waiters.is_empty() {
                // Back from idle: no credit for the time away.
                c.vtime = c.vtime.max(now);
            }
            let (tx, rx) = oneshot::channel();
            let id = state.next_waiter;
            state.next_waiter += 1;
            state
                .clients
                .get_mut(&client.id)
                .expect("inserted above")
                .waiters
                .push_back((id, tx));
            state.queued += 1;
            // Grants at once when there is room and nobody is ahead.
            self.inner.dispatch(&mut state);
            (id, rx)
        };
        let mut guard = WaitGuard {
            inner: &self.inner,
            client: &client.id,
            id,
            rx: Some(rx),
        };
        let rx = guard.rx.as_mut().expect("set above");
        match tokio::time::timeout(limits.queue_timeout, rx).await {
            Ok(Ok(())) => {
                guard.rx = None;
                Ok(self.permit(client))
            }
            Ok(Err(_)) => {
                guard.rx = None;
                Err(ToolError::internal(
                    "the scheduler dropped a waiting request",
                ))
            }
            Err(_) => Err(busy(
                format!(
                    "the server is busy: no Snowflake session became free within {} s",
                    limits.queue_timeout.as_secs_f32()
                ),
                limits.queue_timeout,
            )),
        }
    }

    fn permit(&self, client: &ClientShare) -> Permit {
        Permit {
            inner: self.inner.clone(),
            client: client.id.clone(),
        }
    }
}

fn busy(message: String, timeout: Duration) -> ToolError {
    let mut e = ToolError::new("busy", format!("{message}; retry in a moment"));
    e.retry_after_ms = Some((timeout.as_millis() as u64 / 4).clamp(250, 5_000));
    e
}

impl Inner {
    /// Hand free permits to waiting clients, smallest virtual time first.
    fn dispatch(&self, state: &mut State) {
        while state.running < self.limits.capacity {
            // Smallest virtual time first; among equals, whoever has waited longest (waiter ids
            // grow), so a client that just finished cannot jump ahead of equal peers.
            let groups = &state.groups;
            let next = state
                .clients
                .iter()
                .filter(|(_, c)| {
                    !c.waiters.is_empty()
                        && c.running < c.share.max_concurrent.max(1)
                        && c.share.group.as_ref().is_none_or(|(g, cap)| {
                            groups.get(g).copied().unwrap_or(0) < (*cap).max(1)
                        })
                })
                .min_by_key(|(_, c)| (c.vtime, c.waiters.front().map_or(u64::MAX, |w| w.0)))
                .map(|(id, _)| id.clone());
            let Some(id) = next else { break };
            let c = state.clients.get_mut(&id).expect("picked from the map");
            let (_, tx) = c.waiters.pop_front().expect("has waiters");
            state.queued -= 1;
            // Never fails: a waiter keeps its receiver until it has left the queue.
            let _ = tx.send(());
            state.count(&id, 1);
            let c = state.clients.get_mut(&id).expect("present");
            state.now = state.now.max(c.vtime);
            c.vtime += SCALE / u128::from(c.share.weight.max(1));
        }
        // Forget clients with nothing running or waiting (their virtual time restarts at `now`).
        state
            .clients
            .retain(|_, c| c.running > 0 || !c.waiters.is_empty());
    }
}

/// Removes a waiter that gave up (timeout or cancellation) from its queue. It owns the
/// receiver, so a grant racing with the give-up always lands and is handed back here.
struct WaitGuard<'a> {
    inner: &'a Inner,
    client: &'a str,
    id: u64,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let mut state = lock(&self.inner.state);
        let removed = state.clients.get_mut(self.client).and_then(|c| {
            let pos = c.waiters.iter().position(|(id, _)| *id == self.id)?;
            c.waiters.remove(pos)
        });
        match removed {
            Some(_) => state.queued -= 1,
            None => {
                // Granted between the timeout and now: give the slot back.
                state.count(self.client, -1);
            }
        }
        self.inner.dispatch(&mut state);
    }
}

#[cfg(test)]
mod tests;

//! The fair scheduler: who gets the next Snowflake session when there are not enough.
//!
//! Every statement (queries and metadata alike) first takes a [`Permit`]. At most `capacity`
//! permits exist (the pool size), a client never holds more than its `max_concurrent`, and a
//! warehouse with a cap (`[warehouses.NAME] max_concurrent`) never has more statements in flight.
//! When none is free, requests wait in per-client queues and a freed permit goes to the waiting
//! client with the smallest *virtual time*, never first-come-first-served across clients.
//!
//! Fairness is measured in **session-time** — the time a client's statements hold a Snowflake
//! session — because that is what is scarce, not the number of calls. This is start-time fair
//! queuing: a grant advances the client's virtual time by an estimate of its statement's
//! length divided by its weight (an average of the client's recent statements), and when the
//! permit is dropped the measured length replaces the estimate. So a client of 2-second
//! statements and one of 50-millisecond statements each get half the session-time at equal
//! weights, and a light client waits at most about one statement of the others. A client that
//! was idle re-enters at the current virtual time, so idleness earns no burst credit.
//!
//! A request names its warehouse; one whose warehouse is at its cap is skipped for another of
//! the client's requests (or another client's) — a flooded warehouse never holds up the others.
//! A client may belong to a group with a cap of its own (all anonymous clients together:
//! `[anonymous] max_concurrent_total`), so opening a hundred anonymous sessions does not buy a
//! hundred shares of the pool.
//!
//! Queues are bounded per client and in total (a full queue is refused at once with a busy
//! error), and a request that waits longer than the queue timeout gives up with a busy error
//! saying where it stood, and a retry hint. A waiter that is cancelled (its future dropped)
//! leaves the queue; a grant that races with the cancellation is handed straight on. The state
//! lock is never held across an `.await`.

use crate::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ToolError;
use crate::policy::ClientShare;
pub use held::ClientTime;

mod held;
mod ready;

/// Virtual-time units per microsecond of session-time at weight 1.
const SCALE: u128 = 1 << 10;
/// A new client's statements are assumed to take this long until measured.
const FIRST_ESTIMATE_US: u64 = 100_000;

/// Scheduler limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerLimits {
    /// Permits in total (the pool size).
    pub capacity: usize,
    /// Waiting requests per client.
    pub max_queue_per_client: usize,
    /// Waiting requests in total.
    pub max_queue_total: usize,
    /// Longest wait for a permit.
    pub queue_timeout: Duration,
    /// Statements in flight per warehouse, for warehouses with a cap.
    pub warehouse_caps: HashMap<String, usize>,
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
    /// The clients with waiting requests, in serving order (see [`ready`]).
    ready: ready::Ready,
    /// Permits held per group.
    groups: HashMap<Arc<str>, usize>,
    /// Permits held per warehouse.
    warehouses: HashMap<Arc<str>, usize>,
    /// Session-time held per client, kept after the client's queue state is forgotten.
    held: held::SessionTime,
}

struct ClientState {
    /// The client's id, as the map's key (for [`ready::Ready`]).
    id: Arc<str>,
    /// Where it stands in [`State::ready`] (as last recorded there).
    place: Option<ready::Place>,
    share: ClientShare,
    running: usize,
    vtime: u128,
    /// Recent statement length (microseconds), an exponentially weighted average.
    estimate_us: u64,
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    warehouse: Option<Arc<str>>,
    /// Sent the session-time charged at the grant (microseconds).
    grant: oneshot::Sender<u64>,
}

/// Permits one statement holds, for counting.
struct Holder<'a> {
    client: &'a str,
    warehouse: Option<&'a str>,
}

fn cost(us: u64, weight: u32) -> u128 {
    u128::from(us) * SCALE / u128::from(weight.max(1))
}

impl State {
    /// Record `client`'s place in the serving order after its virtual time or queue changed.
    fn reposition(&mut self, client: &str) {
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let place = c.place();
        self.ready.moved(&c.id, c.place, place);
        c.place = place;
    }

    /// One permit of `who` more (`+1`) or less (`-1`), in its client's, group's and warehouse's
    /// counts.
    fn count(&mut self, who: Holder<'_>, delta: isize) {
        self.running = self.running.saturating_add_signed(delta);
        if let Some(w) = who.warehouse {
            let n = self.warehouses.entry(w.into()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.warehouses.remove(w);
            }
        }
        let Some(c) = self.clients.get_mut(who.client) else {
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

/// Permission to run one statement; dropping it frees the slot for the next waiter and
/// charges the client the session-time it actually held.
pub struct Permit {
    inner: Arc<Inner>,
    client: Arc<str>,
    /// The client's label, under which its session-time is counted.
    label: Arc<str>,
    warehouse: Option<Arc<str>>,
    granted: Instant,
    charged_us: u64,
    /// Given back by [`Permit::release`] already.
    released: bool,
}

impl Permit {
    /// Give the permit back now. True when that let a waiting request in: its task has been
    /// woken, and the caller should let it run before going on (see `Gateway::scheduled`).
    pub fn release(mut self) -> bool {
        self.released = true;
        self.give_back() > 0
    }

    /// Charge what was held, free the slot and grant it on; how many waiters that let in.
    fn give_back(&mut self) -> usize {
        let held = self.granted.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let mut state = lock(&self.inner.state);
        if let Some(c) = state.clients.get_mut(&self.client) {
            // Replace the estimate charged at the grant with what the statement really took.
            let weight = c.share.weight;
            c.vtime = (c.vtime + cost(held, weight)).saturating_sub(cost(self.charged_us, weight));
            c.estimate_us = (c.estimate_us.saturating_mul(3) + held) / 4;
        }
        state.reposition(&self.client);
        state.held.add(&self.label, self.warehouse.as_ref(), held);
        state.count(
            Holder {
                client: &self.client,
                warehouse: self.warehouse.as_deref(),
            },
            -1,
        );
        let granted = self.inner.dispatch(&mut state);
        forget_if_idle(&mut state, &self.client);
        granted
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.released {
            self.give_back();
        }
    }
}

/// Counters for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub running: usize,
    pub queued: usize,
    /// Per warehouse with anything running or waiting: (name, running, queued).
    pub warehouses: Vec<(String, usize, usize)>,
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
        let mut warehouses: HashMap<String, (usize, usize)> = s
            .warehouses
            .iter()
            .map(|(w, n)| (w.to_string(), (*n, 0)))
            .collect();
        for c in s.clients.values() {
            for w in c.waiters.iter().filter_map(|w| w.warehouse.as_deref()) {
                warehouses.entry(w.to_string()).or_default().1 += 1;
            }
        }
        let mut warehouses: Vec<(String, usize, usize)> = warehouses
            .into_iter()
            .map(|(w, (running, queued))| (w, running, queued))
            .collect();
        warehouses.sort();
        SchedulerStats {
            running: s.running,
            queued: s.queued,
            warehouses,
        }
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        lock(&self.inner.state).queued
    }

    /// The warehouses with a cap, and their caps.
    pub fn warehouse_caps(&self) -> &HashMap<String, usize> {
        &self.inner.limits.warehouse_caps
    }

    /// Each client's session-time so far (see [`held`]).
    pub fn session_time(&self) -> Vec<ClientTime> {
        lock(&self.inner.state).held.snapshot()
    }

    /// Each client with statements running or waiting now: (client, running, queued).
    pub fn client_loads(&self) -> Vec<(String, usize, usize)> {
        let s = lock(&self.inner.state);
        let mut loads: Vec<_> = s
            .clients
            .iter()
            .map(|(id, c)| (id.to_string(), c.running, c.waiters.len()))
            .collect();
        loads.sort();
        loads
    }

    /// Running statements of one client.
    pub fn running_of(&self, client: &str) -> usize {
        lock(&self.inner.state)
            .clients
            .get(client)
            .map_or(0, |c| c.running)
    }

    /// Wait for a permit for `client` (no warehouse). Cancel by dropping the future.
    pub async fn acquire(&self, client: &ClientShare) -> Result<Permit, ToolError> {
        self.acquire_on(client, None).await
    }

    /// Wait for a permit for `client`'s statement on `warehouse`. Cancel by dropping the future.
    pub async fn acquire_on(
        &self,
        client: &ClientShare,
        warehouse: Option<&str>,
    ) -> Result<Permit, ToolError> {
        let limits = &self.inner.limits;
        let warehouse: Option<Arc<str>> = warehouse.map(Arc::from);
        let (id, rx) = {
            let mut state = lock(&self.inner.state);
            let now = state.now;
            let c = state
                .clients
                .entry(client.id.clone())
                .or_insert_with(|| ClientState {
                    id: client.id.clone(),
                    place: None,
                    share: client.clone(),
                    running: 0,
                    vtime: now,
                    estimate_us: FIRST_ESTIMATE_US,
                    waiters: VecDeque::new(),
                });
            c.share = client.clone();
            if c.waiters.len() >= limits.max_queue_per_client {
                let n = limits.max_queue_per_client;
                forget_if_idle(&mut state, &client.id);
                drop(state);
                return Err(busy(
                    format!("{n} of your requests are already waiting; retry when some finish"),
                    limits.queue_timeout,
                ));
            }
            if state.queued >= limits.max_queue_total {
                forget_if_idle(&mut state, &client.id);
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
                .push_back(Waiter {
                    id,
                    warehouse: warehouse.clone(),
                    grant: tx,
                });
            state.queued += 1;
            state.reposition(&client.id);
            // Grants at once when there is room and nobody is ahead.
            self.inner.dispatch(&mut state);
            (id, rx)
        };
        let mut guard = WaitGuard {
            inner: &self.inner,
            client: &client.id,
            warehouse: warehouse.as_deref(),
            id,
            rx: Some(rx),
        };
        let rx = guard.rx.as_mut().expect("set above");
        match tokio::time::timeout(limits.queue_timeout, rx).await {
            Ok(Ok(charged_us)) => {
                guard.rx = None;
                Ok(Permit {
                    inner: self.inner.clone(),
                    client: client.id.clone(),
                    label: client.label.clone(),
                    warehouse: warehouse.clone(),
                    granted: Instant::now(),
                    charged_us,
                    released: false,
                })
            }
            Ok(Err(_)) => {
                guard.rx = None;
                Err(ToolError::internal(
                    "the scheduler dropped a waiting request",
                ))
            }
            Err(_) => {
                let ahead = self.inner.ahead_of(&client.id, id);
                Err(busy(
                    format!(
                        "the server is busy: no Snowflake session became free within {} s ({ahead} requests of other clients were ahead of yours{})",
                        limits.queue_timeout.as_secs_f32(),
                        warehouse
                            .as_deref()
                            .filter(|w| limits.warehouse_caps.contains_key(*w))
                            .map(|w| format!("; warehouse {w} is at its cap of {}", limits.warehouse_caps[w]))
                            .unwrap_or_default()
                    ),
                    limits.queue_timeout,
                ))
            }
        }
    }
}

fn busy(message: String, timeout: Duration) -> ToolError {
    let mut e = ToolError::new("busy", format!("{message}; retry in a moment"));
    e.retry_after_ms = Some((timeout.as_millis() as u64 / 4).clamp(250, 5_000));
    e
}

impl Inner {
    /// Waiters of other clients that would be served before waiter `id` of `client` now.
    fn ahead_of(&self, client: &str, id: u64) -> usize {
        let state = lock(&self.state);
        let Some(mine) = state.clients.get(client) else {
            return 0;
        };
        let _ = id;
        state
            .clients
            .iter()
            .filter(|(c, s)| c.as_ref() != client && s.vtime <= mine.vtime)
            .map(|(_, s)| s.waiters.len())
            .sum()
    }

    /// Hand free permits to waiting clients, smallest virtual time first; how many were granted.
    fn dispatch(&self, state: &mut State) -> usize {
        let mut granted = 0;
        while state.running < self.limits.capacity {
            let Some((id, pos)) = self.next_grant(state) else {
                break;
            };
            let c = state.clients.get_mut(&id).expect("picked from the map");
            let waiter = c.waiters.remove(pos).expect("picked from the queue");
            let charge = c.estimate_us;
            state.queued -= 1;
            // Never fails: a waiter keeps its receiver until it has left the queue.
            let _ = waiter.grant.send(charge);
            state.count(
                Holder {
                    client: &id,
                    warehouse: waiter.warehouse.as_deref(),
                },
                1,
            );
            let c = state.clients.get_mut(&id).expect("present");
            state.now = state.now.max(c.vtime);
            c.vtime += cost(charge, c.share.weight);
            state.reposition(&id);
            granted += 1;
        }
        granted
    }
}

/// Forget `client` if it has nothing running or waiting (its virtual time restarts at `now`).
/// Only the client whose request ended or left can have become idle, so only it is looked at:
/// sweeping every client here made each grant cost as much as there are clients.
fn forget_if_idle(state: &mut State, client: &str) {
    if state
        .clients
        .get(client)
        .is_some_and(|c| c.running == 0 && c.waiters.is_empty())
    {
        if let Some(c) = state.clients.remove(client) {
            state.ready.moved(&c.id, c.place, None);
        }
    }
}

/// Removes a waiter that gave up (timeout or cancellation) from its queue. It owns the
/// receiver, so a grant racing with the give-up always lands and is handed back here.
struct WaitGuard<'a> {
    inner: &'a Inner,
    client: &'a str,
    warehouse: Option<&'a str>,
    id: u64,
    rx: Option<oneshot::Receiver<u64>>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let mut state = lock(&self.inner.state);
        let removed = state.clients.get_mut(self.client).and_then(|c| {
            let pos = c.waiters.iter().position(|w| w.id == self.id)?;
            c.waiters.remove(pos)
        });
        match removed {
            Some(_) => {
                state.queued -= 1;
                state.reposition(self.client);
            }
            None => {
                // Granted between the timeout and now: give the slot back.
                state.count(
                    Holder {
                        client: self.client,
                        warehouse: self.warehouse,
                    },
                    -1,
                );
            }
        }
        self.inner.dispatch(&mut state);
        forget_if_idle(&mut state, self.client);
    }
}

#[cfg(test)]
mod tests;

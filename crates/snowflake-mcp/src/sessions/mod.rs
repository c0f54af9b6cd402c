//! # Stage: sessions — the MCP sessions this replica serves
//!
//! Owns the registry of live sessions (this file) and parking idle ones out of memory
//! ([`parking`]). Only the transport uses it: a tool sees a caller and a context, never a
//! session. It must not decide who a caller is (identity) or what it may do (policy); it keeps
//! what they decided for the life of the session.
//!
//! The session registry: every live MCP session with its client, client info, context, times
//! and in-flight requests.
//!
//! A session is registered when its client sends `initialize` and removed when its
//! [`Registration`] is dropped — which happens exactly once, however often the transport reports
//! the close (DELETE, disconnect, idle expiry). Limits on sessions in total and per client are
//! checked at registration and refused with a clear error.
//!
//! Ownership: a session belongs to the client that opened it from the moment its id exists.
//! The HTTP door (the ownership module) hands `initialize` a [`PendingSession`] slot; the
//! handler attaches the new session to it, and the door [`Registry::claim`]s the transport's
//! id for it (here and in the state store) before the response carrying the id is sent.
//!
//! Sessionless requests (protocol revision 2026-07-28 sends no `Mcp-Session-Id`) are keyed on
//! the authenticated client: all of a client's sessionless calls share one state, so its
//! `set_context` carries over between calls. Idle sessionless states expire like sessions.

pub mod parking;
mod view;

pub use view::SessionView;

use crate::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::error::ToolError;
use crate::policy::ClientPolicy;
use crate::Context;

/// Registry limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_total: usize,
    pub max_per_client: usize,
    pub idle_timeout: Duration,
    /// Sessions without a call this long are parked (see [`crate::sessions::parking`]); `None`: never.
    pub park_after: Option<Duration>,
}

/// The MCP client software, from `initialize`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// One MCP session's state.
#[derive(Debug)]
pub struct SessionState {
    pub id: u64,
    /// The principal that opened the session (its owner: `client.id` never changes). What the
    /// session may do is [`SessionState::policy`], which follows the owner's latest token.
    pub client: Arc<ClientPolicy>,
    policy: Mutex<Arc<ClientPolicy>>,
    pub client_info: Option<ClientInfo>,
    pub created: SystemTime,
    mcp_session_id: Mutex<Option<String>>,
    context: Mutex<Option<Context>>,
    last_seen: Mutex<Instant>,
    persisted: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
}

impl SessionState {
    fn new(id: u64, client: Arc<ClientPolicy>, client_info: Option<ClientInfo>) -> Self {
        SessionState {
            id,
            policy: Mutex::new(client.clone()),
            client,
            client_info,
            created: SystemTime::now(),
            mcp_session_id: Mutex::new(None),
            context: Mutex::new(None),
            last_seen: Mutex::new(Instant::now()),
            persisted: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The policy the session runs under now: its owner's, as of their latest request.
    pub fn policy(&self) -> Arc<ClientPolicy> {
        lock(&self.policy).clone()
    }

    /// Take the policy the owner's current request resolved to (a signed-in person's follows
    /// their token: a group removed narrows it at once). Another principal's is ignored — the
    /// door never lets one through, and a session never changes hands. True when it changed.
    pub fn follow(&self, latest: &Arc<ClientPolicy>) -> bool {
        if latest.id != self.client.id {
            return false;
        }
        let mut current = lock(&self.policy);
        if **current == **latest {
            return false;
        }
        *current = latest.clone();
        true
    }

    /// The session's context, once it has one (set at the first call).
    pub fn context(&self) -> Option<Context> {
        lock(&self.context).clone()
    }

    pub fn set_context(&self, ctx: Context) {
        *lock(&self.context) = Some(ctx);
    }

    /// Forget the context: the next call starts from the policy's defaults.
    pub fn clear_context(&self) {
        *lock(&self.context) = None;
    }

    /// The transport's session id (`Mcp-Session-Id`), once seen.
    pub fn mcp_session_id(&self) -> Option<String> {
        lock(&self.mcp_session_id).clone()
    }

    fn note_mcp_session_id(&self, id: &str) {
        let mut slot = lock(&self.mcp_session_id);
        if slot.is_none() {
            *slot = Some(id.to_string());
        }
    }

    /// Mark a request as started; the guard marks it finished.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        *lock(&self.last_seen) = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// True (and remembered) when the session was last written to the store more than
    /// `every` ago, or never: keeps `last_seen` fresh without a disk write per call.
    pub fn due_for_persist(&self, every: Duration) -> bool {
        let mut last = lock(&self.persisted);
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn idle_for(&self) -> Duration {
        lock(&self.last_seen).elapsed()
    }
}

/// A request in flight; dropping it ends it.
pub struct InFlight(Arc<SessionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *lock(&self.0.last_seen) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// All live sessions.
pub struct Registry {
    limits: SessionLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    live: HashMap<u64, Arc<SessionState>>,
    per_client: HashMap<Arc<str>, usize>,
    sessionless: HashMap<Arc<str>, Arc<SessionState>>,
    /// Transport session id -> owning client, for refusing other clients at the door.
    owners: HashMap<String, Arc<str>>,
    /// Sessions ended (closed, parked, expired) since the start.
    ended: u64,
}

/// The state-store key of a client's sessionless state. Never a transport session id (those are
/// UUIDs), and a request naming it as one finds no session to restore.
pub fn sessionless_key(client: &str) -> String {
    format!("sessionless:{client}")
}

/// The slot through which the HTTP door learns which registered session a request created (the
/// transport's session id only exists in the response, after the handler ran).
#[derive(Clone, Default)]
pub struct PendingSession(Arc<Mutex<Option<Arc<SessionState>>>>);

impl PendingSession {
    /// Called by `initialize` with the session it registered.
    pub fn attach(&self, session: Arc<SessionState>) {
        *lock(&self.0) = Some(session);
    }

    fn session(&self) -> Option<Arc<SessionState>> {
        lock(&self.0).clone()
    }
}

/// A registered session; dropping it removes the session from the registry (exactly once).
pub struct Registration {
    registry: Arc<Registry>,
    pub session: Arc<SessionState>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = lock(&self.registry.state);
        if let Some(id) = self.session.mcp_session_id() {
            state.owners.remove(&id);
        }
        if state.live.remove(&self.session.id).is_some() {
            state.ended += 1;
            let client = &self.session.client.id;
            if let Some(n) = state.per_client.get_mut(client) {
                *n -= 1;
                if *n == 0 {
                    state.per_client.remove(client);
                }
            }
        }
    }
}

impl Registry {
    pub fn new(limits: SessionLimits) -> Arc<Registry> {
        Arc::new(Registry {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Register a new MCP session of `client`.
    pub fn open(
        self: &Arc<Self>,
        client: Arc<ClientPolicy>,
        client_info: Option<ClientInfo>,
    ) -> Result<Registration, ToolError> {
        let mut state = lock(&self.state);
        if state.live.len() >= self.limits.max_total {
            return Err(ToolError::new(
                "too_many_sessions",
                format!(
                    "the server has its maximum of {} sessions; retry later",
                    self.limits.max_total
                ),
            ));
        }
        let mine = state.per_client.get(&client.id).copied().unwrap_or(0);
        if mine >= self.limits.max_per_client {
            return Err(ToolError::new(
                "too_many_sessions",
                format!(
                    "client '{}' already has its maximum of {} sessions; close one first",
                    client.id, self.limits.max_per_client
                ),
            ));
        }
        state.next_id += 1;
        let session = Arc::new(SessionState::new(
            state.next_id,
            client.clone(),
            client_info,
        ));
        state.live.insert(session.id, session.clone());
        *state.per_client.entry(client.id.clone()).or_default() += 1;
        Ok(Registration {
            registry: self.clone(),
            session,
        })
    }

    /// Give the session created through `pending` its transport id `mcp_session_id`, and record
    /// its owner. Done under the registry lock, so a session that ended meanwhile (its
    /// [`Registration`] dropped) leaves nothing behind. Returns false when `pending` holds no live
    /// session (the handler refused it).
    pub fn claim(&self, pending: &PendingSession, mcp_session_id: &str) -> bool {
        let Some(session) = pending.session() else {
            return false;
        };
        self.bind(&session, mcp_session_id)
    }

    /// Record the transport id of a registered session (a restored one: its id is known from
    /// the start). The first id wins; false when the session is no longer live.
    pub fn bind(&self, session: &SessionState, mcp_session_id: &str) -> bool {
        let mut state = lock(&self.state);
        if !state.live.contains_key(&session.id) {
            return false;
        }
        session.note_mcp_session_id(mcp_session_id);
        if session.mcp_session_id().as_deref() == Some(mcp_session_id) {
            state
                .owners
                .insert(mcp_session_id.to_string(), session.client.id.clone());
        }
        true
    }

    /// The client that owns a live session, by transport session id.
    pub fn owner_of(&self, mcp_session_id: &str) -> Option<Arc<str>> {
        lock(&self.state).owners.get(mcp_session_id).cloned()
    }

    /// The shared state of `client`'s sessionless requests, and whether it was made just now.
    /// Its transport id is [`sessionless_key`], under which its context is persisted.
    pub fn sessionless(&self, client: &Arc<ClientPolicy>) -> (Arc<SessionState>, bool) {
        let mut state = lock(&self.state);
        if let Some(s) = state.sessionless.get(&client.id) {
            return (s.clone(), false);
        }
        state.next_id += 1;
        let session = Arc::new(SessionState::new(state.next_id, client.clone(), None));
        session.note_mcp_session_id(&sessionless_key(&client.id));
        state.sessionless.insert(client.id.clone(), session.clone());
        (session, true)
    }

    /// Transport ids of live sessions without a call running and without one started or ended
    /// for `idle` (the ones to park).
    pub fn idle_sessions(&self, idle: Duration) -> Vec<String> {
        let state = lock(&self.state);
        state
            .live
            .values()
            .filter(|s| s.in_flight() == 0 && s.idle_for() >= idle)
            .filter_map(|s| s.mcp_session_id())
            .collect()
    }

    /// Sessions ended since the start.
    pub fn ended(&self) -> u64 {
        lock(&self.state).ended
    }

    /// Live sessions (sessionless states not counted).
    pub fn len(&self) -> usize {
        lock(&self.state).live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live sessions per client label (anonymous clients pooled), for metrics.
    pub fn sessions_by_client(&self) -> Vec<(String, usize)> {
        let state = lock(&self.state);
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for s in state.live.values() {
            *counts.entry(s.policy().metric_label()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Live sessions of one client.
    pub fn count_for(&self, client: &str) -> usize {
        lock(&self.state)
            .per_client
            .get(client)
            .copied()
            .unwrap_or(0)
    }

    /// Forget sessionless states idle longer than the idle timeout. Sessions proper are expired
    /// by the transport, which drops their [`Registration`].
    pub fn expire_idle(&self) -> usize {
        let timeout = self.limits.idle_timeout;
        let mut state = lock(&self.state);
        let before = state.sessionless.len();
        state
            .sessionless
            .retain(|_, s| s.in_flight() > 0 || s.idle_for() < timeout);
        before - state.sessionless.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Arc<ClientPolicy> {
        Arc::new(ClientPolicy::for_test(id))
    }

    fn registry(max_total: usize, max_per_client: usize) -> Arc<Registry> {
        Registry::new(SessionLimits {
            max_total,
            max_per_client,
            idle_timeout: Duration::from_millis(50),
            park_after: None,
        })
    }

    #[test]
    fn limits_are_enforced_and_release_is_exact() {
        let r = registry(3, 2);
        let a1 = r.open(client("a"), None).unwrap();
        let a2 = r.open(client("a"), None).unwrap();
        let e = r.open(client("a"), None).err().unwrap();
        assert_eq!(e.kind, "too_many_sessions");
        assert!(e.message.contains("client 'a'"));
        let b1 = r.open(client("b"), None).unwrap();
        assert!(r
            .open(client("c"), None)
            .err()
            .unwrap()
            .message
            .contains("maximum of 3"));
        assert_eq!((r.len(), r.count_for("a")), (3, 2));
        drop(a1);
        assert_eq!((r.len(), r.count_for("a")), (2, 1));
        drop(a2);
        drop(b1);
        assert!(r.is_empty());
        assert_eq!(r.ended(), 3);
        assert_eq!(r.count_for("a"), 0);
        assert!(r.open(client("a"), None).is_ok());
    }

    #[test]
    fn sessionless_state_is_per_client_and_expires_when_idle() {
        let r = registry(10, 10);
        let a = client("a");
        let (s1, fresh) = r.sessionless(&a);
        assert!(fresh);
        assert_eq!(s1.mcp_session_id().as_deref(), Some("sessionless:a"));
        s1.set_context(Context {
            database: Some("D".into()),
            ..Default::default()
        });
        let (s2, fresh) = r.sessionless(&a);
        assert!(!fresh);
        assert_eq!(s2.context().unwrap().database.as_deref(), Some("D"));
        assert!(r.sessionless(&client("b")).0.context().is_none());
        let busy = s2.begin_request();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.expire_idle(), 1, "b expired, a is busy");
        drop(busy);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.expire_idle(), 1);
        assert!(r.sessionless(&a).0.context().is_none());
    }

    #[test]
    fn idle_sessions_are_the_ones_without_calls_for_a_while() {
        let r = registry(10, 10);
        let (a, b) = (
            r.open(client("a"), None).unwrap(),
            r.open(client("b"), None).unwrap(),
        );
        let unbound = r.open(client("c"), None).unwrap();
        assert!(r.bind(&a.session, "sa") && r.bind(&b.session, "sb"));
        assert!(r.idle_sessions(Duration::from_millis(30)).is_empty());
        let busy = b.session.begin_request();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            r.idle_sessions(Duration::from_millis(30)),
            vec!["sa".to_string()]
        );
        drop(busy);
        assert_eq!(
            r.idle_sessions(Duration::from_millis(30)),
            vec!["sa".to_string()]
        );
        drop(unbound);
    }
}

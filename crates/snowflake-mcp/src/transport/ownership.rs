//! Session ownership at the HTTP door: an MCP session belongs to the principal that opened it,
//! from the first byte of its id to long after it ends.
//!
//! Every request to `/mcp` passes [`authenticate`] before rmcp sees it. A request that names a
//! session (`Mcp-Session-Id` on POST, GET or DELETE — and so also the request that restores a
//! session after a restart or on another replica) is served only when its principal is the
//! session's recorded owner; anyone else gets the same 404 as for an id that never existed, so
//! they learn nothing and can neither use nor close it. An id without a recorded owner is
//! refused too: the check fails closed.
//!
//! The owner is recorded when the session is created, before its id leaves the server. The
//! transport makes the id while answering `initialize`, so the door wraps that request: when
//! rmcp's response carries a new id, the door records the owner in the [`Registry`] (memory, for
//! the fast path) and in the [`StateStore`] (durable, seen by every replica), and only then lets
//! the response head go out. If the store cannot record it, the id is withheld and the client
//! gets 503: a session whose owner is not durable is never handed out.
//!
//! Streams belong to their owner too. As an SSE response goes out, the door records who each
//! event id went to ([`EventBuffer::claim`]); a `GET` that resumes a stream (`Last-Event-ID`)
//! replays only to that principal and session. Anyone else — another client, another session of
//! the same client, an anonymous caller without a session — gets an empty stream, as for an id
//! that is no longer kept, and the attempt is logged without the id.
//!
//! Principals: a configured client is its `[[clients]]` id. Without configured clients there are
//! no credentials, and each new session gets a fresh anonymous identity (random id, never
//! reused); the session id then stands for that identity, which is restored with the session.
//! An anonymous session is never served to a configured client and vice versa.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::identity::{Clients, Identity};
use crate::policy::ClientPolicy;
use crate::principal::ANONYMOUS_PREFIX;
use crate::sessions::{PendingSession, Registry};
use crate::state::{StateStore, StoredSession};
use crate::transport::events::{EventBuffer, SseIds, StreamOwner};
use crate::unix_now;

/// The transport's session header.
const SESSION_HEADER: &str = "mcp-session-id";

/// How long the door waits on the state store before answering 503.
const STORE_DEADLINE: Duration = Duration::from_secs(5);

/// What the door checks against: the clients, and who owns which session.
pub struct Gate {
    pub clients: Arc<Clients>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn StateStore>,
    /// The resumable streams' events and their owners.
    pub events: Arc<EventBuffer>,
}

/// The axum layer in front of `/mcp`: identify the principal, check it owns the session it
/// names, and record the owner of a session it creates.
pub async fn authenticate(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match crate::identity::authenticate(&gate.clients, request.headers()).await {
        Ok(client) => client,
        Err(refusal) => return refusal,
    };
    let named = request
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().map(str::to_string));
    match named {
        Some(Ok(id)) => {
            let owner = match gate.owner_of(&id).await {
                Ok(owner) => owner,
                Err(e) => return unavailable(&e),
            };
            let Some(principal) = gate.admit(client, owner.as_deref()) else {
                return not_found();
            };
            // A session out of memory (parked, or from before a restart) is restored by its
            // next call, not by a GET: the standalone stream would carry nothing (this server
            // sends nothing unasked), and restoring for it would bring every idle session that
            // holds one straight back into memory. A GET resuming a stream (`Last-Event-ID`)
            // restores as usual.
            if request.method() == axum::http::Method::GET
                && !request.headers().contains_key(LAST_EVENT_ID)
                && gate.registry.owner_of(&id).is_none()
            {
                return no_standalone_stream();
            }
            let owner = StreamOwner {
                principal: principal.id.to_string(),
                session: Some(id),
            };
            if !gate.may_resume(&request, &owner) {
                return empty_stream();
            }
            request.extensions_mut().insert(Identity(Some(principal)));
            let response = next.run(request).await;
            gate.watch(response, owner)
        }
        Some(Err(_)) => not_found(),
        None => {
            let principal = client.unwrap_or_else(|| gate.clients.new_anonymous());
            // Without a session an anonymous caller is someone new each time: nothing it
            // resumes can be its own.
            let mut owner = StreamOwner {
                principal: principal.id.to_string(),
                session: None,
            };
            if !gate.may_resume(&request, &owner) {
                return empty_stream();
            }
            let pending = PendingSession::default();
            request
                .extensions_mut()
                .insert(Identity(Some(principal.clone())));
            request.extensions_mut().insert(pending.clone());
            let response = next.run(request).await;
            let response = gate.claim(response, &pending, &principal).await;
            owner.session = session_handed_out(&response);
            gate.watch(response, owner)
        }
    }
}

/// The header a client resumes a stream with.
const LAST_EVENT_ID: &str = "last-event-id";

/// The session id `response` hands out, if any.
fn session_handed_out(response: &Response) -> Option<String> {
    response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Gate {
    /// False when `request` resumes a stream (`Last-Event-ID`) that is not `owner`'s — or no
    /// longer kept, which looks the same from outside.
    fn may_resume(&self, request: &Request, owner: &StreamOwner) -> bool {
        let Some(last) = request.headers().get(LAST_EVENT_ID) else {
            return true;
        };
        let allowed = last
            .to_str()
            .is_ok_and(|id| self.events.may_replay(id.trim(), owner));
        if !allowed {
            tracing::warn!(
                client = %owner.principal,
                "refused to resume a stream the caller does not own (or that is no longer kept)"
            );
        }
        allowed
    }

    /// Let an SSE `response` through, recording `owner` as the owner of each event id in it
    /// before the id reaches the client.
    fn watch(&self, response: Response, owner: StreamOwner) -> Response {
        let sse = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            return response;
        }
        let events = self.events.clone();
        let mut ids = SseIds::default();
        let (parts, body) = response.into_parts();
        let body = tokio_stream::StreamExt::map(body.into_data_stream(), move |chunk| {
            if let Ok(bytes) = &chunk {
                for id in ids.feed(bytes) {
                    events.claim(&id, &owner);
                }
            }
            chunk
        });
        Response::from_parts(parts, axum::body::Body::from_stream(body))
    }

    /// The recorded owner of session `id`: the live registry first, else the state store (after
    /// a restart, on another replica, or once the session went idle here). With a shared store
    /// the record is checked on every request, so a session ended on another replica (DELETE
    /// leaves a tombstone) ends here too. A session this replica holds keeps working while the
    /// shared store cannot answer, and its record is written again if the store lost it
    /// (Redis restarted without its data, or expired it).
    async fn owner_of(&self, id: &str) -> Result<Option<String>, String> {
        let here = self.registry.owner_of(id).map(|o| o.to_string());
        if here.is_some() && !self.store.shared() {
            return Ok(here);
        }
        let deadline = if here.is_some() {
            crate::policy::cluster::CALL_DEADLINE
        } else {
            STORE_DEADLINE
        };
        let loaded = match tokio::time::timeout(deadline, self.store.load_session(id)).await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) if here.is_none() => return Err(e.to_string()),
            Err(_) if here.is_none() => return Err("the state store did not answer in time".into()),
            _ => return Ok(here),
        };
        match (loaded, here) {
            (Some(stored), _) => Ok(stored.client_id),
            (None, Some(owner)) => {
                let now = unix_now();
                let record = StoredSession {
                    id: id.to_string(),
                    client_id: Some(owner.clone()),
                    created: now,
                    last_seen: now,
                    ..Default::default()
                };
                let healed = tokio::time::timeout(deadline, self.store.save_session(&record));
                if !matches!(healed.await, Ok(Ok(()))) {
                    tracing::warn!("could not write a lost session record again");
                }
                Ok(Some(owner))
            }
            (None, None) => Ok(None),
        }
    }

    /// The principal a request acts as when it names a session owned by `owner`, or `None` when
    /// it is not the owner (or the session has none).
    fn admit(
        &self,
        client: Option<Arc<ClientPolicy>>,
        owner: Option<&str>,
    ) -> Option<Arc<ClientPolicy>> {
        let owner = owner?;
        match client {
            Some(client) => (client.id.as_ref() == owner).then_some(client),
            None => (!self.clients.requires_token() && owner.starts_with(ANONYMOUS_PREFIX))
                .then(|| self.clients.anonymous(owner)),
        }
    }

    /// When `response` hands out a new session id, record `principal` as its owner in memory
    /// and in the store before the response leaves; withhold the id if the store fails.
    async fn claim(
        &self,
        mut response: Response,
        pending: &PendingSession,
        principal: &ClientPolicy,
    ) -> Response {
        let Some(id) = session_handed_out(&response) else {
            return response;
        };
        if !self.registry.claim(pending, &id) {
            // `initialize` was refused (too many sessions, a bad restore) or the session already
            // ended: there is nothing to own, so nothing is kept and the id is not handed out.
            let _ = tokio::time::timeout(STORE_DEADLINE, self.store.delete_session(&id)).await;
            response.headers_mut().remove(SESSION_HEADER);
            return response;
        }
        let now = unix_now();
        let record = StoredSession {
            id: id.clone(),
            client_id: Some(principal.id.to_string()),
            created: now,
            last_seen: now,
            ..Default::default()
        };
        let saved = tokio::time::timeout(STORE_DEADLINE, self.store.save_session(&record)).await;
        let failure = match saved {
            Ok(Ok(())) => return response,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the state store did not answer in time".to_string(),
        };
        tracing::error!(error = %failure, client = %principal.id, "could not record a new session's owner; withholding its id");
        response.headers_mut().remove(SESSION_HEADER);
        unavailable(&failure)
    }
}

/// 405: the answer the MCP spec gives a server to a GET when it offers no SSE stream.
fn no_standalone_stream() -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert("allow", HeaderValue::from_static("POST, DELETE"));
    response
}

/// What a refused resumption gets: an empty stream that ends at once, as rmcp answers for an
/// event id it no longer keeps (an HTTP error would make an EventSource retry forever, and a
/// 404 would tell a client its session is gone).
fn empty_stream() -> Response {
    (
        StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        "",
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "session not found\n").into_response()
}

fn unavailable(why: &str) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the session store is unavailable ({why}); retry shortly\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}

//! Logging in, running statements, keeping a session alive, renewing it, closing it.
//!
//! A [`Client`] holds the endpoint and credentials; [`Client::login`] opens a [`Session`]. A
//! session runs **one statement at a time**: [`Session::query`] takes `&mut self`, so the borrow
//! checker refuses a second statement while one runs (Snowflake emulators return each other's
//! rows when statements overlap on one token). Things that must happen *while* a statement runs —
//! aborting it, heartbeats — go through a cloneable [`SessionHandle`].
//!
//! Token expiry is invisible to the caller: when Snowflake answers 390112 (session token
//! expired) the session renews its token with the master token (`/session/token-request`); when
//! there is no master token, or it expired too (390114), or the session is gone (390104, 390111),
//! it logs in again with the context it last had, and repeats the statement once.
//!
//! If a statement's future is dropped before it finished, or Snowflake stopped answering while
//! it ran, the statement may still be running on Snowflake; the session then reports
//! [`Session::is_poisoned`] and refuses further statements, so its owner can retire it instead
//! of risking two statements at once.
//!
//! Every request has a deadline: statements the time they may still take (see the
//! [`statement`] module), logins [`LOGIN_WAIT`], heartbeats, renewals and logouts
//! [`CONTROL_WAIT`], aborts [`ABORT_WAIT`]. A silent network never holds a caller longer.
//!
//! This file owns the [`Session`] itself (its state, token renewal, heartbeats, logout); the
//! [`client`] module logs in, the [`statement`] module runs statements, and the [`handle`]
//! module acts on a busy session from other tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::error::{
    Error, ErrorKind, Result, MASTER_TOKEN_EXPIRED, SESSION_GONE, SESSION_TOKEN_EXPIRED,
};
use crate::http::{Envelope, Retry};
use crate::settings::Secret;

mod api;
mod client;
mod handle;
mod statement;
mod stored;

pub use api::ApiEvent;
pub use client::Client;
use client::ClientInner;
pub use handle::{QueryStatus, SessionHandle};
pub use statement::{QueryIdCell, QueryOptions};
pub use stored::{is_query_id, Stored};

/// The longest a login may take, retries included (callers such as a pool usually allow less).
pub(crate) const LOGIN_WAIT: Duration = Duration::from_secs(60);
/// The longest a heartbeat, a token renewal or a logout may take, retries included.
pub(crate) const CONTROL_WAIT: Duration = Duration::from_secs(10);
/// The longest an abort may take: it is sent when the caller already gave up waiting.
pub(crate) const ABORT_WAIT: Duration = Duration::from_secs(3);

/// The database, schema, warehouse and role a session works in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionContext {
    pub database: Option<String>,
    pub schema: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
}

struct Tokens {
    session: Secret,
    master: Option<Secret>,
}

struct Shared {
    tokens: Mutex<Tokens>,
    /// Request id of the statement in flight, for abort.
    running: Mutex<Option<String>>,
    closed: AtomicBool,
}

impl Shared {
    fn session_token(&self) -> Secret {
        lock(&self.tokens).session.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One logged-in Snowflake session. Runs one statement at a time (`&mut self`).
pub struct Session {
    client: Arc<ClientInner>,
    shared: Arc<Shared>,
    context: SessionContext,
    server_version: Option<String>,
    session_id: Option<i64>,
    sequence: u64,
    poisoned: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("context", &self.context)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The context as Snowflake last reported it (updated after every statement).
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Record the context as the caller knows it after statements whose effect Snowflake did not
    /// report (emulators omit `finalRoleName` and `finalWarehouseName` after `USE ROLE` and
    /// `USE WAREHOUSE`). Fields left `None` keep what the session knew.
    pub fn record_context(&mut self, known: &SessionContext) {
        for (mine, theirs) in [
            (&mut self.context.database, &known.database),
            (&mut self.context.schema, &known.schema),
            (&mut self.context.warehouse, &known.warehouse),
            (&mut self.context.role, &known.role),
        ] {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
    }

    /// The server version reported at login.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// Snowflake's numeric session id, when reported.
    pub fn session_id(&self) -> Option<i64> {
        self.session_id
    }

    /// True when a statement was interrupted by dropping its future: it may still be running,
    /// so this session refuses new statements and should be closed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// A handle for aborting the running statement and sending heartbeats from other tasks.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle {
            client: self.client.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Run `call` with the session token; on an expiry answer, renew or log in again (by
    /// `deadline`) and repeat once.
    async fn with_renewal<F, Fut>(&mut self, deadline: Instant, call: F) -> Result<Envelope>
    where
        F: Fn(Secret) -> Fut,
        Fut: std::future::Future<Output = Result<Envelope>>,
    {
        let env = call(self.shared.session_token()).await?;
        if env.success || expiry_code(&env).is_none() {
            return Ok(env);
        }
        self.renew(expiry_code(&env).unwrap_or_default(), deadline)
            .await?;
        call(self.shared.session_token()).await
    }

    async fn renew(&mut self, code: &str, deadline: Instant) -> Result<()> {
        self.check_open()?;
        let master = lock(&self.shared.tokens).master.clone();
        if let (SESSION_TOKEN_EXPIRED, Some(master)) = (code, master) {
            let old = self.shared.session_token();
            let url = self.client.transport.url(
                "session/token-request",
                &[("requestId", uuid::Uuid::new_v4().to_string().as_str())],
            )?;
            let body = json!({"oldSessionToken": old.expose(), "requestType": "RENEW"});
            let env = self
                .client
                .transport
                .post(url, Some(&master), &body, Retry::Always, deadline)
                .await?;
            if env.success {
                let token = env.data.get("sessionToken").and_then(Value::as_str);
                let Some(token) = token else {
                    return Err(Error::protocol(
                        "the token renewal answer has no session token",
                    ));
                };
                let mut tokens = lock(&self.shared.tokens);
                tokens.session = Secret::new(token);
                if let Some(m) = env.data.get("masterToken").and_then(Value::as_str) {
                    tokens.master = Some(Secret::new(m));
                }
                tracing::debug!("renewed the Snowflake session token");
                return Ok(());
            }
            tracing::debug!(code = ?env.code, "token renewal refused; logging in again");
        }
        let login = self
            .client
            .login(&self.context, deadline)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::SessionExpired,
                    format!("the session expired and logging in again failed: {e}"),
                )
            })?;
        *lock(&self.shared.tokens) = login.tokens;
        self.context = login.context;
        self.session_id = login.session_id;
        tracing::debug!("logged in again after the Snowflake session expired");
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::SessionExpired,
                "this session was closed",
            ));
        }
        Ok(())
    }

    /// Tell Snowflake the session is in use, renewing the token if it expired.
    pub async fn heartbeat(&mut self) -> Result<()> {
        self.check_open()?;
        let transport = self.client.transport.clone();
        let url = transport.url("session/heartbeat", &[])?;
        let deadline = Instant::now() + CONTROL_WAIT;
        let env = self
            .with_renewal(deadline, |token| {
                let (transport, url) = (&transport, url.clone());
                async move {
                    transport
                        .post(url, Some(&token), &json!({}), Retry::Always, deadline)
                        .await
                }
            })
            .await?;
        if env.success {
            Ok(())
        } else {
            Err(env.error())
        }
    }

    /// Log out: Snowflake forgets the session and refuses its token from now on.
    pub async fn close(self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let url = self
            .client
            .transport
            .url("session", &[("delete", "true")])?;
        let token = self.shared.session_token();
        let deadline = Instant::now() + CONTROL_WAIT;
        let env = self
            .client
            .transport
            .post(url, Some(&token), &json!({}), Retry::Always, deadline)
            .await?;
        if env.success || expiry_code(&env).is_some() {
            Ok(())
        } else {
            Err(env.error())
        }
    }
}

fn expiry_code(env: &Envelope) -> Option<&'static str> {
    match env.code.as_deref()? {
        SESSION_TOKEN_EXPIRED => Some(SESSION_TOKEN_EXPIRED),
        MASTER_TOKEN_EXPIRED => Some(MASTER_TOKEN_EXPIRED),
        c => SESSION_GONE.iter().find(|g| **g == c).copied(),
    }
}

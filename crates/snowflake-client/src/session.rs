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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::auth::Credentials;
use crate::error::{
    Error, ErrorKind, Result, MASTER_TOKEN_EXPIRED, SESSION_GONE, SESSION_TOKEN_EXPIRED,
};
use crate::http::{Envelope, Retry, Transport};
use crate::settings::{ConnectionSettings, Secret};

mod statement;

pub use statement::QueryOptions;

const CLIENT_APP_ID: &str = "snowflake-mcp";
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

/// A Snowflake endpoint with credentials; cheap to clone, opens [`Session`]s.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    transport: Transport,
    credentials: Credentials,
    account: String,
    context: SessionContext,
}

impl Client {
    /// Check the settings and read any key file; no network traffic yet.
    pub fn new(settings: &ConnectionSettings) -> Result<Self> {
        let base = settings.endpoint()?;
        let credentials = Credentials::from_settings(settings)?;
        let account = settings
            .account
            .clone()
            .or_else(|| {
                settings
                    .host
                    .as_ref()
                    .map(|h| h.split('.').next().unwrap_or(h).to_string())
            })
            .unwrap_or_default();
        Ok(Client {
            inner: Arc::new(ClientInner {
                transport: Transport::new(base)?,
                credentials,
                account: account
                    .split('.')
                    .next()
                    .unwrap_or(&account)
                    .to_ascii_uppercase(),
                context: SessionContext {
                    database: settings.database.clone(),
                    schema: settings.schema.clone(),
                    warehouse: settings.warehouse.clone(),
                    role: settings.role.clone(),
                },
            }),
        })
    }

    /// The base URL this client talks to.
    pub fn endpoint(&self) -> &reqwest::Url {
        self.inner.transport.base()
    }

    /// For key-pair authentication, the public key's `SHA256:` fingerprint — compare it with
    /// `RSA_PUBLIC_KEY_FP` in `DESC USER` when a login is refused.
    pub fn key_fingerprint(&self) -> Option<&str> {
        match &self.inner.credentials {
            Credentials::KeyPair(pair) => Some(pair.fingerprint()),
            _ => None,
        }
    }

    /// The context new sessions start in (from the settings).
    pub fn default_context(&self) -> &SessionContext {
        &self.inner.context
    }

    /// Log in with the settings' context.
    pub async fn login(&self) -> Result<Session> {
        self.login_with(&self.inner.context).await
    }

    /// Log in starting in `context` (fields left `None` are Snowflake's user defaults).
    pub async fn login_with(&self, context: &SessionContext) -> Result<Session> {
        let login = self
            .inner
            .login(context, Instant::now() + LOGIN_WAIT)
            .await?;
        Ok(Session {
            client: self.inner.clone(),
            shared: Arc::new(Shared {
                tokens: Mutex::new(login.tokens),
                running: Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
            context: login.context,
            server_version: login.server_version,
            session_id: login.session_id,
            sequence: 0,
            poisoned: false,
        })
    }
}

struct Tokens {
    session: Secret,
    master: Option<Secret>,
}

struct LoginOutcome {
    tokens: Tokens,
    context: SessionContext,
    server_version: Option<String>,
    session_id: Option<i64>,
}

impl ClientInner {
    async fn login(&self, context: &SessionContext, deadline: Instant) -> Result<LoginOutcome> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut query = vec![("request_id", request_id.as_str())];
        for (key, value) in [
            ("databaseName", &context.database),
            ("schemaName", &context.schema),
            ("warehouse", &context.warehouse),
            ("roleName", &context.role),
        ] {
            if let Some(v) = value {
                query.push((key, v.as_str()));
            }
        }
        let url = self.transport.url("session/v1/login-request", &query)?;
        let mut data = Map::new();
        data.insert("CLIENT_APP_ID".into(), json!(CLIENT_APP_ID));
        data.insert(
            "CLIENT_APP_VERSION".into(),
            json!(env!("CARGO_PKG_VERSION")),
        );
        data.insert("ACCOUNT_NAME".into(), json!(self.account));
        // Emulators refuse a login without SESSION_PARAMETERS; Snowflake uses
        // CLIENT_VALIDATE_DEFAULT_PARAMETERS to fail the login when the context does not exist.
        // ABORT_DETACHED_QUERY: a statement dies with its session when the client goes away
        // (a killed server leaves nothing running on the warehouse).
        data.insert(
            "SESSION_PARAMETERS".into(),
            json!({"CLIENT_VALIDATE_DEFAULT_PARAMETERS": true, "ABORT_DETACHED_QUERY": true}),
        );
        data.insert(
            "CLIENT_ENVIRONMENT".into(),
            json!({"APPLICATION": CLIENT_APP_ID, "OS": std::env::consts::OS, "OS_VERSION": std::env::consts::ARCH}),
        );
        self.credentials.fill_login(&mut data)?;
        let env = self
            .transport
            .post(url, None, &json!({ "data": data }), Retry::Always, deadline)
            .await?;
        if !env.success {
            return Err(login_error(env.error()));
        }
        let d = &env.data;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let token = text(d, "token")
            .ok_or_else(|| Error::protocol("the login answer has no session token"))?;
        let info = d.get("sessionInfo").cloned().unwrap_or(Value::Null);
        let known = |key: &str, asked: &Option<String>| text(&info, key).or_else(|| asked.clone());
        Ok(LoginOutcome {
            tokens: Tokens {
                session: Secret::new(token),
                master: text(d, "masterToken").map(Secret::new),
            },
            context: SessionContext {
                database: known("databaseName", &context.database),
                schema: known("schemaName", &context.schema),
                warehouse: known("warehouseName", &context.warehouse),
                role: known("roleName", &context.role),
            },
            server_version: text(d, "serverVersion"),
            session_id: d.get("sessionId").and_then(Value::as_i64),
        })
    }
}

/// Login failures say what to check.
fn login_error(e: Error) -> Error {
    let hint = match e.code() {
        Some("390100") => "wrong user name or password",
        Some("390144") => "the key-pair JWT was refused: is the public key set on the user (ALTER USER ... SET RSA_PUBLIC_KEY) and the account right?",
        Some("390303" | "390318") => "the OAuth token is invalid or expired",
        Some("390201") => "the database, schema or warehouse to start in does not exist or is not authorized",
        Some("390189") => "the role to start in does not exist or is not granted to the user",
        _ => return e,
    };
    Error::from_snowflake(
        e.code().map(str::to_string),
        e.sql_state().map(str::to_string),
        format!("login failed: {hint} ({})", e.message()),
    )
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

/// Aborts the running statement and sends heartbeats, from any task, while the [`Session`] is
/// busy. Never renews tokens (only the session does, between statements).
#[derive(Clone)]
pub struct SessionHandle {
    client: Arc<ClientInner>,
    shared: Arc<Shared>,
}

impl SessionHandle {
    /// Abort the statement in flight, if any. Returns whether one was running. The statement
    /// then fails with [`ErrorKind::Cancelled`].
    pub async fn abort(&self) -> Result<bool> {
        self.abort_running().await
    }

    /// Abort the statement running **now**: its request id is read when this is called, not when
    /// the returned future first runs. A caller that gives up on a statement (and spawns the
    /// abort) thereby never aborts a later statement that reused the session meanwhile.
    pub fn abort_running(
        &self,
    ) -> impl std::future::Future<Output = Result<bool>> + Send + 'static {
        let running = lock(&self.shared.running).clone();
        let handle = self.clone();
        async move {
            match running {
                Some(request_id) => handle
                    .abort_request(&request_id, Instant::now() + ABORT_WAIT)
                    .await
                    .map(|_| true),
                None => Ok(false),
            }
        }
    }

    async fn abort_request(&self, request_id: &str, deadline: Instant) -> Result<()> {
        let url = self.client.transport.url(
            "queries/v1/abort-request",
            &[("requestId", uuid::Uuid::new_v4().to_string().as_str())],
        )?;
        let body = json!({"sqlText": "", "requestId": request_id});
        let env = self
            .client
            .transport
            .post(
                url,
                Some(&self.shared.session_token()),
                &body,
                Retry::Always,
                deadline,
            )
            .await?;
        // 000605: the statement already finished; nothing left to abort.
        if env.success || env.code.as_deref() == Some("000605") {
            Ok(())
        } else {
            Err(env.error())
        }
    }

    /// Keep the session alive. Fails with [`ErrorKind::SessionExpired`] once the session was
    /// closed or expired (the session itself renews on its next statement).
    pub async fn heartbeat(&self) -> Result<()> {
        let url = self.client.transport.url("session/heartbeat", &[])?;
        let env = self
            .client
            .transport
            .post(
                url,
                Some(&self.shared.session_token()),
                &json!({}),
                Retry::Always,
                Instant::now() + CONTROL_WAIT,
            )
            .await?;
        if env.success {
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

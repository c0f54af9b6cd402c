//! The [`Client`] and logging in: the endpoint and credentials a session is opened with, the
//! `login-request` that opens one (also used to log in again when a session expired), and the
//! hints a refused login carries.
//!
//! The login asks for `ABORT_DETACHED_QUERY` and `CLIENT_VALIDATE_DEFAULT_PARAMETERS`, and
//! reads back the session and master tokens and the context Snowflake actually started in.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{Session, SessionContext, Shared, Tokens, LOGIN_WAIT};
use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::http::{Retry, Transport};
use crate::settings::{ConnectionSettings, Secret};

const CLIENT_APP_ID: &str = "snowflake-mcp";

/// A Snowflake endpoint with credentials; cheap to clone, opens [`Session`]s.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
pub(super) struct ClientInner {
    pub(super) transport: Transport,
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

pub(super) struct LoginOutcome {
    pub(super) tokens: Tokens,
    pub(super) context: SessionContext,
    pub(super) server_version: Option<String>,
    pub(super) session_id: Option<i64>,
}

impl ClientInner {
    pub(super) async fn login(
        &self,
        context: &SessionContext,
        deadline: Instant,
    ) -> Result<LoginOutcome> {
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

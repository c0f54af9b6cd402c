//! Each person's own Snowflake identity, without token passthrough.
//!
//! The MCP authorization rules forbid forwarding the token a client gave us to another service:
//! its audience is this server. With `[oauth] snowflake_identity = "token_exchange"` the server
//! instead asks the identity provider for a separate token per person — OAuth 2.0 Token
//! Exchange (RFC 8693; Entra ID's on-behalf-of flow is the same idea): the person's token as
//! `subject_token`, the audience of Snowflake's External OAuth security integration, and the
//! server's own client credentials. That token logs the person in to Snowflake
//! (`authenticator = oauth`), so statements run under their own roles and Snowflake's
//! `QUERY_HISTORY` shows their name.
//!
//! The door ([`TokenExchange::ensure`], on every request of a signed-in person) keeps a fresh
//! Snowflake token cached per person until shortly before it expires; the backend's per-person
//! pools read it at login ([`TokenExchange::token`]). A refused exchange is answered 401, which
//! tells the MCP client to sign the person in again. Tokens are never logged or stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lock;
use crate::oauth::{OAuth, Refusal};

/// A cached token is replaced this long before it expires (a login must not race its expiry).
const MARGIN: Duration = Duration::from_secs(60);

/// The exchange, and the Snowflake tokens it obtained.
pub struct TokenExchange {
    oauth: Arc<OAuth>,
    client_id: String,
    client_secret: String,
    audience: String,
    scope: Option<String>,
    /// Person (client id) -> (Snowflake token, when to replace it).
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenExchange({} -> {})", self.client_id, self.audience)
    }
}

impl TokenExchange {
    /// The exchange `[oauth]` asks for, or `None` with `snowflake_identity = "service"`.
    pub fn from_config(oauth: &Arc<OAuth>) -> Result<Option<Arc<TokenExchange>>, String> {
        let c = oauth.config();
        match c.snowflake_identity.as_str() {
            "service" => return Ok(None),
            "token_exchange" => {}
            other => {
                return Err(format!(
                    "[oauth] snowflake_identity must be \"service\" or \"token_exchange\", not {other:?}"
                ))
            }
        }
        let need = |v: &Option<String>, key: &str| {
            v.clone().ok_or_else(|| {
                format!("[oauth] snowflake_identity = \"token_exchange\" needs {key}")
            })
        };
        let secret_file = c.client_secret_file.as_ref().ok_or(
            "[oauth] snowflake_identity = \"token_exchange\" needs client_secret_file".to_string(),
        )?;
        let client_secret = std::fs::read_to_string(secret_file)
            .map_err(|e| format!("[oauth] client_secret_file {}: {e}", secret_file.display()))?
            .trim()
            .to_string();
        Ok(Some(Arc::new(TokenExchange {
            oauth: oauth.clone(),
            client_id: need(&c.client_id, "client_id")?,
            client_secret,
            audience: need(&c.snowflake_audience, "snowflake_audience")?,
            scope: c.snowflake_scope.clone(),
            cache: Mutex::default(),
        })))
    }

    /// The person's current Snowflake token, if one is cached and not about to expire.
    pub fn token(&self, person: &str) -> Option<String> {
        let cache = lock(&self.cache);
        cache
            .get(person)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// Make sure `person` has a fresh Snowflake token, exchanging `subject_token` for one if not.
    pub async fn ensure(&self, person: &str, subject_token: &str) -> Result<(), Refusal> {
        if self.token(person).is_some() {
            return Ok(());
        }
        let (token, lifetime) = self.exchange(subject_token).await?;
        let until = Instant::now() + lifetime.saturating_sub(MARGIN).max(Duration::from_secs(1));
        lock(&self.cache).insert(person.to_string(), (token, until));
        Ok(())
    }

    async fn exchange(&self, subject_token: &str) -> Result<(String, Duration), Refusal> {
        let unavailable = |why: String| Refusal::Unavailable(why);
        let endpoint = match &self.oauth.config().token_endpoint {
            Some(url) => url.clone(),
            None => self
                .oauth
                .discover("token_endpoint")
                .await
                .map_err(unavailable)?,
        };
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", &self.audience),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        // application/x-www-form-urlencoded, by the URL crate's own encoder.
        let mut encoder = reqwest::Url::parse("http://form/").expect("a constant URL");
        encoder.query_pairs_mut().extend_pairs(&form);
        let body = encoder.query().unwrap_or_default().to_string();
        let response = self
            .oauth
            .http()
            .post(&endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(format!("token exchange at {endpoint}: {e}")))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_client_error() {
            // The person's grant is gone (expired, revoked) or not allowed: sign in again.
            tracing::warn!(status = status.as_u16(), error = %answer["error"], "the identity provider refused a token exchange");
            return Err(Refusal::Invalid(
                "the identity provider refused to exchange this token for Snowflake; sign in again"
                    .into(),
            ));
        }
        if !status.is_success() {
            return Err(unavailable(format!(
                "token exchange at {endpoint}: HTTP {status}"
            )));
        }
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unavailable("token exchange: no access_token in the answer".into()))?;
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(300));
        Ok((token.to_string(), lifetime))
    }
}

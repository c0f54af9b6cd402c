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
//! Snowflake token cached per person (their key: issuer and subject) until shortly before it
//! expires; the backend's per-person pools read it at login ([`TokenExchange::token`]).
//!
//! The exchange uses the server's own client credentials, so a person must not be able to make
//! the server hammer the identity provider with them. Exchanges are bounded:
//! * single-flight per person: concurrent requests wait for the one exchange in flight (up to
//!   [`FLIGHT_WAIT`]) and take its token;
//! * at most one attempt per person per [`ATTEMPT_SPACING`], whatever tokens they send;
//! * a refusal is remembered for [`REFUSAL_MEMORY`]: the same token is refused again without
//!   asking (a new sign-in, a new token, is tried);
//! * an endpoint that cannot be reached (or answers 5xx, 429, or refuses the server's own
//!   credentials) is an outage: answered 503 with `Retry-After` — never 401, which would sign
//!   the person out — and no exchange is tried by anyone until its backoff (from about a
//!   second, doubling to [`OUTAGE_BACKOFF_MAX`]) is over;
//! * discovery of the token endpoint is cached (see the oauth module).
//!
//! Only the provider refusing the person's own grant (400 `invalid_grant` and the like) is
//! answered 401, which tells the MCP client to sign the person in again. Tokens are never
//! logged or stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::identity::oauth::{Backoff, OAuth, Refusal};
use crate::lock;

/// A cached token is replaced this long before it expires (a login must not race its expiry).
const MARGIN: Duration = Duration::from_secs(60);
/// A person's exchanges are at least this far apart.
pub const ATTEMPT_SPACING: Duration = Duration::from_secs(5);
/// A refused token is refused again without asking for this long.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);
/// The longest a request waits for another request's exchange of the same person.
const FLIGHT_WAIT: Duration = Duration::from_secs(15);
/// The longest wait between attempts while the endpoint cannot be reached.
const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the exchange knows of one person.
#[derive(Default)]
struct PersonState {
    /// Their Snowflake token, and when to replace it.
    token: Option<(String, Instant)>,
    /// A subject token the provider refused (its SHA-256), and until when that is remembered.
    refused: Option<([u8; 32], Instant)>,
    /// The last exchange attempted.
    attempted: Option<Instant>,
    /// Held while an exchange for them is in flight.
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl PersonState {
    fn fresh_token(&self) -> Option<String> {
        self.token
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn refused(&self, subject: &[u8; 32]) -> bool {
        self.refused
            .as_ref()
            .is_some_and(|(h, until)| h == subject && Instant::now() < *until)
    }

    /// Whether anything here still matters (else the entry is pruned).
    fn live(&self) -> bool {
        self.fresh_token().is_some()
            || self
                .refused
                .is_some_and(|(_, until)| Instant::now() < until)
            || self
                .attempted
                .is_some_and(|t| t.elapsed() < ATTEMPT_SPACING)
            || Arc::strong_count(&self.flight) > 1
    }
}

/// The exchange, and the Snowflake tokens it obtained.
pub struct TokenExchange {
    oauth: Arc<OAuth>,
    client_id: String,
    client_secret: String,
    audience: String,
    scope: Option<String>,
    /// Person (client id) -> what the exchange knows of them.
    people: Mutex<HashMap<String, PersonState>>,
    /// Set while the token endpoint cannot be reached.
    outage: Mutex<Backoff>,
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
            people: Mutex::default(),
            outage: Mutex::default(),
        })))
    }

    /// The person's current Snowflake token, if one is cached and not about to expire.
    pub fn token(&self, person: &str) -> Option<String> {
        lock(&self.people)
            .get(person)
            .and_then(PersonState::fresh_token)
    }

    /// Make sure `person` has a fresh Snowflake token, exchanging `subject_token` for one if not
    /// (bounded: see the module docs).
    pub async fn ensure(&self, person: &str, subject_token: &str) -> Result<(), Refusal> {
        let subject: [u8; 32] = Sha256::digest(subject_token.as_bytes()).into();
        let flight = match self.settled(person, &subject)? {
            Some(()) => return Ok(()),
            None => lock(&self.people)
                .entry(person.to_string())
                .or_default()
                .flight
                .clone(),
        };
        let _flight = tokio::time::timeout(FLIGHT_WAIT, flight.lock_owned())
            .await
            .map_err(|_| {
                outage(
                    "a token exchange for this person is still running",
                    FLIGHT_WAIT,
                )
            })?;
        // Whoever held the flight may have settled it meanwhile.
        if self.settled(person, &subject)?.is_some() {
            return Ok(());
        }
        if let Some(wait) = lock(&self.outage).wait() {
            return Err(outage("the token endpoint cannot be reached", wait));
        }
        {
            let mut people = lock(&self.people);
            let state = people.entry(person.to_string()).or_default();
            if let Some(since) = state.attempted.filter(|t| t.elapsed() < ATTEMPT_SPACING) {
                return Err(outage(
                    "this person's last token exchange was moments ago",
                    ATTEMPT_SPACING - since.elapsed(),
                ));
            }
            state.attempted = Some(Instant::now());
        }
        let result = self.exchange(subject_token).await;
        let mut people = lock(&self.people);
        // Forget people with nothing worth keeping (bounded by the people recently seen).
        people.retain(|_, s| s.live());
        let state = people.entry(person.to_string()).or_default();
        match result {
            Ok((token, lifetime)) => {
                lock(&self.outage).succeed();
                // Replaced shortly before expiry, but never cached for less than half its life.
                let keep = lifetime.saturating_sub(MARGIN).max(lifetime / 2);
                state.token = Some((token, Instant::now() + keep.max(Duration::from_secs(1))));
                state.refused = None;
                Ok(())
            }
            Err(refusal @ Refusal::Invalid(_)) => {
                lock(&self.outage).succeed();
                state.refused = Some((subject, Instant::now() + REFUSAL_MEMORY));
                Err(refusal)
            }
            Err(Refusal::Unavailable { why, .. }) => {
                let wait = lock(&self.outage).fail(OUTAGE_BACKOFF_MAX);
                tracing::warn!(error = %why, retry_in_ms = wait.as_millis() as u64, "token exchange unavailable");
                Err(outage(&why, wait))
            }
            Err(other) => Err(other),
        }
    }

    /// `Some` when `person` has a fresh token, `Err` when `subject` was refused lately, `None`
    /// when an exchange is needed.
    fn settled(&self, person: &str, subject: &[u8; 32]) -> Result<Option<()>, Refusal> {
        let people = lock(&self.people);
        match people.get(person) {
            Some(s) if s.fresh_token().is_some() => Ok(Some(())),
            Some(s) if s.refused(subject) => Err(refused()),
            _ => Ok(None),
        }
    }

    async fn exchange(&self, subject_token: &str) -> Result<(String, Duration), Refusal> {
        let unavailable = |why: String| outage(&why, Duration::ZERO);
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
        let error = answer["error"].as_str().unwrap_or_default();
        match status.as_u16() {
            // The person's grant is gone (expired, revoked) or not allowed: sign in again.
            400 if error != "invalid_client" => {
                tracing::warn!(
                    status = status.as_u16(),
                    error,
                    "the identity provider refused a token exchange"
                );
                return Err(refused());
            }
            // The server's own credentials or endpoint are wrong: no sign-in can mend that.
            400..=407 | 409..=428 | 430..=499 => {
                tracing::error!(status = status.as_u16(), error, "the identity provider refused the server's token-exchange request; check [oauth] client_id, client_secret_file and token_endpoint");
                return Err(unavailable(format!(
                    "token exchange at {endpoint}: HTTP {status}"
                )));
            }
            _ => {}
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

/// The refusal of a person's grant: 401, sign in again.
fn refused() -> Refusal {
    Refusal::Invalid(
        "the identity provider refused to exchange this token for Snowflake; sign in again".into(),
    )
}

/// The answer while the token endpoint cannot be used: 503, retry after `wait`.
fn outage(why: &str, wait: Duration) -> Refusal {
    Refusal::Unavailable {
        why: why.to_string(),
        retry_after: wait.max(Duration::from_secs(1)),
    }
}

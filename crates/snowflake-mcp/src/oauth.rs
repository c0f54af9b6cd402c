//! OAuth 2.1 protected resource (the MCP authorization spec, 2025-06-18 and later): people sign
//! in at the company's identity provider, and their MCP client sends us the access token it got.
//!
//! This module owns everything about those tokens:
//! * the `[oauth]` settings ([`OAuthConfig`]);
//! * RFC 9728 metadata ([`OAuth::metadata`]) telling clients which authorization server to use,
//!   and the `WWW-Authenticate` challenges that point them to it (401 without or with a bad
//!   token, 403 `insufficient_scope`);
//! * validating a token ([`OAuth::verify`]): the signature against the issuer's JWKS (fetched
//!   from `jwks_url`, else discovered from the issuer's metadata; cached, refreshed when a token
//!   names an unknown `kid`, at most once per [`REFRESH_EVERY`]), an allow-list of asymmetric
//!   algorithms (never `none`, never HMAC — a public key is no secret), `iss`, `aud` (this
//!   resource), `exp`/`nbf` with a small leeway, and the required scopes.
//!
//! What a valid token's person may do is the identity module's business ([`Person`] carries the
//! claims it matches on). Tokens are never logged or stored; a refusal says why in general
//! terms only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::lock;

/// JWKS refreshes for unknown key ids happen at most this often (a flood of tokens with made-up
/// `kid`s must not become a flood of requests to the identity provider).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The longest a JWKS or metadata fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// `[oauth]`: accept access tokens from one issuer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The authorization server (`iss` of its tokens), e.g. `https://login.corp.com/realms/x`.
    pub issuer: String,
    /// This server's canonical URL, e.g. `https://mcp.corp.com/mcp` (RFC 8707 resource).
    pub resource: String,
    /// The `aud` tokens must carry (default: `resource`).
    pub audience: Option<String>,
    /// Where the signing keys are (default: `jwks_uri` of the issuer's metadata).
    pub jwks_url: Option<String>,
    /// Advertised in the metadata.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Scopes every token must have (else 403 `insufficient_scope`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The claim that names the person (default `sub`; e.g. `email`).
    #[serde(default = "default_claim")]
    pub client_claim: String,
    /// The `[[clients]]` entry whose policy covers authenticated people no entry matches
    /// (default: none — they are refused).
    pub default_policy: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Whose Snowflake identity runs a person's statements: `service` (the configured service
    /// user, the default) or `token_exchange` (the person's own, see `token_exchange.rs`).
    #[serde(default = "default_identity")]
    pub snowflake_identity: String,
    /// The identity provider's token endpoint (default: `token_endpoint` of its metadata).
    pub token_endpoint: Option<String>,
    /// This server's own client at the identity provider, for token exchange.
    pub client_id: Option<String>,
    /// A file holding that client's secret (kept out of the config file).
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The audience of Snowflake's External OAuth security integration.
    pub snowflake_audience: Option<String>,
    /// Scope asked for in the exchange (e.g. `session:role-any`).
    pub snowflake_scope: Option<String>,
    /// Snowflake sessions kept per person (their own small pool).
    #[serde(default = "default_per_person")]
    pub sessions_per_person: usize,
}

fn default_identity() -> String {
    "service".into()
}

fn default_per_person() -> usize {
    2
}

fn default_claim() -> String {
    "sub".into()
}

fn default_leeway() -> u64 {
    60
}

/// Signature algorithms accepted: asymmetric only.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A person a valid token names.
#[derive(Clone, Debug)]
pub struct Person {
    /// The `client_claim` value.
    pub name: String,
    /// All claims, for matching people to policies.
    pub claims: Value,
}

/// Why a request was not let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token.
    Missing,
    /// A token that is not valid (signature, issuer, audience, expiry, form).
    Invalid(String),
    /// A valid token without a required scope.
    InsufficientScope(String),
    /// A valid token for a person no policy covers.
    NoPolicy(String),
    /// The identity provider's keys could not be fetched.
    Unavailable(String),
}

/// The resource server: settings, and the issuer's keys.
pub struct OAuth {
    config: OAuthConfig,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

impl OAuth {
    pub fn new(config: &OAuthConfig) -> Result<OAuth, String> {
        for (what, url) in [("issuer", &config.issuer), ("resource", &config.resource)] {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(format!("[oauth] {what} must be an http(s) URL"));
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("[oauth]: {e}"))?;
        Ok(OAuth {
            config: config.clone(),
            http,
            keys: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// RFC 9728 protected resource metadata.
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.config.resource,
            "authorization_servers": [self.config.issuer],
            "scopes_supported": self.config.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "snowflake-mcp",
        })
    }

    /// Where the metadata is: the path-suffixed well-known URL of the resource (RFC 9728 §3.1).
    pub fn metadata_url(&self) -> String {
        let r = self.config.resource.trim_end_matches('/');
        let (origin, path) = match r.find("://").map(|i| i + 3) {
            Some(start) => match r[start..].find('/') {
                Some(p) => r.split_at(start + p),
                None => (r, ""),
            },
            None => (r, ""),
        };
        format!("{origin}/.well-known/oauth-protected-resource{path}")
    }

    /// Validate `token`; the person it names.
    pub async fn verify(&self, token: &str) -> Result<Person, Refusal> {
        let invalid = |why: &str| Refusal::Invalid(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid("token algorithm not accepted"));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self.key(&kid).await?;
        // Only the token's own algorithm (already on the allow-list); the library checks that
        // it fits the key's family, so an RSA key never verifies an HMAC or EC signature.
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[self
            .config
            .audience
            .as_deref()
            .unwrap_or(&self.config.resource)]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "token expired",
                K::ImmatureSignature => "token not valid yet",
                K::InvalidIssuer => "token from another issuer",
                K::InvalidAudience => "token for another audience",
                K::InvalidSignature => "bad signature",
                K::InvalidAlgorithm => "token algorithm does not fit its key",
                _ => "invalid token",
            })
        })?;
        let claims = data.claims;
        let scopes = granted_scopes(&claims);
        if let Some(missing) = self
            .config
            .required_scopes
            .iter()
            .find(|s| !scopes.contains(s))
        {
            return Err(Refusal::InsufficientScope(missing.clone()));
        }
        let name = match claims.get(&self.config.client_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid("token does not name a person")),
        };
        Ok(Person { name, claims })
    }

    /// The key `kid`, refreshing the key set when it is unknown (rate-limited).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        if let Some(key) = lock(&self.keys).by_kid.get(kid) {
            return Ok(key.clone());
        }
        // One refresh at a time; whoever waited finds the keys it fetched.
        let _refresh = self.refreshing.lock().await;
        {
            let keys = lock(&self.keys);
            if let Some(key) = keys.by_kid.get(kid) {
                return Ok(key.clone());
            }
            if keys.fetched.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
                return Err(Refusal::Invalid("unknown signing key".into()));
            }
        }
        let fetched = self.fetch_keys().await;
        let mut keys = lock(&self.keys);
        keys.fetched = Some(Instant::now());
        match fetched {
            Ok(by_kid) => keys.by_kid = by_kid,
            Err(e) if keys.by_kid.is_empty() => return Err(Refusal::Unavailable(e)),
            Err(e) => tracing::warn!(error = %e, "could not refresh the identity provider's keys"),
        }
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Refusal::Invalid("unknown signing key".into()))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => self.discover_jwks().await?,
        };
        let set: JwkSet = self.get_json(&url).await.and_then(|v| {
            serde_json::from_value(v).map_err(|e| format!("{url}: not a JWK set: {e}"))
        })?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            // Keys for encryption, or of a kind we cannot use, are skipped.
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        Ok(by_kid)
    }

    /// `jwks_uri` from the issuer's OpenID or OAuth authorization-server metadata.
    async fn discover_jwks(&self) -> Result<String, String> {
        self.discover("jwks_uri").await
    }

    /// A field of the issuer's OpenID or OAuth authorization-server metadata.
    pub(crate) async fn discover(&self, field: &str) -> Result<String, String> {
        let issuer = self.config.issuer.trim_end_matches('/');
        let mut tried = Vec::new();
        for url in [
            format!("{issuer}/.well-known/openid-configuration"),
            format!("{issuer}/.well-known/oauth-authorization-server"),
        ] {
            match self.get_json(&url).await {
                Ok(v) => {
                    if let Some(found) = v.get(field).and_then(Value::as_str) {
                        return Ok(found.to_string());
                    }
                    tried.push(format!("{url}: no {field}"));
                }
                Err(e) => tried.push(e),
            }
        }
        Err(format!(
            "cannot discover the issuer's {field} ({})",
            tried.join("; ")
        ))
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// The answer to a refused request: 401 with a challenge pointing to the metadata, 403 for a
    /// missing scope or person without a policy, 503 when the keys cannot be fetched.
    pub fn challenge(&self, refusal: &Refusal) -> Response {
        let meta = self.metadata_url();
        let scope = self.config.required_scopes.join(" ");
        let (status, value, body) = match refusal {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer resource_metadata=\"{meta}\""),
                "authorization required\n".to_string(),
            ),
            Refusal::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{why}\", resource_metadata=\"{meta}\""
                ),
                format!("invalid token: {why}\n"),
            ),
            Refusal::InsufficientScope(missing) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{meta}\""
                ),
                format!("the token lacks the scope {missing}\n"),
            ),
            Refusal::NoPolicy(person) => (
                StatusCode::FORBIDDEN,
                format!("Bearer error=\"insufficient_scope\", resource_metadata=\"{meta}\""),
                format!("no policy on this server covers {person}\n"),
            ),
            Refusal::Unavailable(_) => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the identity provider's keys cannot be fetched; retry shortly\n",
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return r;
            }
        };
        let mut response = (status, body).into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// `/.well-known/oauth-protected-resource` and its path-suffixed form (`…/mcp`), unauthenticated.
pub fn routes(oauth: std::sync::Arc<OAuth>) -> axum::Router {
    let metadata = oauth.metadata();
    let answer = move || {
        let m = metadata.clone();
        async move { axum::Json(m) }
    };
    axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(answer.clone()),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            axum::routing::get(answer),
        )
}

/// The scopes a token grants: `scope` (space-separated, RFC 8693/9068) or `scp` (a list or a
/// string, as Entra ID and Okta write it).
fn granted_scopes(claims: &Value) -> Vec<String> {
    let mut scopes = Vec::new();
    for claim in ["scope", "scp"] {
        match claims.get(claim) {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_string)),
            Some(Value::Array(a)) => {
                scopes.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    scopes
}

/// Whether `claims` satisfy every `(claim, value)` of a `match` table: a string claim equal to
/// the value, or a list claim containing it.
pub fn matches(claims: &Value, wanted: &std::collections::BTreeMap<String, String>) -> bool {
    !wanted.is_empty()
        && wanted.iter().all(|(claim, value)| match claims.get(claim) {
            Some(Value::String(s)) => s == value,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(value)),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(resource: &str) -> OAuth {
        OAuth::new(&OAuthConfig {
            issuer: "https://idp.example.com".into(),
            resource: resource.into(),
            audience: None,
            jwks_url: None,
            scopes_supported: vec![],
            required_scopes: vec!["mcp".into()],
            client_claim: "sub".into(),
            default_policy: None,
            leeway_secs: 60,
            snowflake_identity: "service".into(),
            token_endpoint: None,
            client_id: None,
            client_secret_file: None,
            snowflake_audience: None,
            snowflake_scope: None,
            sessions_per_person: 2,
        })
        .unwrap()
    }

    #[test]
    fn metadata_lives_at_the_path_suffixed_well_known_url() {
        assert_eq!(
            oauth("https://mcp.example.com/mcp").metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            oauth("https://mcp.example.com").metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn scopes_and_matches_read_strings_and_lists() {
        let claims = json!({"scope": "a mcp", "scp": ["b"], "groups": ["analysts", "x"], "email": "ana@corp.com"});
        assert_eq!(granted_scopes(&claims), ["a", "mcp", "b"]);
        let m = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches(&claims, &m(&[("groups", "analysts")])));
        assert!(matches(&claims, &m(&[("email", "ana@corp.com")])));
        assert!(!matches(&claims, &m(&[("email", "bob@corp.com")])));
        assert!(!matches(
            &claims,
            &m(&[("groups", "analysts"), ("email", "bob@corp.com")])
        ));
        assert!(!matches(&claims, &m(&[])), "an empty match matches nobody");
    }

    #[tokio::test]
    async fn none_and_hmac_tokens_are_refused_before_any_key_is_fetched() {
        let o = oauth("https://mcp.example.com/mcp");
        let b64 = |v: Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let claims = b64(json!({"sub": "x", "iss": "https://idp.example.com"}));
        for alg in ["none", "HS256"] {
            let token = format!("{}.{claims}.", b64(json!({"alg": alg, "typ": "JWT"})));
            let refused = o.verify(&token).await.unwrap_err();
            assert!(matches!(refused, Refusal::Invalid(_)), "{alg}: {refused:?}");
        }
    }
}

//! OAuth 2.1 protected resource (the MCP authorization spec, 2025-06-18 and later): people sign
//! in at the company's identity provider, and their MCP client sends us the access token it got.
//!
//! This module owns everything about those tokens:
//! * the `[oauth]` settings ([`OAuthConfig`], read in `config/oauth.rs`);
//! * RFC 9728 metadata ([`OAuth::metadata`]) telling clients which authorization server to use,
//!   and the `WWW-Authenticate` challenges that point them to it (401 without or with a bad
//!   token, 403 `insufficient_scope`);
//! * validating a token ([`OAuth::verify`]): the signature against the issuer's JWKS (fetched
//!   from `jwks_url`, else discovered from the issuer's metadata; cached, refreshed when a token
//!   names an unknown `kid`, at most once per [`REFRESH_EVERY`]; an unreachable provider is
//!   answered 503, never 401, see `keys.rs`), an allow-list of asymmetric algorithms (never
//!   `none`, never HMAC — a public key is no secret), `iss`, `aud` (this resource), `exp`/`nbf`
//!   with a small leeway, and the required scopes.
//!
//! A person is their token's issuer and subject (`iss`, `sub`): [`Person::key`] keys everything
//! of theirs (sessions, history, quotas, exchanged tokens, pools). `client_claim` only names
//! them (display, audit, policy matching) — two people sharing an e-mail address share nothing.
//! With `client_claim = "email"` a token saying `email_verified: false` is refused.
//!
//! The provider's URLs (issuer, JWKS, token endpoint, and what discovery returns) must be
//! `https://`, except on loopback: keys fetched in plain text could be swapped by anyone on the
//! path. What a valid token's person may do is the identity module's business ([`Person`]
//! carries the claims it matches on). Tokens are never logged or stored; a refusal says why in
//! general terms only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod keys;
pub(crate) use keys::Backoff;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::{check_provider_url, OAuthConfig};

/// JWKS refreshes for unknown key ids happen at most this often (a flood of tokens with made-up
/// `kid`s must not become a flood of requests to the identity provider).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The longest a JWKS or metadata fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Discovered metadata (`jwks_uri`, `token_endpoint`) is asked for again after this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

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
    /// Who they are: a hash of the token's issuer and subject (`iss`, `sub`), 32 hex digits.
    /// Everything of theirs is keyed on it; it says nothing about them.
    pub key: String,
    /// What they are called: the `client_claim` value (display, audit, policy matching).
    pub name: String,
    /// All claims, for matching people to policies.
    pub claims: Value,
}

impl Person {
    /// The key of the person `subject` at `issuer`.
    pub fn key_of(issuer: &str, subject: &str) -> String {
        let mut h = Sha256::new();
        for part in [issuer, subject] {
            // Length-prefixed, so no two (issuer, subject) pairs hash the same input.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
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
    /// A valid token naming the person by an e-mail address it says is not verified.
    Unverified,
    /// The token could not be checked: the identity provider (its keys, its token endpoint)
    /// cannot be reached. Answered 503 with `Retry-After`, never 401: the sign-in is fine.
    Unavailable { why: String, retry_after: Duration },
}

/// The resource server: settings, and the issuer's keys.
pub struct OAuth {
    config: OAuthConfig,
    http: reqwest::Client,
    keys: keys::KeyCache,
    /// Discovered metadata fields (`jwks_uri`, `token_endpoint`) and when they were fetched.
    discovered: Mutex<HashMap<String, (String, Instant)>>,
}

impl OAuth {
    pub fn new(config: &OAuthConfig) -> Result<OAuth, String> {
        config.check()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // A redirect could lead to plain http elsewhere; the provider's URLs are exact.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("[oauth]: {e}"))?;
        Ok(OAuth {
            config: config.clone(),
            http,
            keys: keys::KeyCache::default(),
            discovered: Mutex::default(),
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
        let key = self.keys.key(&kid, || self.fetch_keys()).await?;
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
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid("token does not name a person (no sub)")),
        };
        let name = match claims.get(&self.config.client_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid("token does not name a person")),
        };
        if self.config.client_claim == "email" && !email_verified(&claims) {
            return Err(Refusal::Unverified);
        }
        // `iss` was checked to be the configured issuer; it is part of the key all the same,
        // so a change of issuer can never merge two people.
        let issuer = claims["iss"].as_str().unwrap_or(&self.config.issuer);
        Ok(Person {
            key: Person::key_of(issuer, &subject),
            name,
            claims,
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
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
            // Signing in again cannot help until the address is verified: 403, not 401.
            Refusal::Unverified => (
                StatusCode::FORBIDDEN,
                format!("Bearer error=\"insufficient_scope\", resource_metadata=\"{meta}\""),
                "the token's e-mail address is not verified\n".to_string(),
            ),
            Refusal::Unavailable { retry_after, .. } => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the identity provider cannot be reached to check this token; retry shortly\n",
                )
                    .into_response();
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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

/// Whether a token's `email` may be trusted: not when it says `email_verified: false` (a
/// provider that does not say is taken at its word that its addresses are its own).
fn email_verified(claims: &Value) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        // Some providers write it as a string.
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => true,
    }
}

/// Whether `claims` satisfy every `(claim, value)` of a `match` table: a string claim equal to
/// the value, or a list claim containing it. An `email` that is not verified matches nothing.
pub fn matches(claims: &Value, wanted: &std::collections::BTreeMap<String, String>) -> bool {
    !wanted.is_empty()
        && wanted.iter().all(|(claim, value)| match claims.get(claim) {
            _ if claim == "email" && !email_verified(claims) => false,
            Some(Value::String(s)) => s == value,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(value)),
            _ => false,
        })
}

#[cfg(test)]
mod tests;

//! The issuer's signing keys and metadata — fetching them, and what happens when they cannot
//! be fetched.
//!
//! An identity provider that cannot be reached is an outage, not a bad token: MCP clients answer
//! a 401 `invalid_token` by throwing the person's sign-in away, so a token whose key we could not
//! fetch is answered 503 with `Retry-After` ([`Refusal::Unavailable`]) — every time, not only
//! the first. Refetching after a failed fetch backs off ([`Backoff`]: about a second, doubling
//! up to [`REFRESH_EVERY`]), so an outage is noticed to be over within seconds while the
//! provider is not hammered. Only a token whose `kid` is missing from a key set fetched
//! successfully (and recently) is refused as invalid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::{check_provider_url, OAuth, Refusal, DISCOVERY_TTL, REFRESH_EVERY};
use crate::lock;

/// The first wait after a failed fetch; each further failure doubles it.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// Waits after failures: [`BACKOFF_FIRST`], doubling up to a cap; a success starts over.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// Note a failure; how long to wait before the next attempt.
    pub(crate) fn fail(&mut self, cap: Duration) -> Duration {
        let wait = BACKOFF_FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(cap);
        self.failures = self.failures.saturating_add(1);
        self.until = Some(Instant::now() + wait);
        wait
    }

    pub(crate) fn succeed(&mut self) {
        *self = Backoff::default();
    }

    /// How much longer to wait before trying again, if at all.
    pub(crate) fn wait(&self) -> Option<Duration> {
        self.until
            .and_then(|u| u.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

/// The keys by `kid`, when they were last fetched successfully, and the backoff after failures.
#[derive(Default)]
pub(crate) struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
    backoff: Backoff,
}

/// The key cache of one issuer.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<Keys>,
    /// One fetch at a time; whoever waited finds the keys it fetched.
    refreshing: tokio::sync::Mutex<()>,
}

/// What a refusal says when the provider could not be asked.
fn unavailable(wait: Duration) -> Refusal {
    Refusal::Unavailable {
        why: "the identity provider's signing keys cannot be fetched".into(),
        retry_after: wait,
    }
}

impl KeyCache {
    /// The key `kid`, fetching the key set with `fetch` when it is unknown — at most once per
    /// [`REFRESH_EVERY`] after a success, and after a failure once its backoff is over.
    pub(crate) async fn key<F, Fut>(&self, kid: &str, fetch: F) -> Result<DecodingKey, Refusal>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<String, DecodingKey>, String>>,
    {
        if let Some(key) = lock(&self.keys).by_kid.get(kid) {
            return Ok(key.clone());
        }
        let _refresh = self.refreshing.lock().await;
        {
            let keys = lock(&self.keys);
            if let Some(key) = keys.by_kid.get(kid) {
                return Ok(key.clone());
            }
            // The last fetch failed: we cannot check this token, whatever it is.
            if let Some(wait) = keys.backoff.wait() {
                return Err(unavailable(wait));
            }
            if keys.fetched.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
                return Err(Refusal::Invalid("unknown signing key".into()));
            }
        }
        let fetched = fetch().await;
        let mut keys = lock(&self.keys);
        match fetched {
            Ok(by_kid) => {
                keys.by_kid = by_kid;
                keys.fetched = Some(Instant::now());
                keys.backoff.succeed();
            }
            Err(e) => {
                let wait = keys.backoff.fail(REFRESH_EVERY);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "could not fetch the identity provider's signing keys");
                return Err(unavailable(wait));
            }
        }
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Refusal::Invalid("unknown signing key".into()))
    }
}

impl OAuth {
    pub(super) async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, String> {
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

    /// A field of the issuer's OpenID or OAuth authorization-server metadata (a URL, checked
    /// like the configured ones), cached for [`DISCOVERY_TTL`].
    pub(crate) async fn discover(&self, field: &str) -> Result<String, String> {
        if let Some((url, at)) = lock(&self.discovered).get(field) {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(url.clone());
            }
        }
        let found = self.discover_uncached(field).await?;
        check_provider_url(&format!("the issuer's {field}"), &found)?;
        lock(&self.discovered).insert(field.to_string(), (found.clone(), Instant::now()));
        Ok(found)
    }

    async fn discover_uncached(&self, field: &str) -> Result<String, String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_near_a_second_and_doubles_to_its_cap() {
        let mut b = Backoff::default();
        assert_eq!(b.wait(), None);
        let cap = Duration::from_secs(30);
        let waits: Vec<u64> = (0..7).map(|_| b.fail(cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert!(b.wait().is_some());
        b.succeed();
        assert_eq!(b.wait(), None);
        assert_eq!(b.fail(cap), BACKOFF_FIRST);
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_unavailable_until_it_answers_again() {
        let cache = KeyCache::default();
        let down = || async { Err::<HashMap<String, DecodingKey>, _>("refused".to_string()) };
        for _ in 0..3 {
            let refused = cache.key("k1", down).await.err().unwrap();
            assert!(
                matches!(refused, Refusal::Unavailable { .. }),
                "{refused:?}"
            );
        }
        // Still in its first backoff: the second and third did not fetch.
        let fetched = std::sync::atomic::AtomicUsize::new(0);
        let counting = || async {
            fetched.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<HashMap<String, DecodingKey>, _>("refused".to_string())
        };
        let _ = cache.key("k1", counting).await;
        assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let up = || async {
            let mut keys = HashMap::new();
            keys.insert("k1".to_string(), DecodingKey::from_secret(b"x"));
            Ok::<_, String>(keys)
        };
        assert!(cache.key("k1", up).await.is_ok(), "refetched after ~1 s");
        let unknown = cache.key("k2", up).await.err().unwrap();
        assert!(matches!(unknown, Refusal::Invalid(_)), "{unknown:?}");
    }
}

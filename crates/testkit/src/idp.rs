//! A test identity provider: an RSA signing key, OpenID discovery metadata and a JWKS served on
//! loopback, and a minting function for access tokens — good ones and every kind of bad one
//! (expired, wrong audience or issuer, unknown `kid`, `alg: none`, HMAC signed with the public
//! key, missing scope).
//!
//! It also runs the authorization-code flow with PKCE an MCP client goes through: `/authorize`
//! signs in [`TestIdp::sign_in_as`]'s person at once and redirects back with a code, `/token`
//! checks the code verifier and returns an access token for the `resource` the client named.
//!
//! For the outage and abuse tests it can be taken down ([`TestIdp::set_down`]: every route
//! answers a chosen status), refuse token exchanges ([`TestIdp::refuse_exchanges`]), and slow
//! them down ([`TestIdp::delay_exchanges`]); it counts every exchange attempt and every request
//! it answered while down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

/// A forged or broken token, for the refusal tests.
#[derive(Clone, Copy, Debug)]
pub enum Forgery {
    /// Signed with a key the JWKS does not publish.
    UnknownKid,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the published public key (PEM) as the shared secret.
    HmacWithPublicKey,
}

/// A running test identity provider.
pub struct TestIdp {
    /// The issuer URL (`iss`), also the base of its metadata.
    pub issuer: String,
    signing: EncodingKey,
    stranger: EncodingKey,
    public_pem: String,
    jwks_fetches: Arc<AtomicUsize>,
    flow: Arc<Flow>,
}

/// The authorization-code flow's state: who signs in, and codes not yet exchanged.
#[derive(Default)]
struct Flow {
    person: Mutex<(String, Value)>,
    /// code -> (PKCE challenge, resource, scope)
    codes: Mutex<HashMap<String, (String, String, String)>>,
    minted: Mutex<Option<Minter>>,
    /// Verifies subject tokens in token exchanges.
    verifier: Mutex<Option<jsonwebtoken::DecodingKey>>,
    /// Token exchanges granted.
    exchanges: AtomicUsize,
    /// Token-exchange requests received (granted or not, down or not).
    exchange_attempts: AtomicUsize,
    /// Refuse every token exchange (400 `invalid_grant`).
    refuse: AtomicBool,
    /// Wait this long before answering a token exchange.
    exchange_delay_ms: AtomicU64,
    /// When not 0: every route answers this status.
    down: AtomicU16,
    /// Requests answered while down.
    refused_while_down: AtomicUsize,
}

/// The client credentials `/token` accepts for token exchange.
pub const EXCHANGE_CLIENT: (&str, &str) = ("snowflake-mcp", "exchange-secret");

/// Signs claims with the published key (the issuer filled in).
type Minter = Arc<dyn Fn(&Value) -> String + Send + Sync>;

fn rsa_key() -> RsaPrivateKey {
    let mut rng = rand::thread_rng();
    RsaPrivateKey::new(&mut rng, 2048).expect("an RSA key")
}

impl TestIdp {
    /// Generate keys and serve the metadata and JWKS on a free loopback port.
    pub async fn start() -> TestIdp {
        let (key, stranger) = (rsa_key(), rsa_key());
        let public = key.to_public_key();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let metadata = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["mcp"],
            "code_challenge_methods_supported": ["S256"],
        });
        let counted = fetches.clone();
        let flow = Arc::new(Flow::default());
        let (authorizing, exchanging) = (flow.clone(), flow.clone());
        let discovery = metadata.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let m = metadata.clone();
                    async move { Json(m) }
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let m = discovery.clone();
                    async move { Json(m) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let set = json!({"keys": [jwk.clone()]});
                    async move { Json(set) }
                }),
            )
            .route(
                "/authorize",
                get(move |Query(q): Query<HashMap<String, String>>| {
                    let flow = authorizing.clone();
                    async move { flow.authorize(&q) }
                }),
            )
            .route(
                "/token",
                post(move |headers: axum::http::HeaderMap, body: String| {
                    let flow = exchanging.clone();
                    async move {
                        if body.contains("token-exchange") {
                            flow.exchange_attempts.fetch_add(1, Ordering::SeqCst);
                            let delay = flow.exchange_delay_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        }
                        flow.exchange(&headers, &body)
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                flow.clone(),
                |axum::extract::State(flow): axum::extract::State<Arc<Flow>>,
                 request: axum::extract::Request,
                 next: axum::middleware::Next| async move {
                    let down = flow.down.load(Ordering::SeqCst);
                    if down == 0 {
                        return next.run(request).await;
                    }
                    flow.refused_while_down.fetch_add(1, Ordering::SeqCst);
                    if request.uri().path() == "/token" {
                        flow.exchange_attempts.fetch_add(1, Ordering::SeqCst);
                    }
                    let status =
                        StatusCode::from_u16(down).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    (status, "down for the test\n").into_response()
                },
            ));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let signing = EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes());
        let (minting, iss) = (signing.clone(), issuer.clone());
        *flow.minted.lock().unwrap() = Some(Arc::new(move |claims: &Value| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("k1".into());
            let mut claims = claims.clone();
            claims["iss"] = json!(iss);
            jsonwebtoken::encode(&header, &claims, &minting).unwrap()
        }));
        *flow.verifier.lock().unwrap() = Some(jsonwebtoken::DecodingKey::from_rsa_der(
            public.to_pkcs1_der().unwrap().as_bytes(),
        ));
        TestIdp {
            flow,
            issuer,
            signing,
            stranger: EncodingKey::from_rsa_der(stranger.to_pkcs1_der().unwrap().as_bytes()),
            public_pem: public
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string(),
            jwks_fetches: fetches,
        }
    }

    /// Claims of a good token for `person` with `audience`: issuer, an hour of validity, the
    /// `mcp` scope; the test adds or overrides what it needs.
    pub fn claims(&self, person: &str, audience: &str) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": self.issuer, "aud": audience, "sub": person, "email": person,
            "iat": now, "nbf": now, "exp": now + 3600, "scope": "mcp",
        })
    }

    /// A token with `claims`, signed RS256 with the published key.
    pub fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }

    /// A token with `claims` made the wrong way.
    pub fn forged(&self, forgery: Forgery, claims: &Value) -> String {
        match forgery {
            Forgery::UnknownKid => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("k-unpublished".into());
                jsonwebtoken::encode(&header, claims, &self.stranger).unwrap()
            }
            Forgery::AlgNone => {
                let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
                format!(
                    "{}.{}.",
                    part(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
                    part(claims)
                )
            }
            Forgery::HmacWithPublicKey => {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("k1".into());
                let key = EncodingKey::from_secret(self.public_pem.as_bytes());
                jsonwebtoken::encode(&header, claims, &key).unwrap()
            }
        }
    }

    /// Who `/authorize` signs in from now on: `person` (as `sub` and `email`) in `groups`.
    pub fn sign_in_as(&self, person: &str, groups: &[&str]) {
        *self.flow.person.lock().unwrap() = (person.to_string(), json!(groups));
    }

    /// Token exchanges granted so far.
    pub fn exchanges(&self) -> usize {
        self.flow.exchanges.load(Ordering::SeqCst)
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Take the provider down (every route answers `status`, e.g. 503 or 429), or `None` to
    /// bring it back.
    pub fn set_down(&self, status: Option<u16>) {
        self.flow.down.store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Requests answered while down.
    pub fn refused_while_down(&self) -> usize {
        self.flow.refused_while_down.load(Ordering::SeqCst)
    }

    /// Refuse (400 `invalid_grant`) every token exchange from now on, or not.
    pub fn refuse_exchanges(&self, refuse: bool) {
        self.flow.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Answer each token exchange only after `delay`.
    pub fn delay_exchanges(&self, delay: std::time::Duration) {
        self.flow
            .exchange_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Token-exchange requests received, whatever the answer.
    pub fn exchange_attempts(&self) -> usize {
        self.flow.exchange_attempts.load(Ordering::SeqCst)
    }
}

impl Flow {
    /// Sign the person in at once and send the browser back with a code.
    fn authorize(&self, q: &HashMap<String, String>) -> Response {
        let (Some(redirect), Some(challenge)) = (q.get("redirect_uri"), q.get("code_challenge"))
        else {
            return (
                StatusCode::BAD_REQUEST,
                "redirect_uri and code_challenge needed",
            )
                .into_response();
        };
        if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return (StatusCode::BAD_REQUEST, "S256 only").into_response();
        }
        let code = format!("code-{}", self.codes.lock().unwrap().len() + 1);
        let resource = q.get("resource").cloned().unwrap_or_default();
        let scope = q.get("scope").cloned().unwrap_or_else(|| "mcp".into());
        self.codes
            .lock()
            .unwrap()
            .insert(code.clone(), (challenge.clone(), resource, scope));
        let Ok(mut location) = reqwest::Url::parse(redirect) else {
            return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
        };
        location.query_pairs_mut().append_pair("code", &code);
        if let Some(state) = q.get("state") {
            location.query_pairs_mut().append_pair("state", state);
        }
        let location = location.to_string();
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    }

    /// Exchange a code (with its PKCE verifier), or another token (RFC 8693), for an access
    /// token.
    fn exchange(&self, headers: &axum::http::HeaderMap, body: &str) -> Response {
        let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://form/?{body}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        if form.get("grant_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:grant-type:token-exchange")
        {
            return self.token_exchange(headers, &form);
        }
        let refuse = |why: &str| {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": why})),
            )
                .into_response()
        };
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return refuse("authorization_code only");
        }
        let Some((challenge, resource, scope)) = form
            .get("code")
            .and_then(|c| self.codes.lock().unwrap().remove(c))
        else {
            return refuse("unknown code");
        };
        use sha2::Digest;
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) != challenge {
            return refuse("PKCE verifier does not match");
        }
        let resource = form.get("resource").cloned().unwrap_or(resource);
        if resource.is_empty() {
            return refuse("a resource (RFC 8707) is needed: it becomes the audience");
        }
        let (person, groups) = self.person.lock().unwrap().clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"aud": resource, "sub": person, "email": person, "groups": groups,
            "iat": now, "nbf": now, "exp": now + 3600, "scope": scope});
        let mint = self.minted.lock().unwrap().clone().expect("a signing key");
        Json(json!({"access_token": mint(&claims), "token_type": "Bearer", "expires_in": 3600, "scope": scope}))
            .into_response()
    }
}

impl Flow {
    /// RFC 8693: the subject token must be one of ours and the client must authenticate; the
    /// new token is for the requested audience, with `exchanged: true`.
    fn token_exchange(
        &self,
        headers: &axum::http::HeaderMap,
        form: &HashMap<String, String>,
    ) -> Response {
        let refuse = |status: StatusCode, error: &str| {
            (status, Json(json!({"error": error}))).into_response()
        };
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", EXCHANGE_CLIENT.0, EXCHANGE_CLIENT.1))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        let (Some(subject), Some(audience)) = (form.get("subject_token"), form.get("audience"))
        else {
            return refuse(StatusCode::BAD_REQUEST, "invalid_request");
        };
        if self.refuse.load(Ordering::SeqCst) {
            return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        let verifier = self.verifier.lock().unwrap().clone().expect("a key");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        let Ok(data) = jsonwebtoken::decode::<Value>(subject, &verifier, &validation) else {
            return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"aud": audience, "sub": data.claims["sub"], "email": data.claims["email"],
            "exchanged": true, "iat": now, "exp": now + 600, "scp": form.get("scope")});
        let mint = self.minted.lock().unwrap().clone().expect("a signing key");
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        Json(json!({"access_token": mint(&claims), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer", "expires_in": 600}))
        .into_response()
    }
}

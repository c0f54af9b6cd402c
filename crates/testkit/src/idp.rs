//! A test identity provider: an RSA signing key, OpenID discovery metadata and a JWKS served on
//! loopback, and a minting function for access tokens — good ones and every kind of bad one
//! (expired, wrong audience or issuer, unknown `kid`, `alg: none`, HMAC signed with the public
//! key, missing scope).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
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
}

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
            "code_challenge_methods_supported": ["S256"],
        });
        let counted = fetches.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let m = metadata.clone();
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
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIdp {
            issuer,
            signing: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
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

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

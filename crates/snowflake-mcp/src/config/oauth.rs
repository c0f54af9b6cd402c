//! `[oauth]` in the `--config` file: which identity provider's tokens the server accepts, and
//! how a person's statements reach Snowflake. Read and checked here; used by
//! `identity/oauth.rs` (the resource server) and `identity/token_exchange.rs`.

use serde::Deserialize;

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

/// Whether `url` may be fetched for keys or tokens: `https://`, or `http://` on loopback only
/// (127.0.0.0/8, ::1, localhost).
pub fn check_provider_url(what: &str, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what} {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{what} {url:?} is plain http: keys and tokens must come over https (http is accepted on loopback only)"
        )),
        _ => Err(format!("{what} {url:?} must be an https URL")),
    }
}

impl OAuthConfig {
    /// What a config must satisfy (run at config load and when the server is built).
    pub fn check(&self) -> Result<(), String> {
        if !self.resource.starts_with("https://") && !self.resource.starts_with("http://") {
            return Err("[oauth] resource must be an http(s) URL".into());
        }
        check_provider_url("[oauth] issuer", &self.issuer)?;
        for (what, url) in [
            ("[oauth] jwks_url", &self.jwks_url),
            ("[oauth] token_endpoint", &self.token_endpoint),
        ] {
            if let Some(url) = url {
                check_provider_url(what, url)?;
            }
        }
        Ok(())
    }
}

//! # Stage: identity — who is calling
//!
//! Owns turning a request's credentials into a client: bearer tokens compared with configured
//! hashes (this file), OAuth access tokens from the company's identity provider
//! ([`oauth`]), and exchanging a person's token for a Snowflake one ([`token_exchange`]).
//! It builds each caller's [`ClientPolicy`] but must not enforce it (that is
//! [`crate::policy`] and the tools), must not know about MCP sessions or the backend, and never
//! logs or stores a token in clear.
//!
//! Identity: which client a request comes from, and the [`ClientPolicy`] it runs under (built
//! here from the configuration; what a policy allows is [`crate::policy`]'s business).
//!
//! With `[[clients]]` configured, every HTTP request to `/mcp` must carry
//! `Authorization: Bearer <token>`; the token's SHA-256 is compared in constant time with each
//! client's `token_sha256` (the token itself is never stored or logged). A request without a
//! valid token gets HTTP 401 with a `WWW-Authenticate` header. Without configured clients, each
//! MCP session is its own anonymous client under the `[anonymous]` policy.
//!
//! The HTTP door (the ownership module's `authenticate`) resolves the token with [`resolve`] and
//! puts an [`Identity`] into the request's extensions; rmcp hands the request parts to the MCP
//! handler, which reads it from there.

pub mod oauth;
pub mod operators;
pub mod token_exchange;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::{Config, ContextConfig};
use crate::identity::oauth::{OAuth, Person, Refusal};
use crate::identity::token_exchange::TokenExchange;
use crate::policy::writes::Writes;
use crate::policy::{
    restricted_default, Access, ClientPolicy, PersonNames, QuotaPolicy, RatePolicy,
};
use crate::principal::{ANONYMOUS_PREFIX, PERSON_PREFIX};
use crate::state::WindowLimits;
use crate::Context;

/// Who sent a request: a configured client, or nobody in particular.
#[derive(Clone, Debug)]
pub struct Identity(pub Option<Arc<ClientPolicy>>);

/// All configured clients, and the anonymous policy.
pub struct Clients {
    /// Clients with a static token.
    configured: Vec<([u8; 32], Arc<ClientPolicy>)>,
    /// Every `[[clients]]` entry by id.
    entries: Vec<Arc<ClientPolicy>>,
    /// Entries that cover people by their token's claims, in config order.
    people: Vec<(
        std::collections::BTreeMap<String, String>,
        Arc<ClientPolicy>,
    )>,
    /// The policy of people no entry matches.
    default_people: Option<Arc<ClientPolicy>>,
    oauth: Option<Arc<OAuth>>,
    /// With `snowflake_identity = "token_exchange"`: each person's own Snowflake token.
    exchange: Option<Arc<TokenExchange>>,
    anonymous_weight: u32,
    anonymous_max_concurrent: usize,
    anonymous_rate: Option<RatePolicy>,
    anonymous_total: usize,
}

impl Clients {
    pub fn from_config(config: &Config) -> Result<Clients, String> {
        let (mut configured, mut entries, mut people) = (Vec::new(), Vec::new(), Vec::new());
        for c in &config.clients {
            let policy = Arc::new(policy_of(c));
            if let Some(hash) = &c.token_sha256 {
                let hash = decode_hex32(hash).ok_or_else(|| {
                    format!("client '{}': token_sha256 must be 64 hex digits", c.id)
                })?;
                configured.push((hash, policy.clone()));
            }
            if let Some(m) = &c.people {
                people.push((m.clone(), policy.clone()));
            }
            entries.push(policy);
        }
        let oauth = match &config.oauth {
            Some(o) => Some(Arc::new(OAuth::new(o)?)),
            None => None,
        };
        let exchange = match &oauth {
            Some(o) => TokenExchange::from_config(o)?,
            None => None,
        };
        let default_people = config
            .oauth
            .as_ref()
            .and_then(|o| o.default_policy.as_ref())
            .and_then(|id| entries.iter().find(|p| p.id.as_ref() == id).cloned());
        Ok(Clients {
            configured,
            entries,
            people,
            default_people,
            oauth,
            exchange,
            anonymous_weight: config.anonymous.weight.max(1),
            anonymous_max_concurrent: config.anonymous.max_concurrent.max(1),
            anonymous_rate: config
                .anonymous
                .rate_per_minute
                .map(|per_minute| RatePolicy {
                    per_minute,
                    burst: config.anonymous.burst,
                }),
            anonymous_total: config.anonymous.max_concurrent_total.max(1),
        })
    }

    /// True when requests must carry a bearer token.
    pub fn requires_token(&self) -> bool {
        !self.entries.is_empty() || self.oauth.is_some()
    }

    /// The token exchange for people's own Snowflake identities, when configured.
    pub fn exchange(&self) -> Option<&Arc<TokenExchange>> {
        self.exchange.as_ref()
    }

    /// The OAuth resource server, when `[oauth]` is configured.
    pub fn oauth(&self) -> Option<&Arc<OAuth>> {
        self.oauth.as_ref()
    }

    /// The client a signed-in person is: the first entry whose `match` their claims satisfy,
    /// else `[oauth] default_policy` — under the id `person:<key>` (their issuer and subject,
    /// see [`Person::key`]), so each person is their own client whatever their name or policy.
    /// Resolved from the token on every request: a token that lost a group loses its policy at
    /// once. `None` when no policy covers them.
    pub fn for_person(&self, person: &Person) -> Option<Arc<ClientPolicy>> {
        let policy = self
            .people
            .iter()
            .find(|(m, _)| crate::identity::oauth::matches(&person.claims, m))
            .map(|(_, p)| p)
            .or(self.default_people.as_ref())?;
        let mut own = ClientPolicy::clone(policy);
        own.person = Some(PersonNames {
            entry: policy.id.clone(),
            name: person.name.as_str().into(),
        });
        own.id = format!("{PERSON_PREFIX}{}", person.key).into();
        Some(Arc::new(own))
    }

    /// The client a bearer token belongs to. Every configured hash is compared, each in
    /// constant time, so timing says nothing about which (or whether one) matched.
    pub fn by_token(&self, token: &str) -> Option<Arc<ClientPolicy>> {
        let mut found = None;
        for (expected, policy) in &self.configured {
            if token_matches(token, expected) {
                found = Some(policy.clone());
            }
        }
        found
    }

    /// Every `[[clients]]` entry, in config order.
    pub fn entries(&self) -> &[Arc<ClientPolicy>] {
        &self.entries
    }

    /// The configured client `id`.
    pub fn by_id(&self, id: &str) -> Option<Arc<ClientPolicy>> {
        self.entries.iter().find(|p| p.id.as_ref() == id).cloned()
    }

    /// A new anonymous client (one per MCP session). Its id is random — unguessable and never
    /// reused, also across restarts, so no new client inherits another's usage or history.
    pub fn new_anonymous(&self) -> Arc<ClientPolicy> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.anonymous(&format!("{ANONYMOUS_PREFIX}{}", &id[..16]))
    }

    /// The anonymous client `id` (an id [`Clients::new_anonymous`] made, e.g. read back as the
    /// owner of a restored session).
    pub fn anonymous(&self, id: &str) -> Arc<ClientPolicy> {
        Arc::new(ClientPolicy {
            id: id.into(),
            weight: self.anonymous_weight,
            max_concurrent: self.anonymous_max_concurrent,
            default_context: Context::default(),
            anonymous: true,
            rate: self.anonymous_rate,
            quotas: QuotaPolicy::default(),
            access: Access::default(),
            group: Some(("anonymous".into(), self.anonymous_total)),
            person: None,
        })
    }
}

/// The policy a `[[clients]]` entry describes.
fn policy_of(c: &crate::config::ClientConfig) -> ClientPolicy {
    ClientPolicy {
        id: c.id.as_str().into(),
        weight: c.weight.max(1),
        max_concurrent: c.max_concurrent.max(1),
        default_context: restricted_default(
            context_of(&c.default_context),
            &normalize_list(&c.allowed_roles),
            &normalize_list(&c.allowed_warehouses),
        ),
        anonymous: false,
        rate: c.rate_per_minute.map(|per_minute| RatePolicy {
            per_minute,
            burst: c.burst,
        }),
        quotas: QuotaPolicy {
            per_day: WindowLimits {
                queries: c.queries_per_day,
                rows: c.rows_per_day,
                bytes: c.bytes_per_day,
                seconds: c.statement_seconds_per_day,
                microcredits: c.credits_per_day,
            },
            per_hour: WindowLimits {
                queries: c.queries_per_hour,
                rows: c.rows_per_hour,
                bytes: c.bytes_per_hour,
                seconds: c.statement_seconds_per_hour,
                microcredits: c.credits_per_hour,
            },
            cortex_per_day: c.cortex_calls_per_day,
            cortex_per_hour: c.cortex_calls_per_hour,
        },
        access: Access {
            databases: normalize_list(&c.allowed_databases),
            semantic_views: c.allowed_semantic_views.as_ref().map(|l| {
                l.iter()
                    .filter_map(|v| crate::ident::split_parts(v, "a semantic view").ok())
                    .map(|parts| {
                        parts
                            .iter()
                            .map(|p| p.name().to_string())
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect()
            }),
            cortex: c.allowed_cortex.clone(),
            analyst_execute: c.analyst_execute,
            roles: normalize_list(&c.allowed_roles),
            warehouses: normalize_list(&c.allowed_warehouses),
            max_rows: c.max_rows,
            max_scan_bytes: c.max_scan_bytes,
            max_scan_partitions: c.max_scan_partitions,
            writes: Writes {
                kinds: c.allow_statements.clone(),
                databases: normalize_list(&Some(c.write_databases.clone())).unwrap_or_default(),
                schemas: c
                    .write_schemas
                    .iter()
                    .filter_map(|s| {
                        let (db, schema) = s.split_once('.')?;
                        let name = |p: &str| {
                            normalize_list(&Some(vec![p.trim().to_string()]))
                                .and_then(|mut l| l.pop())
                        };
                        Some((name(db)?, name(schema)?))
                    })
                    .collect(),
                confirm: c.confirm_writes,
            },
        },
        group: None,
        person: None,
    }
}

fn context_of(c: &ContextConfig) -> Context {
    // Names in config are taken as Snowflake would take them unquoted: upper-cased.
    let norm = |v: &Option<String>| {
        v.as_ref()
            .map(|s| match crate::ident::Ident::parse(s, "name") {
                Ok(ident) => ident.name().to_string(),
                Err(_) => s.clone(),
            })
    };
    Context {
        database: norm(&c.database),
        schema: norm(&c.schema),
        warehouse: norm(&c.warehouse),
        role: norm(&c.role),
    }
}

/// Names in config resolve as Snowflake resolves unquoted names.
fn normalize_list(list: &Option<Vec<String>>) -> Option<Vec<String>> {
    list.as_ref().map(|l| {
        l.iter()
            .map(|s| {
                crate::ident::Ident::parse(s, "name")
                    .map(|i| i.name().to_string())
                    .unwrap_or_else(|_| s.clone())
            })
            .collect()
    })
}

/// Whether `token` hashes (SHA-256) to `expected`, compared in constant time so timing says
/// nothing about how much matched.
pub(crate) fn token_matches(token: &str, expected: &[u8; 32]) -> bool {
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    hash.iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

pub fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why a request was not authenticated: an RFC 6750 error code and a description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unauthorized {
    pub error: &'static str,
    pub description: &'static str,
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        unauthorized(self.error, self.description)
    }
}

/// The client a request's `Authorization` header names: `Ok(None)` when no clients are
/// configured (anonymous use), `Err` (answered with 401) when a token is required and missing
/// or unknown.
pub fn resolve(
    clients: &Clients,
    headers: &HeaderMap,
) -> Result<Option<Arc<ClientPolicy>>, Unauthorized> {
    match (clients.requires_token(), bearer_token(headers)) {
        (false, _) => Ok(None),
        (true, Some(token)) => match clients.by_token(token) {
            Some(policy) => Ok(Some(policy)),
            None => Err(Unauthorized {
                error: "invalid_token",
                description: "the bearer token is not valid",
            }),
        },
        (true, None) => Err(Unauthorized {
            error: "invalid_request",
            description: "a bearer token is required",
        }),
    }
}

/// [`resolve`], and with `[oauth]` also access tokens from the identity provider: a static
/// token first, else the token is validated and its person mapped to a policy. A refusal is the
/// complete HTTP answer (401 or 403 with the challenge that points to our metadata).
pub async fn authenticate(
    clients: &Clients,
    headers: &HeaderMap,
) -> Result<Option<Arc<ClientPolicy>>, Response> {
    let Some(oauth) = &clients.oauth else {
        return resolve(clients, headers).map_err(IntoResponse::into_response);
    };
    let Some(token) = bearer_token(headers).filter(|t| !t.is_empty()) else {
        return Err(oauth.challenge(&Refusal::Missing));
    };
    if let Some(policy) = clients.by_token(token) {
        return Ok(Some(policy));
    }
    let person = oauth.verify(token).await.map_err(|r| oauth.challenge(&r))?;
    let policy = clients
        .for_person(&person)
        .ok_or_else(|| oauth.challenge(&Refusal::NoPolicy(person.name)))?;
    if let Some(exchange) = &clients.exchange {
        exchange
            .ensure(&policy.id, token)
            .await
            .map_err(|r| oauth.challenge(&r))?;
    }
    Ok(Some(policy))
}

fn unauthorized(error: &str, description: &str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, format!("{description}\n")).into_response();
    let challenge = format!(
        "Bearer realm=\"snowflake-mcp\", error=\"{error}\", error_description=\"{description}\""
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> Config {
        let c: Config = toml::from_str(toml_text).unwrap();
        c.check().unwrap();
        c
    }

    #[test]
    fn tokens_resolve_to_their_client_only() {
        let hash = crate::sha256_hex;
        let c = config(&format!(
            "[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nweight = 2\ndefault_context = {{ warehouse = \"an_wh\" }}\n\n[[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\n",
            hash("tok-a"),
            hash("tok-b")
        ));
        let clients = Clients::from_config(&c).unwrap();
        assert!(clients.requires_token());
        let a = clients.by_token("tok-a").unwrap();
        assert_eq!(
            (a.id.as_ref(), a.weight, a.max_concurrent),
            ("analyst", 2, 4)
        );
        assert_eq!(a.default_context.warehouse.as_deref(), Some("AN_WH"));
        assert_eq!(clients.by_token("tok-b").unwrap().id.as_ref(), "bot");
        assert!(clients.by_token("tok-c").is_none());
        assert!(clients.by_token("").is_none());
    }

    #[test]
    fn bad_hashes_and_duplicate_ids_are_config_errors() {
        let c: Config =
            toml::from_str("[[clients]]\nid = \"a\"\ntoken_sha256 = \"xyz\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("64 hex digits"));
        let h = "0".repeat(64);
        let c: Config = toml::from_str(&format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\n[[clients]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\n"
        ))
        .unwrap();
        assert!(c.check().unwrap_err().contains("unique"));
    }

    #[test]
    fn anonymous_clients_are_distinct() {
        let clients = Clients::from_config(&Config::default()).unwrap();
        assert!(!clients.requires_token());
        let (a, b) = (clients.new_anonymous(), clients.new_anonymous());
        assert_ne!(a.id, b.id);
        assert!(a.anonymous);
        assert!(a.id.starts_with(ANONYMOUS_PREFIX) && a.id.len() == ANONYMOUS_PREFIX.len() + 16);
    }
}

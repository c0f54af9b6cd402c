//! Who may see the console, and who they are (every action is audited with their name):
//!
//! * the admin token (`[console] token_sha256`), compared by SHA-256 in constant time;
//! * with `[oauth]`, a person whose valid access token lists one of `[console] admin_groups`
//!   in its `groups_claim` — checked on every request, so a person removed from the group loses
//!   the console at their next request (or, signed in with a cookie, when it ends).
//!
//! Either is sent as `Authorization: Bearer` (scripts, `snowflake-mcp status`) or once through
//! the sign-in form, which sets a session cookie (`HttpOnly; SameSite=Strict`, and `Secure`
//! under TLS). Console sessions live in the state store by their id's digest, like result
//! handles, so every replica knows them; they last [`LIFETIME`], or until the person's token
//! expires if that is sooner.

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};

pub use crate::identity::operators::{ConsoleAccess, Operator};

use crate::transport::App;

/// The console session cookie's name.
const COOKIE: &str = "smcp_console";
/// How long a console sign-in lasts at most.
pub const LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// The owner the state store records for console sessions.
const OWNER: &str = "console";

fn key(id: &str) -> String {
    format!("console:{}", crate::sha256_hex(id))
}

/// The console session id a request carries, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The operator a request is from: a bearer token of theirs, or a live console session.
pub async fn admitted(app: &App, access: &ConsoleAccess, headers: &HeaderMap) -> Option<Operator> {
    if let Some(given) = crate::identity::bearer_token(headers) {
        return access
            .operator(&app.clients, given)
            .await
            .map(|(who, _)| who);
    }
    let id = cookie(headers)?;
    let store = app.tools.admission.store();
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        store.load_handle(&key(id)),
    )
    .await;
    match found {
        Ok(Ok(Some(h))) if h.owner == OWNER => {
            let record: Value = serde_json::from_str(&h.record).unwrap_or_default();
            Some(Operator(
                record["by"]
                    .as_str()
                    .unwrap_or("the admin token")
                    .to_string(),
            ))
        }
        _ => None,
    }
}

/// Sign in with `given` (the form's token): the `Set-Cookie` value of a new console session, or
/// `None` when the token admits nobody or the session cannot be kept.
pub async fn sign_in(app: &App, access: &ConsoleAccess, given: &str, tls: bool) -> Option<String> {
    let (who, token_expires) = access.operator(&app.clients, given).await?;
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let now = chrono::Utc::now().timestamp_millis();
    let longest = now + LIFETIME.as_millis() as i64;
    let expires = token_expires.map_or(longest, |t| t.min(longest));
    if expires <= now {
        return None;
    }
    let store = app.tools.admission.store();
    let record = json!({ "by": who.0 }).to_string();
    store
        .save_handle(&key(&id), OWNER, &record, expires)
        .await
        .ok()?;
    let secure = if tls { "; Secure" } else { "" };
    Some(format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        (expires - now) / 1000
    ))
}

/// Sign out: the session is forgotten on every replica; the cookie that clears it.
pub async fn sign_out(app: &App, headers: &HeaderMap) -> String {
    if let Some(id) = cookie(headers) {
        let _ = app.tools.admission.store().take_handle(&key(id)).await;
    }
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

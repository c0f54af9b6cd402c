//! Who may see the console: the admin token, as `Authorization: Bearer` (scripts, `status`) or
//! once through the sign-in form, which sets a session cookie (`HttpOnly; SameSite=Strict`, and
//! `Secure` under TLS). Console sessions live in the state store by their id's digest, like
//! result handles, so every replica knows them; they last [`LIFETIME`].

use axum::http::{header, HeaderMap};

use crate::transport::App;

/// The console session cookie's name.
const COOKIE: &str = "smcp_console";
/// How long a console sign-in lasts.
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

/// Whether the request is the admin's: the token itself, or a live console session.
pub async fn admitted(app: &App, token: &[u8; 32], headers: &HeaderMap) -> bool {
    if crate::identity::bearer_token(headers)
        .is_some_and(|t| crate::identity::token_matches(t, token))
    {
        return true;
    }
    let Some(id) = cookie(headers) else {
        return false;
    };
    let store = app.tools.admission.store();
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        store.load_handle(&key(id)),
    )
    .await;
    matches!(found, Ok(Ok(Some(h))) if h.owner == OWNER)
}

/// Sign in with `given` (the form's token): the `Set-Cookie` value of a new console session, or
/// `None` when the token is wrong or the session cannot be kept.
pub async fn sign_in(app: &App, token: &[u8; 32], given: &str, tls: bool) -> Option<String> {
    if !crate::identity::token_matches(given.trim(), token) {
        return None;
    }
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let expires = chrono::Utc::now().timestamp_millis() + LIFETIME.as_millis() as i64;
    let store = app.tools.admission.store();
    store
        .save_handle(&key(&id), OWNER, "{}", expires)
        .await
        .ok()?;
    let secure = if tls { "; Secure" } else { "" };
    Some(format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    ))
}

/// Sign out: the session is forgotten on every replica; the cookie that clears it.
pub async fn sign_out(app: &App, headers: &HeaderMap) -> String {
    if let Some(id) = cookie(headers) {
        let _ = app.tools.admission.store().take_handle(&key(id)).await;
    }
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

//! Attribution: every statement the server sends to Snowflake says which client, session and
//! tool it runs for, so a Snowflake admin reading `QUERY_HISTORY` sees who ran what although all
//! clients share one Snowflake user.
//!
//! The tag is JSON — `{"app":"snowflake-mcp","client":…,"session":…,"tool":…}` — sent as the
//! `QUERY_TAG` statement parameter of each query request (never `ALTER SESSION`, which would
//! outlive the statement on a pooled session). The session is named by a fingerprint (a short
//! hash) of the MCP session id: ids are credentials and stay out of Snowflake's history.
//!
//! Like progress, the tag is scoped to the call's task ([`scope`]) and read where the statement
//! is sent ([`current`]); code outside a call (pool upkeep, probes) gets the plain app tag.

use std::future::Future;

tokio::task_local! {
    static TAG: String;
    /// The client the call runs for (the backend picks a signed-in person's own Snowflake
    /// sessions by it).
    static CLIENT: std::sync::Arc<str>;
}

/// The tag of statements that serve no particular call.
pub const APP_TAG: &str = r#"{"app":"snowflake-mcp"}"#;

/// A stable, non-reversible short name for an MCP session id.
pub fn fingerprint(session_id: &str) -> String {
    let mut hex = crate::sha256_hex(session_id);
    hex.truncate(12);
    hex
}

/// The `QUERY_TAG` of one tool call. A signed-in person's client is their key
/// (`person:<hash of issuer and subject>`); `person` adds what their token calls them.
pub fn tag(client: &str, person: Option<&str>, session_id: Option<&str>, tool: &str) -> String {
    /// Serialised straight from a struct (made on every call), its keys in the order a JSON
    /// object's sorted keys had.
    #[derive(serde::Serialize)]
    struct Tag<'a> {
        app: &'static str,
        client: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        person: Option<&'a str>,
        session: Option<String>,
        tool: &'a str,
    }
    let tag = Tag {
        app: "snowflake-mcp",
        client,
        person,
        session: session_id.map(fingerprint),
        tool,
    };
    serde_json::to_string(&tag).unwrap_or_else(|_| APP_TAG.to_string())
}

/// Run `call` for `client`, with statements tagged `tag`.
pub async fn scope<F: Future>(client: std::sync::Arc<str>, tag: String, call: F) -> F::Output {
    CLIENT.scope(client, TAG.scope(tag, call)).await
}

/// The current call's client and tag, for work it hands to a task of its own (which runs it
/// under [`scope`] again).
pub fn fork() -> (std::sync::Arc<str>, String) {
    let client = CLIENT.try_with(|c| c.clone()).unwrap_or_else(|_| "".into());
    (client, current())
}

/// The signed-in person (`person:<key>`) the current call runs for, if it is one.
pub fn person() -> Option<std::sync::Arc<str>> {
    CLIENT
        .try_with(|c| c.clone())
        .ok()
        .filter(|c| c.starts_with(crate::principal::PERSON_PREFIX))
}

/// The tag for a statement sent now.
pub fn current() -> String {
    TAG.try_with(Clone::clone)
        .unwrap_or_else(|_| APP_TAG.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_tagged_and_everything_else_is_the_app() {
        assert_eq!(current(), APP_TAG);
        let t = tag("analyst", None, Some("3f2a-secret-session-id"), "run_query");
        let (seen, who) = scope("analyst".into(), t.clone(), async { (current(), person()) }).await;
        assert_eq!(who, None, "a configured client is not a signed-in person");
        let p = scope("person:0a1b".into(), t.clone(), async { person() }).await;
        assert_eq!(p.as_deref(), Some("person:0a1b"));
        let v: serde_json::Value = serde_json::from_str(&seen).unwrap();
        assert_eq!(v["client"], "analyst");
        assert_eq!(v["tool"], "run_query");
        assert_eq!(v["session"].as_str().unwrap().len(), 12);
        assert!(
            !seen.contains("secret"),
            "the session id itself is not in the tag"
        );
        assert_eq!(
            tag("a\"b", Some("Ann"), None, "t"),
            r#"{"app":"snowflake-mcp","client":"a\"b","person":"Ann","session":null,"tool":"t"}"#
        );
    }
}

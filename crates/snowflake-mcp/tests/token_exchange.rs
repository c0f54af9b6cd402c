//! Each person's own Snowflake identity: with `[oauth] snowflake_identity = "token_exchange"`
//! the server exchanges the person's access token at the identity provider (RFC 8693) for a
//! Snowflake-audience token and logs the person in with it. A counting proxy in front of the
//! emulator sees every login and statement: logins carry exchanged tokens only — never the token
//! the client sent — and two people never share a Snowflake session.

mod common;

use std::collections::{HashMap, HashSet};

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use testkit::{Proxy, TestIdp, EXCHANGE_CLIENT};

const SNOWFLAKE_AUDIENCE: &str = "https://snowflake.test/oauth";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_run_on_their_own_sessions_with_exchanged_tokens_only() {
    let idp = TestIdp::start().await;
    let proxy = Proxy::start(testkit::fakesnow().port).await;
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let secret = std::env::temp_dir().join(format!("snowflake-mcp-exchange-{port}"));
    std::fs::write(&secret, EXCHANGE_CLIENT.1).unwrap();
    let config = write_config(
        &format!("exchange-{port}"),
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nrequired_scopes = [\"mcp\"]\n\
             client_claim = \"email\"\nsnowflake_identity = \"token_exchange\"\n\
             client_id = \"{}\"\nclient_secret_file = \"{}\"\nsnowflake_audience = \"{SNOWFLAKE_AUDIENCE}\"\n\
             sessions_per_person = 1\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\n",
            idp.issuer,
            EXCHANGE_CLIENT.0,
            secret.display()
        ),
    );
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &env_with_port(proxy.port),
    )
    .await;
    let subject = |email: &str| {
        let mut c = idp.claims(email, &resource);
        c["groups"] = json!(["analysts"]);
        idp.token(&c)
    };
    let (ana_token, bob_token) = (subject("ana@corp.com"), subject("bob@corp.com"));
    let ana = server.client_with_token(&ana_token).await;
    let bob = server.client_with_token(&bob_token).await;
    for i in 0..3 {
        ok(
            &ana,
            "run_query",
            json!({"sql": format!("SELECT 'ana-{i}' AS W")}),
        )
        .await;
        ok(
            &bob,
            "run_query",
            json!({"sql": format!("SELECT 'bob-{i}' AS W")}),
        )
        .await;
    }
    ok(&ana, "list_databases", no_args()).await;
    assert_eq!(idp.exchanges(), 2, "one exchange per person, then cached");

    // Every OAuth login carries an exchanged, Snowflake-audience token of one person.
    let logins = proxy.stats.login_records.lock().unwrap().clone();
    let mut person_of_session = HashMap::new();
    for (authenticator, sent, session) in &logins {
        if authenticator != "OAUTH" {
            continue;
        }
        let sent = sent.as_deref().expect("an OAuth login sends a token");
        assert!(
            sent != ana_token && sent != bob_token,
            "a client's own token was passed through to Snowflake"
        );
        let c = claims_of(sent);
        assert_eq!(c["aud"], SNOWFLAKE_AUDIENCE, "{c}");
        assert_eq!(c["exchanged"], true, "{c}");
        person_of_session.insert(session.clone(), c["email"].as_str().unwrap().to_string());
    }
    assert!(
        person_of_session.values().collect::<HashSet<_>>().len() == 2,
        "both people logged in with their own tokens: {person_of_session:?}"
    );
    // Each person's statements ran on that person's sessions only.
    let statements = proxy.stats.statement_tokens.lock().unwrap().clone();
    let mut checked = 0;
    for (session, sql) in &statements {
        for (marker, email) in [("'ana-", "ana@corp.com"), ("'bob-", "bob@corp.com")] {
            if sql.contains(marker) {
                assert_eq!(
                    person_of_session.get(session).map(String::as_str),
                    Some(email),
                    "{sql} ran on another session"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked, 6,
        "every person's statement was seen: {statements:?}"
    );
    // An expired token is refused at the door: the client is told to sign in again.
    let mut expired = idp.claims("ana@corp.com", &resource);
    expired["exp"] = json!(1_000_000_000);
    expired["nbf"] = json!(999_000_000);
    let (status, head, _) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &[
            ("authorization", &format!("Bearer {}", idp.token(&expired))),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"1"}}}"#,
    )
    .await;
    assert_eq!(status, 401, "{head}");
}

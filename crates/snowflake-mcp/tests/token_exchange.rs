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

/// A server on a known port exchanging people's tokens at `idp`, its Snowflake behind
/// `snowflake_port`: (server, resource).
async fn exchanging_server(idp: &TestIdp, snowflake_port: u16) -> (Server, String) {
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
        &env_with_port(snowflake_port),
    )
    .await;
    (server, resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_run_on_their_own_sessions_with_exchanged_tokens_only() {
    let idp = TestIdp::start().await;
    let proxy = Proxy::start(testkit::fakesnow().port).await;
    let (server, resource) = exchanging_server(&idp, proxy.port).await;
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

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"1"}}}"#;

/// An `initialize` with `token`: (status, response head). Bounded.
async fn knock(base: &str, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let (status, head, _) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        raw_http(base, "POST", "/mcp", &headers, INIT),
    )
    .await
    .expect("an answer within 30 s");
    (status, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_sharing_an_email_get_their_own_snowflake_tokens_and_sessions() {
    let idp = TestIdp::start().await;
    let proxy = Proxy::start(testkit::fakesnow().port).await;
    let (server, resource) = exchanging_server(&idp, proxy.port).await;
    let token = |sub: &str| {
        let mut c = idp.claims("shared@corp.com", &resource);
        c["sub"] = json!(sub);
        c["groups"] = json!(["analysts"]);
        idp.token(&c)
    };
    for sub in ["u-1", "u-2"] {
        let client = server.client_with_token(&token(sub)).await;
        ok(
            &client,
            "run_query",
            json!({"sql": format!("SELECT '{sub}-x' AS W")}),
        )
        .await;
    }
    assert_eq!(
        idp.exchanges(),
        2,
        "one exchange each: nobody got the other's token"
    );
    let logins = proxy.stats.login_records.lock().unwrap().clone();
    let sub_of_session: HashMap<_, _> = logins
        .iter()
        .filter(|(authenticator, _, _)| authenticator == "OAUTH")
        .map(|(_, sent, session)| {
            let c = claims_of(sent.as_deref().unwrap_or_default());
            (
                session.clone(),
                c["sub"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let statements = proxy.stats.statement_tokens.lock().unwrap().clone();
    for sub in ["u-1", "u-2"] {
        let (session, _) = statements
            .iter()
            .find(|(_, sql)| sql.contains(&format!("'{sub}-x'")))
            .unwrap_or_else(|| panic!("{sub}'s statement was not seen"));
        assert_eq!(
            sub_of_session.get(session).map(String::as_str),
            Some(sub),
            "{sub}'s statement ran on another person's Snowflake session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchanges_are_single_flight_remembered_and_backed_off() {
    let idp = TestIdp::start().await;
    let (server, resource) = exchanging_server(&idp, testkit::fakesnow().port).await;
    let token = |email: &str| {
        let mut c = idp.claims(email, &resource);
        c["groups"] = json!(["analysts"]);
        idp.token(&c)
    };
    // Warm up: keys and the token endpoint are known (discovery is cached from here on).
    assert_eq!(knock(&server.base, &token("warm@corp.com")).await.0, 200);

    // Eight requests of one person at once: one exchange, all served.
    idp.delay_exchanges(std::time::Duration::from_millis(400));
    let before = idp.exchange_attempts();
    let carl = token("carl@corp.com");
    let mut knocks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (base, carl) = (server.base.clone(), carl.clone());
        knocks.spawn(async move { knock(&base, &carl).await.0 });
    }
    while let Some(status) = knocks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(
        idp.exchange_attempts() - before,
        1,
        "single-flight per person"
    );
    idp.delay_exchanges(std::time::Duration::ZERO);

    // A refusal is remembered: the same token is not exchanged again on every request.
    idp.refuse_exchanges(true);
    let before = idp.exchange_attempts();
    let rita = token("rita@corp.com");
    for i in 0..6 {
        let (status, head) = knock(&server.base, &rita).await;
        assert_eq!(status, 401, "request {i}: {head}");
        assert!(head.contains("invalid_token"), "{head}");
    }
    assert_eq!(
        idp.exchange_attempts() - before,
        1,
        "the refusal was remembered"
    );
    idp.refuse_exchanges(false);

    // A provider that cannot serve (429 here) is an outage: 503 with Retry-After, never a 401
    // that signs the person out; and requests do not become a stream of exchanges.
    idp.set_down(Some(429));
    let otto = token("otto@corp.com");
    for i in 0..10 {
        let (status, head) = knock(&server.base, &otto).await;
        assert_eq!(status, 503, "request {i}: {head}");
        assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    }
    assert!(
        idp.refused_while_down() <= 3,
        "{} requests reached the provider",
        idp.refused_while_down()
    );
    // Back up: the person gets in within seconds.
    idp.set_down(None);
    let back = std::time::Instant::now();
    while knock(&server.base, &otto).await.0 != 200 {
        assert!(
            back.elapsed() < std::time::Duration::from_secs(15),
            "still refused {:?} after the provider came back",
            back.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

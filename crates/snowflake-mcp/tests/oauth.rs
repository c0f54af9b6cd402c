//! People signing in with the company's identity provider: the server as an OAuth 2.1
//! protected resource, against a test identity provider (real RSA keys, discovery, JWKS).
//! Good tokens map people to the right policy, each person their own client; every bad token
//! gets the right status and `WWW-Authenticate` challenge.

mod common;

use common::*;
use serde_json::{json, Value};
use testkit::{Forgery, TestIdp};

/// A server on a known port (its canonical URL is the tokens' audience) trusting `idp`:
/// `analysts` by group (2 queries a day each), `ana` by email, everyone else under `staff`;
/// plus a static-token client.
async fn server(idp: &TestIdp, default_policy: bool) -> (Server, String) {
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let default = if default_policy {
        "default_policy = \"staff\"\n"
    } else {
        ""
    };
    let config = write_config(
        &format!("oauth-{port}"),
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nscopes_supported = [\"mcp\"]\n\
             required_scopes = [\"mcp\"]\nclient_claim = \"email\"\n{default}\n\
             [[clients]]\nid = \"ana-entry\"\nmatch = {{ email = \"ana@corp.com\" }}\nmax_rows = 7\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\nqueries_per_day = 2\n\n\
             [[clients]]\nid = \"staff\"\nmatch = {{ groups = \"staff\" }}\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\n",
            idp.issuer,
            sha("bot-token")
        ),
    );
    let s = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &fakesnow_env(),
    )
    .await;
    (s, resource)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;

/// An `initialize` with `token` (if any): (status, response head).
async fn knock(base: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let (status, head, _) = raw_http(base, "POST", "/mcp", &headers, INIT).await;
    (status, head)
}

fn challenge(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_challenges_point_clients_to_the_identity_provider() {
    let idp = TestIdp::start().await;
    let (s, resource) = server(&idp, true).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, body) = http_get(&s.base, path).await;
        assert_eq!(status, 200, "{path}");
        let m: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(m["resource"], resource);
        assert_eq!(m["authorization_servers"], json!([idp.issuer]));
        assert_eq!(m["scopes_supported"], json!(["mcp"]));
    }
    let meta = format!(
        "resource_metadata=\"{}\"",
        resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    );
    let (status, head) = knock(&s.base, None).await;
    assert_eq!(status, 401);
    let c = challenge(&head);
    assert!(c.starts_with("Bearer ") && c.contains(&meta), "{c}");
    assert!(!c.contains("error="), "no token, no error code: {c}");

    let good = idp.claims("ana@corp.com", &resource);
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let now = good["iat"].as_u64().unwrap();
    let bad = [
        (
            "expired",
            idp.token(&with(
                json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}),
            )),
            "expired",
        ),
        (
            "not yet valid",
            idp.token(&with(json!({"nbf": now + 3600}))),
            "not valid yet",
        ),
        (
            "another audience",
            idp.token(&with(json!({"aud": "https://elsewhere.example/mcp"}))),
            "audience",
        ),
        (
            "another issuer",
            idp.token(&with(json!({"iss": "https://evil.example"}))),
            "issuer",
        ),
        (
            "unknown kid",
            idp.forged(Forgery::UnknownKid, &good),
            "unknown signing key",
        ),
        ("alg none", idp.forged(Forgery::AlgNone, &good), ""),
        (
            "HMAC with the public key",
            idp.forged(Forgery::HmacWithPublicKey, &good),
            "algorithm",
        ),
        ("garbage", "not.a.jwt".to_string(), ""),
        (
            "no person",
            idp.token(&with(json!({"email": null}))),
            "person",
        ),
    ];
    for (what, token, why) in &bad {
        let (status, head) = knock(&s.base, Some(token)).await;
        assert_eq!(status, 401, "{what}: {head}");
        let c = challenge(&head);
        assert!(
            c.contains("error=\"invalid_token\"") && c.contains(&meta) && c.contains(why),
            "{what}: {c}"
        );
        assert!(
            !head.contains(token.as_str()),
            "{what}: the token is never echoed"
        );
    }
    // A valid token without the required scope: 403 insufficient_scope.
    let (status, head) = knock(&s.base, Some(&idp.token(&with(json!({"scope": "other"}))))).await;
    assert_eq!(status, 403, "{head}");
    assert!(
        challenge(&head).contains("error=\"insufficient_scope\", scope=\"mcp\""),
        "{head}"
    );
    // Made-up key ids cannot make the server hammer the identity provider.
    let fetched = idp.jwks_fetches();
    for _ in 0..20 {
        let (status, _) = knock(&s.base, Some(&idp.forged(Forgery::UnknownKid, &good))).await;
        assert_eq!(status, 401);
    }
    assert!(
        idp.jwks_fetches() <= fetched + 1,
        "JWKS refreshes are rate-limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_map_to_policies_and_each_person_is_their_own_client() {
    let idp = TestIdp::start().await;
    let (s, resource) = server(&idp, false).await;
    let person = |email: &str, groups: Value| {
        let mut c = idp.claims(email, &resource);
        c["groups"] = groups;
        idp.token(&c)
    };
    // Ana is matched by email; bob and carol share the `analysts` entry by group.
    let ana = s
        .client_with_token(&person("ana@corp.com", json!(["staff"])))
        .await;
    let bob = s
        .client_with_token(&person("bob@corp.com", json!(["analysts", "x"])))
        .await;
    let carol = s
        .client_with_token(&person("carol@corp.com", json!(["analysts"])))
        .await;
    let eight = "SELECT 1 AS A UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8";
    let r = call(&ana, "run_query", json!({"sql": eight})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let r = r.structured_content.unwrap();
    assert_eq!(r["row_count"], 7, "ana's entry caps rows at 7: {r}");
    // Each analyst has their own quota of 2, though they share one policy entry.
    for who in [&bob, &carol] {
        ok(who, "run_query", json!({"sql": "SELECT 1"})).await;
        ok(who, "run_query", json!({"sql": "SELECT 2"})).await;
        let (kind, message) = err(who, "run_query", json!({"sql": "SELECT 3"})).await;
        assert_eq!(kind, "quota_exceeded", "{message}");
    }
    // Their history is their own.
    let h = ok(&bob, "query_history", json!({})).await.to_string();
    assert!(h.contains("SELECT 2") && !h.contains("UNION ALL"), "{h}");
    // A person no entry covers (and no default_policy) is refused: 403.
    let (status, head) = knock(&s.base, Some(&person("dan@corp.com", json!(["other"])))).await;
    assert_eq!(status, 403, "{head}");
    // Static tokens keep working beside OAuth.
    let bot = s.client_with_token("bot-token").await;
    ok(&bot, "get_context", no_args()).await;
    // A session belongs to the person who opened it: carol cannot use bob's.
    let (status, head) = knock(&s.base, Some(&person("bob@corp.com", json!(["analysts"])))).await;
    assert_eq!(status, 200, "{head}");
    let id = session_of(&head);
    let carol_token = format!("Bearer {}", person("carol@corp.com", json!(["analysts"])));
    let (status, _, _) = raw_http(
        &s.base,
        "POST",
        "/mcp",
        &[
            ("authorization", carol_token.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-session-id", &id),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 404, "another person's session is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_covers_people_no_entry_matches() {
    let idp = TestIdp::start().await;
    let (s, resource) = server(&idp, true).await;
    let mut c = idp.claims("dan@corp.com", &resource);
    c["groups"] = json!(["other"]);
    let dan = s.client_with_token(&idp.token(&c)).await;
    ok(&dan, "run_query", json!({"sql": "SELECT 1"})).await;
}

/// One JSON-RPC message to `/mcp` with `token`, on `session` if given: (status, head, body).
/// Bounded: a test never hangs on it.
async fn post(base: &str, token: &str, session: Option<&str>, body: &str) -> (u16, String, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(id) = session {
        headers.push(("mcp-session-id", id));
        headers.push(("mcp-protocol-version", "2025-06-18"));
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        raw_http(base, "POST", "/mcp", &headers, body),
    )
    .await
    .expect("an answer within 30 s")
}

fn tool_call(tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_sharing_an_email_share_nothing() {
    let idp = TestIdp::start().await;
    let (s, resource) = server(&idp, false).await;
    // The same address at the same provider, two subjects: two people.
    let ana = |sub: &str| {
        let mut c = idp.claims("shared@corp.com", &resource);
        c["sub"] = json!(sub);
        c["groups"] = json!(["analysts"]);
        idp.token(&c)
    };
    let (first, second) = (ana("user-1"), ana("user-2"));
    let one = s.client_with_token(&first).await;
    let two = s.client_with_token(&second).await;
    ok(
        &one,
        "run_query",
        json!({"sql": "SELECT 'first-secret' AS W"}),
    )
    .await;
    // Her history is not his.
    let h = ok(&two, "query_history", json!({})).await.to_string();
    assert!(!h.contains("first-secret"), "{h}");
    // Quotas are per person: the analysts' 2 a day each, not 2 between them.
    ok(&one, "run_query", json!({"sql": "SELECT 2"})).await;
    ok(&two, "run_query", json!({"sql": "SELECT 1"})).await;
    ok(&two, "run_query", json!({"sql": "SELECT 2"})).await;
    let (kind, _) = err(&one, "run_query", json!({"sql": "SELECT 3"})).await;
    assert_eq!(kind, "quota_exceeded");
    // Sessions too: the second cannot use the first's.
    let (status, head) = knock(&s.base, Some(&first)).await;
    assert_eq!(status, 200, "{head}");
    let id = session_of(&head);
    let (status, _, _) = post(
        &s.base,
        &second,
        Some(&id),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 404, "another person's session is not found");
    // An address the provider says is not verified names nobody.
    let mut unverified = idp.claims("ana@corp.com", &resource);
    unverified["email_verified"] = json!(false);
    let (status, head) = knock(&s.base, Some(&idp.token(&unverified))).await;
    assert_eq!(status, 403, "{head}");
    // Metrics label people by their policy entry: no address, no key.
    let (status, metrics) = http_get(&s.base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("client=\"analysts\""), "{metrics}");
    assert!(
        !metrics.contains("@corp.com") && !metrics.contains("person:"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_policy_applies_to_the_next_request_of_an_open_session() {
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS NARROW_AN".into(),
        "CREATE SCHEMA IF NOT EXISTS NARROW_AN.PUBLIC".into(),
        "CREATE OR REPLACE TABLE NARROW_AN.PUBLIC.T (S TEXT)".into(),
        "INSERT INTO NARROW_AN.PUBLIC.T VALUES ('analysts only')".into(),
        "CREATE DATABASE IF NOT EXISTS NARROW_STAFF".into(),
        "CREATE SCHEMA IF NOT EXISTS NARROW_STAFF.PUBLIC".into(),
    ])
    .await;
    let idp = TestIdp::start().await;
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = write_config(
        &format!("oauth-narrow-{port}"),
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nclient_claim = \"email\"\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\n\
             allowed_databases = [\"NARROW_AN\"]\ndefault_context = {{ database = \"NARROW_AN\", schema = \"PUBLIC\" }}\n\n\
             [[clients]]\nid = \"staff\"\nmatch = {{ groups = \"staff\" }}\n\
             allowed_databases = [\"NARROW_STAFF\"]\ndefault_context = {{ database = \"NARROW_STAFF\", schema = \"PUBLIC\" }}\n",
            idp.issuer
        ),
    );
    let s = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &fakesnow_env(),
    )
    .await;
    let token = |groups: Value| {
        let mut c = idp.claims("ana@corp.com", &resource);
        c["groups"] = groups;
        idp.token(&c)
    };
    let (analyst, staff) = (token(json!(["analysts", "staff"])), token(json!(["staff"])));
    let (status, head) = knock(&s.base, Some(&analyst)).await;
    assert_eq!(status, 200, "{head}");
    let id = session_of(&head);
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(post(&s.base, &analyst, Some(&id), initialized).await.0, 202);
    let read = tool_call(
        "run_query",
        json!({"sql": "SELECT S FROM NARROW_AN.PUBLIC.T"}),
    );
    let (status, _, body) = post(&s.base, &analyst, Some(&id), &read).await;
    assert_eq!(status, 200);
    assert!(body.contains("analysts only"), "{body}");
    // The group is removed: the next token, on the same session, no longer reads it.
    let (status, _, body) = post(&s.base, &staff, Some(&id), &read).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("analysts only") && body.contains("not_allowed"),
        "{body}"
    );
    // Its context is re-checked as after a restore: back to the staff policy's defaults.
    let (_, _, body) = post(
        &s.base,
        &staff,
        Some(&id),
        &tool_call("get_context", json!({})),
    )
    .await;
    assert!(
        body.contains("NARROW_STAFF") && !body.contains("NARROW_AN"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_identity_provider_is_an_outage_not_a_bad_token() {
    let idp = TestIdp::start().await;
    let (s, resource) = server(&idp, true).await;
    let token = idp.token(&idp.claims("ana@corp.com", &resource));
    idp.set_down(Some(503));
    // Every request answers 503 with Retry-After while the keys cannot be fetched — never a
    // 401 `invalid_token`, which would make the MCP client throw the sign-in away.
    for i in 0..20 {
        let (status, head) = knock(&s.base, Some(&token)).await;
        assert_eq!(status, 503, "request {i}: {head}");
        let retry = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("request {i}: no Retry-After: {head}"));
        let secs: u64 = retry.parse().unwrap();
        assert!((1..=30).contains(&secs), "{secs}");
        assert!(challenge(&head).is_empty(), "no challenge: {head}");
    }
    // Refetching backs off: twenty requests did not become twenty fetches.
    assert!(
        idp.refused_while_down() <= 4,
        "{} requests reached the provider",
        idp.refused_while_down()
    );
    // Back up: a backoff from about a second (not 30) lets the next requests in at once.
    idp.set_down(None);
    let back = std::time::Instant::now();
    loop {
        let (status, head) = knock(&s.base, Some(&token)).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{head}");
        assert!(
            back.elapsed() < std::time::Duration::from_secs(8),
            "still refused {:?} after the provider came back",
            back.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

//! Unit tests of the OAuth resource server (no identity provider needed).

use super::*;

fn oauth(resource: &str) -> OAuth {
    OAuth::new(&OAuthConfig {
        issuer: "https://idp.example.com".into(),
        resource: resource.into(),
        audience: None,
        jwks_url: None,
        scopes_supported: vec![],
        required_scopes: vec!["mcp".into()],
        client_claim: "sub".into(),
        default_policy: None,
        leeway_secs: 60,
        snowflake_identity: "service".into(),
        token_endpoint: None,
        client_id: None,
        client_secret_file: None,
        snowflake_audience: None,
        snowflake_scope: None,
        sessions_per_person: 2,
    })
    .unwrap()
}

#[test]
fn metadata_lives_at_the_path_suffixed_well_known_url() {
    assert_eq!(
        oauth("https://mcp.example.com/mcp").metadata_url(),
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        oauth("https://mcp.example.com").metadata_url(),
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    );
}

#[test]
fn scopes_and_matches_read_strings_and_lists() {
    let claims = json!({"scope": "a mcp", "scp": ["b"], "groups": ["analysts", "x"], "email": "ana@corp.com"});
    assert_eq!(granted_scopes(&claims), ["a", "mcp", "b"]);
    let m = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(matches(&claims, &m(&[("groups", "analysts")])));
    assert!(matches(&claims, &m(&[("email", "ana@corp.com")])));
    assert!(!matches(&claims, &m(&[("email", "bob@corp.com")])));
    assert!(!matches(
        &claims,
        &m(&[("groups", "analysts"), ("email", "bob@corp.com")])
    ));
    assert!(!matches(&claims, &m(&[])), "an empty match matches nobody");
}

#[tokio::test]
async fn none_and_hmac_tokens_are_refused_before_any_key_is_fetched() {
    let o = oauth("https://mcp.example.com/mcp");
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = b64(json!({"sub": "x", "iss": "https://idp.example.com"}));
    for alg in ["none", "HS256"] {
        let token = format!("{}.{claims}.", b64(json!({"alg": alg, "typ": "JWT"})));
        let refused = o.verify(&token).await.unwrap_err();
        assert!(matches!(refused, Refusal::Invalid(_)), "{alg}: {refused:?}");
    }
}

#[test]
fn a_person_is_their_issuer_and_subject() {
    let k = Person::key_of("https://idp.example.com", "u-1");
    assert_eq!(k.len(), 32);
    assert_eq!(k, Person::key_of("https://idp.example.com", "u-1"));
    assert_ne!(k, Person::key_of("https://idp.example.com", "u-2"));
    assert_ne!(k, Person::key_of("https://other.example.com", "u-1"));
    // No way to shift characters between issuer and subject.
    assert_ne!(Person::key_of("ab", "c"), Person::key_of("a", "bc"));
}

#[test]
fn provider_urls_are_https_except_on_loopback() {
    for ok in [
        "https://idp.example.com",
        "http://127.0.0.1:8080/realms/x",
        "http://127.1.2.3/jwks",
        "http://[::1]:9000/jwks",
        "http://localhost:9000",
        "http://LOCALHOST/x",
    ] {
        assert!(check_provider_url("u", ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://idp.example.com",
        "http://10.0.0.1/jwks",
        "http://localhost.evil.com/",
        "http://128.0.0.1/",
        "ftp://idp.example.com",
        "not a url",
    ] {
        assert!(check_provider_url("u", bad).is_err(), "{bad}");
    }
    let mut c = oauth("https://mcp.example.com/mcp").config().clone();
    c.issuer = "http://idp.example.com".into();
    assert!(c.check().unwrap_err().contains("plain http"));
    c.issuer = "https://idp.example.com".into();
    c.jwks_url = Some("http://keys.example.com/jwks".into());
    assert!(c.check().unwrap_err().contains("jwks_url"));
    c.jwks_url = None;
    c.token_endpoint = Some("http://idp.example.com/token".into());
    assert!(c.check().unwrap_err().contains("token_endpoint"));
}

#[test]
fn an_unverified_email_names_nobody_and_matches_nothing() {
    let wanted = [("email".to_string(), "ana@corp.com".to_string())]
        .into_iter()
        .collect();
    for (verified, ok) in [
        (json!(null), true),
        (json!(true), true),
        (json!("true"), true),
        (json!(false), false),
        (json!("false"), false),
    ] {
        let claims = json!({"email": "ana@corp.com", "email_verified": verified});
        assert_eq!(email_verified(&claims), ok, "{verified}");
        assert_eq!(matches(&claims, &wanted), ok, "{verified}");
    }
}

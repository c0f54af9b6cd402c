use super::*;

#[test]
fn unknown_keys_are_refused() {
    let err = toml::from_str::<Config>("[snowflak]\naccount = 'x'\n").unwrap_err();
    assert!(err.to_string().contains("snowflak"));
}

#[test]
fn limits_have_defaults_and_are_checked() {
    let c: Config = toml::from_str("[query]\nmax_rows = 50\n").unwrap();
    assert_eq!(c.query.max_rows, 50);
    assert_eq!(c.query.default_max_rows, 100);
    assert!(c.query.check().is_err(), "default above max is refused");
    assert_eq!(Config::default().server.listen, "127.0.0.1:8765");
}

#[test]
fn design_key_names_are_accepted() {
    let c: Config =
        toml::from_str("[scheduler]\nqueue_timeout = 5\n[sessions]\nidle_timeout = 60\n").unwrap();
    assert_eq!(
        (c.scheduler.queue_timeout_secs, c.sessions.idle_timeout_secs),
        (5, 60)
    );
}

#[test]
fn config_file_layer_parses_known_keys() {
    let c: Config =
        toml::from_str("[snowflake]\naccount = 'acme'\nport = 8080\nprotocol = 'http'\n").unwrap();
    let s = ConnectionSettings::from_table(c.snowflake, "t").unwrap();
    assert_eq!(s.account.as_deref(), Some("acme"));
    assert_eq!(s.port, Some(8080));
}

#[test]
fn plain_http_identity_providers_are_refused_off_loopback() {
    let oauth = |issuer: &str, extra: &str| {
        let c: Config = toml::from_str(&format!(
            "[oauth]\nissuer = \"{issuer}\"\nresource = \"https://mcp.corp.com/mcp\"\n{extra}"
        ))
        .unwrap();
        c.check()
    };
    assert!(oauth("https://login.corp.com/realms/x", "").is_ok());
    assert!(oauth("http://127.0.0.1:8080/realms/x", "").is_ok());
    assert!(oauth(
        "http://localhost:8080",
        "jwks_url = \"http://[::1]:8080/keys\""
    )
    .is_ok());
    assert!(oauth("http://login.corp.com/realms/x", "")
        .unwrap_err()
        .contains("issuer"));
    let jwks = "jwks_url = \"http://keys.corp.com/jwks\"";
    assert!(oauth("https://login.corp.com", jwks)
        .unwrap_err()
        .contains("jwks_url"));
    let token = "token_endpoint = \"http://login.corp.com/token\"";
    assert!(oauth("https://login.corp.com", token)
        .unwrap_err()
        .contains("token_endpoint"));
}

#[test]
fn allowed_semantic_views_are_full_names() {
    let client = |views: &str| {
        let c: Config = toml::from_str(&format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\nallowed_semantic_views = {views}\n",
            "0".repeat(64)
        ))
        .unwrap();
        c.check()
    };
    assert!(client("[\"DEMO.SALES.SALES\", '\"Odd\".S.\"v\"']").is_ok());
    for bad in ["[\"SALES\"]", "[\"SALES.V\"]", "[\"A.B.C.D\"]", "[\"\"]"] {
        let e = client(bad).unwrap_err();
        assert!(e.contains("DATABASE.SCHEMA.VIEW"), "{bad}: {e}");
    }
}

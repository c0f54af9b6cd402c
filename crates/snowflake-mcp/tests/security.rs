//! Security probes at the HTTP door: session ownership, Origin, body size, remote listening.

mod common;

use common::*;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_context","arguments":{}}}"#;

fn headers<'a>(token: &'a str, session: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", token),
    ];
    if let Some(s) = session {
        h.push(("mcp-session-id", s));
        h.push(("mcp-protocol-version", "2025-06-18"));
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_session_is_not_there_for_you() {
    let config = write_config(
        "owners",
        &format!("[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n[[clients]]\nid = \"b\"\ntoken_sha256 = \"{}\"\n", sha("token-a"), sha("token-b")),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let (status, head, _) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &headers("Bearer token-a", None),
        INIT,
    )
    .await;
    assert_eq!(status, 200);
    let id = session_of(&head);
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    raw_http(
        &server.base,
        "POST",
        "/mcp",
        &headers("Bearer token-a", Some(&id)),
        initialized,
    )
    .await;
    let (status, _, body) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &headers("Bearer token-a", Some(&id)),
        CALL,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DEMO"), "{body}");
    let (status, _, body) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &headers("Bearer token-b", Some(&id)),
        CALL,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("DEMO"));
    let (status, _, _) = raw_http(
        &server.base,
        "DELETE",
        "/mcp",
        &headers("Bearer token-b", Some(&id)),
        "",
    )
    .await;
    assert_eq!(status, 404, "b cannot close a's session");
    let (status, _, _) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &headers("Bearer token-a", Some(&id)),
        CALL,
    )
    .await;
    assert_eq!(status, 200, "a's session is still alive");
}

#[tokio::test]
async fn foreign_origins_and_oversized_bodies_are_refused() {
    let config = write_config("small", "[server]\nmax_request_bytes = 4096\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    h.push(("origin", "https://evil.example"));
    let (status, _, _) = raw_http(&server.base, "POST", "/mcp", &h, INIT).await;
    assert_eq!(status, 403);
    h.pop();
    h.push(("origin", "http://localhost:3000"));
    let (status, _, _) = raw_http(&server.base, "POST", "/mcp", &h, INIT).await;
    assert_eq!(status, 200, "local pages may connect");
    h.pop();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(10_000)
    );
    let (status, _, _) = raw_http(&server.base, "POST", "/mcp", &h, &big).await;
    assert_eq!(status, 413);
}

#[test]
fn no_anonymous_listening_on_a_public_address() {
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--listen",
            "0.0.0.0:0",
            "--state",
            &temp_state(),
        ])
        .env("SNOWFLAKE_MCP_CACHE", cache_env().1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_only_what_its_policy_allows() {
    use serde_json::json;
    run_on_emulator(&[
        "CREATE DATABASE IF NOT EXISTS POLICY_OK".into(),
        "CREATE SCHEMA IF NOT EXISTS POLICY_OK.PUBLIC".into(),
        "CREATE OR REPLACE TABLE POLICY_OK.PUBLIC.T (X INT)".into(),
        "INSERT INTO POLICY_OK.PUBLIC.T SELECT seq4() FROM TABLE(GENERATOR(ROWCOUNT => 100))"
            .into(),
        "CREATE DATABASE IF NOT EXISTS POLICY_NO".into(),
        "CREATE SCHEMA IF NOT EXISTS POLICY_NO.PUBLIC".into(),
        "CREATE OR REPLACE TABLE POLICY_NO.PUBLIC.SECRET (S TEXT)".into(),
        "INSERT INTO POLICY_NO.PUBLIC.SECRET VALUES ('top secret')".into(),
    ])
    .await;
    let config = write_config(
        "policy",
        &format!(
            "[[clients]]\nid = \"limited\"\ntoken_sha256 = \"{}\"\nallowed_databases = [\"policy_ok\"]\nmax_rows = 5\ndefault_context = {{ database = \"POLICY_OK\", schema = \"PUBLIC\" }}\n",
            sha("limited-token")
        ),
    );
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let c = server.client_with_token("limited-token").await;
    let dbs = ok(&c, "list_databases", json!({})).await;
    assert_eq!(names(&dbs["databases"]), ["POLICY_OK"]);
    for (tool, args) in [
        ("set_context", json!({"database": "POLICY_NO"})),
        ("list_schemas", json!({"database": "POLICY_NO"})),
        (
            "list_objects",
            json!({"database": "POLICY_NO", "schema": "PUBLIC"}),
        ),
        (
            "describe_object",
            json!({"name": "POLICY_NO.PUBLIC.SECRET"}),
        ),
        (
            "run_query",
            json!({"sql": "SELECT * FROM POLICY_NO.PUBLIC.SECRET"}),
        ),
        (
            "run_query",
            json!({"sql": "SELECT * FROM T JOIN POLICY_NO.PUBLIC.SECRET ON TRUE"}),
        ),
        ("run_query", json!({"sql": "SHOW DATABASES"})),
        (
            "run_query",
            json!({"sql": "SELECT * FROM IDENTIFIER('POLICY_NO.PUBLIC.SECRET')"}),
        ),
        (
            "run_query",
            json!({"sql": "SELECT GET_DDL('DATABASE', 'POLICY_NO')"}),
        ),
        (
            "run_query",
            json!({"sql": "SELECT * FROM TABLE(POLICY_NO.PUBLIC.F())"}),
        ),
        (
            "run_query",
            json!({"sql": "SHOW TABLES IN SCHEMA POLICY_NO.PUBLIC"}),
        ),
    ] {
        let (kind, message) = err(&c, tool, args.clone()).await;
        assert_eq!(kind, "not_allowed", "{tool} {args}: {message}");
        assert!(!message.contains("top secret"));
    }
    let (_, message) = err(
        &c,
        "run_query",
        json!({"sql": "SELECT * FROM POLICY_NO.PUBLIC.SECRET"}),
    )
    .await;
    assert!(message.contains("database POLICY_NO"), "{message}");
    let rows = ok(
        &c,
        "run_query",
        json!({"sql": "SELECT X FROM T", "max_rows": 50}),
    )
    .await;
    assert_eq!(rows["row_count"], 5, "the client's own max_rows applies");
    // Scoped catalogue reads of its own databases work.
    let shown = ok(
        &c,
        "run_query",
        json!({"sql": "SHOW TABLES IN SCHEMA POLICY_OK.PUBLIC"}),
    )
    .await;
    assert!(shown.to_string().contains('T'), "{shown}");
    assert_eq!(rows["truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_certificate_and_key_files() {
    // A test CA, and a server certificate for 127.0.0.1 signed by it (made in Rust).
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-tls-{}", std::process::id()));
    let testkit::TestCertificates { cert, key, ca } = testkit::test_certificates(&dir);
    let config = write_config(
        "tls",
        &format!(
            "[server]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let init = http
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.headers().contains_key("mcp-session-id"));
    // Plain HTTP to the TLS port gets nowhere.
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await
        .is_err());

    // `connect` bridges a stdio client to the https server (trusting the test CA).
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    use rmcp::ServiceExt;
    let (url, ca_file) = (server.url.clone(), ca.clone());
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.arg("connect").arg(&url).env("SSL_CERT_FILE", &ca_file);
    });
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bridged = ().serve(transport).await.expect("connect speaks MCP over https");
    let tools = bridged.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 12);
    bridged.cancel().await.unwrap();
}

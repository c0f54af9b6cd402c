//! A session belongs to the principal that opened it, from the first byte of its id: hostile
//! requests with another client's session id, in a tight loop, at every moment of the
//! session's life (before and after `notifications/initialized`, after calls, across restarts).

mod common;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_context","arguments":{}}}"#;

fn two_clients(name: &str) -> String {
    write_config(
        name,
        &format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n[[clients]]\nid = \"b\"\ntoken_sha256 = \"{}\"\n",
            sha("token-a"),
            sha("token-b")
        ),
    )
}

/// Send one request and read only the response head: (status, head). The connection is
/// dropped after the head, so an SSE stream that would stay open cannot hang the test.
async fn head_only(
    base: &str,
    method: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &str,
) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if let Some(session) = session {
        head.push_str(&format!(
            "mcp-session-id: {session}\r\nmcp-protocol-version: 2025-06-18\r\n"
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("a response head within 30 s")
            .unwrap();
        assert!(n > 0, "the connection closed before a response head");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// Every way `b` could reach into session `id`, all at once, each on its own connection.
async fn attack(base: &str, token: Option<&str>, id: &str) -> Vec<(String, u16)> {
    let attempts = [
        ("POST call", "POST", CALL),
        ("POST initialized", "POST", INITIALIZED),
        ("GET", "GET", ""),
        ("DELETE", "DELETE", ""),
    ];
    let mut runs = tokio::task::JoinSet::new();
    for (what, method, body) in attempts {
        let (base, token, id) = (base.to_string(), token.map(str::to_string), id.to_string());
        runs.spawn(async move {
            let (status, _) = head_only(&base, method, token.as_deref(), Some(&id), body).await;
            (what.to_string(), status)
        });
    }
    runs.join_all().await
}

fn assert_all_refused(results: &[(String, u16)], moment: &str, i: usize) {
    for (what, status) in results {
        assert_eq!(
            *status, 404,
            "iteration {i}, {moment}: b's {what} with a's session id was answered {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_never_served_to_another_client_at_any_moment() {
    let config = two_clients("owner-race");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let base = server.base.as_str();
    for i in 0..300 {
        // The attack starts as soon as a's session id is visible, while a's initialize
        // response is still open, and in parallel with a's own first steps.
        let (status, head) = head_only(base, "POST", Some("token-a"), None, INIT).await;
        assert_eq!(status, 200, "{head}");
        let id = session_of(&head);
        let (early, (own, _)) = tokio::join!(
            attack(base, Some("token-b"), &id),
            head_only(base, "POST", Some("token-a"), Some(&id), INITIALIZED)
        );
        assert_all_refused(&early, "before notifications/initialized", i);
        assert_eq!(own, 202, "a's own initialized is accepted");
        assert_all_refused(
            &attack(base, Some("token-b"), &id).await,
            "after notifications/initialized",
            i,
        );
        let (status, _) = head_only(base, "POST", Some("token-a"), Some(&id), CALL).await;
        assert_eq!(status, 200, "a's own call is served (iteration {i})");
        assert_all_refused(
            &attack(base, Some("token-b"), &id).await,
            "after a's first call",
            i,
        );
        // Unauthenticated requests get 401, never the session.
        let (status, _) = head_only(base, "POST", None, Some(&id), CALL).await;
        assert_eq!(status, 401);
        let (status, _) = head_only(base, "DELETE", Some("token-a"), Some(&id), "").await;
        assert!(
            status == 200 || status == 202 || status == 204,
            "a closes its own session: {status}"
        );
        assert_all_refused(
            &attack(base, Some("token-b"), &id).await,
            "after the session was closed",
            i,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_survives_restarts_and_is_checked_before_a_restore() {
    let config = two_clients("owner-restart");
    let state = temp_state();
    let args = [
        "--config",
        config.as_str(),
        "--demo",
        "--state",
        state.as_str(),
    ];
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let server = Server::start_on(&listen, &args, &[]).await;
    let base = server.base.clone();
    // One session only initialized, one initialized and used with its own context.
    let (_, head) = head_only(&base, "POST", Some("token-a"), None, INIT).await;
    let fresh = session_of(&head);
    let a = server.client_with_token("token-a").await;
    ok(&a, "set_context", json!({"schema": "SALES"})).await;
    let used = {
        // The rmcp client's id is not exposed; find it as the stored session that is not `fresh`.
        let ids = stored_sessions(&state);
        assert_eq!(ids.len(), 2, "{ids:?}");
        ids.into_iter().find(|id| *id != fresh).unwrap()
    };
    server.kill_hard().await;

    for restart in 0..2 {
        let server = Server::start_on(&listen, &args, &[]).await;
        for _ in 0..20 {
            for id in [&fresh, &used] {
                assert_all_refused(
                    &attack(&base, Some("token-b"), id).await,
                    "after a restart, before the owner came back",
                    restart,
                );
            }
        }
        let ctx = ok(&a, "get_context", json!({})).await;
        assert_eq!(ctx["schema"], "SALES", "a's session carried on: {ctx}");
        let (status, _) = head_only(&base, "POST", Some("token-a"), Some(&fresh), CALL).await;
        assert_eq!(status, 200, "a's never-used session is restored for a");
        assert_all_refused(
            &attack(&base, Some("token-b"), &used).await,
            "after the owner's session was restored",
            restart,
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_session_keeps_its_identity_and_is_never_a_configured_clients() {
    let state = temp_state();
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let anonymous = ["--demo", "--state", state.as_str()];
    let server = Server::start_on(&listen, &anonymous, &[]).await;
    let base = server.base.clone();
    let (_, head) = head_only(&base, "POST", None, None, INIT).await;
    let id = session_of(&head);
    let (status, _) = head_only(&base, "POST", None, Some(&id), CALL).await;
    assert_eq!(status, 200);
    let c = server.client().await;
    ok(&c, "run_query", json!({"sql": "SELECT 41"})).await;
    server.stop().await;

    // The same client, restored after a restart, is the same anonymous identity: its own
    // history is still its own.
    let server = Server::start_on(&listen, &anonymous, &[]).await;
    let history = ok(&c, "query_history", json!({})).await;
    assert!(
        history.to_string().contains("SELECT 41"),
        "the restored session is the same anonymous client: {history}"
    );
    server.stop().await;

    // With clients configured, no token holder may take over an anonymous session.
    let config = two_clients("owner-anonymous");
    let server = Server::start_on(
        &listen,
        &["--config", &config, "--demo", "--state", &state],
        &[],
    )
    .await;
    assert_all_refused(
        &attack(&base, Some("token-a"), &id).await,
        "anonymous session",
        0,
    );
    server.stop().await;
}

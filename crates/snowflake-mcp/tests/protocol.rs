//! Streamable HTTP details clients depend on: resuming a dropped stream with `Last-Event-ID`
//! (also after the call finished), and a session DELETE that SDKs read as a clean close.

mod common;

use std::time::Duration;

use common::*;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn json_headers(session: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(s) = session {
        h.push(("mcp-session-id", s));
        h.push(("mcp-protocol-version", "2025-06-18"));
    }
    h
}

async fn open_session(base: &str) -> String {
    open_session_as(base, None).await
}

/// Open a session, with `Authorization: <auth>` when given.
async fn open_session_as(base: &str, auth: Option<&str>) -> String {
    let mut h = json_headers(None);
    h.extend(auth.map(|a| ("authorization", a)));
    let (status, head, body) = raw_http(base, "POST", "/mcp", &h, INIT).await;
    assert_eq!(status, 200, "{body}");
    let id = session_of(&head);
    let mut h = json_headers(Some(&id));
    h.extend(auth.map(|a| ("authorization", a)));
    let (status, _, _) = raw_http(base, "POST", "/mcp", &h, INITIALIZED).await;
    assert_eq!(status, 202);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_stream_resumes_with_its_result_even_after_the_call_finished() {
    let server = Server::start(&["--demo"], &[]).await;
    let base = server.base.as_str();
    let session = open_session(base).await;
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT 4242 AS ANSWER"}}}"#;
    let primed = call_and_drop(base, &session, call).await;
    // Let the call finish while nobody listens, then come back.
    wait_for("the call to finish", || async {
        tool_calls(base, "run_query", "ok").await == 1
    })
    .await;
    let mut headers = json_headers(Some(&session));
    headers[1] = ("accept", "text/event-stream");
    headers.push(("last-event-id", &primed));
    let (status, _, body) = raw_http(base, "GET", "/mcp", &headers, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("4242") && body.contains("\"id\":5"),
        "the replay carries the call's result: {body}"
    );
    // The replay starts after the event the client already had.
    assert!(!body.contains(&format!("id: {primed}\n")), "{body}");
    // An id that was never sent replays nothing.
    headers.pop();
    headers.push(("last-event-id", "00000000000000000000000000000000"));
    let (_, _, body) = raw_http(base, "GET", "/mcp", &headers, "").await;
    assert!(!body.contains("4242"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_answers_no_content_and_ends_it() {
    let server = Server::start(&["--demo"], &[]).await;
    let base = server.base.as_str();
    let session = open_session(base).await;
    let (status, _, _) = raw_http(base, "DELETE", "/mcp", &json_headers(Some(&session)), "").await;
    assert_eq!(status, 204, "SDKs treat 200/204 as a clean termination");
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_context","arguments":{}}}"#;
    let (status, _, _) = raw_http(base, "POST", "/mcp", &json_headers(Some(&session)), call).await;
    assert_eq!(status, 404, "the session is gone");
}

/// GET a resumption of `event` (with a session, or sessionless at protocol 2026-07-28): status
/// and body.
async fn resume(
    base: &str,
    session: Option<&str>,
    auth: Option<&str>,
    event: &str,
) -> (u16, String) {
    let mut h = vec![("accept", "text/event-stream"), ("last-event-id", event)];
    match session {
        Some(s) => h.extend([
            ("mcp-session-id", s),
            ("mcp-protocol-version", "2025-06-18"),
        ]),
        None => h.push(("mcp-protocol-version", "2026-07-28")),
    }
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    let (status, _, body) = raw_http(base, "GET", "/mcp", &h, "").await;
    (status, body)
}

/// Wait until the owner's resumption of `event` carries `marker` (the call finished).
async fn owner_sees(base: &str, session: &str, auth: Option<&str>, event: &str, marker: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = resume(base, Some(session), auth, event).await;
        if status == 200 && body.contains(marker) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the owner never got its result back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_anonymous_client_cannot_resume_a_stream_it_does_not_own() {
    let server = Server::start(&["--demo"], &[]).await;
    let base = server.base.as_str();
    let a = open_session(base).await;
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT 977131 AS SECRET"}}}"#;
    let event = call_and_drop(base, &a, call).await;
    owner_sees(base, &a, None, &event, "977131").await;
    // Another anonymous client, with a session of its own and without one.
    let b = open_session(base).await;
    let (status, body) = resume(base, Some(&b), None, &event).await;
    assert_eq!(status, 200, "an empty stream, as for an id no longer kept");
    assert!(!body.contains("977131"), "B got A's result: {body}");
    let (_, body) = resume(base, None, None, &event).await;
    assert!(
        !body.contains("977131"),
        "a sessionless stranger got A's result: {body}"
    );
    // A still can.
    owner_sees(base, &a, None, &event, "977131").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_configured_client_cannot_resume_a_stream_it_does_not_own() {
    let config = write_config(
        "resume-owners",
        &format!(
            "[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n[[clients]]\nid = \"b\"\ntoken_sha256 = \"{}\"\n",
            sha("token-a"),
            sha("token-b")
        ),
    );
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let base = server.base.as_str();
    let (ta, tb) = (Some("Bearer token-a"), Some("Bearer token-b"));
    let a = open_session_as(base, ta).await;
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT 566121 AS SECRET"}}}"#;
    let event = call_and_drop_as(base, &a, ta, call).await;
    owner_sees(base, &a, ta, &event, "566121").await;
    let b = open_session_as(base, tb).await;
    let (status, body) = resume(base, Some(&b), tb, &event).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("566121"),
        "B's session got A's result: {body}"
    );
    let (_, body) = resume(base, None, tb, &event).await;
    assert!(
        !body.contains("566121"),
        "B without a session got A's result: {body}"
    );
    // Even A, from another session of its own, does not: the stream was that session's.
    let a2 = open_session_as(base, ta).await;
    let (_, body) = resume(base, Some(&a2), ta, &event).await;
    assert!(
        !body.contains("566121"),
        "another session of A got the result: {body}"
    );
}

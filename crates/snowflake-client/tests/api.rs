//! `Session::api`: Snowflake's REST API v2 called as a session — its token sent, an expired
//! token renewed once on 401, a refusal kept with its status and Snowflake's message, an event
//! stream handed over event by event, a POST that may have started never repeated.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use snowflake_client::{ApiEvent, ErrorKind};
use testkit::{Reply, Scripted};

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_repeated() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = Scripted::start(move |r| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "old", "masterToken": "m", "sessionInfo": {}}}),
        ),
        "/session/token-request" => Reply::json(json!({"success": true, "data": {"sessionToken": "new"}})),
        "/api/v2/cortex/analyst/message" => {
            seen.fetch_add(1, Ordering::SeqCst);
            if r.headers["authorization"] == "Snowflake Token=\"new\"" {
                Reply::json(json!({"request_id": "r1", "message": {"role": "analyst", "content": []}}))
            } else {
                Reply::json_status(401, json!({"code": "390112", "message": "expired"}))
            }
        }
        _ => Reply::status(404, ""),
    })
    .await;
    let mut session = common::session_on(server.addr.port()).await;
    let answer = session
        .api(
            "api/v2/cortex/analyst/message",
            &json!({"messages": []}),
            deadline(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(answer["request_id"], "r1");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(server.count("/session/token-request"), 1);
}

#[tokio::test]
async fn a_refusal_keeps_its_status_and_a_failed_post_is_not_repeated() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => {
            Reply::json(json!({"success": true, "data": {"token": "t", "sessionInfo": {}}}))
        }
        "/api/v2/forbidden" => Reply::json_status(
            403,
            json!({"code": "399504", "message": "no USAGE", "request_id": "r9"}),
        ),
        "/api/v2/broken" => Reply::status(500, "oops"),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut session = common::session_on(server.addr.port()).await;
    let e = session
        .api("api/v2/forbidden", &json!({}), deadline(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), Some(403));
    assert_eq!(e.code(), Some("399504"));
    assert!(
        e.message().contains("no USAGE (request id r9)"),
        "{}",
        e.message()
    );
    let e = session
        .api("api/v2/broken", &json!({}), deadline(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    assert_eq!(
        server.count("/api/v2/broken"),
        1,
        "a POST that may have started is not repeated"
    );
}

#[tokio::test]
async fn an_event_stream_is_handed_over_event_by_event_within_the_deadline() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => {
            Reply::json(json!({"success": true, "data": {"token": "t", "sessionInfo": {}}}))
        }
        "/api/v2/slow" => Reply::events(
            (0..20)
                .map(|i| {
                    (
                        Duration::from_millis(100),
                        "tick".to_string(),
                        format!("{{\"i\": {i}}}"),
                    )
                })
                .collect(),
        ),
        _ => Reply::events(vec![
            (
                Duration::ZERO,
                "response.status".into(),
                "{\"status\": \"planning\"}".into(),
            ),
            (
                Duration::from_millis(20),
                "response".into(),
                "{\"role\": \"assistant\"}".into(),
            ),
        ]),
    })
    .await;
    let mut session = common::session_on(server.addr.port()).await;
    let mut events: Vec<ApiEvent> = Vec::new();
    let answer = session
        .api("api/v2/agent", &json!({}), deadline(), &mut |e| {
            events.push(e)
        })
        .await
        .unwrap();
    assert!(answer.is_null());
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["response.status", "response"]
    );
    // Two seconds of events against a deadline of half a second: cut off at the deadline.
    let mut heard = 0;
    let started = std::time::Instant::now();
    let e = session
        .api(
            "api/v2/slow",
            &json!({}),
            tokio::time::Instant::now() + Duration::from_millis(500),
            &mut |_| heard += 1,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(
        (2..10).contains(&heard),
        "events heard before the deadline: {heard}"
    );
}

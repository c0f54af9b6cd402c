//! A Snowflake that goes silent under an open session (the network black-holes after login):
//! every request still ends by its deadline, the statement is abandoned as unanswered, and the
//! session refuses further statements (it may still be running one).

mod common;

use common::settings;
use std::time::{Duration, Instant};

use serde_json::json;
use snowflake_client::{Client, ErrorKind, QueryOptions};
use testkit::{Fault, FaultProxy, Reply, Scripted};

fn rows() -> Reply {
    Reply::json(json!({"success": true, "data": {
        "queryId": "q-1",
        "rowtype": [{"name": "V", "type": "text", "nullable": true}],
        "queryResultFormat": "json",
        "rowset": [["1"]],
        "total": 1,
    }}))
}

async fn scripted() -> Scripted {
    Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "t1", "sessionInfo": {"databaseName": "DB1"}}}),
        ),
        "/queries/v1/query-request" => rows(),
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await
}

#[tokio::test]
async fn a_black_holed_open_session_answers_within_the_statement_timeout_plus_a_margin() {
    let server = scripted().await;
    let proxy = FaultProxy::start(server.addr.port()).await;
    let mut session = Client::new(&settings(proxy.port))
        .unwrap()
        .login()
        .await
        .unwrap();
    session.query("SELECT 1").await.unwrap();
    proxy.set(Fault::BlackHole);
    let options = QueryOptions {
        timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        session.query_with("SELECT 2", &options),
    )
    .await
    .expect("the statement ended within 30 s, not after minutes of retries");
    let e = outcome.expect_err("no answer is an error");
    // 2 s timeout + 2 s margin + at most 3 s for the abort.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_unanswered(), "{e}");
    assert!(
        session.is_poisoned(),
        "the statement may still run: no second one on this session"
    );
}

#[tokio::test]
async fn a_callers_deadline_bounds_the_statement_and_its_polling() {
    // Snowflake keeps saying "still running".
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => {
            Reply::json(json!({"success": true, "data": {"token": "t1"}}))
        }
        "/queries/v1/query-request" | "/queries/q/result" => Reply::json(
            json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q/result", "queryId": "q"}}),
        ),
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await;
    let mut session = Client::new(&settings(server.addr.port()))
        .unwrap()
        .login()
        .await
        .unwrap();
    let options = QueryOptions {
        timeout: Some(Duration::from_secs(600)),
        deadline: Some(tokio::time::Instant::now() + Duration::from_secs(1)),
        ..Default::default()
    };
    let started = Instant::now();
    let e = session.query_with("SELECT 2", &options).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(server.count("/queries/q/result") >= 1, "it was polled");
    assert_eq!(
        server.count("/queries/v1/abort-request"),
        1,
        "and aborted when the deadline passed"
    );
}

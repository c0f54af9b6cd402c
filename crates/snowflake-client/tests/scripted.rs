//! What the emulator never does — token expiry, long-running statements, result chunks,
//! retries, aborts, refused logins — against a scripted Snowflake (`testkit::Scripted`).

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use snowflake_client::{Client, ConnectionSettings, ErrorKind, QueryOptions, RowLimits, Value};
use testkit::{Reply, Request, Scripted};

fn settings(server: &Scripted) -> ConnectionSettings {
    ConnectionSettings {
        database: Some("DB1".into()),
        ..common::settings(server.addr.port())
    }
}

fn login_ok(token: &str, master: Option<&str>) -> Reply {
    let mut data =
        json!({"token": token, "sessionInfo": {"databaseName": "DB1"}, "serverVersion": "9.1.0"});
    if let Some(m) = master {
        data["masterToken"] = json!(m);
    }
    Reply::json(json!({"success": true, "data": data}))
}

fn rows_reply(values: &[&str]) -> Reply {
    Reply::json(json!({"success": true, "data": {
        "queryId": "q-1",
        "rowtype": [{"name": "V", "type": "text", "nullable": true}],
        "queryResultFormat": "json",
        "rowset": values.iter().map(|v| vec![*v]).collect::<Vec<_>>(),
        "total": values.len(),
    }}))
}

fn error_reply(code: &str, message: &str) -> Reply {
    Reply::json(
        json!({"success": false, "code": code, "message": message, "data": {"errorCode": code}}),
    )
}

fn auth(r: &Request) -> String {
    r.headers.get("authorization").cloned().unwrap_or_default()
}

#[tokio::test]
async fn expired_token_is_renewed_with_the_master_token() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t1", Some("m1")),
        "/session/token-request" => {
            assert_eq!(auth(r), "Snowflake Token=\"m1\"");
            assert_eq!(r.body["oldSessionToken"], "t1");
            assert_eq!(r.body["requestType"], "RENEW");
            Reply::json(
                json!({"success": true, "data": {"sessionToken": "t2", "masterToken": "m2"}}),
            )
        }
        "/queries/v1/query-request" if auth(r).contains("t1") => {
            error_reply("390112", "Your session has expired. Please login again.")
        }
        "/queries/v1/query-request" => rows_reply(&["after renewal"]),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let rows = s
        .query("SELECT 1")
        .await
        .unwrap()
        .collect(RowLimits::default())
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Text("after renewal".into())]]);
    assert_eq!(server.count("/session/token-request"), 1);
    assert_eq!(server.count("/session/v1/login-request"), 1);
    // The statement kept its request id when repeated after renewal.
    let ids: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/queries/v1/query-request")
        .map(|r| r.query["requestId"].clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn without_a_master_token_the_session_logs_in_again_in_its_context() {
    let logins = Arc::new(AtomicUsize::new(0));
    let l = logins.clone();
    let server = Scripted::start(move |r| match r.path.as_str() {
        "/session/v1/login-request" => {
            let n = l.fetch_add(1, Ordering::SeqCst);
            login_ok(&format!("t{n}"), None)
        }
        "/queries/v1/query-request" if auth(r).contains("t0") => {
            error_reply("390114", "Authentication token has expired.")
        }
        "/queries/v1/query-request" => rows_reply(&["ok"]),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    s.query("SELECT 1").await.unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 2);
    let relogin = &server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/session/v1/login-request")
        .nth(1)
        .unwrap();
    assert_eq!(
        relogin.query.get("databaseName").map(String::as_str),
        Some("DB1")
    );
}

#[tokio::test]
async fn a_long_statement_is_polled_until_done() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let server = Scripted::start(move |r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t", None),
        "/queries/v1/query-request" => Reply::json(json!({"success": true, "code": "333334", "message": "in progress", "data": {"getResultUrl": "/queries/q-9/result", "queryId": "q-9"}})),
        "/queries/q-9/result" if p.fetch_add(1, Ordering::SeqCst) < 2 => {
            assert_eq!(r.method, "GET");
            Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q-9/result"}}))
        }
        "/queries/q-9/result" => rows_reply(&["done"]),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let rows = s
        .query("CALL slow()")
        .await
        .unwrap()
        .collect(RowLimits::default())
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], Value::Text("done".into()));
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn chunks_are_downloaded_lazily_and_stop_at_the_cap() {
    let port = Arc::new(AtomicUsize::new(0));
    let p = port.clone();
    let server = Scripted::start(move |r| {
        let base = format!("http://127.0.0.1:{}", p.load(Ordering::SeqCst));
        match r.path.as_str() {
            "/session/v1/login-request" => login_ok("t", None),
            "/queries/v1/query-request" => Reply::json(json!({"success": true, "data": {
                "queryId": "q-c",
                "rowtype": [{"name": "N", "type": "fixed", "scale": 0}, {"name": "S", "type": "text"}],
                "queryResultFormat": "json",
                "rowset": [["1", "a"], ["2", null]],
                "total": 8,
                "chunks": [
                    {"url": format!("{base}/chunk/0"), "rowCount": 3},
                    {"url": format!("{base}/chunk/1"), "rowCount": 3},
                ],
                "chunkHeaders": {"x-amz-server-side-encryption-customer-key": "k"},
            }})),
            "/chunk/0" => {
                assert_eq!(r.headers.get("x-amz-server-side-encryption-customer-key").map(String::as_str), Some("k"));
                Reply::bytes(gzip(br#"["3","c"],["4","d"],["5","e"]"#))
            }
            "/chunk/1" => Reply::bytes(br#"["6","f"],["7","g"],["8","h"]"#.to_vec()),
            _ => Reply::status(404, ""),
        }
    })
    .await;
    port.store(server.addr.port() as usize, Ordering::SeqCst);
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();

    let capped = s
        .query("SELECT")
        .await
        .unwrap()
        .collect(RowLimits {
            max_rows: 4,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    assert_eq!(capped.rows.len(), 4);
    assert!(capped.truncated);
    assert_eq!(capped.rows[1][1], Value::Null);
    assert_eq!(capped.rows[3][1], Value::Text("d".into()));
    assert_eq!(
        (server.count("/chunk/0"), server.count("/chunk/1")),
        (1, 0),
        "the second chunk is never fetched"
    );

    let exact = s
        .query("SELECT")
        .await
        .unwrap()
        .collect(RowLimits {
            max_rows: 2,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    assert!(exact.truncated, "more rows wait in chunks");
    assert_eq!(
        server.count("/chunk/0"),
        1,
        "reaching the cap at a batch edge fetches nothing"
    );

    let all = s
        .query("SELECT")
        .await
        .unwrap()
        .collect(RowLimits::default())
        .await
        .unwrap();
    assert_eq!(all.rows.len(), 8);
    assert!(!all.truncated);
    assert_eq!(all.rows[7][0].to_string(), "8");
}

#[tokio::test]
async fn safe_requests_are_retried_and_statements_are_not_repeated_after_a_server_error() {
    let beats = Arc::new(AtomicUsize::new(0));
    let b = beats.clone();
    let server = Scripted::start(move |r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t", None),
        "/session/heartbeat" if b.fetch_add(1, Ordering::SeqCst) < 2 => Reply::status(503, "busy"),
        "/session/heartbeat" => Reply::json(json!({"success": true})),
        "/queries/v1/query-request" if r.body["sqlText"] == "SELECT busy" => {
            Reply::status(503, "busy")
        }
        "/queries/v1/query-request" => Reply::status(500, "boom"),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    s.heartbeat().await.unwrap();
    assert_eq!(beats.load(Ordering::SeqCst), 3);

    let err = s.query("INSERT INTO t VALUES (1)").await.unwrap_err();
    assert_eq!(
        server.count("/queries/v1/query-request"),
        1,
        "a statement that may have run is not repeated"
    );
    assert!(err.message().contains("500"), "{err}");

    let err = s.query("SELECT busy").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert_eq!(
        server.count("/queries/v1/query-request"),
        1 + 4,
        "refused before starting: retried"
    );
}

#[tokio::test]
async fn refused_login_says_what_is_wrong() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => {
            assert_eq!(r.body["data"]["LOGIN_NAME"], "u");
            assert_eq!(r.body["data"]["ACCOUNT_NAME"], "ACCT");
            assert!(r.body["data"]["SESSION_PARAMETERS"].is_object());
            Reply::json(json!({"success": false, "code": "390100", "message": "Incorrect username or password was specified.", "data": {"sqlState": "08004"}}))
        }
        _ => Reply::status(404, ""),
    })
    .await;
    let err = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(
        err.message().contains("wrong user name or password"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw"));
}

#[tokio::test]
async fn abort_cancels_the_running_statement() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t", None),
        "/queries/v1/query-request" => Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q-a/result"}})),
        "/queries/q-a/result" => Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q-a/result"}})),
        "/queries/v1/abort-request" => Reply::json(json!({"success": true})),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let handle = s.handle();
    assert!(!handle.abort().await.unwrap(), "nothing runs yet");
    let options = QueryOptions {
        timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = s
        .query_with("SELECT SYSTEM$WAIT(100)", &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let reqs = server.requests();
    let statement = reqs
        .iter()
        .find(|r| r.path == "/queries/v1/query-request")
        .unwrap();
    assert_eq!(
        statement.body["parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"],
        1
    );
    let abort = reqs
        .iter()
        .find(|r| r.path == "/queries/v1/abort-request")
        .expect("the statement was aborted");
    assert_eq!(
        abort.body["requestId"],
        statement.query["requestId"].as_str()
    );
    assert!(
        s.is_poisoned(),
        "a statement given up on may still run: the session is retired"
    );
    assert_eq!(
        s.query("SELECT 1").await.unwrap_err().kind(),
        ErrorKind::SessionExpired
    );
}

#[tokio::test]
async fn cancelled_statement_reports_cancelled() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t", None),
        "/queries/v1/query-request" => Reply::json(json!({"success": false, "code": "000604", "message": "SQL execution canceled", "data": {"sqlState": "57014", "queryId": "q-x"}})),
        _ => Reply::status(404, ""),
    })
    .await;
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let err = s.query("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.query_id(), Some("q-x"));
    assert!(!s.is_poisoned());
}

#[tokio::test]
async fn an_abort_captured_while_a_statement_runs_targets_that_statement_only() {
    let server = Scripted::start(|r| match r.path.as_str() {
        "/session/v1/login-request" => login_ok("t", None),
        "/queries/v1/query-request" | "/queries/q-a/result" => Reply::json(json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q-a/result"}})),
        "/queries/v1/abort-request" => Reply::json(json!({"success": true})),
        _ => Reply::status(404, ""),
    })
    .await;
    let s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let handle = s.handle();
    let statement = tokio::spawn(async move {
        let mut s = s;
        let _ = s.query("SELECT SYSTEM$WAIT(100)").await;
    });
    for _ in 0..200 {
        if server.count("/queries/v1/query-request") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Captured now, sent later (as the pool does when a cancelled call drops its lease).
    let abort = handle.abort_running();
    statement.abort();
    let _ = statement.await;
    assert!(abort.await.unwrap(), "the captured statement is aborted");
    let reqs = server.requests();
    let sent = reqs
        .iter()
        .find(|r| r.path == "/queries/v1/query-request")
        .unwrap();
    let aborted: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/queries/v1/abort-request")
        .collect();
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        aborted[0].body["requestId"],
        sent.query["requestId"].as_str()
    );
}

#[tokio::test]
async fn throttled_polls_and_failing_chunk_downloads_are_retried() {
    let port = Arc::new(AtomicUsize::new(0));
    let (polls, chunk_tries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (p, pl, ct) = (port.clone(), polls.clone(), chunk_tries.clone());
    let server = Scripted::start(move |r| {
        let base = format!("http://127.0.0.1:{}", p.load(Ordering::SeqCst));
        match r.path.as_str() {
            "/session/v1/login-request" => login_ok("t", None),
            "/queries/v1/query-request" => Reply::json(
                json!({"success": true, "code": "333334", "data": {"getResultUrl": "/queries/q/result"}}),
            ),
            // Snowflake throttles the poll twice (429), then answers with a chunked result.
            "/queries/q/result" if pl.fetch_add(1, Ordering::SeqCst) < 2 => {
                Reply::status(429, "slow down")
            }
            "/queries/q/result" => Reply::json(json!({"success": true, "data": {
                "queryId": "q",
                "rowtype": [{"name": "N", "type": "fixed", "scale": 0}],
                "queryResultFormat": "json",
                "rowset": [["1"]],
                "total": 4,
                "chunks": [{"url": format!("{base}/chunk/0"), "rowCount": 3}],
            }})),
            // The chunk store fails once (500), then serves.
            "/chunk/0" if ct.fetch_add(1, Ordering::SeqCst) < 1 => Reply::status(500, "oops"),
            "/chunk/0" => Reply::bytes(br#"["2"],["3"],["4"]"#.to_vec()),
            _ => Reply::status(404, ""),
        }
    })
    .await;
    port.store(server.addr.port() as usize, Ordering::SeqCst);
    let mut s = Client::new(&settings(&server))
        .unwrap()
        .login()
        .await
        .unwrap();
    let rows = s
        .query("SELECT")
        .await
        .unwrap()
        .collect(RowLimits::default())
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 4);
    assert_eq!(polls.load(Ordering::SeqCst), 3, "429 answers were retried");
    assert_eq!(
        chunk_tries.load(Ordering::SeqCst),
        2,
        "the failed chunk was fetched again"
    );
}

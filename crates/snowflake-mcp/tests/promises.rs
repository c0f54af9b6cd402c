//! Promises of the README that no other test exercised: `allowed_warehouses`, credits from
//! `SHOW WAREHOUSES`, `bytes_per_day`/`bytes_per_hour`, `max_sql_bytes`, the JSONL audit file
//! (private, complete, and carrying on while Redis is down), and no bearer token or session
//! id in any log line of an HTTP run.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use testkit::{Reply, Request, Scripted, Valkey};

/// A column of text values, as Snowflake's JSON result format carries it.
fn column(name: &str) -> Value {
    json!({"name": name, "type": "text", "nullable": true})
}

/// A scripted Snowflake: logs in on warehouse `WH` (the service user's default), answers
/// `SHOW WAREHOUSES LIKE '<name>'` with the size named by `<name>`'s last part (`ANALYST_MEDIUM`
/// is Medium), holds statements that contain `/* slow */` for a second, and answers every other
/// statement with one row.
async fn snowflake() -> Scripted {
    Scripted::start(|r: &Request| match r.path.as_str() {
        "/session/v1/login-request" => Reply::json(
            json!({"success": true, "data": {"token": "t", "masterToken": "m", "sessionInfo": {"databaseName": "DB1", "schemaName": "PUBLIC", "roleName": "SERVICE", "warehouseName": "WH"}}}),
        ),
        "/queries/v1/query-request" => {
            let sql = r.body["sqlText"].as_str().unwrap_or_default();
            if let Some(rest) = sql.strip_prefix("SHOW WAREHOUSES LIKE '") {
                let name = rest.trim_end_matches('\'');
                let size = match name.rsplit('_').next().unwrap_or_default() {
                    "MEDIUM" => "Medium",
                    "LARGE" => "Large",
                    _ => "X-Small",
                };
                return Reply::json(json!({"success": true, "data": {
                    "queryId": "q-show",
                    "rowtype": [column("name"), column("state"), column("type"), column("size")],
                    "queryResultFormat": "json",
                    "rowset": [[name, "STARTED", "STANDARD", size]],
                    "total": 1,
                }}));
            }
            if sql.contains("/* slow */") {
                std::thread::sleep(Duration::from_secs(1));
            }
            Reply::json(json!({"success": true, "data": {
                "queryId": "q-1",
                "rowtype": [column("V")],
                "queryResultFormat": "json",
                "rowset": [["1"]],
                "total": 1,
            }}))
        }
        _ => Reply::json(json!({"success": true, "data": {}})),
    })
    .await
}

/// The statements a scripted Snowflake received, in order.
fn statements(snowflake: &Scripted) -> Vec<String> {
    snowflake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/queries/v1/query-request")
        .map(|r| r.body["sqlText"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The warehouse in use when `sql` last ran: the last `USE WAREHOUSE` before it.
fn warehouse_of(statements: &[String], sql: &str) -> Option<String> {
    let at = statements.iter().rposition(|s| s == sql)?;
    statements[..at]
        .iter()
        .rev()
        .find_map(|s| s.strip_prefix("USE WAREHOUSE "))
        .map(|w| w.trim_matches('"').to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_restricted_to_warehouses_never_runs_on_another() {
    let snowflake = snowflake().await;
    let mut env = env_with_port(snowflake.addr.port());
    env.push(("SNOWFLAKE_WAREHOUSE".into(), "WH".into()));
    let config = write_config(
        "warehouses",
        &format!(
            "[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nallowed_warehouses = [\"ANALYST_WH\", \"SPARE_WH\"]\n\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("analyst-token"),
            sha("free-token")
        ),
    );
    let server = Server::start(&["--config", &config], &env).await;
    let analyst = server.client_with_token("analyst-token").await;
    // Not the service user's default warehouse: the first allowed one.
    let ctx = ok(&analyst, "get_context", no_args()).await;
    assert_eq!(
        ctx["warehouse"], "ANALYST_WH",
        "a restricted client defaults to an allowed warehouse: {ctx}"
    );
    ok(&analyst, "run_query", json!({"sql": "SELECT 'first' AS V"})).await;
    assert_eq!(
        warehouse_of(&statements(&snowflake), "SELECT 'first' AS V").as_deref(),
        Some("ANALYST_WH"),
        "{:?}",
        statements(&snowflake)
    );
    // Another warehouse is refused, by name, and the context stays as it was.
    for other in ["WH", "OTHER_WH"] {
        let (kind, message) = err(&analyst, "set_context", json!({"warehouse": other})).await;
        assert_eq!(kind, "not_allowed", "{message}");
        assert!(
            message.contains("warehouse") && message.contains(other),
            "{message}"
        );
    }
    let ctx = ok(&analyst, "get_context", no_args()).await;
    assert_eq!(ctx["warehouse"], "ANALYST_WH", "{ctx}");
    ok(
        &analyst,
        "run_query",
        json!({"sql": "SELECT 'second' AS V"}),
    )
    .await;
    assert_eq!(
        warehouse_of(&statements(&snowflake), "SELECT 'second' AS V").as_deref(),
        Some("ANALYST_WH")
    );
    // An allowed one is accepted, and used.
    ok(&analyst, "set_context", json!({"warehouse": "spare_wh"})).await;
    ok(&analyst, "run_query", json!({"sql": "SELECT 'third' AS V"})).await;
    assert_eq!(
        warehouse_of(&statements(&snowflake), "SELECT 'third' AS V").as_deref(),
        Some("SPARE_WH")
    );
    // An unrestricted client is free to use the service's default.
    let free = server.client_with_token("free-token").await;
    ok(&free, "set_context", json!({"warehouse": "OTHER_WH"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_charged_at_the_rate_of_the_warehouse_size_snowflake_reports() {
    let snowflake = snowflake().await;
    let env = env_with_port(snowflake.addr.port());
    // A Medium warehouse burns 4 credits an hour: 0.002 credits is 1.8 s of it.
    let config = write_config(
        "credits",
        &format!(
            "[[clients]]\nid = \"c\"\ntoken_sha256 = \"{}\"\n\
             default_context = {{ warehouse = \"ANALYST_MEDIUM\" }}\n\
             statement_seconds_per_day = 3600\ncredits_per_day = 0.002\n",
            sha("c-token")
        ),
    );
    let server = Server::start(&["--config", &config], &env).await;
    let c = server.client_with_token("c-token").await;
    ok(&c, "run_query", json!({"sql": "SELECT 1 /* slow */"})).await;
    let shows: Vec<String> = statements(&snowflake)
        .into_iter()
        .filter(|s| s.starts_with("SHOW WAREHOUSES"))
        .collect();
    assert_eq!(
        shows,
        ["SHOW WAREHOUSES LIKE 'ANALYST_MEDIUM'"],
        "the size is read from Snowflake"
    );
    let ctx = ok(&c, "get_context", no_args()).await;
    let q = &ctx["limits"]["quotas"];
    let seconds = q["statement_seconds_per_day"]["used"].as_f64().unwrap();
    let credits = q["credits_per_day"]["used"].as_f64().unwrap();
    assert!(seconds >= 1.0, "the statement held its session 1 s: {ctx}");
    let rate = credits / seconds * 3600.0;
    assert!(
        (rate - 4.0).abs() < 0.1,
        "credits charged at 4 an hour (Medium), not {rate}: {ctx}"
    );
    // Over the credits quota, calls are refused, naming it.
    let mut refused = None;
    for _ in 0..4 {
        let r = call(&c, "run_query", json!({"sql": "SELECT 2 /* slow */"})).await;
        if r.is_error == Some(true) {
            refused = Some(error_of(&r));
            break;
        }
    }
    let e = refused.expect("the credits quota refuses calls once spent");
    assert_eq!(e["kind"], "quota_exceeded", "{e}");
    assert!(e["message"].as_str().unwrap().contains("credits"), "{e}");
    // The size was read once, not per statement.
    let shows = statements(&snowflake)
        .iter()
        .filter(|s| s.starts_with("SHOW WAREHOUSES"))
        .count();
    assert_eq!(shows, 1);
}

/// The bytes a result's rows take as JSON (what the bytes quotas count).
fn rows_bytes(result: &Value) -> usize {
    result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_quotas_cap_what_a_client_reads_per_day_and_per_hour() {
    let config = write_config(
        "bytes",
        &format!(
            "[[clients]]\nid = \"daily\"\ntoken_sha256 = \"{}\"\nbytes_per_day = 300\n\n\
             [[clients]]\nid = \"hourly\"\ntoken_sha256 = \"{}\"\nbytes_per_hour = 300\n\n\
             [[clients]]\nid = \"free\"\ntoken_sha256 = \"{}\"\n",
            sha("daily-token"),
            sha("hourly-token"),
            sha("free-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let free = server.client_with_token("free-token").await;
    let everything = ok(
        &free,
        "run_query",
        json!({"sql": "SELECT * FROM CUSTOMERS", "max_rows": 100}),
    )
    .await;
    assert!(
        rows_bytes(&everything) > 600,
        "the table is bigger than the quotas"
    );
    for (token, quota) in [
        ("daily-token", "bytes_per_day"),
        ("hourly-token", "bytes_per_hour"),
    ] {
        let c = server.client_with_token(token).await;
        let mut read = 0;
        let mut refusal = None;
        for _ in 0..10 {
            let r = call(
                &c,
                "run_query",
                json!({"sql": "SELECT * FROM CUSTOMERS", "max_rows": 100}),
            )
            .await;
            if r.is_error == Some(true) {
                refusal = Some(error_of(&r));
                break;
            }
            read += rows_bytes(r.structured_content.as_ref().unwrap());
        }
        assert!(
            (1..=300).contains(&read),
            "{token}: {read} bytes of rows read against 300"
        );
        let e = refusal.unwrap_or_else(|| panic!("{token}: never refused"));
        assert_eq!(e["kind"], "quota_exceeded", "{e}");
        assert!(e["message"].as_str().unwrap().contains("bytes"), "{e}");
        let ctx = ok(&c, "get_context", no_args()).await;
        let used = ctx["limits"]["quotas"][quota]["used"].as_u64().unwrap();
        assert!((1..=300).contains(&used), "{quota}: {ctx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_longer_than_max_sql_bytes_is_refused_clearly() {
    let config = write_config("sqlbytes", "[query]\nmax_sql_bytes = 1000\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let c = server.client().await;
    let padded = |n: usize| {
        let head = "SELECT 1 AS X /* ";
        format!("{head}{} */", "x".repeat(n - head.len() - 3))
    };
    let fits = padded(1000);
    assert_eq!(fits.len(), 1000);
    ok(&c, "run_query", json!({"sql": fits})).await;
    let (kind, message) = err(&c, "run_query", json!({"sql": padded(1001)})).await;
    assert_eq!(kind, "invalid_argument", "{message}");
    assert!(
        message.contains("1001") && message.contains("1000"),
        "the error says how long the SQL is and what is accepted: {message}"
    );
    let (kind, _) = err(&c, "run_query", json!({"sql": padded(200_000)})).await;
    assert_eq!(kind, "invalid_argument");
    // Nothing of the refused text ran or was kept as a result.
    let history = ok(&c, "query_history", json!({})).await;
    let statuses: Vec<&str> = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "ok").count(),
        1,
        "{history}"
    );
}

/// The records of a JSONL audit file.
fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Wait until the audit file holds a record of every statement in `answered`.
async fn wait_for_audit(path: &std::path::Path, answered: &[String]) -> Vec<Value> {
    let what = format!("records of {answered:?} in {}", path.display());
    wait_for_value(&what, || async {
        let records = audit_lines(path);
        let statements: Vec<&str> = records
            .iter()
            .filter_map(|r| r["statement"].as_str())
            .collect();
        let all = answered.iter().all(|s| statements.contains(&s.as_str()));
        all.then_some(records)
    })
    .await
}

fn audit_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_audit_file_is_private_and_records_every_answered_call() {
    use std::os::unix::fs::PermissionsExt;
    let path = audit_path("complete");
    let config = write_config(
        "audit-jsonl",
        &format!(
            "[audit]\njsonl_path = \"{}\"\n\n[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n",
            path.display(),
            sha("a-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let mode = std::fs::metadata(&path)
        .expect("the audit file is created at start")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by the server's user only");
    let clients = std::sync::Arc::new(server.client_with_token("a-token").await);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let c = clients.clone();
        calls.spawn(async move {
            // Answers of every kind: results, guard refusals, SQL errors.
            let sql = match i % 4 {
                0 | 1 => format!("SELECT {i} AS N"),
                2 => format!("DELETE FROM CUSTOMERS WHERE ID = {i}"),
                _ => format!("SELECT * FROM NO_SUCH_TABLE_{i}"),
            };
            let r = call(&c, "run_query", json!({"sql": sql})).await;
            let status = match r.is_error {
                Some(true) => error_of(&r)["kind"].as_str().unwrap().to_string(),
                _ => "ok".to_string(),
            };
            (sql, status)
        });
    }
    let answered = calls.join_all().await;
    let statements: Vec<String> = answered.iter().map(|(s, _)| s.clone()).collect();
    let records = wait_for_audit(&path, &statements).await;
    for (sql, status) in &answered {
        let record = records
            .iter()
            .find(|r| r["statement"] == sql.as_str())
            .unwrap();
        assert_eq!(record["status"], status.as_str(), "{record}");
        assert_eq!(record["client_id"], "a", "{record}");
        assert_eq!(record["tool"], "run_query", "{record}");
    }
    assert!(
        answered.iter().any(|(_, s)| s == "ok") && answered.iter().any(|(_, s)| s != "ok"),
        "{answered:?}"
    );
    // Still private after it was written to.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_audit_file_goes_on_while_redis_is_down() {
    let mut redis = Valkey::start();
    let path = audit_path("redis-down");
    let config = write_config(
        "audit-redis",
        &format!(
            "[audit]\njsonl_path = \"{}\"\n\n[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n",
            path.display(),
            sha("a-token")
        ),
    );
    let url = redis.url();
    let server = Server::start(&["--config", &config, "--demo", "--state", &url], &[]).await;
    let c = server.client_with_token("a-token").await;
    ok(&c, "run_query", json!({"sql": "SELECT 'before' AS W"})).await;
    wait_for_audit(&path, &["SELECT 'before' AS W".to_string()]).await;
    redis.kill();
    // The session this replica holds keeps working (no quotas here), and every answered call
    // still reaches the audit file.
    let mut answered = Vec::new();
    for i in 0..5 {
        let sql = format!("SELECT 'during' AS W, {i} AS I");
        ok(&c, "run_query", json!({"sql": sql})).await;
        answered.push(sql);
    }
    let records = wait_for_audit(&path, &answered).await;
    for sql in &answered {
        let r = records
            .iter()
            .find(|r| r["statement"] == sql.as_str())
            .unwrap();
        assert_eq!(r["status"], "ok", "{r}");
    }
    // query_history reads Redis: it says so rather than showing a partial history.
    let (kind, _) = err(&c, "query_history", json!({})).await;
    assert_eq!(kind, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_session_id_reaches_any_log_line_even_at_debug_level() {
    let tokens = ["alpha-secret-token-7f3a9", "beta-secret-token-c41d2"];
    let config = write_config(
        "log-secrets",
        &format!(
            "[[clients]]\nid = \"alpha\"\ntoken_sha256 = \"{}\"\n\n\
             [[clients]]\nid = \"beta\"\ntoken_sha256 = \"{}\"\n",
            sha(tokens[0]),
            sha(tokens[1])
        ),
    );
    let env = [("RUST_LOG".to_string(), "debug".to_string())];
    let server = Server::start(&["--config", &config, "--demo"], &env).await;
    let base = server.base.clone();
    let mut sessions = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let auth = format!("Bearer {token}");
        fn headers<'a>(auth: &'a str, session: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
            let mut h = vec![
                ("authorization", auth),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ];
            if let Some(s) = session {
                h.push(("mcp-session-id", s));
                h.push(("mcp-protocol-version", "2025-06-18"));
            }
            h
        }
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
        let (status, head, _) = raw_http(&base, "POST", "/mcp", &headers(&auth, None), init).await;
        assert_eq!(status, 200);
        let session = session_of(&head);
        let h = headers(&auth, Some(&session));
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(
            raw_http(&base, "POST", "/mcp", &h, initialized).await.0,
            202
        );
        for (id, (tool, args)) in [
            ("run_query", json!({"sql": format!("SELECT {n} AS N")})),
            ("get_context", json!({})),
            ("run_query", json!({"sql": "DELETE FROM CUSTOMERS"})),
            ("query_history", json!({})),
        ]
        .into_iter()
        .enumerate()
        {
            let body = json!({"jsonrpc": "2.0", "id": id + 2, "method": "tools/call",
                "params": {"name": tool, "arguments": args}})
            .to_string();
            assert_eq!(raw_http(&base, "POST", "/mcp", &h, &body).await.0, 200);
        }
        sessions.push(session);
    }
    // A resumption: a call whose stream drops, resumed with Last-Event-ID.
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT 4242 AS ANSWER"}}}"#;
    let primed = call_and_drop_as(
        &base,
        &sessions[0],
        Some(&format!("Bearer {}", tokens[0])),
        call,
    )
    .await;
    // Resume once the call has finished (two run_query calls answered ok before it).
    wait_for("the dropped call to finish", || {
        let base = base.clone();
        async move { tool_calls(&base, "run_query", "ok").await == 3 }
    })
    .await;
    let auth = format!("Bearer {}", tokens[0]);
    let resume = [
        ("authorization", auth.as_str()),
        ("accept", "text/event-stream"),
        ("mcp-session-id", sessions[0].as_str()),
        ("mcp-protocol-version", "2025-06-18"),
        ("last-event-id", primed.as_str()),
    ];
    let (status, _, body) = raw_http(&base, "GET", "/mcp", &resume, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("4242"), "the resumed stream replays: {body}");
    // A DELETE, and a session id that no longer exists.
    let auth = format!("Bearer {}", tokens[1]);
    let end = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", sessions[1].as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    assert_eq!(raw_http(&base, "DELETE", "/mcp", &end, "").await.0, 204);
    let gone = [
        end[0],
        end[1],
        end[2],
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let body = r#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"get_context","arguments":{}}}"#;
    assert_eq!(raw_http(&base, "POST", "/mcp", &gone, body).await.0, 404);
    // A token nobody configured.
    let wrong = "gamma-unknown-token-0e9b1";
    let auth = format!("Bearer {wrong}");
    let probe = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
    assert_eq!(raw_http(&base, "POST", "/mcp", &probe, init).await.0, 401);

    let log = server.stop_with_log().await;
    assert!(
        log.iter().any(|l| l.contains("DEBUG")),
        "the run logged at debug level: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("tool call")),
        "the calls were logged: {log:?}"
    );
    for secret in tokens.iter().copied().chain([wrong]) {
        for line in &log {
            assert!(!line.contains(secret), "a bearer token in the log: {line}");
        }
    }
    for session in &sessions {
        for line in &log {
            assert!(
                !line.contains(session.as_str()),
                "a session id in the log: {line}"
            );
        }
    }
}

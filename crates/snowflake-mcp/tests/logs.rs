//! Structured logs: one JSON object per line on stderr, each call in a span with its client,
//! and no secret in any line — checked on a run that really reads and sends the Snowflake
//! password (against the emulator, through a proxy that sees the login).

mod common;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "hunter2-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_call_span_and_no_secrets() {
    let proxy = testkit::Proxy::start(testkit::fakesnow().port).await;
    let mut env = env_with_port(proxy.port);
    env.retain(|(k, _)| k != "SNOWFLAKE_PASSWORD");
    env.push(("SNOWFLAKE_PASSWORD".into(), PASSWORD.into()));
    let config = write_config("logs", "");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["stdio", "--log-format", "json", "--config", &config])
        .args(["--state", &temp_state()])
        .env_remove("SNOWFLAKE_DEFAULT_CONNECTION_NAME")
        // Debug level everywhere: the password must not show even there.
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env.into_iter().chain([cache_env()]) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut all = String::new();
        stderr.read_to_string(&mut all).await.unwrap();
        all
    });
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT CURRENT_DATABASE() AS D"}}}"#,
    ] {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
    // Wait for the answer to the call before closing stdin (machines differ in speed).
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line.contains("\"id\":2") {
                return line;
            }
        }
        panic!("stdout closed before the call's answer");
    })
    .await
    .expect("the call answered within 60 s");
    assert!(
        answer.contains("MCP_DB") && !answer.contains("\"isError\":true"),
        "the call ran on the emulator: {answer}"
    );
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server exits when stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
    let stderr = logs.await.unwrap();

    // The password was really read and sent: the emulator saw a password login.
    assert!(
        proxy.stats.logins.load(Ordering::SeqCst) >= 1,
        "the server logged in"
    );
    let records = proxy.stats.login_records.lock().unwrap().clone();
    assert!(
        records.iter().any(|(auth, _, _)| auth == "SNOWFLAKE"),
        "a password login: {records:?}"
    );

    let call = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "tool call")
        .unwrap_or_else(|| panic!("no JSON 'tool call' line in:\n{stderr}"));
    assert_eq!(call["span"]["tool"], "run_query");
    assert!(call["span"]["client"]
        .as_str()
        .unwrap()
        .starts_with("anonymous"));
    assert_eq!(call["fields"]["outcome"], "ok");
    assert!(
        stderr.lines().count() > 3,
        "debug logs were written: {stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.contains(PASSWORD),
            "the password in a log line: {line}"
        );
    }
}

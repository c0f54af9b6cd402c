//! Structured logs: one JSON object per line on stderr, each call in a span with its client.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn json_logs_carry_the_call_span_and_no_secrets() {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snowflake-mcp"))
        .args(["stdio", "--demo", "--log-format", "json", "--state"])
        .arg(dir.join("state.db"))
        .env("SNOWFLAKE_MCP_CACHE", &dir)
        .env("RUST_LOG", "snowflake_mcp=info")
        .env("SNOWFLAKE_PASSWORD", "hunter2-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_query","arguments":{"sql":"SELECT 1"}}}"#,
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    // Wait for the answer to the call before closing stdin (machines differ in speed).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0 {
        if line.contains("\"id\":2") {
            break;
        }
        line.clear();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    assert!(!stderr.contains("hunter2-secret"));
}

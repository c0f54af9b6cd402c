//! `snowflake-mcp connect`: a stdio MCP client reaches a running server through the bridge.

mod common;

use common::*;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::json;

async fn bridge_client(url: &str, token: Option<&str>, extra: &[&str]) -> Client {
    let (url, token) = (url.to_string(), token.map(str::to_string));
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let cache = cache_env();
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.arg("connect")
            .arg(&url)
            .args(&extra)
            .env(cache.0.clone(), cache.1.clone());
        if let Some(t) = &token {
            c.env("SNOWFLAKE_MCP_TOKEN", t);
        }
    });
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ().serve(transport)
        .await
        .expect("the bridge speaks MCP on stdio")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_holds_a_full_conversation_through_the_bridge() {
    let hash = sha("desktop-token");
    let config = write_config(
        "bridge",
        &format!("[[clients]]\nid = \"desktop\"\ntoken_sha256 = \"{hash}\"\n"),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let client = bridge_client(&server.url, Some("desktop-token"), &[]).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "run_query"));
    ok(&client, "set_context", json!({"schema": "SALES"})).await;
    let r = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT COUNT(*) AS N FROM CUSTOMERS"}),
    )
    .await;
    assert_eq!(r["rows"][0][0], 1000);
    let (kind, _) = err(&client, "run_query", json!({"sql": "DROP TABLE CUSTOMERS"})).await;
    assert_eq!(kind, "not_allowed");
    let history = ok(&client, "query_history", no_args()).await;
    assert!(
        history["queries"].as_array().unwrap().len() >= 2,
        "the calls ran as client desktop: {history}"
    );
    client.cancel().await.unwrap();

    // Without the token, the bridge cannot open a session.
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|c| {
            c.arg("connect")
                .arg(&server.url)
                .env_remove("SNOWFLAKE_MCP_TOKEN");
        }))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(().serve(transport).await.is_err(), "no token, no bridge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_starts_a_local_server_when_none_answers() {
    let port = testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let state = temp_state();
    let client = bridge_client(&url, None, &["--demo", "--state", &state]).await;
    let r = ok(&client, "list_databases", no_args()).await;
    assert_eq!(r["databases"][0]["name"], "DEMO");
    client.cancel().await.unwrap();
    // Stop the server the bridge started (it outlives the bridge by design): found by its
    // command line, signalled by its pid, and waited for.
    let pid = server_listening_on(port).expect("the bridge's server is running");
    assert!(send_signal(pid, libc::SIGINT), "SIGINT to {pid}");
    wait_for("the bridge's server to exit", || async move {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
    })
    .await;
}

/// The pid of the `snowflake-mcp serve --listen 127.0.0.1:<port>` process, from `/proc`.
fn server_listening_on(port: u16) -> Option<u32> {
    let listen = format!("127.0.0.1:{port}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let has = |a: &str| args.contains(&a.as_bytes());
            (has("serve") && has("--listen") && has(&listen)).then_some(pid)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridges_session_survives_a_server_restart() {
    let state = temp_state();
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let args = ["--demo", "--state", state.as_str()];
    let server = Server::start_on(&listen, &args, &[]).await;
    let client = bridge_client(&server.url, None, &[]).await;
    ok(
        &client,
        "set_context",
        json!({"database": "DEMO", "schema": "SALES"}),
    )
    .await;
    let before = stored_sessions(&state);
    assert_eq!(before.len(), 1);
    server.stop().await;
    let server = Server::start_on(&listen, &args, &[]).await;
    let ctx = ok(&client, "get_context", no_args()).await;
    assert_eq!(
        (ctx["database"].as_str(), ctx["schema"].as_str()),
        (Some("DEMO"), Some("SALES"))
    );
    let r = ok(
        &client,
        "run_query",
        json!({"sql": "SELECT COUNT(*) AS N FROM REGIONS"}),
    )
    .await;
    assert_eq!(r["rows"][0][0], 5);
    assert_eq!(
        stored_sessions(&state),
        before,
        "the same session carried on; no new one was opened"
    );
    client.cancel().await.unwrap();
    server.stop().await;
}

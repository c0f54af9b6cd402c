//! The official Python MCP SDK drives the server over Streamable HTTP (with a bearer token) and
//! over stdio, with both the `initialize` handshake and the SDK's default (protocol 2026-07-28,
//! sessionless): every tool, `structuredContent` validated against the `outputSchema`, tool
//! errors it can read, and a session DELETE the SDK accepts. The client is
//! `tests/py/sdk_client.py`, run with the SDK from the cache `scripts/test-env.sh` fills.

mod common;

use std::time::Duration;

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/sdk_client.py");

async fn run(args: &[&str]) {
    run_script(SCRIPT, "PY_SDK_CLIENT_OK", args).await
}

async fn run_script(script: &str, ok: &str, args: &[&str]) {
    let run = tokio::process::Command::new(testkit::mcp_python())
        .arg(script)
        .args(args)
        .env(cache_env().0, cache_env().1)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the Python SDK client finished within 300 s")
        .expect("run the Python SDK client");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains(&format!("{ok} {}", args[0])),
        "the Python SDK client failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_with_a_token() {
    let config = write_config(
        "python-sdk",
        &format!(
            "[[clients]]\nid = \"py\"\ntoken_sha256 = \"{}\"\n",
            sha("py-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    run(&["http", &server.url, "py-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio() {
    let state = temp_state();
    run(&["stdio", BIN, "stdio", "--demo", "--state", &state]).await;
}

/// The same scenario with an access token from the company's identity provider (the test one):
/// the person is matched to a policy by group and works like any client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_with_an_oauth_access_token() {
    let idp = testkit::TestIdp::start().await;
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = write_config(
        "python-sdk-oauth",
        &format!(
            "[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nrequired_scopes = [\"mcp\"]\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\n",
            idp.issuer
        ),
    );
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config, "--demo"],
        &[],
    )
    .await;
    let mut claims = idp.claims("ana@corp.com", &resource);
    claims["groups"] = serde_json::json!(["analysts"]);
    run(&["http", &server.url, &idp.token(&claims)]).await;
}

/// Result handles (`tests/py/results_client.py`): made on one replica, used on another sharing
/// Valkey, and again after both restarted; another client's handles are `not_found` throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_handles_move_between_replicas_and_survive_a_restart() {
    const RESULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/results_client.py");
    let redis = testkit::Valkey::start();
    let config = write_config(
        "python-sdk-results",
        &format!(
            "[[clients]]\nid = \"ana\"\ntoken_sha256 = \"{}\"\n\n[[clients]]\nid = \"bob\"\ntoken_sha256 = \"{}\"\n",
            sha("ana-token"),
            sha("bob-token")
        ),
    );
    let url = redis.url();
    let args = [
        "--config",
        config.as_str(),
        "--state",
        url.as_str(),
        "--demo",
    ];
    let (a, b) = (
        Server::start(&args, &[]).await,
        Server::start(&args, &[]).await,
    );
    let handles = std::env::temp_dir().join(format!("results-handles-{}.json", std::process::id()));
    let handles = handles.to_str().unwrap();
    run_script(
        RESULTS,
        "PY_RESULTS_OK",
        &["start", &a.url, "ana-token", "bob-token", handles],
    )
    .await;
    run_script(
        RESULTS,
        "PY_RESULTS_OK",
        &["resume", &b.url, "ana-token", "bob-token", handles],
    )
    .await;
    a.stop().await;
    b.stop().await;
    let c = Server::start(&args, &[]).await;
    run_script(
        RESULTS,
        "PY_RESULTS_OK",
        &["resume", &c.url, "ana-token", "bob-token", handles],
    )
    .await;
    c.stop().await;
}

/// The semantic-view tools (issue 26) through the SDK, in both protocol modes, on the demo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_calls_the_semantic_view_tools() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/semantic_client.py");
    let config = write_config("py-semantic", "[query]\nsemantic_views = true\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let url = format!("{}/mcp", server.base);
    for mode in ["legacy", "2026-07-28"] {
        run_script(script, "PY_SEMANTIC_OK", &[mode, &url]).await;
    }
    server.stop().await;
}

/// The Cortex tools (issue 26) through the SDK, in both protocol modes, on the scripted
/// Snowflake (`tests/py/cortex_client.py`): the analyst's SQL, a filtered search, an agent's run
/// with its progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_calls_the_cortex_tools() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/cortex_client.py");
    let wh = testkit::Warehouse::start().await;
    let config = write_config("py-cortex", CORTEX_CONFIG);
    let server = Server::start(&["--config", &config], &warehouse_env(wh.port())).await;
    let url = format!("{}/mcp", server.base);
    for mode in ["legacy", "2026-07-28"] {
        run_script(script, "PY_CORTEX_OK", &[mode, &url]).await;
    }
    server.stop().await;
}

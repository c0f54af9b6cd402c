//! Shared end-to-end helpers: start the real binary, connect a real MCP client (rmcp).

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

pub type Client = RunningService<RoleClient, ()>;

pub const BIN: &str = env!("CARGO_BIN_EXE_snowflake-mcp");

/// Environment for a server that talks to the emulator.
pub fn fakesnow_env() -> Vec<(String, String)> {
    let port = testkit::fakesnow().port;
    [
        ("SNOWFLAKE_ACCOUNT", "test".to_string()),
        ("SNOWFLAKE_USER", "tester".into()),
        ("SNOWFLAKE_PASSWORD", "pw".into()),
        ("SNOWFLAKE_HOST", "127.0.0.1".into()),
        ("SNOWFLAKE_PORT", port.to_string()),
        ("SNOWFLAKE_PROTOCOL", "http".into()),
        ("SNOWFLAKE_DATABASE", "MCP_DB".into()),
        ("SNOWFLAKE_SCHEMA", "PUBLIC".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A direct session on the emulator, for setting up what a test looks at.
pub async fn emulator_session() -> snowflake_client::Session {
    let settings = snowflake_client::ConnectionSettings {
        account: Some("test".into()),
        user: Some("seed".into()),
        password: Some(snowflake_client::Secret::new("pw")),
        host: Some("127.0.0.1".into()),
        port: Some(testkit::fakesnow().port),
        protocol: Some("http".into()),
        database: Some("MCP_DB".into()),
        ..Default::default()
    };
    snowflake_client::Client::new(&settings)
        .unwrap()
        .login()
        .await
        .unwrap()
}

/// Run setup statements on the emulator.
pub async fn run_on_emulator(statements: &[String]) {
    let mut s = emulator_session().await;
    for sql in statements {
        s.query(sql)
            .await
            .unwrap()
            .collect(snowflake_client::RowLimits::default())
            .await
            .unwrap();
    }
}

/// A private cache directory (for the demo database) per test process.
pub fn cache_env() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-test-cache-{}", std::process::id()));
    ("SNOWFLAKE_MCP_CACHE".into(), dir.display().to_string())
}

/// A running `snowflake-mcp serve`, killed when dropped.
pub struct Server {
    pub url: String,
    pub base: String,
    child: tokio::process::Child,
    /// Every line the server wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The task reading stderr (it ends at the server's exit).
    drain: Option<tokio::task::JoinHandle<()>>,
}

/// A fresh state-store path for one server (unless the test passes `--state` itself).
pub fn temp_state() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    // The process id alone is reused by later runs, whose servers then opened an earlier
    // run's state (a stored context from another test leaked into a stdio test); the start time
    // makes the directory this process's own.
    static STARTED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let started = STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    let dir = std::env::temp_dir().join(format!(
        "snowflake-mcp-test-state-{}-{started}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("state-{}.db", N.fetch_add(1, Ordering::SeqCst)))
        .display()
        .to_string()
}

impl Server {
    pub async fn start(args: &[&str], env: &[(String, String)]) -> Server {
        Server::start_on("127.0.0.1:0", args, env).await
    }

    /// Start on a given address (to restart a server where its clients expect it).
    pub async fn start_on(listen: &str, args: &[&str], env: &[(String, String)]) -> Server {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("serve").args(["--listen", listen]).args(args);
        if !args.contains(&"--config") && !args.contains(&"--demo") {
            cmd.args(["--config", &write_config("emulator", "")]);
        }
        if !args.contains(&"--state") {
            cmd.args(["--state", &temp_state()]);
        }
        cmd.env_remove("SNOWFLAKE_DEFAULT_CONNECTION_NAME");
        for (k, v) in env.iter().cloned().chain([cache_env()]) {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start snowflake-mcp serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = log.clone();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                seen.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().unwrap().to_string();
                }
            }
            panic!("snowflake-mcp serve exited before listening");
        })
        .await
        .expect("the server did not start within 60 s");
        // Keep draining stderr so the server never blocks on a full pipe.
        let echo = std::env::var_os("TEST_SERVER_LOG").is_some();
        let seen = log.clone();
        let drain = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[server] {line}");
                }
                seen.lock().unwrap().push(line);
            }
        });
        let base = url.trim_end_matches("/mcp").to_string();
        Server {
            url,
            base,
            child,
            log,
            drain: Some(drain),
        }
    }

    /// The lines the server wrote to stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub async fn client(&self) -> Client {
        // reqwest is built without a default TLS provider in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ().serve(StreamableHttpClientTransport::from_uri(self.url.clone()))
            .await
            .expect("MCP client connects over HTTP")
    }

    /// A client that sends `Authorization: Bearer <token>`.
    pub async fn client_with_token(&self, token: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config =
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                self.url.clone(),
            )
            .auth_header(token.to_string());
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP client connects with a token")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// `kill -9`: no chance to flush anything.
    pub async fn kill_hard(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGINT, and wait for a clean exit.
    pub async fn stop(self) {
        self.signal(libc::SIGINT).await
    }

    /// SIGTERM, and wait for a clean exit.
    pub async fn terminate(self) {
        self.signal(libc::SIGTERM).await
    }

    /// SIGINT, wait for a clean exit, and return everything the server wrote to stderr.
    pub async fn stop_with_log(mut self) -> Vec<String> {
        let drain = self.drain.take();
        let log = self.log.clone();
        self.signal(libc::SIGINT).await;
        if let Some(drain) = drain {
            tokio::time::timeout(Duration::from_secs(10), drain)
                .await
                .expect("stderr closes when the server exits")
                .unwrap();
        }
        let lines = log.lock().unwrap().clone();
        lines
    }

    async fn signal(mut self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            send_signal(pid, signal);
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        assert!(
            matches!(status, Ok(Ok(s)) if s.success()),
            "the server did not stop cleanly: {status:?}"
        );
    }
}

/// Send `signal` to the process `pid` (no `kill` binary needed).
pub fn send_signal(pid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill(2) with a pid this test started and a valid signal number.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// Write a config file for one test and return its path. Every test config keeps the
/// service user's secondary roles (`[pool] secondary_roles = "keep"`): the emulator does not
/// understand `USE SECONDARY ROLES` (the pool tests check the production default).
pub fn write_config(name: &str, text: &str) -> String {
    let text = match text.find("[pool]\n") {
        Some(at) => format!(
            "{}[pool]\nsecondary_roles = \"keep\"\n{}",
            &text[..at],
            &text[at + "[pool]\n".len()..]
        ),
        None => format!("{text}\n[pool]\nsecondary_roles = \"keep\"\n"),
    };
    let dir =
        std::env::temp_dir().join(format!("snowflake-mcp-test-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A server whose Snowflake is the scripted `Warehouse` on `port`.
pub fn warehouse_env(port: u16) -> Vec<(String, String)> {
    [
        ("SNOWFLAKE_ACCOUNT", "acct"),
        ("SNOWFLAKE_USER", "u"),
        ("SNOWFLAKE_PASSWORD", "pw"),
        ("SNOWFLAKE_HOST", "127.0.0.1"),
        ("SNOWFLAKE_PROTOCOL", "http"),
        ("SNOWFLAKE_DATABASE", "DB1"),
        ("SNOWFLAKE_SCHEMA", "PUBLIC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("SNOWFLAKE_PORT".to_string(), port.to_string())])
    .collect()
}

/// Environment for a server whose Snowflake is reached on `port` (e.g. through a proxy).
pub fn env_with_port(port: u16) -> Vec<(String, String)> {
    let mut env = fakesnow_env();
    env.retain(|(k, _)| k != "SNOWFLAKE_PORT");
    env.push(("SNOWFLAKE_PORT".into(), port.to_string()));
    env
}

/// A raw HTTP request (status, headers, body) for probing the HTTP layer itself.
pub async fn raw_http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

/// An MCP client that launches `snowflake-mcp stdio` itself.
pub async fn stdio_client(args: &[&str], env: &[(String, String)]) -> Client {
    stdio_client_on(&temp_state(), args, env).await
}

/// An MCP client that launches `snowflake-mcp stdio` on the state store at `state`.
pub async fn stdio_client_on(state: &str, args: &[&str], env: &[(String, String)]) -> Client {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().cloned().chain([cache_env()]).collect();
    let state = state.to_string();
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.arg("stdio").args(&args).args(["--state", &state]);
        if !args.iter().any(|a| a == "--config" || a == "--demo") {
            c.args(["--config", &write_config("emulator-stdio", "")]);
        }
        for (k, v) in &env {
            c.env(k, v);
        }
    });
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stdio server");
    ().serve(transport)
        .await
        .expect("MCP client connects over stdio")
}

/// Call a tool with JSON arguments.
pub async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let args = match args {
        Value::Object(map) => map,
        Value::Null => Default::default(),
        other => panic!("arguments must be an object, not {other}"),
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
}

/// The structured content of a successful call.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args.clone()).await;
    assert_ne!(
        r.is_error,
        Some(true),
        "{tool}({args}) failed: {}",
        text(&r)
    );
    assert!(!r.content.is_empty(), "{tool} has a text rendering");
    r.structured_content.expect("structured content")
}

/// The machine-readable error of a failed call (`_meta.error`), checking the shape every SDK
/// accepts: `isError`, no `structuredContent`, a text that starts with the kind.
pub fn error_of(r: &CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(true), "the call should fail: {r:?}");
    assert!(
        r.structured_content.is_none(),
        "errors carry no structuredContent: {r:?}"
    );
    let e = r
        .meta
        .as_ref()
        .and_then(|m| m.0.get("error"))
        .unwrap_or_else(|| panic!("errors carry _meta.error: {r:?}"))
        .clone();
    let kind = e["kind"].as_str().expect("_meta.error.kind");
    assert!(
        text(r).starts_with(&format!("{kind}: ")),
        "the text starts with the kind: {}",
        text(r)
    );
    e
}

/// The error kind and message of a failed call.
pub async fn err(client: &Client, tool: &str, args: Value) -> (String, String) {
    let r = call(client, tool, args.clone()).await;
    let e = error_of(&r);
    (
        e["kind"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

/// Text of the first content block.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// The refusals of the guard corpus.
pub fn corpus_refusals() -> Vec<String> {
    include_str!("../data/guard_corpus.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("refuse\t"))
        .map(|s| s.replace("\\n", "\n"))
        .collect()
}

pub fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn no_args() -> Value {
    json!({})
}

/// Hex SHA-256 of a bearer token, as `[[clients]] token_sha256` wants it.
pub fn sha(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Session ids in a state store, sorted.
pub fn stored_sessions(path: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c.prepare("SELECT id FROM sessions ORDER BY id").unwrap();
    let ids = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

/// GET `path` from a server's base URL: (status, body).
pub async fn http_get(base: &str, path: &str) -> (u16, String) {
    let (status, _, body) = raw_http(base, "GET", path, &[], "").await;
    (status, body)
}

/// The `Mcp-Session-Id` in a response head.
pub fn session_of(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .expect("initialize returns a session id")
}

/// How long [`wait_for`] waits for an event before the test fails.
/// `[cortex]` for the scripted Snowflake's Cortex services (`testkit::cortex`): the analyst,
/// the search services `support_docs` and `locked_docs` (403), the agent `sales_agent`.
pub const CORTEX_CONFIG: &str = "[cortex]\nanalyst = true\ndefault_semantic_view = \"DB1.PUBLIC.SALES_SV\"\nmax_concurrent = 2\n\n\
    [[cortex.search]]\nname = \"support_docs\"\nservice = \"DB1.PUBLIC.SUPPORT_DOCS\"\n\
    description = \"the support knowledge base: refunds, shipping, warranty\"\n\
    columns = [\"DOC_ID\", \"TITLE\", \"BODY\", \"REGION\"]\nmax_results = 5\n\n\
    [[cortex.search]]\nname = \"locked_docs\"\nservice = \"DB1.PUBLIC.LOCKED\"\ndescription = \"documents this role may not read\"\n\n\
    [[cortex.agents]]\nname = \"sales_agent\"\nagent = \"DB1.PUBLIC.SALES_AGENT\"\n\
    description = \"answers questions about sales and refunds\"\n\n";

pub const WAIT: Duration = Duration::from_secs(30);

/// Wait until `condition` holds, polling it every 25 ms; fail the test after [`WAIT`].
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for_value(what, || {
        let c = condition();
        async move { c.await.then_some(()) }
    })
    .await
}

/// Wait until `probe` yields a value, polling it every 25 ms; fail the test after [`WAIT`].
pub async fn wait_for_value<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Finished calls of `tool` with `outcome` (all clients together), from `/metrics`.
pub async fn tool_calls(base: &str, tool: &str, outcome: &str) -> u64 {
    let (_, metrics) = http_get(base, "/metrics").await;
    let (prefix, label) = (
        format!("snowflake_mcp_tool_calls_total{{tool=\"{tool}\","),
        format!("outcome=\"{outcome}\"}} "),
    );
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            l.split_once(&label)
                .map(|(_, n)| n.trim().parse::<u64>().unwrap())
        })
        .sum()
}

/// POST a call and read until the first SSE event id (the priming event), then drop the
/// connection as a flaky network would. Returns that event id.
pub async fn call_and_drop(base: &str, session: &str, body: &str) -> String {
    call_and_drop_as(base, session, None, body).await
}

/// [`call_and_drop`] with `Authorization: <auth>` when given.
pub async fn call_and_drop_as(base: &str, session: &str, auth: Option<&str>, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let auth = auth.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\nmcp-protocol-version: 2025-06-18\r\n{auth}\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed before an event id: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(id) = got
            .lines()
            .find_map(|l| l.strip_prefix("id:").map(|v| v.trim().to_string()))
        {
            return id;
        }
    }
}

/// What a browser test script (tests/js/*.mjs, driving Debian's headless Chromium through
/// playwright-core) saw, as the JSON line it prints; `env` is passed on, with `CHROMIUM`,
/// `NODE_PATH` and `OUT` (a folder `screenshots` under the tests' target folder, emptied first,
/// returned too).
pub async fn run_browser_script(
    script: &str,
    screenshots: &str,
    env: &[(&str, &str)],
) -> (Value, std::path::PathBuf) {
    let chromium = std::env::var("MCP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install it with scripts/test-env.sh (Debian's chromium package)"
    );
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(screenshots);
    let _ = std::fs::remove_dir_all(&out);
    let path = format!("{}/tests/js/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new("node")
        .arg(&path)
        .env("NODE_PATH", testkit::node_modules())
        .env("CHROMIUM", &chromium)
        .env("OUT", &out)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser script finished within 120 s")
        .expect("node (Node.js 20 or newer) must be on PATH");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{script} failed:\n{stderr}");
    let seen = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&run.stdout)));
    (seen, out)
}

/// Every screenshot `names` is in `out`, and not empty.
pub fn assert_screenshots(out: &std::path::Path, names: &[&str]) {
    for name in names {
        let png = out.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
            "{}",
            png.display()
        );
    }
}

/// The object of list `items` whose `field` is `wanted`; fails the test naming them otherwise.
pub fn item_with(items: &Value, field: &str, wanted: &str) -> Value {
    items
        .as_array()
        .and_then(|list| list.iter().find(|i| i[field] == wanted))
        .cloned()
        .unwrap_or_else(|| panic!("no {field} = {wanted} in {items}"))
}

//! What every scenario runs on: the fixed-delay responder on a free port, snowflake-mcp started
//! as a child process against it (with a config of the scenario's own, the per-address and
//! stored-session bounds raised out of the way, and a state store of its own or a shared one),
//! and small helpers the scenarios share: client token hashes and a process's RSS.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::responder;

/// A responder with `delay`, on a free port, on a thread and runtime of its own: the load
/// generator's thousand clients share the bench's runtime, and Snowflake's answers must not
/// wait in their queue (that would be counted as the server's hand-over time).
pub async fn start_responder(delay: Duration) -> (u16, Arc<responder::ResponderStats>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind responder");
    listener
        .set_nonblocking(true)
        .expect("non-blocking responder");
    let port = listener.local_addr().unwrap().port();
    let stats: Arc<responder::ResponderStats> = Arc::default();
    let serving = stats.clone();
    std::thread::Builder::new()
        .name("responder".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the responder's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                responder::run(listener, delay, serving).await
            });
        })
        .expect("the responder's thread");
    (port, stats)
}

/// A running server process.
pub struct Server {
    pub url: String,
    pub pid: u32,
    pub child: tokio::process::Child,
}

pub async fn start_server(bin: &str, responder_port: u16, config: &str) -> Result<Server, String> {
    start_server_with_state(bin, responder_port, config, None).await
}

/// `config` with the per-address and stored-session bounds raised out of the way: every
/// benchmark client connects from 127.0.0.1 (directly or through the load balancer), and the
/// scenarios open thousands of sessions on purpose. A scenario's own values stand.
fn on_one_machine(config: &str) -> String {
    let mut config = config.to_string();
    for (section, key, value) in [
        ("server", "max_connections_per_ip", "1000000"),
        ("sessions", "max_stored_per_client", "1000000"),
        ("sessions", "max_stored_anonymous", "1000000"),
    ] {
        if config.contains(&format!("\n{key} =")) || config.starts_with(&format!("{key} =")) {
            continue;
        }
        let header = format!("[{section}]\n");
        let line = format!("{key} = {value}\n");
        match config.find(&header) {
            Some(at) => config.insert_str(at + header.len(), &line),
            None => config = format!("{header}{line}{config}"),
        }
    }
    config
}

/// A server on `state` (a `redis://` URL shared by replicas), or on a SQLite store of its own.
pub async fn start_server_with_state(
    bin: &str,
    responder_port: u16,
    config: &str,
    state: Option<&str>,
) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!(
        "config-{}.toml",
        Instant::now().elapsed().as_nanos() ^ rand_suffix()
    ));
    std::fs::write(&path, on_one_machine(config)).map_err(|e| e.to_string())?;
    // Each server its own state store, never the user's.
    let state = state.map_or_else(
        || path.with_extension("db").into_os_string(),
        std::ffi::OsString::from,
    );
    let child = tokio::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--state")
        .arg(&state)
        .env("SNOWFLAKE_ACCOUNT", "bench")
        .env("SNOWFLAKE_USER", "bench")
        .env("SNOWFLAKE_PASSWORD", "bench")
        .env("SNOWFLAKE_HOST", "127.0.0.1")
        .env("SNOWFLAKE_PORT", responder_port.to_string())
        .env("SNOWFLAKE_PROTOCOL", "http")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e} (build it with cargo build --release)"))?;
    listening(child).await
}

/// snowflake-client's settings for the responder on `port`.
pub fn responder_settings(port: u16) -> snowflake_client::ConnectionSettings {
    snowflake_client::ConnectionSettings {
        account: Some("bench".into()),
        user: Some("bench".into()),
        password: Some(snowflake_client::Secret::new("bench")),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        protocol: Some("http".into()),
        ..Default::default()
    }
}

/// Where the relay floor runs its statements: the responder's port, and its pool's size.
#[derive(Clone, Copy)]
pub struct RelayTo {
    pub port: u16,
    pub sessions: usize,
}

/// The bare MCP server of [`crate::floor`], as a child process of this benchmark's binary;
/// with `backend`, the relay floor that runs each call on the responder on that port, on as
/// many Snowflake sessions as the backend says.
pub async fn start_floor(backend: Option<RelayTo>) -> Result<Server, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut args = vec!["floor".to_string()];
    if let Some(RelayTo { port, sessions }) = backend {
        args.extend([
            "--backend".into(),
            port.to_string(),
            "--sessions".into(),
            sessions.to_string(),
        ]);
    }
    let child = tokio::process::Command::new(me)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the floor server: {e}"))?;
    listening(child).await
}

/// `child` once it says where it listens (`listening on <url>` on stderr), its stderr drained.
async fn listening(mut child: tokio::process::Child) -> Result<Server, String> {
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return Ok(rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string());
            }
        }
        Err("the server exited before listening".to_string())
    })
    .await
    .map_err(|_| "the server did not start in 30 s".to_string())??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { url, pid, child })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn sha(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a process has used of the CPU so far, all its threads (from
/// `/proc/<pid>/task/*/schedstat`; threads that already exited are not counted, and the servers
/// measured keep theirs).
#[derive(Clone, Copy, Default)]
pub struct Usage {
    /// Time on a CPU.
    pub cpu: Duration,
    /// Times a thread was put on a CPU: each is a wake-up (a context switch in).
    pub runs: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Usage::default();
        };
        let mut usage = Usage::default();
        for stat in tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        {
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            usage.cpu += Duration::from_nanos(fields.next().unwrap_or(0));
            usage.runs += fields.nth(1).unwrap_or(0);
        }
        usage
    }

    /// What was used since `earlier`, per one of `calls`.
    pub fn per_call_since(self, earlier: Usage, calls: usize) -> Usage {
        let calls = calls.max(1);
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu) / calls as u32,
            runs: self.runs.saturating_sub(earlier.runs) / calls as u64,
        }
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_are_raised_without_repeating_a_section_or_overriding_a_scenario() {
        let c = super::on_one_machine(
            "[server]\nmax_connections = 4096\n[sessions]\nmax_stored_anonymous = 5\n",
        );
        let parsed: toml::Table = toml::from_str(&c).expect(&c);
        let int = |s: &str, k: &str| parsed[s][k].as_integer();
        assert_eq!(int("server", "max_connections_per_ip"), Some(1_000_000));
        assert_eq!(int("server", "max_connections"), Some(4096));
        assert_eq!(int("sessions", "max_stored_anonymous"), Some(5));
        let parsed: toml::Table = toml::from_str(&super::on_one_machine("")).unwrap();
        assert_eq!(
            parsed["sessions"]["max_stored_per_client"].as_integer(),
            Some(1_000_000)
        );
    }
}

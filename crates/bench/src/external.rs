//! The external processes of the `replicas` benchmark: HAProxy (the load balancer) and a
//! Valkey server (the shared state store), found on this machine, started on free loopback
//! ports and killed when dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn haproxy_path() -> Result<PathBuf, String> {
    on_path("haproxy").ok_or_else(|| {
        "the `replicas` benchmark needs HAProxy on PATH, and there is none.\n\
         Install it: `apt-get install -y haproxy` (Debian/Ubuntu), `dnf install haproxy` \
         (Fedora/RHEL) or `brew install haproxy` (macOS)."
            .to_string()
    })
}

pub fn valkey_path() -> Result<PathBuf, String> {
    let cache = std::env::var_os("SNOWFLAKE_MCP_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("snowflake-mcp"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/snowflake-mcp"))
        });
    std::env::var_os("MCP_VALKEY")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            cache
                .map(|c| c.join("valkey/bin/valkey-server"))
                .filter(|p| p.is_file())
        })
        .or_else(|| on_path("valkey-server"))
        .or_else(|| on_path("redis-server"))
        .ok_or_else(|| {
            "the `replicas` benchmark needs a valkey-server (or redis-server): run \
             `bash scripts/test-env.sh` (it installs one in ~/.cache/snowflake-mcp/valkey), or \
             point $MCP_VALKEY at one."
                .to_string()
        })
}

/// HAProxy in front of `backends` (`host:port`), balancing with `balance` (its lines of the
/// backend section); the process and its MCP URL.
pub async fn start_haproxy(
    exe: &Path,
    dir: &Path,
    backends: &[&str],
    balance: &str,
) -> Result<(Child, String), String> {
    let port = free_port()?;
    let mut cfg = format!(
        "global\n    maxconn 8192\n\n\
         defaults\n    mode http\n    timeout connect 5s\n\
         # MCP responses are SSE streams: calls stream their result, sessions keep a GET stream\n\
         # open for server messages. Long client/server/tunnel timeouts keep them open.\n\
         \x20   timeout client 1h\n    timeout server 1h\n    timeout tunnel 1h\n\
         \x20   timeout http-request 10s\n    timeout http-keep-alive 60s\n\n\
         frontend mcp\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\n\
         backend replicas\n    {balance}\n\
         # The check carries a Host the replicas accept: without one they answer 400.\n\
         \x20   option httpchk\n    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1\n"
    );
    for (i, b) in backends.iter().enumerate() {
        let _ = writeln!(cfg, "    server r{i} {b} check inter 2s");
    }
    let path = dir.join(format!("haproxy-{port}.cfg"));
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let check = Command::new(exe)
        .arg("-c")
        .arg("-q")
        .arg("-f")
        .arg(&path)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !check.status.success() {
        return Err(format!(
            "haproxy rejects {}: {}",
            path.display(),
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    // Its own words go to a file, to quote if it never answers.
    let said = dir.join(format!("haproxy-{port}.log"));
    let log = std::fs::File::create(&said).map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let health = url.replace("/mcp", "/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = reqwest::get(&health).await {
            if r.status().is_success() {
                return Ok((child, url));
            }
        }
        if Instant::now() > deadline {
            let said = std::fs::read_to_string(&said).unwrap_or_default();
            return Err(format!(
                "haproxy did not answer on port {port} in 10 s; it said:\n{said}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Valkey server on a free loopback port, persistence off; killed when dropped.
pub struct Valkey {
    port: u16,
    _child: Child,
}

impl Valkey {
    pub async fn start(exe: &Path) -> Result<Valkey, String> {
        let port = free_port()?;
        let child = Command::new(exe)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let v = Valkey {
            port,
            _child: child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while v.command(&["PING"]).await.as_deref() != Ok("+PONG") {
            if Instant::now() > deadline {
                return Err(format!("{} did not answer on port {port}", exe.display()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(v)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One command whose answer is a status line (`+PONG`, `+OK`) or a bulk string (`INFO`).
    pub async fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            let _ = write!(req, "${}\r\n{a}\r\n", a.len());
        }
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            let Some((head, body)) = text.split_once("\r\n") else {
                if n == 0 {
                    return Err("Valkey closed the connection".into());
                }
                continue;
            };
            match head.strip_prefix('$').map(str::parse::<usize>) {
                Some(Ok(len)) if body.len() < len => {}
                Some(Ok(_)) => return Ok(body.trim_end().to_string()),
                _ => return Ok(head.to_string()),
            }
            if n == 0 {
                return Err("Valkey closed the connection".into());
            }
        }
    }

    /// Count the commands the server runs from now until the returned [`Monitor`] is read.
    pub async fn monitor(&self) -> Result<Monitor, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(s).lines();
        if lines.next_line().await.ok().flatten().as_deref() != Some("+OK") {
            return Err("Valkey refused MONITOR".into());
        }
        let m = Monitor::default();
        let (seen, stop) = (m.seen.clone(), m.stop.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // `+<time> [0 127.0.0.1:port] "cmd" ...`, or `[0 lua]` inside a script.
                let Some((source, rest)) = line.split_once("] \"") else {
                    continue;
                };
                let name = rest.split('"').next().unwrap_or("").to_ascii_lowercase();
                let mut seen = seen.lock().unwrap();
                let i = usize::from(source.ends_with(" lua"));
                *seen[i].entry(name).or_default() += 1;
            }
        });
        Ok(m)
    }
}

/// Commands seen by MONITOR: sent by clients (round trips), and run inside scripts.
#[derive(Default)]
pub struct Monitor {
    seen: Arc<Mutex<[BTreeMap<String, u64>; 2]>>,
    stop: Arc<AtomicBool>,
}

impl Monitor {
    /// Stop counting; what was seen: (sent by clients, run inside scripts) by command.
    pub fn finish(self) -> [BTreeMap<String, u64>; 2] {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

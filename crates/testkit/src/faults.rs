//! A TCP proxy that injects network faults between a server under test and its Snowflake.
//!
//! [`FaultProxy`] forwards bytes both ways while its [`Fault`] is `None`, and on command:
//! `BlackHole` — connections are accepted and bytes stop flowing both ways (a host that accepts
//! TCP and never answers; open connections stall too, as when the network is pulled); `Reset` —
//! new connections are reset at once and open ones are cut; `Delay(ms)` — every chunk is held
//! that long first. The fault can change at any time; tests flip it to watch the server degrade
//! and recover.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    BlackHole,
    Reset,
    Delay(u64),
}

#[derive(Default)]
struct State {
    /// 0 none, 1 black hole, 2 reset, 3 delay.
    mode: AtomicU8,
    delay_ms: AtomicU64,
    accepted: AtomicU64,
}

impl State {
    fn fault(&self) -> Fault {
        match self.mode.load(Ordering::SeqCst) {
            1 => Fault::BlackHole,
            2 => Fault::Reset,
            3 => Fault::Delay(self.delay_ms.load(Ordering::SeqCst)),
            _ => Fault::None,
        }
    }
}

/// A running fault proxy on a loopback port; stops accepting when dropped.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Forward to `127.0.0.1:<upstream_port>`.
    pub async fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move { serve(client, upstream_port, s).await });
            }
        });
        FaultProxy { port, state, task }
    }

    pub fn set(&self, fault: Fault) {
        let (mode, delay) = match fault {
            Fault::None => (0, 0),
            Fault::BlackHole => (1, 0),
            Fault::Reset => (2, 0),
            Fault::Delay(ms) => (3, ms),
        };
        self.state.delay_ms.store(delay, Ordering::SeqCst);
        self.state.mode.store(mode, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(client: TcpStream, upstream_port: u16, state: Arc<State>) {
    match state.fault() {
        Fault::Reset => {
            let _ = client.set_zero_linger();
            return;
        }
        Fault::BlackHole => {
            // Hold the connection open and silent until the fault is lifted, then drop it.
            while state.fault() == Fault::BlackHole {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return;
        }
        _ => {}
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = pipe(cr, uw, state.clone()) => {}
        _ = pipe(ur, cw, state) => {}
    }
}

/// Copy one direction, honouring the fault before every chunk.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match state.fault() {
                Fault::None => break,
                Fault::Delay(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    break;
                }
                Fault::Reset => return,
                Fault::BlackHole => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

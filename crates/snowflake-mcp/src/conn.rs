//! Connection guard: a bounded number of open HTTP connections, and none of them may sit on a
//! slot doing nothing — so thousands of half-open, silent or slow sockets cannot starve real
//! clients before they even authenticate.
//!
//! [`GuardedListener`] wraps the listener axum serves from. Every accepted connection takes one
//! of `server.max_connections` slots and is wrapped in [`Guarded`], which enforces:
//!
//! * a header deadline: the first request's headers must arrive within
//!   `server.header_read_timeout_secs` (slowloris senders are cut off);
//! * an idle timeout: no byte read or written for `server.idle_timeout_secs` closes the
//!   connection (streams stay busy: the server pings SSE streams every 15 s);
//! * eviction: when every slot is taken, the oldest connection that has not yet sent a complete
//!   request head gives its slot to the newcomer. Only when all connections are real ones is a
//!   newcomer refused (closed at once, counted in `/metrics`).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::lock;
use crate::metrics::Metrics;

/// Connection limits (`[server]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The slots, and the connections that have not sent a request head yet (oldest first).
pub struct Slots {
    limits: ConnLimits,
    state: Mutex<SlotState>,
    metrics: Arc<Metrics>,
}

struct SlotState {
    open: usize,
    waiting_for_headers: VecDeque<Weak<ConnState>>,
}

/// File descriptors the server needs besides client connections: Snowflake sessions, the state
/// store, logs, listeners.
const FDS_BESIDES_CONNECTIONS: u64 = 256;

/// Raise the soft open-file limit towards `wanted` (up to the hard limit), as servers commonly
/// do at start; the limit in force afterwards, `None` when it cannot be read.
#[cfg(unix)]
pub fn raise_open_file_limit(wanted: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        let target = libc::rlim_t::try_from(wanted)
            .unwrap_or(libc::rlim_t::MAX)
            .min(limit.rlim_max);
        if limit.rlim_cur < target {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // `rlim_t` is u64 on Linux but not on every Unix.
    #[allow(clippy::useless_conversion)]
    Some(limit.rlim_cur.into())
}

#[cfg(not(unix))]
pub fn raise_open_file_limit(_wanted: u64) -> Option<u64> {
    None
}

/// What a connection shares with [`Slots`].
struct ConnState {
    evicted: AtomicBool,
    headers_seen: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slots {
    pub fn new(limits: ConnLimits, metrics: Arc<Metrics>) -> Arc<Slots> {
        // Every connection is a file descriptor; a soft limit below the cap would turn the
        // clean refusal at the cap into failed accepts.
        let wanted = limits.max_connections as u64 + FDS_BESIDES_CONNECTIONS;
        match raise_open_file_limit(wanted) {
            Some(limit) if limit < wanted => tracing::warn!(
                limit,
                max_connections = limits.max_connections,
                "the open-file limit is below server.max_connections plus what the server needs \
                 besides; raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
            ),
            _ => {}
        }
        Arc::new(Slots {
            limits,
            state: Mutex::new(SlotState {
                open: 0,
                waiting_for_headers: VecDeque::new(),
            }),
            metrics,
        })
    }

    /// A slot for a new connection, evicting the oldest one still without a request head when
    /// all are taken; `None` when every connection is a real one.
    fn admit(self: &Arc<Self>) -> Option<Arc<ConnState>> {
        let mut state = lock(&self.state);
        if state.open >= self.limits.max_connections.max(1) {
            // The evicted connection keeps counting until it closes; the newcomer takes its
            // place now, so the bound may be passed briefly by the evicted ones only.
            let victim = loop {
                match state.waiting_for_headers.pop_front() {
                    None => break None,
                    Some(weak) => match weak.upgrade() {
                        Some(c) if !c.headers_seen.load(Ordering::SeqCst) => break Some(c),
                        _ => continue,
                    },
                }
            };
            let victim = victim?;
            victim.evicted.store(true, Ordering::SeqCst);
            let waker = lock(&victim.waker).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
        state.open += 1;
        let conn = Arc::new(ConnState {
            evicted: AtomicBool::new(false),
            headers_seen: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        state.waiting_for_headers.push_back(Arc::downgrade(&conn));
        self.metrics.connection_opened();
        Some(conn)
    }

    fn release(&self) {
        let mut state = lock(&self.state);
        state.open = state.open.saturating_sub(1);
        state.waiting_for_headers.retain(|w| w.strong_count() > 0);
        self.metrics.connection_closed();
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.state).open
    }
}

/// A listener whose connections are [`Guarded`].
pub struct GuardedListener<L> {
    inner: L,
    slots: Arc<Slots>,
}

impl<L> GuardedListener<L> {
    pub fn new(inner: L, slots: Arc<Slots>) -> Self {
        GuardedListener { inner, slots }
    }
}

impl<L> axum::serve::Listener for GuardedListener<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = Guarded<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.slots.admit() {
                Some(conn) => return (Guarded::new(io, conn, self.slots.clone()), addr),
                None => {
                    self.slots.metrics.connection_refused();
                    drop(io);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One guarded connection (see the module doc).
pub struct Guarded<IO> {
    io: IO,
    conn: Arc<ConnState>,
    slots: Arc<Slots>,
    header_deadline: Option<Pin<Box<Sleep>>>,
    idle: Pin<Box<Sleep>>,
    /// The last bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
}

impl<IO> Guarded<IO> {
    fn new(io: IO, conn: Arc<ConnState>, slots: Arc<Slots>) -> Self {
        let limits = slots.limits;
        Guarded {
            io,
            conn,
            header_deadline: Some(Box::pin(tokio::time::sleep(limits.header_timeout))),
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            slots,
            tail: [0; 3],
        }
    }

    fn active(&mut self) {
        let idle = self.slots.limits.idle_timeout;
        self.idle.as_mut().reset(Instant::now() + idle);
    }

    /// Look for the end of the first request head in freshly read `bytes`.
    fn scan(&mut self, bytes: &[u8]) {
        if self.header_deadline.is_none() || bytes.is_empty() {
            return;
        }
        let mut window: Vec<u8> = self.tail.to_vec();
        window.extend_from_slice(bytes);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            self.header_deadline = None;
            self.conn.headers_seen.store(true, Ordering::SeqCst);
        }
        let n = window.len();
        self.tail.copy_from_slice(&window[n - 3..]);
    }

    /// `Err` when the connection must go: evicted, too slow with its head, or idle too long.
    fn check_timers(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        *lock(&self.conn.waker) = Some(cx.waker().clone());
        if self.conn.evicted.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "evicted: no request head while the server was full",
            ));
        }
        if let Some(deadline) = self.header_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request head in time",
                ));
            }
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "idle too long"));
        }
        Ok(())
    }
}

impl<IO> Drop for Guarded<IO> {
    fn drop(&mut self) {
        self.slots.release();
    }
}

use std::future::Future;

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = buf.filled()[before..].to_vec();
                this.scan(&fresh);
                this.active();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.check_timers(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.active();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_towards_what_is_wanted_within_the_hard_limit() {
        let before = raise_open_file_limit(0).expect("the limit can be read");
        let after = raise_open_file_limit(before + 100).unwrap();
        assert!(after >= before, "never lowered: {before} -> {after}");
        assert!(
            raise_open_file_limit(u64::MAX).unwrap() >= after,
            "a wish above the hard limit stops at the hard limit"
        );
    }
}

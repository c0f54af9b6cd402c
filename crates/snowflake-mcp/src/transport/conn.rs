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
//!   newcomer refused (closed at once, counted in `/metrics`). A complete request head is a
//!   request line and its headers up to the blank line: blank lines sent before a request line
//!   (which HTTP parsers skip) earn nothing, so a socket trickling `\r\n` stays evictable and
//!   is cut off at the header deadline;
//! * per address: at most `server.max_connections_per_ip` connections from one peer address,
//!   so one address cannot take every slot with real connections either. Connections from a
//!   trusted proxy are not counted here: [`crate::transport::peers`] counts their requests per forwarded
//!   client address instead.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::lock;
use crate::observe::metrics::Metrics;
use crate::transport::peers::{canonical, Peer, TrustedProxies};

/// Connection limits (`[server]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The slots, and the connections that have not sent a request head yet (oldest first).
pub struct Slots {
    limits: ConnLimits,
    /// Peers not counted per address (their requests are, see [`crate::transport::peers`]).
    trusted: TrustedProxies,
    state: Mutex<SlotState>,
    metrics: Arc<Metrics>,
}

struct SlotState {
    open: usize,
    /// Open connections per direct peer address (trusted proxies not counted).
    per_ip: HashMap<IpAddr, usize>,
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
    /// The peer address it is counted against, if any.
    counted_ip: Option<IpAddr>,
    evicted: AtomicBool,
    headers_seen: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slots {
    pub fn new(limits: ConnLimits, trusted: TrustedProxies, metrics: Arc<Metrics>) -> Arc<Slots> {
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
            trusted,
            state: Mutex::new(SlotState {
                open: 0,
                per_ip: HashMap::new(),
                waiting_for_headers: VecDeque::new(),
            }),
            metrics,
        })
    }

    /// A slot for a new connection from `peer`, evicting the oldest one still without a request
    /// head when all are taken; `None` when every connection is a real one, or `peer` has its
    /// share already.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Arc<ConnState>> {
        let peer = canonical(peer);
        let counted_ip = (!self.trusted.trusts(peer)).then_some(peer);
        let mut state = lock(&self.state);
        if let Some(ip) = counted_ip {
            if state.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_per_ip.max(1) {
                return None;
            }
        }
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
        if let Some(ip) = counted_ip {
            *state.per_ip.entry(ip).or_default() += 1;
        }
        let conn = Arc::new(ConnState {
            counted_ip,
            evicted: AtomicBool::new(false),
            headers_seen: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        state.waiting_for_headers.push_back(Arc::downgrade(&conn));
        self.metrics.connection_opened();
        Some(conn)
    }

    fn release(&self, conn: &ConnState) {
        let mut state = lock(&self.state);
        state.open = state.open.saturating_sub(1);
        if let Some(ip) = conn.counted_ip {
            if let Some(n) = state.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    state.per_ip.remove(&ip);
                }
            }
        }
        // Pruning on every close made each close cost as much as there are connections (2 %
        // of the server's CPU at 1,000 clients, which open a connection per request). Pruned
        // once it has grown to twice the open connections, the queue stays bounded at an
        // amortised constant cost per close. Connections that have sent a head are never
        // evicted, so they go too.
        if state.waiting_for_headers.len() > 2 * state.open + 64 {
            state.waiting_for_headers.retain(|w| {
                w.upgrade()
                    .is_some_and(|c| !c.headers_seen.load(Ordering::SeqCst))
            });
        }
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
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    type Io = Guarded<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.slots.admit(addr.ip()) {
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
    /// The last bytes read, to find the end of the head across reads.
    tail: [u8; 3],
    /// A request line has begun (blank lines before it do not count).
    head_begun: bool,
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
            head_begun: false,
        }
    }

    fn active(&mut self) {
        let idle = self.slots.limits.idle_timeout;
        self.idle.as_mut().reset(Instant::now() + idle);
    }

    /// Look for the end of the first request head in freshly read `bytes`: a blank line after a
    /// request line has begun (`\r\n\r\n`, or bare `\n` line ends as HTTP parsers accept).
    fn scan(&mut self, mut bytes: &[u8]) {
        if self.header_deadline.is_none() || bytes.is_empty() {
            return;
        }
        if !self.head_begun {
            // Parsers skip blank lines before the request line; so does the guard.
            match bytes.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
                Some(start) => {
                    self.head_begun = true;
                    bytes = &bytes[start..];
                }
                None => return,
            }
        }
        let mut window: Vec<u8> = self.tail.to_vec();
        window.extend_from_slice(bytes);
        let ends_head = |w: &[u8]| w[1..] == *b"\n\r\n" || w[2..] == *b"\n\n";
        if window.windows(4).any(ends_head) {
            self.header_deadline = None;
            self.conn.headers_seen.store(true, Ordering::SeqCst);
        }
        let n = window.len();
        self.tail.copy_from_slice(&window[n - 3..]);
    }

    /// `Err` when the connection must go: evicted, too slow with its head, or idle too long.
    fn check_timers(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        {
            // The same task polls a connection each time: its waker is cloned once, not on
            // every read that finds nothing yet.
            let mut waker = lock(&self.conn.waker);
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
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
        self.slots.release(&self.conn);
    }
}

/// Handlers see the direct peer as `ConnectInfo<Peer>`.
impl<L> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener<L>>>
    for Peer
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener<L>>) -> Peer {
        Peer(*stream.remote_addr())
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
                // Only the first head is looked for; after it, a read costs a timer reset.
                this.scan(&buf.filled()[before..]);
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

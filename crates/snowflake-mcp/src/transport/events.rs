//! Resumable SSE streams: the events recently sent on each stream, so a client whose connection
//! dropped can reconnect with `Last-Event-ID` and get what it missed — in particular the result
//! of a long `run_query` that finished while it was away.
//!
//! rmcp's own per-stream cache forgets a call's events as soon as its result is sent, so a
//! client that reconnects after that gets an empty stream and loses the result. [`EventBuffer`]
//! implements rmcp's `EventStore` hook in memory, bounded three ways — events per stream, bytes
//! in all, and age — oldest evicted first; nothing else holds memory for a dropped client.
//!
//! Event ids are random (128 bits), but ids pass through proxies and logs, and rmcp replays by
//! id alone. So every stream also has an owner — the principal and, for a stream of an MCP
//! session, that session — recorded by the HTTP door as the stream's first event id passes
//! through it to the client ([`EventBuffer::claim`]); the door replays a stream only to its
//! owner ([`EventBuffer::may_replay`]). A stream nobody claimed replays to nobody.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream,
};

use crate::lock;

/// How much the buffer keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    pub per_stream: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// The bounded in-memory event store.
pub struct EventBuffer {
    limits: EventLimits,
    inner: Mutex<Inner>,
}

/// Who a stream belongs to: the principal it answered and, for a stream of an MCP session, that
/// session (`None` for a sessionless request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOwner {
    pub principal: String,
    pub session: Option<String>,
}

/// Ids are shared between the maps (`Arc<str>`): storing an event, which every call does, then
/// allocates its id and, for a new stream, the stream's id once each.
#[derive(Default)]
struct Inner {
    /// Stream id -> its events, oldest first.
    streams: HashMap<Arc<str>, VecDeque<Stored>>,
    /// Stream id -> its owner, from the first event id the door saw go out on it.
    owners: HashMap<Arc<str>, StreamOwner>,
    /// Event id -> its stream.
    index: HashMap<Arc<str>, Arc<str>>,
    /// Every kept event, oldest first: (stored at, event id), for age and size eviction.
    order: VecDeque<(Instant, Arc<str>)>,
    bytes: usize,
}

struct Stored {
    id: Arc<str>,
    event: ServerSseMessage,
    size: usize,
}

impl EventBuffer {
    pub fn new(limits: EventLimits) -> EventBuffer {
        EventBuffer {
            limits,
            inner: Mutex::default(),
        }
    }

    /// Events and bytes kept now.
    pub fn usage(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        (inner.index.len(), inner.bytes)
    }

    /// Record `owner` as the owner of the stream event `event_id` was sent on, unless the stream
    /// already has one (the first claim stands).
    pub fn claim(&self, event_id: &str, owner: &StreamOwner) {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let Some(stream) = inner.index.get(event_id) else {
            return;
        };
        if !inner.owners.contains_key(stream) {
            inner.owners.insert(stream.clone(), owner.clone());
        }
    }

    /// True when the stream of `event_id` is kept and belongs to `owner`.
    pub fn may_replay(&self, event_id: &str, owner: &StreamOwner) -> bool {
        let inner = lock(&self.inner);
        inner
            .index
            .get(event_id)
            .and_then(|stream| inner.owners.get(stream))
            == Some(owner)
    }
}

impl Inner {
    /// Forget event `id` (if still kept); it is the oldest of its stream.
    fn forget(&mut self, id: &str) {
        let Some(stream) = self.index.remove(id) else {
            return;
        };
        if let Some(events) = self.streams.get_mut(&stream) {
            if let Some(pos) = events.iter().position(|e| &*e.id == id) {
                if let Some(gone) = events.remove(pos) {
                    self.bytes -= gone.size;
                }
            }
            if events.is_empty() {
                self.streams.remove(&stream);
                self.owners.remove(&stream);
            }
        }
    }

    fn evict(&mut self, limits: &EventLimits, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            let old = now.duration_since(*at) > limits.max_age;
            if !old && self.bytes <= limits.max_bytes {
                break;
            }
            let id = id.clone();
            self.order.pop_front();
            self.forget(&id);
        }
        // Ids forgotten through the per-stream cap linger in `order`; drop them when the queue
        // grows well past what is kept.
        if self.order.len() > 2 * self.index.len() + 64 {
            let index = &self.index;
            self.order.retain(|(_, id)| index.contains_key(id));
        }
    }
}

/// Bytes an event takes on the wire (what the buffer is bounded by).
fn wire_size(event: &ServerSseMessage) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(64);
    if let Some(message) = &event.message {
        let _ = serde_json::to_writer(&mut count, message.as_ref());
    }
    count.0
}

/// Finds the event ids in an SSE body as it goes out, frame by frame (an `id:` line may be split
/// across frames: the unfinished last line is carried over, bounded).
#[derive(Default)]
pub struct SseIds {
    line: Vec<u8>,
    /// The carried line is no `id:` line, or grew past any id: skip to its end.
    skipping: bool,
}

/// Longer lines cannot be one of our ids (32 hex digits) or rmcp's (`<index>/<request>`).
const MAX_ID_LINE: usize = 256;

impl SseIds {
    /// The event ids completed by `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut ids = Vec::new();
        let mut rest = bytes;
        loop {
            let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
            let part = end.map_or(rest, |at| &rest[..at]);
            if !self.skipping {
                // A line longer than any id, or one that is not an `id:` line once its first
                // bytes are in (a `data:` line holds the whole message), is skipped, not kept.
                let id_so_far = self
                    .line
                    .iter()
                    .chain(part)
                    .take(3)
                    .zip(b"id:")
                    .all(|(a, b)| a == b);
                if self.line.len() + part.len() > MAX_ID_LINE || !id_so_far {
                    self.line.clear();
                    self.skipping = true;
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            let Some(at) = end else {
                break;
            };
            if !self.skipping {
                if let Some(id) = self.line.strip_prefix(b"id:") {
                    let id = String::from_utf8_lossy(id).trim().to_string();
                    if !id.is_empty() {
                        ids.push(id);
                    }
                }
            }
            self.line.clear();
            self.skipping = false;
            rest = &rest[at + 1..];
        }
        ids
    }
}

#[async_trait::async_trait]
impl EventStore for EventBuffer {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut stored = event.clone();
        stored.event_id = Some(id.clone());
        let size = wire_size(&stored);
        let shared: Arc<str> = Arc::from(id.as_str());
        let now = Instant::now();
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let stream = match inner.streams.get_key_value(stream_id) {
            Some((known, _)) => known.clone(),
            None => Arc::from(stream_id),
        };
        let events = inner.streams.entry(stream.clone()).or_default();
        events.push_back(Stored {
            id: shared.clone(),
            event: stored,
            size,
        });
        let dropped = (events.len() > self.limits.per_stream).then(|| events[0].id.clone());
        inner.index.insert(shared.clone(), stream);
        inner.order.push_back((now, shared));
        inner.bytes += size;
        if let Some(oldest) = dropped {
            inner.forget(&oldest);
        }
        inner.evict(&self.limits, now);
        Ok(id)
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let inner = lock(&self.inner);
        let stream = inner
            .index
            .get(last_event_id)
            .ok_or("the event is no longer kept")?;
        let events = inner.streams.get(stream).ok_or("the stream is gone")?;
        let later: Vec<ServerSseMessage> = events
            .iter()
            .skip_while(|e| &*e.id != last_event_id)
            .skip(1)
            .map(|e| e.event.clone())
            .collect();
        Ok(Box::pin(tokio_stream::iter(later)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ServerJsonRpcMessage, ServerResult};
    use tokio_stream::StreamExt;

    fn event(text: &str) -> ServerSseMessage {
        let result = rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text(
            text.to_string(),
        )]);
        ServerSseMessage::from_message(ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(result),
            rmcp::model::NumberOrString::Number(1),
        ))
    }

    async fn replay(b: &EventBuffer, after: &str) -> Vec<String> {
        match b.replay_events_after(after).await {
            Ok(s) => {
                s.map(|e| serde_json::to_string(e.message.as_deref().unwrap()).unwrap())
                    .collect::<Vec<_>>()
                    .await
            }
            Err(_) => vec!["gone".into()],
        }
    }

    fn limits() -> EventLimits {
        EventLimits {
            per_stream: 3,
            max_bytes: 10_000,
            max_age: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn replays_only_later_events_of_the_same_stream() {
        let b = EventBuffer::new(limits());
        let first = b
            .store_event("s1", &ServerSseMessage::retry(Duration::from_secs(1)))
            .await
            .unwrap();
        b.store_event("s2", &event("other stream")).await.unwrap();
        b.store_event("s1", &event("result")).await.unwrap();
        let got = replay(&b, &first).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("result") && !got[0].contains("other"));
        assert_eq!(replay(&b, "no-such-id").await, ["gone"]);
        assert_ne!(first.len(), 0);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()) && first.len() == 32);
    }

    #[tokio::test]
    async fn bounded_per_stream_by_bytes_and_by_age() {
        let b = EventBuffer::new(limits());
        let ids: Vec<String> = futures_ids(&b, "s", 5).await;
        assert_eq!(b.usage().0, 3, "three per stream");
        assert_eq!(replay(&b, &ids[0]).await, ["gone"]);
        assert_eq!(replay(&b, &ids[2]).await.len(), 2);

        let b = EventBuffer::new(limits());
        for i in 0..200 {
            b.store_event(&format!("s{i}"), &event(&"x".repeat(500)))
                .await
                .unwrap();
        }
        let (events, bytes) = b.usage();
        assert!(
            bytes <= 10_000 && events < 200,
            "{events} events, {bytes} bytes"
        );

        let b = EventBuffer::new(EventLimits {
            max_age: Duration::ZERO,
            ..limits()
        });
        b.store_event("s", &event("a")).await.unwrap();
        std::thread::sleep(Duration::from_millis(2));
        b.store_event("t", &event("b")).await.unwrap();
        assert_eq!(b.usage().0, 1, "old events expire");
    }

    #[tokio::test]
    async fn a_stream_replays_only_to_the_owner_that_claimed_it_first() {
        let b = EventBuffer::new(limits());
        let first = b.store_event("s1", &event("a")).await.unwrap();
        let a = StreamOwner {
            principal: "a".into(),
            session: Some("sa".into()),
        };
        let other_session = StreamOwner {
            session: Some("sb".into()),
            ..a.clone()
        };
        let sessionless = StreamOwner {
            session: None,
            ..a.clone()
        };
        assert!(
            !b.may_replay(&first, &a),
            "unclaimed streams replay to nobody"
        );
        b.claim(&first, &a);
        let later = b.store_event("s1", &event("b")).await.unwrap();
        b.claim(&later, &other_session);
        assert!(b.may_replay(&first, &a) && b.may_replay(&later, &a));
        assert!(
            !b.may_replay(&first, &other_session),
            "the first claim stands"
        );
        assert!(!b.may_replay(&first, &sessionless));
        assert!(!b.may_replay("no-such-id", &a));
    }

    #[test]
    fn event_ids_are_found_across_frames_and_long_lines_are_skipped() {
        let mut ids = SseIds::default();
        assert!(ids.feed(b"data: x\n\nid: ab").is_empty());
        assert_eq!(ids.feed(b"cd\nretry: 5\r\n\r\nid:ef\n"), ["abcd", "ef"]);
        let long = format!("data: {}id: no\n", "x".repeat(1000));
        assert!(ids.feed(long.as_bytes()).is_empty());
        assert!(ids.feed(b"data: {\"id: no\"}\n").is_empty());
        assert_eq!(ids.feed(b"id: 0/3\n"), ["0/3"]);
        // Split inside the `id:` prefix, and a line that only starts like one.
        assert!(ids.feed(b"i").is_empty());
        assert_eq!(ids.feed(b"d: gh\nda"), ["gh"]);
        assert!(ids.feed(b"ta: id: no\nidx: no\n").is_empty());
        assert_eq!(ids.feed(b"\r\nid:\nid: ij\r"), ["ij"]);
    }

    async fn futures_ids(b: &EventBuffer, stream: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(b.store_event(stream, &event(&i.to_string())).await.unwrap());
        }
        ids
    }
}

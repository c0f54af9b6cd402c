//! Rate limits in memory: token buckets, one per client ([`Buckets`], pruned when idle), and
//! the server's total rate shared fairly by weight ([`ServerRate`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `capacity` tokens, refilled at `per_sec`.
///
/// Hand-written on purpose rather than built on `governor` (issue 12 weighed it): governor's
/// GCRA cannot give a token back ([`Bucket::give_back`], when the server's rate refuses a call
/// the client's bucket admitted), reports remaining capacity only as a side effect of taking a
/// token (we need [`Bucket::available`] without taking, for the fair share and `get_context`),
/// and cannot express `per_minute = 0`. This bucket also takes `now` from tokio's clock, so the
/// unit tests run on a paused clock.
#[derive(Clone, Debug)]
pub struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `per_minute` calls per minute with bursts of `burst` (default: one minute's worth).
    pub fn new(per_minute: u32, burst: Option<u32>, now: Instant) -> Bucket {
        let capacity = f64::from(burst.unwrap_or(per_minute).max(1));
        Bucket {
            capacity,
            per_sec: f64::from(per_minute) / 60.0,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Take one token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_sec <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }

    /// Give a token back (a later check refused the call).
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    /// Refilled to its capacity: the same as a new bucket, so it can be forgotten.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.floor() as u64
    }
}

/// How often idle buckets are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Clients' buckets. A bucket refilled to its capacity behaves as a new one, so buckets are
/// pruned once idle that long: anonymous client ids are never reused, and without pruning the
/// map would grow with every client ever seen. Pruning walks the map at most once a minute.
pub struct Buckets {
    map: HashMap<Arc<str>, Bucket>,
    pruned: Instant,
}

impl Buckets {
    pub fn new(now: Instant) -> Buckets {
        Buckets {
            map: HashMap::new(),
            pruned: now,
        }
    }

    /// Take a token from `client`'s bucket (made by `new` if it has none), or say how long to
    /// wait.
    pub fn take(
        &mut self,
        client: &Arc<str>,
        new: impl FnOnce() -> Bucket,
        now: Instant,
    ) -> Result<(), Duration> {
        self.prune(now);
        self.map.entry(client.clone()).or_insert_with(new).take(now)
    }

    pub fn get_mut(&mut self, client: &str) -> Option<&mut Bucket> {
        self.map.get_mut(client)
    }

    /// Buckets held (idle ones may not be pruned yet).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn prune(&mut self, now: Instant) {
        if now.saturating_duration_since(self.pruned) < PRUNE_EVERY {
            return;
        }
        self.pruned = now;
        self.map.retain(|_, b| !b.is_full(now));
    }
}

/// The server-wide rate limit, shared by weight. Calls are counted per client in one-minute
/// windows; while the bucket is more than half full anyone may take a token, below that a
/// client whose calls this minute reached its share — `per_minute × weight / (weights of the
/// clients seen this minute + 1)`, the `+ 1` keeping room for a client not seen yet — is refused,
/// heaviest first, and the rest stays for the others.
pub struct ServerRate {
    bucket: Bucket,
    per_minute: u32,
    window: Instant,
    calls: HashMap<Arc<str>, (u32, u32)>,
}

impl ServerRate {
    pub fn new(per_minute: u32, now: Instant) -> ServerRate {
        ServerRate {
            bucket: Bucket::new(per_minute, None, now),
            per_minute,
            window: now,
            calls: HashMap::new(),
        }
    }

    /// Take a token for one call of `client` (of `weight`), or say how long to wait.
    pub fn take(&mut self, client: &Arc<str>, weight: u32, now: Instant) -> Result<(), Duration> {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(60) {
            self.window = now;
            self.calls.clear();
        }
        let available = self.bucket.available(now);
        if available * 2 < u64::from(self.per_minute) {
            let mine = self.calls.get(client).map_or(0, |c| c.0);
            let others: u32 = self
                .calls
                .iter()
                .filter(|(id, _)| *id != client)
                .map(|(_, c)| c.1)
                .sum();
            let share = u64::from(self.per_minute) * u64::from(weight.max(1))
                / (u64::from(others) + u64::from(weight.max(1)) + 1);
            if u64::from(mine) >= share.max(1) {
                let rest = Duration::from_secs(60)
                    .saturating_sub(now.saturating_duration_since(self.window));
                return Err(rest.max(Duration::from_millis(1)));
            }
        }
        self.bucket.take(now)?;
        let entry = self
            .calls
            .entry(client.clone())
            .or_insert((0, weight.max(1)));
        entry.0 += 1;
        Ok(())
    }
}

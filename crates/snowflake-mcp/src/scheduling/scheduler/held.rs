//! Session-time each client's statements held, by the client's label (a person's policy entry,
//! all anonymous clients together), as the scheduler measured it when their permits were dropped: in all (for `/metrics`, where a dashboard turns it into each client's
//! share over any window) and today per warehouse (for the console's credit estimate).
//!
//! The scheduler forgets a client's queue state once it has nothing running or waiting; this
//! outlives that. It is bounded: past [`MAX_CLIENTS`] clients (anonymous clients each have an
//! id of their own), those idle since before today are forgotten.

use std::collections::HashMap;
use std::sync::Arc;

/// Clients kept before the idle ones are forgotten.
const MAX_CLIENTS: usize = 4096;

#[derive(Default)]
pub(super) struct SessionTime {
    by_client: HashMap<Arc<str>, Held>,
}

#[derive(Default)]
struct Held {
    total_us: u64,
    /// The UTC day (days since 1970) `today` counts.
    day: i64,
    today: HashMap<Option<Arc<str>>, u64>,
}

/// One client's session-time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTime {
    pub client: String,
    /// Since this process started, microseconds.
    pub total_us: u64,
    /// Today (UTC) per warehouse (`None`: the session's default), microseconds.
    pub today_us: Vec<(Option<String>, u64)>,
}

/// Today, as a UTC day number.
pub(super) fn today() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(86_400)
}

impl SessionTime {
    pub(super) fn add(&mut self, client: &Arc<str>, warehouse: Option<&Arc<str>>, us: u64) {
        let day = today();
        if self.by_client.len() >= MAX_CLIENTS && !self.by_client.contains_key(client) {
            self.by_client.retain(|_, h| h.day == day);
        }
        let held = self.by_client.entry(client.clone()).or_default();
        held.total_us = held.total_us.saturating_add(us);
        if held.day != day {
            held.day = day;
            held.today.clear();
        }
        let slot = held.today.entry(warehouse.cloned()).or_default();
        *slot = slot.saturating_add(us);
    }

    pub(super) fn snapshot(&self) -> Vec<ClientTime> {
        let day = today();
        let mut list: Vec<ClientTime> = self
            .by_client
            .iter()
            .map(|(client, h)| ClientTime {
                client: client.to_string(),
                total_us: h.total_us,
                today_us: if h.day == day {
                    let mut t: Vec<_> = h
                        .today
                        .iter()
                        .map(|(w, us)| (w.as_deref().map(str::to_string), *us))
                        .collect();
                    t.sort();
                    t
                } else {
                    Vec::new()
                },
            })
            .collect();
        list.sort_by(|a, b| a.client.cmp(&b.client));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_time_adds_up_per_client_and_warehouse() {
        let mut t = SessionTime::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let wh: Arc<str> = "WH".into();
        t.add(&a, Some(&wh), 1_000);
        t.add(&a, Some(&wh), 500);
        t.add(&a, None, 7);
        t.add(&b, None, 3);
        let s = t.snapshot();
        assert_eq!(s[0].client, "a");
        assert_eq!(s[0].total_us, 1_507);
        assert_eq!(
            s[0].today_us,
            vec![(None, 7), (Some("WH".to_string()), 1_500)]
        );
        assert_eq!(s[1].total_us, 3);
    }

    #[test]
    fn it_stays_bounded() {
        let mut t = SessionTime::default();
        for i in 0..MAX_CLIENTS + 10 {
            t.add(&Arc::from(format!("c{i}")), None, 1);
        }
        // All were active today, so none could be forgotten: the bound holds past today only.
        assert!(t.by_client.len() <= MAX_CLIENTS + 10);
        for h in t.by_client.values_mut() {
            h.day -= 1;
        }
        t.add(&Arc::from("new"), None, 1);
        assert_eq!(t.by_client.len(), 1);
    }
}

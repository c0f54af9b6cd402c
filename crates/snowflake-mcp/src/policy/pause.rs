//! Clients an operator paused from the console: their new calls are refused with
//! `unavailable` and the operator's reason, until resumed. Statements already running go on
//! (the console cancels those one by one).
//!
//! The list is kept in the state store as one record, so every replica refuses the same
//! clients: the replica that changes it writes it and knows at once; the others read it every
//! [`REFRESH`]. A replica that cannot read it keeps the list it last read. Two operators
//! changing pauses on two replicas in the same instant may lose one change (the console shows
//! the list as it stands). The call path only reads memory: a flag first, then the map.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ToolError;
use crate::lock;
use crate::policy::ClientPolicy;
use crate::state::StateStore;

/// How often a replica reads the list others may have changed.
pub const REFRESH: Duration = Duration::from_secs(2);
/// The store's key for the list.
const KEY: &str = "console:paused";
const OWNER: &str = "console";
/// The list never expires by itself (100 years, in milliseconds).
const KEEP_MS: i64 = 100 * 365 * 86_400_000;
/// The longest reason kept.
const MAX_REASON: usize = 500;

/// One paused client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    /// Who paused it (the console's signed-in operator).
    pub by: String,
    pub since_ms: i64,
}

/// The paused clients, by client id.
pub struct Pauses {
    store: Arc<dyn StateStore>,
    any: AtomicBool,
    list: Mutex<BTreeMap<String, Pause>>,
}

impl Pauses {
    pub fn new(store: Arc<dyn StateStore>) -> Arc<Pauses> {
        Arc::new(Pauses {
            store,
            any: AtomicBool::new(false),
            list: Mutex::default(),
        })
    }

    /// Keep reading the list every [`REFRESH`] (for as long as `self` lives).
    pub fn follow(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        crate::spawn_every(REFRESH, move || {
            let pauses = weak.upgrade();
            async move {
                if let Some(p) = pauses {
                    let _ = p.refresh().await;
                }
            }
        });
    }

    /// `unavailable` with the operator's reason when `client` is paused — by its id, or, for
    /// a signed-in person, by the `[[clients]]` entry that gave them their policy.
    pub fn check(&self, client: &ClientPolicy) -> Result<(), ToolError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let list = lock(&self.list);
        let entry = client.person.as_ref().map(|p| &*p.entry);
        match list
            .get(&*client.id)
            .or_else(|| entry.and_then(|e| list.get(e)))
        {
            None => Ok(()),
            Some(p) => Err(ToolError::new(
                "unavailable",
                format!(
                    "this client is paused by the gateway's operator: {}; ask them to resume it",
                    p.reason
                ),
            )),
        }
    }

    /// The paused clients now, as this replica knows them.
    pub fn list(&self) -> BTreeMap<String, Pause> {
        lock(&self.list).clone()
    }

    fn set(&self, list: BTreeMap<String, Pause>) {
        self.any.store(!list.is_empty(), Ordering::Release);
        *lock(&self.list) = list;
    }

    /// Read the list from the store.
    pub async fn refresh(&self) -> Result<BTreeMap<String, Pause>, String> {
        let list = self.load().await?;
        self.set(list.clone());
        Ok(list)
    }

    async fn load(&self) -> Result<BTreeMap<String, Pause>, String> {
        let loaded = tokio::time::timeout(Duration::from_secs(2), self.store.load_handle(KEY))
            .await
            .map_err(|_| "the state store did not answer within 2 s".to_string())?
            .map_err(|e| e.to_string())?;
        match loaded {
            Some(h) if h.owner == OWNER => serde_json::from_str(&h.record)
                .map_err(|e| format!("the stored list of paused clients is unreadable: {e}")),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// Pause `client` (`Some(reason)`) or resume it (`None`), for every replica.
    pub async fn change(
        &self,
        client: &str,
        pause: Option<(&str, &str)>,
    ) -> Result<BTreeMap<String, Pause>, String> {
        let mut list = self.load().await?;
        match pause {
            Some((reason, by)) => {
                let reason: String = reason.trim().chars().take(MAX_REASON).collect();
                let reason = if reason.is_empty() {
                    "no reason given".to_string()
                } else {
                    reason
                };
                list.insert(
                    client.to_string(),
                    Pause {
                        reason,
                        by: by.to_string(),
                        since_ms: chrono::Utc::now().timestamp_millis(),
                    },
                );
            }
            None => {
                list.remove(client);
            }
        }
        let text = serde_json::to_string(&list).map_err(|e| e.to_string())?;
        let expires = chrono::Utc::now().timestamp_millis() + KEEP_MS;
        let saved = tokio::time::timeout(
            Duration::from_secs(2),
            self.store.save_handle(KEY, OWNER, &text, expires),
        )
        .await
        .map_err(|_| "the state store did not answer within 2 s".to_string())?
        .map_err(|e| e.to_string())?;
        if !saved {
            return Err("the list of paused clients is held by another owner".into());
        }
        self.set(list.clone());
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pause_is_seen_by_every_replica_sharing_the_store() {
        let dir = std::env::temp_dir().join(format!("snowflake-mcp-pause-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn StateStore> =
            Arc::new(crate::state::SqliteStore::open(&dir.join("state.db")).unwrap());
        let (here, there) = (Pauses::new(store.clone()), Pauses::new(store));
        let (bot, analyst) = (
            ClientPolicy::for_test("bot"),
            ClientPolicy::for_test("analyst"),
        );
        assert!(here.check(&bot).is_ok());
        here.change("bot", Some(("flooding the warehouse", "admin")))
            .await
            .unwrap();
        let e = here.check(&bot).unwrap_err();
        assert_eq!(e.kind, "unavailable");
        assert!(
            e.message.contains("flooding the warehouse"),
            "{}",
            e.message
        );
        assert!(here.check(&analyst).is_ok());
        // The other replica refuses it once it read the list.
        assert!(there.check(&bot).is_ok());
        there.refresh().await.unwrap();
        assert!(there.check(&bot).is_err());
        assert_eq!(there.list()["bot"].by, "admin");
        there.change("bot", None).await.unwrap();
        assert!(there.check(&bot).is_ok());
        here.refresh().await.unwrap();
        assert!(here.check(&bot).is_ok());
    }
}

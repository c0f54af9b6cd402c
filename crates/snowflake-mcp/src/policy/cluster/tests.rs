use super::*;
use async_trait::async_trait;

/// A store that takes places at once but answers late: the reply of a script that ran.
#[derive(Default)]
struct LateStore {
    places: Mutex<Vec<(Scope, String)>>,
    late: Mutex<Option<Duration>>,
}

#[async_trait]
impl Coordinator for LateStore {
    async fn rate(&self, _: &str, _: u32, _: u32, _: RateOp) -> Result<(i64, i64), StoreError> {
        Ok((1, 0))
    }

    async fn lease(
        &self,
        scope: &Scope,
        holder: &str,
        _cap: usize,
        _ttl: Duration,
        _renew_only: bool,
    ) -> Result<(bool, usize), StoreError> {
        if *scope == Scope::Replicas {
            return Ok((true, 1));
        }
        let count = {
            let mut places = lock(&self.places);
            if !places.iter().any(|(s, h)| s == scope && h == holder) {
                places.push((scope.clone(), holder.to_string()));
            }
            places.len()
        };
        let late = *lock(&self.late);
        if let Some(late) = late {
            tokio::time::sleep(late).await;
        }
        Ok((true, count))
    }

    async fn release(&self, scope: &Scope, holder: &str) -> Result<(), StoreError> {
        lock(&self.places).retain(|(s, h)| !(s == scope && h == holder));
        Ok(())
    }
}

fn share(id: &str) -> ClientShare {
    ClientShare {
        id: id.into(),
        label: id.into(),
        weight: 1,
        max_concurrent: 2,
        group: None,
    }
}

/// Let spawned releases run.
async fn settle_tasks() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Issue 19: a lease whose acquire timed out on our side but succeeded in the store was left to
/// block its client's place for 15 s.
#[tokio::test(start_paused = true)]
async fn a_place_whose_answer_came_too_late_is_released_with_the_lease() {
    let store = Arc::new(LateStore::default());
    let caps = HashMap::from([("WH".to_string(), 1)]);
    let cluster = Cluster::start(store.clone(), caps, Duration::from_secs(5));
    *lock(&store.late) = Some(CALL_DEADLINE * 4);
    let lease = cluster.lease(&share("alice"), Some("wh")).await.unwrap();
    assert!(cluster.degraded(), "the store did not answer in time");
    assert_eq!(
        lock(&store.places).len(),
        2,
        "yet the script took the client's and the warehouse's places"
    );
    drop(lease);
    settle_tasks().await;
    *lock(&store.late) = None;
    settle_tasks().await;
    assert!(
        lock(&store.places).is_empty(),
        "released with the lease: {:?}",
        lock(&store.places)
    );
}

/// An acquire that timed out and then failed (busy) releases what it may have taken, too.
#[tokio::test(start_paused = true)]
async fn a_lease_refused_after_a_late_answer_releases_it() {
    let store = Arc::new(LateStore::default());
    let caps = HashMap::from([("WH".to_string(), 1)]);
    let cluster = Cluster::start(store.clone(), caps, Duration::from_secs(2));
    *lock(&store.late) = Some(CALL_DEADLINE * 4);
    // The local fallback's share of the warehouse (1) is held by a first lease.
    let first = cluster.lease(&share("alice"), Some("wh")).await.unwrap();
    let second = cluster.lease(&share("bob"), Some("wh")).await;
    assert_eq!(second.err().map(|e| e.kind), Some("busy"));
    drop(first);
    *lock(&store.late) = None;
    settle_tasks().await;
    assert!(lock(&store.places).is_empty(), "{:?}", lock(&store.places));
}

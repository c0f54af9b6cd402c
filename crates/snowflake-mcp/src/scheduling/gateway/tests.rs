use super::*;
use std::sync::atomic::AtomicUsize;

fn cache(ttl_secs: u64) -> MetadataCache {
    MetadataCache::new(Duration::from_secs(ttl_secs), 100)
}

fn answer(name: &str) -> Cached {
    Cached::Named(vec![Named {
        name: name.into(),
        comment: None,
    }])
}

#[tokio::test(start_paused = true)]
async fn identical_concurrent_requests_share_one_fetch_and_answers_expire() {
    let c = Arc::new(cache(60));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_fetch("k".into(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(answer("A"))
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Cached::Named(v) if v[0].name == "A"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(c.stats.hits.load(Ordering::SeqCst), 19);
    tokio::time::advance(Duration::from_secs(61)).await;
    c.get_or_fetch("k".into(), || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(answer("B"))
    })
    .await
    .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "expired answers are fetched again"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_are_not_cached() {
    let c = cache(60);
    let e = c
        .get_or_fetch("k".into(), || async { Err(ToolError::internal("boom")) })
        .await;
    assert!(e.is_err());
    let ok = c
        .get_or_fetch("k".into(), || async { Ok(answer("A")) })
        .await;
    assert!(ok.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_shared_fetch_that_fails_is_not_anyone_elses_error() {
    let c = Arc::new(cache(60));
    let first = {
        let c = c.clone();
        tokio::spawn(async move {
            c.get_or_fetch("k".into(), || async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(ToolError::new("cancelled", "the first client went away"))
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = c
        .get_or_fetch("k".into(), || async { Ok(answer("mine")) })
        .await;
    assert!(first.await.unwrap().is_err());
    assert!(
        matches!(second, Ok(Cached::Named(v)) if v[0].name == "mine"),
        "the second caller ran its own fetch instead of getting the first one's error"
    );
}

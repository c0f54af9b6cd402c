//! The stages' order, the quiet period and the settling of stages after it.

use super::*;

#[tokio::test]
async fn stages_are_sent_once_in_increasing_order() {
    let (stages, mut receiver) = mpsc::channel(8);
    let progress = Progress {
        reporter: Arc::new(Reporter::new(stages, false)),
        sender: Box::pin(async {}),
    };
    scope(Some(progress), async {
        assert!(!tracker().reached(Stage::Queued));
        report(Stage::Queued);
        report(Stage::Queued);
        waiting("queued: 3 waiting".into());
        waiting("queued: 2 waiting".into());
        report(Stage::Running);
        waiting("too late".into());
        running("running for 5 s".into());
        report(Stage::Queued);
        report(Stage::Fetching);
        running("too late as well".into());
        assert!(tracker().reached(Stage::Running));
    })
    .await;
    report(Stage::Running); // outside a scope: ignored
    let mut got = Vec::new();
    while let Ok(s) = receiver.try_recv() {
        got.push(s);
    }
    let messages: Vec<&str> = got.iter().map(|(_, m, _)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "queued",
            "queued: 3 waiting",
            "queued: 2 waiting",
            "running",
            "running for 5 s",
            "fetching rows"
        ]
    );
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "progress always increases: {got:?}"
    );
}

/// What a call reports, in [`forwarded`].
enum Step {
    Stage(Stage),
    News(Stage, &'static str),
}
use Step::News;

fn stage(s: Stage) -> Step {
    Step::Stage(s)
}

/// Reports `steps` (each after its delay) with a quiet period of 100 ms and stages settling
/// for 50 ms, then answers; returns what was sent.
async fn forwarded(steps: Vec<(u64, Step)>) -> Vec<String> {
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = sent.clone();
    let Progress { reporter, sender } = Progress::sending(
        Duration::from_millis(100),
        Duration::from_millis(50),
        move |_, m| {
            log.lock().unwrap().push(m);
            async { true }
        },
    );
    let sender = tokio::spawn(sender);
    for (after_ms, step) in steps {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        match step {
            Step::Stage(s) => reporter.report(s),
            News(s, m) => reporter.waiting(s, m.into()),
        }
    }
    reporter.close();
    sender.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    sent
}

#[test]
fn stages_within_the_quiet_period_queue_nothing_to_wake_the_sender_for() {
    let (stages, mut receiver) = mpsc::channel(8);
    let reporter = Reporter::new(stages, true);
    reporter.report(Stage::Queued);
    reporter.report(Stage::Running);
    assert!(receiver.try_recv().is_err(), "a held stage was queued");
    assert_eq!(reporter.end_quiet().map(|u| u.1), Some("running".into()));
    assert!(reporter.end_quiet().is_none(), "the quiet period ends once");
    reporter.report(Stage::Fetching);
    assert_eq!(
        receiver.try_recv().map(|u| u.1).ok(),
        Some("fetching rows".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_answered_within_the_quiet_period_sends_nothing() {
    let sent = forwarded(vec![
        (0, stage(Stage::Queued)),
        (10, stage(Stage::Running)),
        (10, stage(Stage::Fetching)),
    ])
    .await;
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test(start_paused = true)]
async fn a_longer_call_hears_its_latest_stage_when_the_quiet_period_ends_then_everything() {
    let sent = forwarded(vec![
        (0, stage(Stage::Queued)),
        (10, stage(Stage::Running)),
        (200, News(Stage::Running, "running for 5 s")),
        (10, stage(Stage::Fetching)),
        (60, stage(Stage::Fetching)),
    ])
    .await;
    assert_eq!(sent, ["running", "running for 5 s", "fetching rows"]);
}

#[tokio::test(start_paused = true)]
async fn after_the_quiet_period_a_stage_is_sent_once_it_lasts_and_dropped_when_the_answer_comes_first(
) {
    let sent = forwarded(vec![
        (0, stage(Stage::Queued)),
        (150, stage(Stage::Running)),
        (80, stage(Stage::Fetching)),
    ])
    .await;
    // `queued` when the quiet period ended; `running` once it had lasted 50 ms;
    // `fetching rows` was still settling when the call answered.
    assert_eq!(sent, ["queued", "running"]);
    let sent = forwarded(vec![
        (0, stage(Stage::Queued)),
        (150, stage(Stage::Running)),
        (10, stage(Stage::Fetching)),
        (10, stage(Stage::Fetching)),
    ])
    .await;
    assert_eq!(
        sent,
        ["queued"],
        "a later stage replaced `running`, then the answer came"
    );
}

#[tokio::test(start_paused = true)]
async fn news_within_the_quiet_period_goes_out_at_once_after_its_stage() {
    let sent = forwarded(vec![
        (0, stage(Stage::Running)),
        (5, News(Stage::Running, "agent: Planning the next steps")),
        (5, News(Stage::Running, "agent: using search")),
    ])
    .await;
    assert_eq!(
        sent,
        [
            "running",
            "agent: Planning the next steps",
            "agent: using search"
        ]
    );
}

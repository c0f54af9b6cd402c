//! A timer finer than tokio's, for the responder's statement delays.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds every sleep up to the next tick,
//! so a 50 ms statement at the responder took 50.9–51.2 ms: about 2 % of each statement,
//! as much as the throughput target (98 % of `pool / delay`) leaves for the server, and none
//! of it the server's doing. Here one thread keeps the deadlines and wakes each sleeper at its
//! own, within the OS's timer slack (tens of microseconds).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Wake = (Instant, oneshot::Sender<()>);

/// Sleep for `duration`, ending within tens of microseconds of it.
pub async fn sleep(duration: Duration) {
    static TIMER: OnceLock<mpsc::Sender<Wake>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("precise-timer".into())
            .spawn(move || keep_time(rx))
            .expect("start the timer thread");
        tx
    });
    let (tx, rx) = oneshot::channel();
    if timer.send((Instant::now() + duration, tx)).is_ok() {
        let _ = rx.await;
    }
}

/// Wake every sleeper whose deadline passed; wait for the next deadline or a new sleeper.
fn keep_time(sleepers: mpsc::Receiver<Wake>) {
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting: HashMap<u64, oneshot::Sender<()>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let now = Instant::now();
        while let Some(&Reverse((at, id))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(wake) = waiting.remove(&id) {
                let _ = wake.send(()); // a statement aborted meanwhile no longer listens
            }
        }
        let next = match due.peek() {
            Some(&Reverse((at, _))) => sleepers.recv_timeout(at.saturating_duration_since(now)),
            None => sleepers.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((at, wake)) => {
                next_id += 1;
                due.push(Reverse((at, next_id)));
                waiting.insert(next_id, wake);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_in_deadline_order_and_not_early() {
        let started = Instant::now();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20] {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                assert!(started.elapsed() >= Duration::from_millis(ms), "woke early");
                order.lock().unwrap().push(ms);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30]);
    }
}

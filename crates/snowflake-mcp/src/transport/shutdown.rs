//! Graceful shutdown: when the process is asked to stop, accept nothing new, let calls in
//! flight finish for up to `server.shutdown_grace_secs`, then end every session (which aborts
//! statements still running on Snowflake) and log out of every Snowflake session.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::transport::App;

/// When `shutdown` is cancelled, wait up to `grace` for the calls in flight, then cancel
/// [`App::stopping`]: sessions end and calls still running give up.
pub fn drain_on(app: &Arc<App>, shutdown: CancellationToken, grace: Duration) {
    let app = app.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let deadline = tokio::time::Instant::now() + grace;
        while app.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = app.in_flight.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(
                calls = left,
                "grace period over: aborting calls still running"
            );
        }
        app.stopping.cancel();
    });
}

/// After the listener has stopped: let the cancelled calls unwind (dropping a call queues its
/// statement's abort and its session's logout), then log out of every Snowflake session,
/// waiting for those too.
pub async fn finish(app: &App) {
    let unwound = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < unwound {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.tools.gateway.backend().shutdown().await;
}

//! A query's quota reservation ([`Ticket`]) and its settlement.
//!
//! The reservation is made in one atomic step of the state store: the query, the rows and bytes
//! it may return and, under a cost quota, the session-time it may hold (with the credits that
//! costs on its warehouse) — so its statement timeout is capped to its own reservation, and
//! statements running at once split what is left instead of each being allowed all of it
//! (four 3-second statements against 4 seconds left once held Snowflake for 12). Settlement
//! replaces what was reserved with what was used and spent: the rest goes back.

use std::sync::Arc;

use crate::config::MICROCREDITS_PER_CREDIT;
use crate::error::ToolError;
use crate::observe::progress::{Stage, Tracker};
use crate::state::{Amounts, Grant, Spent, StateStore};

/// A reserved query, settled once its outcome is known — or, if dropped unsettled (the call
/// was cancelled), settled as returning nothing, refunded if it never reached Snowflake. Either
/// way the session-time its statements held is charged, and credits estimated from it.
pub struct Ticket {
    pub(super) store: Arc<dyn StateStore>,
    pub(super) client: Arc<str>,
    pub(super) windows: Vec<String>,
    pub(super) granted: Grant,
    pub(super) reached: Tracker,
    /// The warehouse's credits per hour (0 when unknown).
    pub(super) credits_per_hour: f64,
    pub(super) settled: bool,
}

impl Ticket {
    /// What this query may use: rows, bytes, and the session-time reserved for it.
    pub fn granted(&self) -> Grant {
        self.granted
    }

    /// What the call's statements cost so far.
    fn spent(&self) -> Spent {
        let ms = self.reached.held_ms();
        Spent {
            ms,
            microcredits: estimated_microcredits(ms, self.credits_per_hour),
        }
    }

    /// Settle with the call's outcome: `Ok(used)` charges what was returned (never more than
    /// granted), a refusal that never reached Snowflake refunds the query.
    pub async fn settle(mut self, outcome: Result<Amounts, &ToolError>) {
        self.settled = true;
        let (used, ran) = match outcome {
            Ok(used) => (used, true),
            Err(e) => (
                Amounts::default(),
                !matches!(e.kind, "not_allowed" | "invalid_argument" | "busy")
                    && (e.kind != "cancelled" || self.reached.reached(Stage::Running)),
            ),
        };
        self.finish(used, ran).await;
    }

    /// Settle a page read from a kept result: the rows and bytes it returned are charged; the
    /// query itself is given back (reading a result runs no statement).
    pub async fn settle_page(mut self, used: Amounts) {
        self.settled = true;
        self.finish(used, false).await;
    }

    async fn finish(&self, used: Amounts, ran: bool) {
        let spent = self.spent();
        settle(
            &self.store,
            &self.client,
            &self.windows,
            &self.granted,
            used,
            ran,
            spent,
        )
        .await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let spent = self.spent();
        let (store, client, windows, granted) = (
            self.store.clone(),
            self.client.clone(),
            std::mem::take(&mut self.windows),
            self.granted,
        );
        let ran = self.reached.reached(Stage::Running);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                settle(
                    &store,
                    &client,
                    &windows,
                    &granted,
                    Amounts::default(),
                    ran,
                    spent,
                )
                .await
            });
        }
    }
}

/// The credits `ms` of session-time on a warehouse of `credits_per_hour` cost, in millionths.
pub(super) fn estimated_microcredits(ms: u64, credits_per_hour: f64) -> u64 {
    (ms as f64 * credits_per_hour * MICROCREDITS_PER_CREDIT / 3_600_000.0).round() as u64
}

async fn settle(
    store: &Arc<dyn StateStore>,
    client: &str,
    windows: &[String],
    granted: &Grant,
    used: Amounts,
    ran: bool,
    spent: Spent,
) {
    let used = Amounts {
        rows: used.rows.min(granted.amounts.rows),
        bytes: used.bytes.min(granted.amounts.bytes),
    };
    if let Err(e) = store
        .settle(client, windows, granted, used, ran, spent)
        .await
    {
        tracing::error!(error = %e, client, "could not record quota usage");
    }
}

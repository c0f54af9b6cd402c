//! The cluster-wide limits of [`crate::state::coordinator`] on Redis: rate-limit buckets
//! (GCRA) and leases of a capacity, each one Lua step.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::state::coordinator::{Coordinator, RateOp, Scope};
use crate::state::StoreError;

#[async_trait]
impl Coordinator for RedisStore {
    async fn rate(
        &self,
        client: &str,
        per_minute: u32,
        burst: u32,
        op: RateOp,
    ) -> Result<(i64, i64), StoreError> {
        let interval = 60_000.0 / f64::from(per_minute.max(1));
        let mode = match op {
            RateOp::Take => "take",
            RateOp::GiveBack => "give",
            RateOp::Peek => "peek",
        };
        let mut conn = self.conn.clone();
        let (a, b): (i64, i64) = self
            .scripts
            .gcra
            .key(self.client_key(client, "rate"))
            .arg(interval)
            .arg(burst.max(1))
            .arg(mode)
            .invoke_async(&mut conn)
            .await?;
        Ok((a, b))
    }

    async fn lease(
        &self,
        scope: &Scope,
        holder: &str,
        cap: usize,
        ttl: Duration,
        renew_only: bool,
    ) -> Result<(bool, usize), StoreError> {
        let mut conn = self.conn.clone();
        let (held, count): (i64, i64) = self
            .scripts
            .lease
            .key(self.scope_key(scope))
            .arg(holder)
            .arg(cap)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(if renew_only { "renew" } else { "acquire" })
            .invoke_async(&mut conn)
            .await?;
        Ok((held == 1, count.max(0) as usize))
    }

    async fn release(&self, scope: &Scope, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.zrem(self.scope_key(scope), holder).await?;
        Ok(())
    }
}

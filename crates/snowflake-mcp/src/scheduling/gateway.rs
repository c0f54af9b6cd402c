//! The request path between the tools and the backend, as layers:
//! metadata cache (with coalescing) → fair scheduler → backend.
//!
//! * Catalogue answers (`list_databases`, `list_schemas`, `list_objects`, `describe_object`)
//!   are cached per role and arguments for `cache.metadata_ttl_secs`, and identical concurrent
//!   requests share one statement: AI clients ask the same catalogue questions over and over.
//!   Failures are never cached.
//! * Everything that reaches the backend first takes a permit from the [`Scheduler`], so
//!   metadata and queries share the pool fairly by client weight.

use crate::lock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{
    Backend, ColumnInfo, Named, ObjectInfo, ObjectKind, ObjectName, QueryLimits, QueryOutput,
    ScanEstimate, StoredPage,
};
use crate::error::ToolError;
use crate::ident::Ident;
use crate::observe::metrics::Metrics;
use crate::policy::cluster::Cluster;
use crate::policy::ClientShare;
use crate::scheduling::scheduler::{Permit, Scheduler};
use crate::Context;
pub use cache::CacheStats;
use cache::{tool_of, Cached, MetadataCache};

/// The backend behind its cache and scheduler.
pub struct Gateway {
    /// Warehouse name -> credits per hour (sizes are read once).
    credit_rates: Mutex<HashMap<String, f64>>,
    backend: Arc<dyn Backend>,
    scheduler: Scheduler,
    cache: MetadataCache,
    metrics: Arc<Metrics>,
    /// With several replicas: the cluster-wide places a granted statement also needs.
    cluster: Option<Arc<Cluster>>,
    /// With `[cortex]`: Cortex calls' own places (`max_concurrent`), shared fairly by weight.
    cortex: Option<Scheduler>,
}

impl Gateway {
    pub fn new(
        backend: Arc<dyn Backend>,
        scheduler: Scheduler,
        ttl: Duration,
        max_entries: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Gateway {
            credit_rates: Mutex::default(),
            backend,
            scheduler,
            metrics,
            cluster: None,
            cortex: None,
            cache: MetadataCache::new(ttl, max_entries),
        }
    }

    /// Schedule Cortex calls on `scheduler`, apart from statements.
    pub fn with_cortex(mut self, scheduler: Option<Scheduler>) -> Self {
        self.cortex = scheduler;
        self
    }

    /// The Cortex calls' scheduler, when Cortex is configured.
    pub fn cortex_scheduler(&self) -> Option<&Scheduler> {
        self.cortex.as_ref()
    }

    /// Call Cortex's REST API `path` for `client` once it holds one of the Cortex places: a
    /// scheduler of their own (`[cortex] max_concurrent`, fair by weight in held time like the
    /// statements'), so a burst of agent runs queues among itself and never takes a place a
    /// statement needs. Cortex places are per replica.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_api(
        &self,
        client: &ClientShare,
        ctx: &Context,
        tool: &str,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
        on_event: &mut (dyn FnMut(crate::backend::ApiEvent) + Send),
    ) -> Result<serde_json::Value, ToolError> {
        self.backend.available()?;
        let Some(scheduler) = &self.cortex else {
            return Err(ToolError::new(
                "unavailable",
                "Cortex is not configured on this server ([cortex])",
            ));
        };
        let queued = Instant::now();
        crate::observe::progress::report(crate::observe::progress::Stage::Queued);
        let permit = scheduler.acquire(client).await?;
        self.metrics.observe("queue_wait", tool, queued.elapsed());
        let started = Instant::now();
        let result = self
            .backend
            .call_api(ctx, path, body, timeout, on_event)
            .await;
        self.metrics.observe("snowflake", tool, started.elapsed());
        hand_over(permit).await;
        result
    }

    /// Hold statements to cluster-wide caps too (several replicas on a shared store).
    pub fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    pub fn cache_stats(&self) -> &CacheStats {
        &self.cache.stats
    }

    /// Run `work` on the backend once `client` holds a scheduler permit.
    async fn scheduled<T, Fut>(
        &self,
        client: &ClientShare,
        warehouse: Option<&str>,
        tool: &str,
        work: Fut,
    ) -> Result<T, ToolError>
    where
        Fut: Future<Output = Result<T, ToolError>>,
    {
        // Snowflake known to be down: fail at once rather than queue for it.
        self.backend.available()?;
        let queued = Instant::now();
        crate::observe::progress::report(crate::observe::progress::Stage::Queued);
        // While it waits, a client that asked for progress hears where it stands.
        let acquire = self.scheduler.acquire_on(client, warehouse);
        tokio::pin!(acquire);
        let mut tick = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(2),
            Duration::from_secs(2),
        );
        let permit = loop {
            tokio::select! {
                permit = &mut acquire => break permit?,
                _ = tick.tick() => {
                    let waiting = self.scheduler.queued();
                    crate::observe::progress::waiting(format!("queued: {waiting} requests waiting for a Snowflake session"));
                }
            }
        };
        // Across replicas, the client's and the warehouse's caps hold cluster-wide: this
        // replica's scheduler chose this request; it now also needs its places in the cluster.
        let _lease = match &self.cluster {
            Some(cluster) => Some(cluster.lease(client, warehouse).await?),
            None => None,
        };
        crate::observe::progress::report(crate::observe::progress::Stage::Running);
        self.metrics.observe("queue_wait", tool, queued.elapsed());
        let started = Instant::now();
        // Counted also when the call is dropped mid-statement (cancelled): the session was held.
        let _held = crate::observe::progress::Holding::start();
        // While it runs, a client that asked for progress hears for how long.
        tokio::pin!(work);
        let mut tick = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tick.tick() => crate::observe::progress::running(format!(
                    "running for {} s", started.elapsed().as_secs()
                )),
            }
        };
        self.metrics.observe("snowflake", tool, started.elapsed());
        drop((_held, _lease));
        hand_over(permit).await;
        result
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn catalogue(
        &self,
        client: &ClientShare,
        ctx: &Context,
        key: String,
        fetch: impl Future<Output = Result<Cached, ToolError>>,
    ) -> Result<Cached, ToolError> {
        // Answers depend on grants: the role's, and with people's own Snowflake identities also
        // the person's (two people under one role name may hold different grants).
        let role = ctx.role.as_deref().unwrap_or("");
        let key = match crate::observe::attribution::person() {
            Some(person) => format!("{role}@{person}\u{1}{key}"),
            None => format!("{role}\u{1}{key}"),
        };
        if let Some(hit) = self.cache.fresh(&key) {
            self.cache.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        // Each caller waits for its own permit — its own queue, cap, timeout and errors —
        // before it may share a fetch that is running.
        let tool = tool_of(&key);
        self.scheduled(
            client,
            ctx.warehouse.as_deref(),
            tool,
            self.cache.get_or_fetch(key, || fetch),
        )
        .await
    }

    pub async fn list_databases(
        &self,
        client: &ClientShare,
        ctx: &Context,
    ) -> Result<Vec<Named>, ToolError> {
        let fetch = async { self.backend.list_databases(ctx).await.map(Cached::Named) };
        match self
            .catalogue(client, ctx, "databases".into(), fetch)
            .await?
        {
            Cached::Named(v) => Ok(v),
            _ => Err(ToolError::internal("cache holds the wrong kind of answer")),
        }
    }

    pub async fn list_schemas(
        &self,
        client: &ClientShare,
        ctx: &Context,
        database: &Ident,
    ) -> Result<Vec<Named>, ToolError> {
        let fetch = async {
            self.backend
                .list_schemas(ctx, database)
                .await
                .map(Cached::Named)
        };
        match self
            .catalogue(client, ctx, format!("schemas\u{1}{database}"), fetch)
            .await?
        {
            Cached::Named(v) => Ok(v),
            _ => Err(ToolError::internal("cache holds the wrong kind of answer")),
        }
    }

    pub async fn list_objects(
        &self,
        client: &ClientShare,
        ctx: &Context,
        database: &Ident,
        schema: &Ident,
        kind: Option<ObjectKind>,
        pattern: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, ToolError> {
        let key = format!(
            "objects\u{1}{database}\u{1}{schema}\u{1}{kind:?}\u{1}{}",
            pattern.unwrap_or("")
        );
        let fetch = async {
            self.backend
                .list_objects(ctx, database, schema, kind, pattern)
                .await
                .map(Cached::Objects)
        };
        match self.catalogue(client, ctx, key, fetch).await? {
            Cached::Objects(v) => Ok(v),
            _ => Err(ToolError::internal("cache holds the wrong kind of answer")),
        }
    }

    pub async fn describe_object(
        &self,
        client: &ClientShare,
        ctx: &Context,
        name: &ObjectName,
    ) -> Result<Vec<ColumnInfo>, ToolError> {
        let key = format!(
            "describe\u{1}{}\u{1}{}\u{1}{}",
            name.database, name.schema, name.name
        );
        let fetch = async {
            self.backend
                .describe_object(ctx, name)
                .await
                .map(Cached::Columns)
        };
        match self.catalogue(client, ctx, key, fetch).await? {
            Cached::Columns(v) => Ok(v),
            _ => Err(ToolError::internal("cache holds the wrong kind of answer")),
        }
    }

    pub async fn run_query(
        &self,
        client: &ClientShare,
        ctx: &Context,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ToolError> {
        self.scheduled(
            client,
            ctx.warehouse.as_deref(),
            "run_query",
            self.backend.run_query(ctx, sql, limits),
        )
        .await
    }

    /// What `sql` would scan, by its plan: cached like catalogue answers (per role, context
    /// and text), since a model often explains and then runs the same statement.
    pub async fn explain(
        &self,
        client: &ClientShare,
        ctx: &Context,
        sql: &str,
    ) -> Result<ScanEstimate, ToolError> {
        let key = format!(
            "explain\u{1}{}\u{1}{}\u{1}{sql}",
            ctx.database.as_deref().unwrap_or(""),
            ctx.schema.as_deref().unwrap_or("")
        );
        let fetch = async { self.backend.explain(ctx, sql).await.map(Cached::Plan) };
        match self.catalogue(client, ctx, key, fetch).await? {
            Cached::Plan(p) => Ok(p),
            _ => Err(ToolError::internal("cache holds the wrong kind of answer")),
        }
    }

    /// Rows of a kept result, read under `client`'s share like any statement.
    pub async fn read_result(
        &self,
        client: &ClientShare,
        ctx: &Context,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<StoredPage, ToolError> {
        self.scheduled(
            client,
            ctx.warehouse.as_deref(),
            "read_result",
            self.backend.read_result(ctx, query_id, offset, limits),
        )
        .await
    }

    /// Stop a statement another process (or a previous life of this one) runs.
    pub async fn cancel_query(
        &self,
        client: &ClientShare,
        ctx: &Context,
        query_id: &str,
    ) -> Result<(), ToolError> {
        self.scheduled(
            client,
            ctx.warehouse.as_deref(),
            "cancel_query",
            self.backend.cancel_query(ctx, query_id),
        )
        .await
    }

    pub async fn resolve_context(
        &self,
        client: &ClientShare,
        target: &Context,
    ) -> Result<Context, ToolError> {
        self.scheduled(
            client,
            target.warehouse.as_deref(),
            "set_context",
            self.backend.resolve_context(target),
        )
        .await
    }

    /// The credits per hour of `warehouse`, if its size was read already.
    pub fn known_credit_rate(&self, warehouse: &str) -> Option<f64> {
        lock(&self.credit_rates).get(warehouse).copied()
    }

    /// The credits per hour of `warehouse` (its size, read once with `SHOW WAREHOUSES` under
    /// the caller's share), for the cost quotas' estimates; `None` when unknown.
    pub async fn credits_per_hour(
        &self,
        client: &ClientShare,
        ctx: &Context,
        warehouse: &str,
    ) -> Option<f64> {
        if let Some(rate) = lock(&self.credit_rates).get(warehouse) {
            return Some(*rate);
        }
        let size = self
            .scheduled(
                client,
                Some(warehouse),
                "warehouse_size",
                self.backend.warehouse_size(ctx, warehouse),
            )
            .await;
        // Without a size no credits are estimated, so a credits quota charges nothing here:
        // say so rather than fail the statement.
        let size = match size {
            Ok(Some(size)) => size,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(warehouse, error = %e.message, "cannot read the warehouse's size; its credits are not estimated for this statement");
                return None;
            }
        };
        let Some(rate) = crate::backend::credits_per_hour(&size) else {
            tracing::warn!(
                warehouse,
                size,
                "unknown warehouse size; its credits are not estimated"
            );
            return None;
        };
        lock(&self.credit_rates).insert(warehouse.to_string(), rate);
        Some(rate)
    }

    pub async fn default_context(&self) -> Result<Context, ToolError> {
        self.backend.default_context().await
    }
}

mod cache;
#[cfg(test)]
mod tests;

/// Give `permit` back, and when that granted a waiting request its session, let the waiter's
/// task run before this one goes on. The grant wakes the waiter onto this worker's next slot,
/// which the worker reaches only when this task next waits — after it has rendered, audited
/// and answered its own call. Measured under load that kept the freed Snowflake session idle
/// 0.2–0.8 ms per statement; yielding once makes it ~0.04 ms (BENCHMARKS.md, the fast path).
async fn hand_over(permit: Permit) {
    if permit.release() {
        tokio::task::yield_now().await;
    }
}

//! Building the Snowflake backend from the configuration: the statements' pool, each signed-in
//! person's pools (token exchange) and, with `[cortex]`, the Cortex calls' own pool — each kept
//! alive by a background upkeep task.

use std::sync::Arc;
use std::time::Duration;

use snowflake_client::ConnectionSettings;

use super::SnowflakeBackend;
use crate::backend::people::People;
use crate::backend::pool::{Pool, PoolLimits};
use crate::config::Config;
use crate::identity::token_exchange::TokenExchange;
use crate::spawn_every;

/// Keep `pool` alive (heartbeats, idle sessions closed, `min_idle` logged in) every 30 s.
fn upkeep(pool: &Pool<snowflake_client::Client>) {
    let pool = pool.clone();
    spawn_every(Duration::from_secs(30), move || {
        let pool = pool.clone();
        async move { pool.maintain().await }
    });
}

impl SnowflakeBackend {
    /// The backend `config` describes, logging in with `settings` (nothing is sent yet);
    /// `exchange` gives signed-in people their own sessions.
    pub fn open(
        config: &Config,
        settings: &ConnectionSettings,
        exchange: Option<&Arc<TokenExchange>>,
    ) -> Result<SnowflakeBackend, String> {
        let secs = Duration::from_secs;
        let client = snowflake_client::Client::new(settings).map_err(|e| {
            format!("{e}\n(try `snowflake-mcp check` for a diagnosis, or `--demo` to run without Snowflake)")
        })?;
        let default_context = client.default_context().clone();
        let limits = PoolLimits {
            max_sessions: config.pool.max_sessions,
            min_idle: config.pool.min_idle,
            max_lifetime: secs(config.pool.max_lifetime_secs),
            heartbeat_every: secs(config.pool.heartbeat_secs),
            secondary_roles_none: config.pool.secondary_roles == "none",
            login_timeout: secs(
                config
                    .pool
                    .login_timeout_secs
                    .min(config.scheduler.queue_timeout_secs)
                    .max(1),
            ),
            max_concurrent_logins: config.pool.max_concurrent_logins.max(1),
        };
        // Signed-in people's own Snowflake sessions (token exchange): small pools of their own.
        let people = exchange.map(|exchange| {
            let per_person = config
                .oauth
                .as_ref()
                .map_or(2, |o| o.sessions_per_person.max(1));
            let people = Arc::new(People::new(
                settings.clone(),
                exchange.clone(),
                default_context,
                PoolLimits {
                    max_sessions: per_person,
                    min_idle: 0,
                    ..limits
                },
            ));
            let kept = people.clone();
            spawn_every(secs(30), move || {
                let people = kept.clone();
                async move { people.maintain().await }
            });
            people
        });
        // Cortex calls hold a session for their whole length (an agent runs for minutes): a
        // pool of their own, so they never hold one a statement waits for.
        let cortex = config.cortex.any().then(|| {
            let pool = Pool::new(
                client.clone(),
                PoolLimits {
                    max_sessions: config.cortex.max_concurrent,
                    min_idle: 0,
                    ..limits
                },
            );
            upkeep(&pool);
            pool
        });
        let pool = Pool::new(client, limits);
        upkeep(&pool);
        Ok(
            SnowflakeBackend::new(pool, config.query.statement_timeout())
                .with_people(people)
                .with_cortex(cortex),
        )
    }
}

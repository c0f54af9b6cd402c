//! Signed-in people's own Snowflake sessions (`[oauth] snowflake_identity = "token_exchange"`).
//!
//! Each person gets a small pool of their own (`sessions_per_person`), logged in with the
//! Snowflake token the exchange obtained for them (`authenticator = oauth`), so two people
//! never share a Snowflake session and each runs under their own roles. A person's pool closes
//! when it has been idle for [`IDLE_CLOSE`]. The fair scheduler still bounds the statements in
//! flight across everyone by `pool.max_sessions`; these pools only hold sessions between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use snowflake_client::{ConnectionSettings, Error as SfError, ErrorKind, Secret};

use super::pool::{Connector, Pool, PoolLimits};
use super::Context;
use crate::error::ToolError;
use crate::identity::token_exchange::TokenExchange;
use crate::lock;

/// A person's pool is closed (its sessions logged out) after this long without a statement.
pub const IDLE_CLOSE: Duration = Duration::from_secs(300);

/// Logs one person in with their current Snowflake token.
pub struct PersonConnector {
    person: Arc<str>,
    settings: ConnectionSettings,
    tokens: Arc<TokenExchange>,
    default_context: Context,
    /// The client for the token last used (a new token makes a new client).
    client: Mutex<Option<(String, Arc<snowflake_client::Client>)>>,
}

#[async_trait]
impl Connector for PersonConnector {
    type Session = snowflake_client::Session;

    fn default_context(&self) -> &Context {
        &self.default_context
    }

    async fn connect(&self, ctx: &Context) -> Result<Self::Session, SfError> {
        let token = self.tokens.token(&self.person).ok_or_else(|| {
            SfError::new(
                ErrorKind::Authentication,
                "this person's Snowflake token has expired; sign in again",
            )
        })?;
        let client = {
            let mut current = lock(&self.client);
            match &*current {
                Some((t, client)) if *t == token => client.clone(),
                _ => {
                    let mut settings = self.settings.clone();
                    settings.authenticator = Some("oauth".into());
                    settings.token = Some(Secret::new(token.clone()));
                    settings.password = None;
                    settings.private_key_file = None;
                    let client = Arc::new(snowflake_client::Client::new(&settings)?);
                    *current = Some((token, client.clone()));
                    client
                }
            }
        };
        client.login_with(ctx).await
    }
}

/// Every signed-in person's pool.
pub struct People {
    settings: ConnectionSettings,
    tokens: Arc<TokenExchange>,
    default_context: Context,
    limits: PoolLimits,
    pools: Mutex<PersonPools>,
}

/// Person -> their pool, and when it was last asked for.
type PersonPools = HashMap<Arc<str>, (Pool<PersonConnector>, Instant)>;

impl People {
    /// Pools logging in with `settings` (account, host; the user comes from the token) and
    /// the tokens `tokens` keeps; `limits` per person.
    pub fn new(
        settings: ConnectionSettings,
        tokens: Arc<TokenExchange>,
        default_context: Context,
        limits: PoolLimits,
    ) -> People {
        People {
            settings,
            tokens,
            default_context,
            limits,
            pools: Mutex::default(),
        }
    }

    /// `person`'s pool, opened on first use.
    pub fn pool(&self, person: &Arc<str>) -> Result<Pool<PersonConnector>, ToolError> {
        let mut pools = lock(&self.pools);
        let entry = pools.entry(person.clone()).or_insert_with(|| {
            let connector = PersonConnector {
                person: person.clone(),
                settings: self.settings.clone(),
                tokens: self.tokens.clone(),
                default_context: self.default_context.clone(),
                client: Mutex::default(),
            };
            (Pool::new(connector, self.limits), Instant::now())
        });
        entry.1 = Instant::now();
        Ok(entry.0.clone())
    }

    /// Close the pools of people idle for [`IDLE_CLOSE`]; keep the others' sessions alive.
    pub async fn maintain(&self) {
        let (mut idle, mut live) = (Vec::new(), Vec::new());
        lock(&self.pools).retain(|_, (pool, used)| {
            let closing = used.elapsed() > IDLE_CLOSE && pool.in_use() == 0;
            if closing { &mut idle } else { &mut live }.push(pool.clone());
            !closing
        });
        for pool in idle {
            pool.shutdown(Duration::from_secs(10)).await;
        }
        for pool in live {
            pool.maintain().await;
        }
    }

    /// Log everyone out (server shutdown).
    pub async fn shutdown(&self) {
        let pools: Vec<_> = lock(&self.pools)
            .drain()
            .map(|(_, (pool, _))| pool)
            .collect();
        for pool in pools {
            pool.shutdown(Duration::from_secs(10)).await;
        }
    }

    /// Sessions open across all people (in use, idle).
    pub fn gauges(&self) -> (usize, usize) {
        lock(&self.pools).values().fold((0, 0), |(u, i), (p, _)| {
            (u + p.in_use(), i + p.idle_count())
        })
    }
}

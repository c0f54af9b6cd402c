//! Transports and the per-session MCP handler.
//!
//! `serve` speaks Streamable HTTP at `/mcp` behind the identity layer (bearer tokens, see
//! [`crate::identity`]), plus `/healthz` (the process is up) and `/readyz` (the backend
//! answers); `stdio` serves one client over stdin/stdout. rmcp creates one [`McpServer`] per
//! MCP session: `initialize` registers the session (client, client info) in the
//! [`Registry`], and the registration is released when rmcp drops the handler — on DELETE,
//! disconnect or idle expiry, exactly once. Requests without a session (protocol 2026-07-28)
//! use their client's sessionless state.

use crate::lock;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig as McpServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionRestoreMarker;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::config::ServerConfig;
use crate::error::ToolError;
use crate::identity::{Clients, Identity};
use crate::transport::ownership::{authenticate, Gate};
use crate::policy::ClientPolicy;
use crate::principal::SESSIONLESS_ANONYMOUS;
use crate::transport::resume::McpSessionStore;
use crate::unix_now;
use crate::sessions::{ClientInfo, PendingSession, Registration, Registry, SessionState};
use crate::state::StoredSession;
use crate::tools::{Caller, Tools};

const INSTRUCTIONS: &str = "Read-only access to Snowflake. Explore with list_databases, list_schemas, list_objects and describe_object; query with run_query. Each session has its own context (set_context).";

/// What every session handler shares.
pub struct App {
    pub tools: Tools,
    pub registry: Arc<Registry>,
    pub clients: Arc<Clients>,
    pub tool_list: Vec<Tool>,
    /// Tool calls being served right now (graceful shutdown waits for them).
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Cancelled when the shutdown grace period is over: calls still running give up.
    pub stopping: CancellationToken,
    /// What the state store keeps of MCP sessions.
    pub stored: crate::transport::resume::StoredLimits,
}

/// Counts one call in [`App::in_flight`] while alive.
struct CallGuard<'a>(&'a App);

impl<'a> CallGuard<'a> {
    fn new(app: &'a App) -> Self {
        app.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CallGuard(app)
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The MCP handler for one MCP session.
#[derive(Clone)]
pub struct McpServer {
    app: Arc<App>,
    registration: Arc<Mutex<Option<Arc<Registration>>>>,
    /// Over stdio, the configured client to run as (`stdio --client ID`); there is no HTTP
    /// request to carry an identity.
    stdio_client: Option<Arc<crate::policy::ClientPolicy>>,
}

impl McpServer {
    pub fn new(app: Arc<App>) -> Self {
        McpServer {
            app,
            registration: Arc::default(),
            stdio_client: None,
        }
    }

    /// The session this request belongs to: the registered one, else (sessionless requests,
    /// protocol 2026-07-28) the client's sessionless state — keyed on the authenticated
    /// client, all anonymous sessionless requests sharing one anonymous client — with the
    /// context it last set brought back from the state store after a restart.
    ///
    /// The session then takes the policy this request's token resolved to: a person's policy
    /// follows their token, not the token they opened the session with.
    async fn session(&self, context: &RequestContext<RoleServer>) -> Arc<SessionState> {
        let session = self.session_of(context).await;
        if let Some(latest) = identity(context).and_then(|i| i.0) {
            if session.follow(&latest) {
                tracing::info!(
                    policy = %latest.metric_label(),
                    "the session's policy changed with its owner's token"
                );
            }
        }
        session
    }

    async fn session_of(&self, context: &RequestContext<RoleServer>) -> Arc<SessionState> {
        if let Some(registration) = lock(&self.registration).clone() {
            return registration.session.clone();
        }
        let client = match identity(context).and_then(|i| i.0) {
            Some(client) if !client.anonymous => client,
            _ => self.app.clients.anonymous(SESSIONLESS_ANONYMOUS),
        };
        let (session, fresh) = self.app.registry.sessionless(&client);
        if fresh {
            if let Some(key) = session.mcp_session_id() {
                let stored = self.app.tools.admission.store().load_session(&key).await;
                if let Ok(Some(ctx)) = stored.map(|s| s.and_then(|s| s.context)) {
                    if client.access.check_context(&client.id, &ctx).is_ok() {
                        session.set_context(ctx);
                    }
                }
            }
        }
        session
    }

    /// The session's context: set by `set_context`, else the client's `default_context` laid
    /// over the connection's defaults (checked against the backend once).
    async fn context(
        &self,
        session: &SessionState,
        policy: &ClientPolicy,
    ) -> Result<Context, ToolError> {
        let ctx = self.context_unchecked(session, policy).await?;
        // Checked at every call, whatever the context's origin (set, default, restored after a
        // restart or on another replica): the client's policy may have changed meanwhile.
        if policy.access.check_context(policy.display(), &ctx).is_ok() {
            return Ok(ctx);
        }
        // The policy narrowed since the context was set (a person's token lost a group): as
        // after a restore, the session starts again from the policy's defaults.
        tracing::info!("the session's context is outside its policy now; back to its defaults");
        session.clear_context();
        let ctx = self.context_unchecked(session, policy).await?;
        policy.access.check_context(policy.display(), &ctx)?;
        Ok(ctx)
    }

    async fn context_unchecked(
        &self,
        session: &SessionState,
        policy: &ClientPolicy,
    ) -> Result<Context, ToolError> {
        if let Some(ctx) = session.context() {
            return Ok(ctx);
        }
        let gateway = &self.app.tools.gateway;
        let base = gateway.default_context().await?;
        let wanted = overlay(&base, &policy.default_context);
        let ctx = if wanted == base {
            base
        } else {
            gateway
                .resolve_context(&policy.share(), &wanted)
                .await
                .map_err(|e| {
                    ToolError::new(
                        e.kind,
                        format!(
                            "the default context configured for client '{}' cannot be used: {}",
                            policy.display(),
                            e.message
                        ),
                    )
                })?
        };
        session.set_context(ctx.clone());
        Ok(ctx)
    }

    /// Write the session to the state store: at once when its context changed (an answer the
    /// client saw must survive a crash), otherwise at most once a minute to refresh `last_seen`.
    async fn persist(&self, session: &SessionState, context_changed: bool) {
        let Some(id) = session.mcp_session_id() else {
            return;
        };
        if !session.due_for_persist(Duration::from_secs(60)) && !context_changed {
            return;
        }
        let created = session
            .created
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let stored = StoredSession {
            id,
            client_id: Some(session.client.id.to_string()),
            client_name: session.client_info.as_ref().map(|i| i.name.clone()),
            client_version: session.client_info.as_ref().map(|i| i.version.clone()),
            context: session.context(),
            init_params: None,
            created,
            last_seen: unix_now(),
        };
        // Bounded: a locked state store must not hold up the call's answer.
        let store = self.app.tools.admission.store();
        match tokio::time::timeout(Duration::from_secs(1), store.save_session(&stored)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not persist a session"),
            Err(_) => tracing::error!("the state store did not persist a session within 1 s"),
        }
    }

    /// One tool call, in a span carrying the tool, client and session (for every log line).
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> rmcp::model::CallToolResult {
        use tracing::Instrument;
        let session = self.session(&context).await;
        let span = tracing::info_span!(
            "call",
            tool = %request.name,
            client = %session.client.id,
            session = session.id
        );
        self.call_in_span(request, context, session)
            .instrument(span)
            .await
    }

    async fn call_in_span(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
        session: Arc<SessionState>,
    ) -> rmcp::model::CallToolResult {
        let _in_flight = session.begin_request();
        let _counted = CallGuard::new(&self.app);
        let started = std::time::Instant::now();
        let tool = request.name.to_string();
        let before = session.context();
        // The policy as of this request's token (see `session`).
        let policy = session.policy();
        let work = async {
            // A call over its rate limit is refused before anything reaches Snowflake.
            self.app.tools.check_rate(&request.name, &policy).await?;
            let caller = Caller {
                client: policy.clone(),
                session_id: session.mcp_session_id(),
                context: self.context(&session, &policy).await?,
            };
            let outcome = self
                .app
                .tools
                .call(
                    &request.name,
                    request.arguments.unwrap_or_default(),
                    &caller,
                )
                .await?;
            if let Some(new) = outcome.new_context {
                session.set_context(new);
            }
            Ok::<_, ToolError>(outcome.result)
        };
        let disconnected = parts(&context)
            .and_then(|p| p.extensions.get::<crate::transport::http::Disconnect>())
            .map_or_else(CancellationToken::new, |d| d.0.clone());
        let reporter = context
            .meta
            .get_progress_token()
            .map(|token| crate::observe::progress::Progress::new(context.peer.clone(), token));
        let work = crate::observe::progress::scope(reporter, work);
        let tag = crate::observe::attribution::tag(
            &session.client.id,
            policy.person.as_ref().map(|p| &*p.name),
            session.mcp_session_id().as_deref(),
            &tool,
        );
        let work = crate::observe::attribution::scope(session.client.id.clone(), tag, work);
        // A cancelled call drops its work: a queued request leaves its queue, and a running
        // statement is aborted on Snowflake (see `backend::snowflake`).
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = context.ct.cancelled() => Err(ToolError::new("cancelled", "the call was cancelled")),
            _ = disconnected.cancelled() => Err(ToolError::new("cancelled", "the client went away")),
            _ = self.app.stopping.cancelled() => Err(ToolError::new("unavailable", "the server is shutting down; retry shortly")),
        };
        self.persist(&session, session.context() != before).await;
        let label = policy.metric_label();
        let kind = outcome.as_ref().err().map_or("ok", |e| e.kind);
        tracing::info!(
            outcome = kind,
            ms = started.elapsed().as_millis() as u64,
            "tool call"
        );
        self.app
            .tools
            .gateway
            .metrics()
            .call(&tool, &label, kind, started.elapsed());
        outcome.unwrap_or_else(ToolError::into_result)
    }
}

/// `client` parts override `base`; a client database without a schema means that database's
/// default schema.
fn overlay(base: &Context, client: &Context) -> Context {
    let mut ctx = base.clone();
    if let Some(db) = &client.database {
        if ctx.database.as_ref() != Some(db) {
            ctx.schema = None;
        }
        ctx.database = Some(db.clone());
    }
    for (mine, theirs) in [
        (&mut ctx.schema, &client.schema),
        (&mut ctx.warehouse, &client.warehouse),
        (&mut ctx.role, &client.role),
    ] {
        if theirs.is_some() {
            mine.clone_from(theirs);
        }
    }
    ctx
}

fn parts(context: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    context.extensions.get::<axum::http::request::Parts>()
}

fn identity(context: &RequestContext<RoleServer>) -> Option<Identity> {
    parts(context).and_then(|p| p.extensions.get::<Identity>().cloned())
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> McpServerConfig {
        McpServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "snowflake-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let client = identity(&context)
            .and_then(|i| i.0)
            .or_else(|| self.stdio_client.clone())
            .unwrap_or_else(|| self.app.clients.new_anonymous());
        // A replayed `initialize` restores a session from the store (after a restart, or on
        // another replica). The door already checked the owner; checked again here so a
        // restore can never run for anyone else, and fail closed on a record without one.
        let restored = match context.extensions.get::<SessionRestoreMarker>() {
            Some(marker) => {
                let stored = self
                    .app
                    .tools
                    .admission
                    .store()
                    .load_session(&marker.id)
                    .await
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                let owner = stored.as_ref().and_then(|s| s.client_id.as_deref());
                if owner != Some(client.id.as_ref()) {
                    return Err(McpError::invalid_request("unknown session", None));
                }
                Some((marker.id.to_string(), stored.and_then(|s| s.context)))
            }
            None => None,
        };
        // What is stored of a session is bounded: its size here, and (for a new session over
        // HTTP, the only kind stored) how many its client keeps.
        self.app
            .stored
            .check_size(&request)
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        if restored.is_none() && parts(&context).is_some() {
            let store = self.app.tools.admission.store();
            let idle = self.app.registry.limits().idle_timeout;
            self.app
                .stored
                .check_room(store.as_ref(), &client.id, idle)
                .await
                .map_err(|e| McpError::invalid_request(e.to_string(), None))?;
        }
        let info = ClientInfo {
            name: request.client_info.name.clone(),
            version: request.client_info.version.clone(),
        };
        let registration = self
            .app
            .registry
            .open(client, Some(info))
            .map_err(|e| McpError::invalid_request(e.message, None))?;
        if let Some((id, ctx)) = restored {
            self.app.registry.bind(&registration.session, &id);
            // A restored context is taken only if the client's policy still allows it;
            // otherwise the session starts again from the client's defaults.
            if let Some(ctx) = ctx.filter(|c| {
                registration
                    .session
                    .client
                    .access
                    .check_context(&registration.session.client.id, c)
                    .is_ok()
            }) {
                registration.session.set_context(ctx);
            }
            tracing::info!(session = registration.session.id, "session restored");
        } else if let Some(pending) =
            parts(&context).and_then(|p| p.extensions.get::<PendingSession>())
        {
            // The door records the transport id and owner of this session before the id is sent.
            pending.attach(registration.session.clone());
        }
        tracing::info!(client = %registration.session.client.id, session = registration.session.id, "session opened");
        *lock(&self.registration) = Some(Arc::new(registration));
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, _context: NotificationContext<RoleServer>) {
        let registration = lock(&self.registration).clone();
        if let Some(registration) = registration {
            self.persist(&registration.session, true).await;
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.app.tool_list.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.app.tool_list.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if self.get_tool(&request.name).is_none() {
            return Err(McpError::invalid_params(
                format!("unknown tool '{}'", request.name),
                None,
            ));
        }
        Ok(self.call(request, context).await.into())
    }
}

/// Serve MCP over stdin/stdout until the client closes it.
pub async fn stdio(
    app: Arc<App>,
    client: Option<Arc<crate::policy::ClientPolicy>>,
) -> Result<(), String> {
    let mut server = McpServer::new(app);
    server.stdio_client = client;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("cannot start the stdio transport: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("stdio transport failed: {e}"))?;
    Ok(())
}

/// Serve MCP over Streamable HTTP on `listen` until `shutdown` is cancelled.
/// Serve until `shutdown` is cancelled, then stop gracefully: accept nothing new, let calls in
/// flight finish for up to `server.shutdown_grace_secs`, then end every session (which aborts
/// statements still running on Snowflake).
pub async fn serve(
    app: Arc<App>,
    listen: &str,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let sessions_token = app.stopping.clone();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (draining_app, draining_shutdown, draining_sessions) =
        (app.clone(), shutdown.clone(), sessions_token.clone());
    tokio::spawn(async move {
        draining_shutdown.cancelled().await;
        let deadline = tokio::time::Instant::now() + grace;
        while draining_app
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = draining_app
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(
                calls = left,
                "grace period over: aborting calls still running"
            );
        }
        draining_sessions.cancel();
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() && !app.clients.requires_token() && !config.allow_anonymous_remote {
        return Err(format!(
            "refusing to listen on {addr} without configured clients: anyone who can reach it could query Snowflake. \
             Configure [[clients]] with tokens, listen on 127.0.0.1, or set [server] allow_anonymous_remote = true"
        ));
    }
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(config.allowed_hosts.iter().cloned());
    // Browsers send Origin; only local pages and configured origins may drive the server.
    let mut origins: Vec<String> = [
        "http://localhost:*",
        "http://127.0.0.1:*",
        "http://[::1]:*",
        "https://localhost:*",
        "https://127.0.0.1:*",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    origins.extend(config.allowed_origins.iter().cloned());
    // Host and Origin are checked for every route by `http::check_host` (below), with rmcp's
    // rules and these lists; rmcp's own check would repeat it on every call to `/mcp`.
    let mut http_config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(config.max_request_bytes)
        .with_cancellation_token(sessions_token.clone());
    let idle_timeout = app.registry.limits().idle_timeout;
    http_config.session_store = Some(Arc::new(McpSessionStore::new(
        app.tools.admission.store().clone(),
        idle_timeout,
        app.stored,
    )));
    let sweeping = app.tools.admission.store().clone();
    crate::spawn_every(Duration::from_secs(60), move || {
        let store = sweeping.clone();
        async move {
            let before = unix_now() - idle_timeout.as_secs() as i64;
            if let Err(e) = store.expire_sessions(before).await {
                tracing::warn!(error = %e, "could not expire stored sessions");
            }
        }
    });
    let factory_app = app.clone();
    // rmcp closes a session after this much inactivity, which drops its handler and with it
    // the registration.
    let events = Arc::new(crate::transport::events::EventBuffer::new(
        crate::transport::events::EventLimits {
            per_stream: 256,
            max_bytes: config.resume_buffer_bytes,
            max_age: Duration::from_secs(config.resume_secs),
        },
    ));
    let mut sessions = LocalSessionManager::default().with_event_store(events.clone());
    sessions.session_config.keep_alive = Some(app.registry.limits().idle_timeout);
    let sessions = Arc::new(sessions);
    // Idle sessions leave memory and come back from the store on their next request.
    let park_after = app.registry.limits().park_after;
    crate::sessions::parking::spawn(app.registry.clone(), sessions.clone(), park_after);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(factory_app.clone())),
        sessions,
        http_config,
    );
    let mcp = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(crate::transport::http::delete_answers_ok))
        .layer(axum::middleware::from_fn(crate::transport::http::cancel_on_disconnect))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Gate {
                clients: app.clients.clone(),
                registry: app.registry.clone(),
                store: app.tools.admission.store().clone(),
                events,
            }),
            authenticate,
        ));
    let metrics_app = app.clone();
    let metrics_token = match &config.metrics_token_sha256 {
        Some(hex) => Some(
            crate::identity::decode_hex32(hex)
                .ok_or("[server] metrics_token_sha256 must be 64 hex digits")?,
        ),
        None => None,
    };
    let router = mcp.merge(crate::transport::ops::routes(
        crate::transport::ops::Readiness::new(app.tools.gateway.backend().clone()),
        Arc::new(move || {
            crate::transport::ops::render_metrics(
                &metrics_app.tools.gateway,
                &metrics_app.registry,
                metrics_app.tools.auditor.dropped(),
            )
        }),
        metrics_token,
    ));
    // RFC 9728: where MCP clients learn which authorization server to sign in at.
    let router = match app.clients.oauth() {
        Some(oauth) => router.merge(crate::identity::oauth::routes(oauth.clone())),
        None => router,
    };
    // Every route, not only `/mcp`, answers only to the expected Host names and browser origins
    // (DNS rebinding), and counts forwarded clients' requests behind trusted proxies.
    let trusted = crate::transport::peers::TrustedProxies::parse(&config.trusted_proxies)?;
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::transport::http::AllowedHosts::new(&hosts, &origins)),
            crate::transport::http::check_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            crate::transport::peers::ForwardedLimit::new(trusted.clone(), config.max_connections_per_ip),
            crate::transport::peers::limit_forwarded,
        ));
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(crate::transport::tls::load(cert, key)?),
        (None, None) => None,
        _ => return Err("[server] tls_cert_file and tls_key_file go together".into()),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "snowflake-mcp: listening on {scheme}://{addr}/mcp ({} backend)",
        app.tools.gateway.backend().name()
    );
    tracing::info!(%addr, scheme, "listening");
    let stopping = app.stopping.clone();
    // Stop accepting at once; open connections (SSE streams included) end when the draining
    // task above cancels the sessions.
    let slots = crate::transport::conn::Slots::new(
        crate::transport::conn::ConnLimits {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            header_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.connection_idle_timeout_secs.max(1)),
        },
        trusted,
        app.tools.gateway.metrics().clone(),
    );
    let handshakes = crate::transport::tls::Handshakes {
        max_in_flight: config.max_tls_handshakes.max(1),
        timeout: Duration::from_secs(config.tls_handshake_timeout_secs.max(1)),
    };
    let router = router.into_make_service_with_connect_info::<crate::transport::peers::Peer>();
    let served = async move {
        let stop = async move { shutdown.cancelled().await };
        use crate::transport::conn::GuardedListener;
        match tls {
            Some(tls) => {
                let listener = crate::transport::tls::TlsListener::new(listener, tls, handshakes)
                    .map_err(|e| e.to_string())?;
                axum::serve(GuardedListener::new(listener, slots), router)
                    .with_graceful_shutdown(stop)
                    .await
            }
            None => {
                axum::serve(GuardedListener::new(listener, slots), router)
                    .with_graceful_shutdown(stop)
                    .await
            }
        }
        .map_err(|e| format!("HTTP server failed: {e}"))
    };
    tokio::select! {
        served = served => served?,
        // A connection that will not close must not keep the process alive.
        _ = async { stopping.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => {
            tracing::warn!("connections still open 5 s after the grace period; exiting anyway");
        }
    }
    // Let the cancelled calls unwind (dropping a call queues its statement's abort and its
    // session's logout), then log out of every Snowflake session, waiting for those too.
    let unwound = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < unwound
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.tools.gateway.backend().shutdown().await;
    Ok(())
}

//! The per-session MCP handler: rmcp creates one [`McpServer`] per MCP session.
//!
//! `initialize` registers the session (client, client info) in the
//! [`Registry`](crate::sessions::Registry), and the registration is released when rmcp drops the handler — on DELETE,
//! disconnect or idle expiry, exactly once. Requests without a session (protocol 2026-07-28)
//! use their client's sessionless state. Each `tools/call` is turned into a [`Caller`] (who,
//! in which session and context) and handed to the tools; the handler itself decides nothing
//! about policy.

use crate::lock;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
    Implementation, InitializeRequestParams, InitializeResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ResourceTemplate, ServerCapabilities, ServerConfig as McpServerConfig,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::SessionRestoreMarker;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::error::ToolError;
use crate::identity::Identity;
use crate::policy::ClientPolicy;
use crate::principal::SESSIONLESS_ANONYMOUS;
use crate::sessions::{ClientInfo, PendingSession, Registration, SessionState};
use crate::tools::writes::Answer;
use crate::tools::Caller;
use crate::transport::App;
use crate::Context;

const INSTRUCTIONS: &str = "Read-only access to Snowflake. Explore with list_databases, list_schemas, list_objects and describe_object; query with run_query. Each session has its own context (set_context).";

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

    /// The handler for a stdio connection, running as `client` when one is given.
    pub fn for_stdio(app: Arc<App>, client: Option<Arc<crate::policy::ClientPolicy>>) -> Self {
        McpServer {
            stdio_client: client,
            ..McpServer::new(app)
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

    async fn persist(&self, session: &SessionState, context_changed: bool) {
        super::resume::persist(self.app.tools.admission.store(), session, context_changed).await
    }

    /// One tool call, in a span carrying the tool, client and session (for every log line).
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        answer: Option<Answer>,
    ) -> rmcp::model::CallToolResult {
        use tracing::Instrument;
        let session = self.session(context).await;
        let span = tracing::info_span!(
            "call",
            tool = %request.name,
            client = %session.client.id,
            session = session.id
        );
        self.call_in_span(request, context, session, answer)
            .instrument(span)
            .await
    }

    async fn call_in_span(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        session: Arc<SessionState>,
        answer: Option<Answer>,
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
                answer,
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
        // Boxed: the tools' futures are large, and deep stacks of them overflow a worker's.
        let work = Box::pin(work);
        let disconnected = parts(context)
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
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .enable_resources()
            .build();
        super::apps::declare(&mut capabilities);
        McpServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "snowflake-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(match self.app.tools.gateway.backend().note() {
                Some(note) => format!("{note} {INSTRUCTIONS}"),
                None => INSTRUCTIONS.to_string(),
            })
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
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let list = self.app.tool_list.clone();
        Ok(ListToolsResult::with_all_items(
            if super::apps::declared(&context) {
                list.into_iter().map(crate::tools::with_viewer).collect()
            } else {
                list
            },
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.app.tool_list.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Looked up, not copied: `get_tool` clones the whole definition, schema included.
        if !self.app.tool_list.iter().any(|t| t.name == request.name) {
            return Err(McpError::invalid_params(
                format!("unknown tool '{}'", request.name),
                None,
            ));
        }
        // A client that speaks tasks gets a statement still running as a task.
        let tasks = request.name == "run_query" && super::tasks::declared(&context);
        // A write a person must confirm is put to them where the client can ask.
        let valid_for = self.app.tools.limits.confirm_within();
        // Boxed: a call's future is large, and this one may be awaited twice. The context is
        // lent, not cloned: a clone copies every HTTP extension of the request (its headers).
        let call = |request, answer| Box::pin(self.call(request, &context, answer));
        let response = super::confirm::call(call, request, &context, valid_for).await?;
        Ok(match response {
            CallToolResponse::Complete(result) if tasks => super::tasks::answer(result),
            other => other,
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new(super::resources::TEMPLATE, "query result")
            .with_description("the rows of a result_id, as CSV (or .json)")
            .with_mime_type("text/csv");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            super::apps::listed(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if let Some(viewer) = super::apps::read(&request.uri) {
            return Ok(viewer.into());
        }
        let max_bytes = self.app.tools.limits.max_result_bytes;
        let door = |call| self.call(call, &context, None);
        super::resources::read(door, request, max_bytes)
            .await
            .map(Into::into)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        super::tasks::get(|call| self.call(call, &context, None), request).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        super::tasks::cancel(|call| self.call(call, &context, None), request).await
    }
}

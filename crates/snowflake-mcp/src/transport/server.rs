//! The Streamable HTTP server: binds the listener, builds the router — `/mcp` behind the
//! session door ([`crate::transport::ownership`]), `/healthz`, `/readyz` and `/metrics`
//! ([`crate::transport::ops`]), the OAuth metadata — wraps every route in the Host/Origin check
//! and the per-address limits, and serves it through the connection guard, with TLS when
//! configured, until shutdown ([`crate::transport::shutdown`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::transport::handler::McpServer;
use crate::transport::ownership::{authenticate, Gate};
use crate::transport::resume::McpSessionStore;
use crate::transport::App;
use crate::unix_now;

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
    crate::transport::shutdown::drain_on(
        &app,
        shutdown.clone(),
        Duration::from_secs(config.shutdown_grace_secs),
    );
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
    let console_sessions = sessions.clone();
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
        .layer(axum::middleware::from_fn(
            crate::transport::http::delete_answers_ok,
        ))
        .layer(axum::middleware::from_fn(
            crate::transport::http::cancel_on_disconnect,
        ))
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
            crate::transport::ops::render_metrics(&metrics_app.tools, &metrics_app.registry)
        }),
        metrics_token,
    ));
    crate::transport::ops::sample_quotas(app.clients.clone(), &app.tools);
    // Pauses are made from a console; every replica sharing the store keeps to them, whether
    // or not it serves the console itself.
    if app.console.is_some() || app.tools.admission.store().shared() {
        app.tools.pauses.follow();
    }
    let router = match &app.console {
        Some(access) => router.merge(crate::transport::console::routes(
            crate::transport::console::Console {
                app: app.clone(),
                access: access.clone(),
                tls: config.tls_cert_file.is_some(),
                history: crate::transport::console::history::History::follow(app.tools.clone()),
                sessions: console_sessions,
            },
        )),
        None => router,
    };
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
            crate::transport::peers::ForwardedLimit::new(
                trusted.clone(),
                config.max_connections_per_ip,
            ),
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
                // An SSE response is written event by event; without TCP_NODELAY, Nagle's
                // algorithm holds a small event back until the previous one is acknowledged.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(GuardedListener::new(listener, slots), router)
                    .with_graceful_shutdown(stop)
                    .await
            }
        }
        .map_err(|e| format!("HTTP server failed: {e}"))
    };
    // Accept on a worker thread, not on the thread that waits in `block_on`: a connection's
    // task then starts on the worker that accepted it instead of waking another thread for
    // every connection (rmcp's clients open one per request). Measured: 13–14 thread wake-ups
    // per sequential call before, 10 after.
    let served = tokio::spawn(served);
    let stop_serving = served.abort_handle();
    tokio::select! {
        served = served => served.map_err(|e| format!("HTTP server failed: {e}"))??,
        // A connection that will not close must not keep the process alive.
        _ = async { stopping.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => {
            tracing::warn!("connections still open 5 s after the grace period; exiting anyway");
            stop_serving.abort();
        }
    }
    crate::transport::shutdown::finish(&app).await;
    Ok(())
}

//! The `snowflake-mcp` command line: parse arguments, build the backend, run a transport.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use snowflake_mcp::backend::demo::DemoBackend;

use snowflake_mcp::backend::snowflake::SnowflakeBackend;
use snowflake_mcp::backend::Backend;
use snowflake_mcp::config::{cache_dir, snowflake_settings, Config};
use snowflake_mcp::identity::Clients;
use snowflake_mcp::observe::audit::Auditor;
use snowflake_mcp::observe::redact::Redacting;
use snowflake_mcp::policy::admission::Admission;
use snowflake_mcp::policy::cluster::Cluster;
use snowflake_mcp::scheduling::gateway::Gateway;
use snowflake_mcp::scheduling::scheduler::{Scheduler, SchedulerLimits};
use snowflake_mcp::sessions::{Registry, SessionLimits};
use snowflake_mcp::spawn_every;
use snowflake_mcp::state::coordinator::Coordinator;
use snowflake_mcp::state::{default_state_path, RedisOptions, RedisStore, SqliteStore, StateStore};
use snowflake_mcp::tools::{cortex_definitions, definitions_for, semantic_definitions, Tools};
use snowflake_mcp::transport::App;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "snowflake-mcp",
    version,
    about = "A multi-client MCP server for Snowflake"
)]
struct Cli {
    /// Server config file (TOML): [snowflake], [query], [pool], [server].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use this section of Snowflake's connections.toml ($SNOWFLAKE_HOME or ~/.snowflake).
    #[arg(long, global = true, value_name = "NAME")]
    connection: Option<String>,
    /// Log format on stderr: `text` or `json` (one object per line).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// State store for sessions, quota usage and history: a SQLite file (default
    /// ~/.local/state/snowflake-mcp/state.db), or redis://HOST:PORT/DB (rediss:// for TLS)
    /// shared by several replicas. Overrides [state] in the config.
    #[arg(long, global = true, value_name = "PATH|URL")]
    state: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over Streamable HTTP at /mcp (plus /healthz and /readyz).
    Serve {
        /// Address to listen on (default 127.0.0.1:8765, or [server] listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Use the bundled offline demo database instead of Snowflake.
        #[arg(long)]
        demo: bool,
    },
    /// Serve one MCP client over stdin/stdout.
    Stdio {
        /// Use the bundled offline demo database instead of Snowflake.
        #[arg(long)]
        demo: bool,
        /// Run as this configured `[[clients]]` entry (its role, limits, quotas and history)
        /// instead of a new anonymous client.
        #[arg(long, value_name = "ID")]
        client: Option<String>,
    },
    /// Log in with the configured settings, run a probe, and report what works or what is wrong.
    Check,
    /// Print a running server's overview (its console API); the admin token comes from
    /// SNOWFLAKE_MCP_CONSOLE_TOKEN.
    Status {
        /// The server's base URL.
        #[arg(default_value = "http://127.0.0.1:8765")]
        url: String,
    },
    /// Bridge stdin/stdout to a running `serve` (starting one if none answers locally); the
    /// bearer token comes from SNOWFLAKE_MCP_TOKEN.
    Connect {
        /// The server's MCP endpoint.
        #[arg(default_value = "http://127.0.0.1:8765/mcp")]
        url: String,
        /// If a server has to be started, start it with the offline demo.
        #[arg(long)]
        demo: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout belongs to the MCP stream in stdio mode.
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    // rmcp logs every new session's id at info level; an id lets whoever reads the logs act in
    // that session's name (the door checks the principal too, but ids stay out of logs).
    if let Ok(quiet) = "rmcp::transport::streamable_http_server::session=warn".parse() {
        filter = filter.add_directive(quiet);
    }
    // rmcp's other lines name sessions by id at any level: they are redacted (`redact`).
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs
            .event_format(Redacting(tracing_subscriber::fmt::format()))
            .init(),
        LogFormat::Json => logs
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(Redacting(
                tracing_subscriber::fmt::format()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            ))
            .init(),
    }
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Check => {
                let settings =
                    snowflake_settings(&config, cli.connection.as_deref()).map_err(|e| {
                        println!("FAILED: {e}");
                        String::new()
                    })?;
                match snowflake_mcp::backend::check::run(&settings, &mut std::io::stdout()).await {
                    ExitCode::SUCCESS => Ok(()),
                    _ => Err(String::new()),
                }
            }
            Command::Status { url } => status(&url).await,
            Command::Serve { listen, demo } => {
                let app = app(
                    &config,
                    cli.connection.as_deref(),
                    cli.state.as_deref(),
                    demo,
                )?;
                let listen = listen.unwrap_or_else(|| config.server.listen.clone());
                let shutdown = CancellationToken::new();
                let on_signal = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_stop_signal().await;
                    eprintln!("snowflake-mcp: stopping (finishing calls in flight)");
                    on_signal.cancel();
                });
                let served = snowflake_mcp::transport::server::serve(
                    app.clone(),
                    &listen,
                    &config.server,
                    shutdown,
                )
                .await;
                app.tools.auditor.flush().await;
                if let Err(e) = app.tools.admission.store().flush().await {
                    eprintln!("warning: {e}");
                }
                served
            }
            Command::Connect { url, demo } => {
                let mut serve_args = Vec::new();
                if demo {
                    serve_args.push("--demo".to_string());
                }
                for (flag, value) in [
                    (
                        "--config",
                        cli.config.as_ref().map(|p| p.display().to_string()),
                    ),
                    ("--connection", cli.connection.clone()),
                    ("--state", cli.state.clone()),
                ] {
                    if let Some(v) = value {
                        serve_args.extend([flag.to_string(), v]);
                    }
                }
                snowflake_mcp::transport::bridge::run(&url, serve_args).await
            }
            Command::Stdio { demo, client } => {
                let app = app(
                    &config,
                    cli.connection.as_deref(),
                    cli.state.as_deref(),
                    demo,
                )?;
                let client = match client {
                    Some(id) => Some(app.clients.by_id(&id).ok_or_else(|| {
                        format!("--client {id}: no [[clients]] entry has this id")
                    })?),
                    None => None,
                };
                let served = snowflake_mcp::transport::stdio::stdio(app.clone(), client).await;
                app.tools.auditor.flush().await;
                served
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A state store, and with a shared one the coordinator of its cluster.
type Stores = (Arc<dyn StateStore>, Option<Arc<dyn Coordinator>>);

/// The state store `--state` (else `[state]`) names.
fn state_store(config: &Config, state: Option<&str>) -> Result<Stores, String> {
    let state_config = &config.state;
    let url = match state {
        Some(s) if s.starts_with("redis://") || s.starts_with("rediss://") => Some(s.to_string()),
        Some(_) => None,
        None => (state_config.backend == "redis")
            .then(|| state_config.url.clone())
            .flatten(),
    };
    let Some(url) = url else {
        let path = state
            .map(PathBuf::from)
            .or_else(|| state_config.path.clone())
            .unwrap_or_else(default_state_path);
        let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
        return Ok((Arc::new(store), None));
    };
    let store = RedisStore::open(RedisOptions {
        url,
        key_prefix: state_config.key_prefix.clone(),
        session_ttl: Duration::from_secs(config.sessions.idle_timeout_secs),
        history_max: state_config.history_max,
        history_retention: Duration::from_secs(u64::from(config.audit.retention_days) * 86_400),
    })
    .map_err(|e| e.to_string())?;
    // Connected lazily: a replica starts, and recovers, while Redis is down. Say so early.
    let probe = store.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(5), probe.ping()).await {
            Ok(Ok(())) => tracing::info!("connected to the shared state store"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the shared state store is unreachable; retrying")
            }
            Err(_) => tracing::error!("the shared state store did not answer within 5 s; retrying"),
        }
    });
    Ok((store.clone(), Some(store)))
}

/// Everything the transports serve: the backend (demo or Snowflake) behind its scheduler and
/// cache, the clients, and the session registry — plus the background upkeep they need.
fn app(
    config: &Config,
    connection: Option<&str>,
    state: Option<&str>,
    demo: bool,
) -> Result<Arc<App>, String> {
    let secs = Duration::from_secs;
    let (store, coordinator) = state_store(config, state)?;
    let clients = Arc::new(Clients::from_config(config)?);
    let backend: Arc<dyn Backend> = if demo {
        Arc::new(DemoBackend::open(&cache_dir())?)
    } else {
        let settings = snowflake_settings(config, connection).map_err(|e| e.to_string())?;
        Arc::new(SnowflakeBackend::open(
            config,
            &settings,
            clients.exchange(),
        )?)
    };
    // Names as Snowflake resolves them unquoted.
    let warehouse_caps: std::collections::HashMap<String, usize> = config
        .warehouses
        .iter()
        .map(|(name, w)| (name.to_ascii_uppercase(), w.max_concurrent.max(1)))
        .collect();
    let cluster = coordinator.map(|c| {
        Cluster::start(
            c,
            warehouse_caps.clone(),
            secs(config.scheduler.queue_timeout_secs),
        )
    });
    let scheduler_limits = SchedulerLimits {
        capacity: config.pool.max_sessions,
        max_queue_per_client: config.scheduler.max_queue_per_client,
        max_queue_total: config.scheduler.max_queue_total,
        queue_timeout: secs(config.scheduler.queue_timeout_secs),
        warehouse_caps,
    };
    let metrics = Arc::new(snowflake_mcp::observe::metrics::Metrics::default());
    for client in clients.entries() {
        let kinds: Vec<&str> = client
            .access
            .writes
            .kinds
            .iter()
            .map(|k| k.name())
            .collect();
        metrics.prepare_client(&client.id, &kinds, client.access.limits_scans());
    }
    // Cortex calls queue fairly among themselves, for places of their own.
    let cortex = config.cortex.any().then(|| {
        Scheduler::new(SchedulerLimits {
            capacity: config.cortex.max_concurrent,
            warehouse_caps: Default::default(),
            ..scheduler_limits.clone()
        })
    });
    let gateway = Gateway::new(
        backend,
        Scheduler::new(scheduler_limits),
        secs(config.cache.metadata_ttl_secs),
        config.cache.max_entries,
        metrics,
    )
    .with_cluster(cluster.clone())
    .with_cortex(cortex);
    let registry = Registry::new(SessionLimits {
        max_total: config.sessions.max_total,
        max_per_client: config.sessions.max_per_client,
        idle_timeout: secs(config.sessions.idle_timeout_secs),
        park_after: (config.sessions.park_after_secs > 0)
            .then(|| secs(config.sessions.park_after_secs)),
    });
    let pruning = store.clone();
    let retention_ms = i64::from(config.audit.retention_days) * 86_400_000;
    spawn_every(secs(3600), move || {
        let store = pruning.clone();
        async move {
            let before = chrono::Utc::now().timestamp_millis() - retention_ms;
            if let Err(e) = store.prune_audit(before).await {
                tracing::warn!(error = %e, "could not prune the audit log");
            }
        }
    });
    let expiring = registry.clone();
    spawn_every(secs(60), move || {
        expiring.expire_idle();
        async {}
    });
    let stored = snowflake_mcp::transport::resume::StoredLimits {
        max_per_client: config.sessions.max_stored_per_client,
        max_anonymous: config.sessions.max_stored_anonymous,
        max_init_bytes: config.sessions.max_client_info_bytes,
    };
    let console = config
        .console
        .as_ref()
        .and_then(snowflake_mcp::identity::operators::ConsoleAccess::from_config);
    Ok(Arc::new(App {
        stored,
        console,
        tools: Tools::new(
            Admission::new(store.clone(), config.server.rate_per_minute, cluster),
            Auditor::new(store, config.audit.jsonl_path.as_deref())?
                .waiting_for_commit(config.audit.wait_for_commit),
            gateway,
            config.query.clone(),
            config.cortex.clone(),
        ),
        registry,
        clients,
        tool_list: {
            let writes = config
                .clients
                .iter()
                .any(|c| !c.allow_statements.is_empty());
            let mut list = definitions_for(writes);
            if config.query.semantic_views {
                list.extend(semantic_definitions());
            }
            list.extend(cortex_definitions(&config.cortex));
            list
        },
        in_flight: Default::default(),
        stopping: CancellationToken::new(),
    }))
}

/// `status`: a running server's overview, from its console API, in plain words.
async fn status(url: &str) -> Result<(), String> {
    let token = std::env::var("SNOWFLAKE_MCP_CONSOLE_TOKEN")
        .map_err(|_| "set SNOWFLAKE_MCP_CONSOLE_TOKEN to the console's admin token".to_string())?;
    let endpoint = format!("{}/console/api/overview", url.trim_end_matches('/'));
    // reqwest builds its rustls client from the process's default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .get(&endpoint)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    let code = response.status();
    if !code.is_success() {
        return Err(format!(
            "{endpoint} answered {code} (is [console] configured, and the token right?)"
        ));
    }
    let overview: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("{endpoint} did not answer JSON: {e}"))?;
    println!(
        "{}",
        snowflake_mcp::transport::console::overview_text(&overview)
    );
    Ok(())
}

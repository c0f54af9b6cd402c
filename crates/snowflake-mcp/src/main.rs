//! The `snowflake-mcp` command line: parse arguments, build the backend, run a transport.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use snowflake_mcp::backend::demo::DemoBackend;
use snowflake_mcp::backend::pool::Pool;
use snowflake_mcp::backend::snowflake::SnowflakeBackend;
use snowflake_mcp::backend::Backend;
use snowflake_mcp::config::{cache_dir, snowflake_settings, Config};
use snowflake_mcp::tools::Tools;
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
    #[command(subcommand)]
    command: Command,
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
    },
    /// Log in with the configured settings, run a probe, and report what works or what is wrong.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout belongs to the MCP stream in stdio mode.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
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
                match snowflake_mcp::check::run(&settings, &mut std::io::stdout()).await {
                    ExitCode::SUCCESS => Ok(()),
                    _ => Err(String::new()),
                }
            }
            Command::Serve { listen, demo } => {
                let tools = tools(&config, cli.connection.as_deref(), demo)?;
                let listen = listen.unwrap_or_else(|| config.server.listen.clone());
                let shutdown = CancellationToken::new();
                let on_signal = shutdown.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    on_signal.cancel();
                });
                snowflake_mcp::server::serve(tools, &listen, &config.server, shutdown).await
            }
            Command::Stdio { demo } => {
                let tools = tools(&config, cli.connection.as_deref(), demo)?;
                snowflake_mcp::server::stdio(tools).await
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

/// The tools over the demo or over Snowflake.
fn tools(config: &Config, connection: Option<&str>, demo: bool) -> Result<Arc<Tools>, String> {
    let backend: Arc<dyn Backend> = if demo {
        Arc::new(DemoBackend::open(&cache_dir())?)
    } else {
        let settings = snowflake_settings(config, connection).map_err(|e| e.to_string())?;
        let client = snowflake_client::Client::new(&settings).map_err(|e| {
            format!("{e}\n(try `snowflake-mcp check` for a diagnosis, or `--demo` to run without Snowflake)")
        })?;
        let pool = Pool::new(client, config.pool.max_sessions);
        Arc::new(SnowflakeBackend::new(
            pool,
            config.query.statement_timeout(),
        ))
    };
    Ok(Arc::new(Tools {
        backend,
        limits: config.query.clone(),
    }))
}

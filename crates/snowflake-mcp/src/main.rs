//! The `snowflake-mcp` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use snowflake_mcp::config::{snowflake_settings, Config};

#[derive(Parser)]
#[command(
    name = "snowflake-mcp",
    version,
    about = "A multi-client MCP server for Snowflake"
)]
struct Cli {
    /// Server config file (TOML); its [snowflake] table holds connection settings.
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
    /// Log in with the configured settings, run a probe, and report what works or what is wrong.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match cli.command {
        Command::Check => runtime.block_on(async {
            let settings = match snowflake_settings(&config, cli.connection.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    println!("FAILED: {e}");
                    return ExitCode::FAILURE;
                }
            };
            snowflake_mcp::check::run(&settings, &mut std::io::stdout()).await
        }),
    }
}

//! `snowflake-mcp-bench`: measure snowflake-mcp against a fixed-delay Snowflake responder.
//!
//! `snowflake-mcp-bench all --server target/release/snowflake-mcp` runs every scenario of
//! BENCHMARKS.md and prints the report as Markdown; the subcommands run one scenario each.
//! Everything runs on loopback: the responder in this process, the server as a child process.
//!
//! This file is the command line and its dispatch; `harness` starts the responder and the
//! servers, `load` is the load generator, and each scenario has a module of its own.

mod capacity;
mod checks;
mod cost;
mod external;
mod fairness;
mod floor;
mod harness;
mod isolation;
mod load;
mod memory;
mod mixed;
mod overhead;
mod precise;
mod replicas;
mod responder;
mod soak;
mod throughput;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "snowflake-mcp-bench",
    about = "Load generator for snowflake-mcp"
)]
struct Cli {
    /// The snowflake-mcp binary to measure (build it with --release).
    #[arg(long, global = true, default_value = "target/release/snowflake-mcp")]
    server: String,
    /// Seconds each measured load runs (default 10; for `soak`, 300).
    #[arg(long, global = true)]
    seconds: Option<u64>,
    /// Hold the run to its targets (overhead above the floor, capacity against the bare
    /// server, throughput against the pool, fairness): print them and exit non-zero when one
    /// is missed.
    #[arg(long, global = true)]
    check: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario, as a Markdown report.
    All,
    /// The server's own added latency per call, above a bare MCP server's (the floor).
    Overhead,
    /// Calls per second with an instant backend, against a bare MCP server.
    Capacity,
    /// The fast path: overhead, capacity and throughput (what `--check` guards).
    Fast,
    /// Throughput against pool size at a fixed backend delay.
    Throughput,
    /// Fairness with equal weights and with weights 1:2:4.
    Fairness,
    /// Light clients' latency while two heavy clients flood.
    Isolation,
    /// Server memory with 10,000 idle MCP sessions.
    Memory,
    /// Session-time fairness with mixed statement lengths (weights 1:1 and 1:2:4).
    Mixed,
    /// A light client beside two clients flooding 2-second statements.
    LightHeavy,
    /// Two warehouses, one flooded against its cap.
    Warehouses,
    /// Cost quotas: session-time and estimated credits per client, and a neighbour without.
    CostQuota,
    /// mixed, light-heavy, warehouses and cost-quota.
    SessionTime,
    /// Replicas on a shared Redis (Valkey) store, alone and behind HAProxy, against SQLite
    /// (needs `haproxy` on PATH and a valkey-server; not part of `all`).
    Replicas,
    /// Many sessions for minutes with queries, catalogue calls, cancellations, disconnects and
    /// reconnects: errors, RSS over time, Snowflake sessions, logins against logouts.
    Soak(soak::Options),
    /// The bare MCP server the overhead and capacity are measured against (run by them).
    #[command(hide = true)]
    Floor {
        /// Relay each call to the responder on this port first (the relay floor).
        #[arg(long)]
        backend: Option<u16>,
        /// Snowflake sessions the relay floor keeps (as the server's pool).
        #[arg(long, default_value_t = 64)]
        sessions: usize,
    },
    /// Only the responder, for manual runs: SNOWFLAKE_HOST=127.0.0.1 SNOWFLAKE_PORT=<port>.
    Responder {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
    },
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let secs = Duration::from_secs(cli.seconds.unwrap_or(10));
    let mut out = String::new();
    let result = match cli.command {
        Command::All => {
            async {
                overhead::overhead(&cli.server, &mut out).await?;
                capacity::capacity(&cli.server, secs, &mut out).await?;
                throughput::throughput(&cli.server, secs, &mut out).await?;
                fairness::fairness(&cli.server, secs, &mut out).await?;
                isolation::isolation(&cli.server, secs, &mut out).await?;
                memory::memory(&cli.server, &mut out).await
            }
            .await
        }
        Command::Overhead => overhead::overhead(&cli.server, &mut out).await,
        Command::Capacity => capacity::capacity(&cli.server, secs, &mut out).await,
        Command::Fast => {
            async {
                overhead::overhead(&cli.server, &mut out).await?;
                capacity::capacity(&cli.server, secs, &mut out).await?;
                throughput::throughput(&cli.server, secs, &mut out).await
            }
            .await
        }
        Command::Floor { backend, sessions } => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            floor::run(listener, backend, sessions).await;
            Ok(())
        }
        Command::Throughput => throughput::throughput(&cli.server, secs, &mut out).await,
        Command::Fairness => fairness::fairness(&cli.server, secs, &mut out).await,
        Command::Isolation => isolation::isolation(&cli.server, secs, &mut out).await,
        Command::Memory => memory::memory(&cli.server, &mut out).await,
        Command::Mixed => mixed::mixed(&cli.server, secs, &mut out).await,
        Command::LightHeavy => mixed::light_heavy(&cli.server, secs, &mut out).await,
        Command::Warehouses => mixed::warehouses(&cli.server, secs, &mut out).await,
        Command::CostQuota => cost::cost_quota(&cli.server, secs, &mut out).await,
        Command::SessionTime => {
            async {
                mixed::mixed(&cli.server, secs, &mut out).await?;
                mixed::light_heavy(&cli.server, secs, &mut out).await?;
                mixed::warehouses(&cli.server, secs, &mut out).await?;
                cost::cost_quota(&cli.server, secs, &mut out).await
            }
            .await
        }
        Command::Replicas => replicas::replicas(&cli.server, secs, &mut out).await,
        Command::Soak(ref o) => {
            soak::soak(&cli.server, cli.seconds.unwrap_or(300), o, &mut out).await
        }
        Command::Responder { port, delay_ms } => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            eprintln!(
                "responder on 127.0.0.1:{}",
                listener.local_addr().unwrap().port()
            );
            responder::run(listener, Duration::from_millis(delay_ms), Arc::default()).await;
            Ok(())
        }
    };
    let held = !cli.check || checks::report(&mut out);
    print!("{out}");
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if !held {
        eprintln!("error: a target was missed (see Targets)");
        std::process::exit(2);
    }
}

//! snowflake-mcp: a Model Context Protocol server for Snowflake that many AI clients share.
//!
//! The path of one tool call, module by module:
//!
//! 1. [`server`] — the transport (stdio or Streamable HTTP) and the per-MCP-session handler,
//!    which holds that session's context;
//! 2. [`tools`] — argument checks, the read-only [`guard`], identifier quoting ([`ident`]),
//!    and result rendering ([`render`]);
//! 3. [`backend`] — the database behind the tools: Snowflake through a [`backend::pool`] of
//!    sessions (the `snowflake-client` crate speaks the protocol), or the offline demo;
//! 4. [`error`] — how a failure reads to the model.
//!
//! [`config`] holds the settings and [`check`] the `snowflake-mcp check` command.

pub mod backend;
pub mod check;
pub mod config;
pub mod error;
pub mod guard;
pub mod ident;
pub mod render;
pub mod scheduler;
pub mod server;
pub mod tools;

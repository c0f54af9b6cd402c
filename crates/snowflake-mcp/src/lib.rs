//! snowflake-mcp: a Model Context Protocol server for Snowflake that many AI clients share.
//!
//! The Snowflake protocol lives in the `snowflake-client` crate; this crate holds the server:
//! configuration ([`config`]) and the operator commands ([`check`]).

pub mod check;
pub mod config;
pub mod guard;

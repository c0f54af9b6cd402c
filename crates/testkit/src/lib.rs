//! Test support shared by the workspace's integration tests.
//!
//! * [`fakesnow`] starts the `fakesnow` Snowflake emulator once per test binary on a free
//!   loopback port and stops it when the test process exits, however it exits.
//! * [`node_modules`], [`node22`] and [`mcp_python`] find the SDK test tooling (TypeScript
//!   MCP SDK, conformance suite, Node 22, Python MCP SDK).
//! * [`FaultProxy`] injects network faults (black hole, reset, delay) at the TCP level.
//! * [`Proxy`] sits between a server under test and the emulator and counts what crosses:
//!   logins, open sessions, and statements that overlap on one session token.
//! * [`Scripted`] is a tiny HTTP server whose answers a test scripts, for the parts of the
//!   protocol the emulator never exercises (token expiry, polling, chunks, retries).
//! * [`TestIdp`] is an identity provider (discovery, JWKS, minted and forged access tokens).
//! * [`test_certificates`] writes a test CA and a server certificate signed by it.
//! * [`Warehouse`] is a scripted Snowflake whose statements run over time and keep their
//!   results: asynchronous execution, polling, results read again by query id, chunks, aborts;
//!   and its [`cortex`] REST services (Analyst, Search, Agents), written from the documentation.
//! * [`Valkey`] runs a real Valkey (Redis) server for the shared state store's tests.

pub mod cortex;
mod fakesnow;
mod faults;
mod idp;
mod node;
mod proxy;
mod scripted;
mod tls;
mod valkey;
mod warehouse;

pub use fakesnow::{cache_dir, fakesnow, fakesnow_path, free_port, Fakesnow};
pub use faults::{Fault, FaultProxy};
pub use idp::{Forgery, TestIdp, EXCHANGE_CLIENT};
pub use node::{mcp_python, node22, node_modules};
pub use proxy::{Proxy, ProxyStats};
pub use scripted::{Reply, Request, Scripted};
pub use tls::{test_certificates, TestCertificates};
pub use valkey::{valkey_path, Valkey};
pub use warehouse::Warehouse;

//! Test support shared by the workspace's integration tests.
//!
//! * [`fakesnow`] starts the `fakesnow` Snowflake emulator once per test binary on a free
//!   loopback port and stops it when the test process exits, however it exits.
//! * [`Scripted`] is a tiny HTTP server whose answers a test scripts, for the parts of the
//!   protocol the emulator never exercises (token expiry, polling, chunks, retries).

mod fakesnow;
mod scripted;

pub use fakesnow::{fakesnow, fakesnow_path, free_port, Fakesnow};
pub use scripted::{Reply, Request, Scripted};

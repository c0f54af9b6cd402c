//! Observe: what is recorded about every call, for operators and for Snowflake admins.
//!
//! Owns the metric names and labels ([`metrics`]), the audit trail ([`audit`]), the
//! `QUERY_TAG` that attributes each statement to its client and session ([`attribution`]),
//! progress notifications ([`progress`]) and log redaction ([`redact`]).
//!
//! Recording never changes the outcome of a call and never blocks it for long: audit waits are
//! bounded, progress goes through a channel, metrics are counters. Nothing here may decide
//! whether a call runs (that is [`crate::policy`]), and no label, tag or log line may carry a
//! token, a session id or a personal claim.

pub mod attribution;
pub mod audit;
pub mod metrics;
pub mod progress;
pub mod redact;

//! Scheduling: the layers between the tools and the backend.
//!
//! Owns the [`gateway`] (metadata cache, coalescing of identical requests, cluster-wide
//! leases, statement timing) and the fair [`scheduler`] that decides whose statement gets the
//! next Snowflake session, by weight in session-time.
//!
//! It sees a call only as a client's share and a backend request: it must not check arguments
//! or access (the tools and [`crate::policy`] did that before), and it never holds a lock
//! across a wait on the network or on a queue. Every wait has the queue deadline.

pub mod gateway;
pub mod scheduler;

//! Who a caller is, as text: the prefixes that tell configured clients, people signed in with
//! OAuth and anonymous callers apart in a client id. Shared vocabulary: every stage that keys
//! anything by client (policy, state, observe, transport) reads these, and none of them may
//! define its own.

/// Every anonymous client id starts with this (configured ids may not), so an owner recorded
/// for a session says which kind of principal it was.
pub const ANONYMOUS_PREFIX: &str = "anonymous-";

/// Every person signed in with OAuth is the client `person:<name>` (configured ids may not
/// start so): their own fairness, limits, quotas, history and sessions, whichever policy entry
/// covers them.
pub const PERSON_PREFIX: &str = "person:";

/// The one anonymous client behind every anonymous sessionless request (protocol 2026-07-28):
/// such requests carry nothing to tell them apart, so they share one client — one context, and
/// the `[anonymous]` rate limit and concurrency as a group.
pub const SESSIONLESS_ANONYMOUS: &str = "anonymous-sessionless";

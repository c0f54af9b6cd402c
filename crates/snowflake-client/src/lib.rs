//! An async client for Snowflake's connector REST protocol — the protocol the official drivers
//! (snowflake-connector-python, gosnowflake, JDBC) speak — with no knowledge of MCP.
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo() -> snowflake_client::Result<()> {
//! use snowflake_client::{Client, ConnectionSettings, RowLimits};
//!
//! let settings = ConnectionSettings::from_env()?; // SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, ...
//! let client = Client::new(&settings)?;
//! let mut session = client.login().await?;
//! let result = session.query("SELECT CURRENT_VERSION()").await?;
//! let rows = result.collect(RowLimits { max_rows: 100, max_bytes: 1 << 20 }).await?;
//! println!("{}", rows.rows[0][0]);
//! session.close().await?;
//! # Ok(()) }
//! ```
//!
//! # The protocol, in brief
//!
//! * **Login** — `POST /session/v1/login-request?request_id=<uuid>&databaseName=..&schemaName=..
//!   &warehouse=..&roleName=..` with `{"data": {CLIENT_APP_ID, CLIENT_APP_VERSION, ACCOUNT_NAME,
//!   LOGIN_NAME, PASSWORD | AUTHENTICATOR + TOKEN, SESSION_PARAMETERS, CLIENT_ENVIRONMENT}}`.
//!   The answer holds a session `token` (and on Snowflake a `masterToken` for renewal). See
//!   [`auth`](crate::ConnectionSettings) for the four authentication methods.
//! * **Statements** — `POST /queries/v1/query-request?requestId=<uuid>` with header
//!   `Authorization: Snowflake Token="<token>"` and `{"sqlText", "asyncExec": false,
//!   "sequenceId", "parameters"}`. A statement still running after ~45 s answers code `333334`
//!   with `getResultUrl`, which is polled until the result is there.
//! * **Results** — `rowtype` (columns), then the first rows as JSON `rowset` or Arrow
//!   `rowsetBase64`, then `chunks` downloaded from cloud storage with `chunkHeaders` or `qrmk`;
//!   see [`QueryResult`] and [`Value`].
//! * **Expiry** — code `390112` means the session token expired: renew it with
//!   `POST /session/token-request` authorised by the master token; `390114` means the master
//!   token expired too: log in again. The [`Session`] does both without the caller noticing.
//! * **Abort** `POST /queries/v1/abort-request`, **keep-alive** `POST /session/heartbeat`,
//!   **close** `POST /session?delete=true`.
//!
//! Every body is gzip-compressed JSON and every answer an envelope `{success, code, message,
//! data}`; failures become an [`Error`] that keeps Snowflake's code, SQL state and query id.
//!
//! # Guarantees
//!
//! * One statement at a time per session, by the type system ([`Session::query`] takes
//!   `&mut self`); aborts and heartbeats go through a [`SessionHandle`].
//! * Secrets are never printed: [`Secret`] redacts itself and the token header is marked
//!   sensitive.

mod arrow;
mod auth;
mod error;
mod gzip;
mod http;
mod result;
mod session;
mod settings;
mod value;

pub use error::{Error, ErrorKind, Result};
pub use result::{QueryResult, RowLimits, Rows};
pub use session::{
    is_query_id, ApiEvent, Client, QueryIdCell, QueryOptions, QueryStatus, Session, SessionContext,
    SessionHandle, Stored,
};
pub use settings::{default_connections_path, ConnectionSettings, Secret, SETTING_NAMES};
pub use value::{Column, ColumnType, Decimal, Value};

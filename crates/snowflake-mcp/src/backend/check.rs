//! `snowflake-mcp check`: log in, look around, and say in plain words what is wrong.
//!
//! Prints the endpoint, then either the session context (user, role, warehouse, database,
//! schema, server version) or a diagnosis with a hint. Exit status: 0 when the login and the
//! probe worked, 1 otherwise.

use std::io::Write;
use std::process::ExitCode;

use snowflake_client::{Client, ConnectionSettings, Error, ErrorKind, RowLimits, Session, Value};

/// Run the check, writing the report to `out`.
pub async fn run(settings: &ConnectionSettings, out: &mut impl Write) -> ExitCode {
    match check(settings, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(out, "FAILED: {e}");
            let _ = writeln!(out, "hint: {}", hint(&e, settings));
            ExitCode::FAILURE
        }
    }
}

async fn check(settings: &ConnectionSettings, out: &mut impl Write) -> Result<(), Error> {
    let client = Client::new(settings)?;
    let _ = writeln!(out, "endpoint:   {}", client.endpoint());
    if let Some(fp) = client.key_fingerprint() {
        let _ = writeln!(out, "public key: {fp}");
    }
    let mut session = client.login().await?;
    let _ = writeln!(out, "login:      ok");
    // One function per statement: emulators lack some, and one missing must not hide the rest.
    let mut report = Vec::new();
    for (label, function) in [
        ("user", "CURRENT_USER()"),
        ("role", "CURRENT_ROLE()"),
        ("warehouse", "CURRENT_WAREHOUSE()"),
        ("database", "CURRENT_DATABASE()"),
        ("schema", "CURRENT_SCHEMA()"),
        ("version", "CURRENT_VERSION()"),
    ] {
        let value = probe(&mut session, function).await?;
        report.push((label, value));
    }
    for (label, value) in &report {
        let shown = value.clone().unwrap_or_else(|| "(none)".into());
        let _ = writeln!(out, "{:<11} {shown}", format!("{label}:"));
    }
    if report.iter().any(|(l, v)| *l == "warehouse" && v.is_none()) {
        let _ = writeln!(
            out,
            "warning:    no warehouse is in use; queries that need compute will fail. Set `warehouse` (SNOWFLAKE_WAREHOUSE)."
        );
    }
    session.close().await?;
    let _ = writeln!(out, "OK");
    Ok(())
}

/// The value of a context function; `None` when it is NULL or the server does not know it.
async fn probe(session: &mut Session, function: &str) -> Result<Option<String>, Error> {
    match session.query(&format!("SELECT {function}")).await {
        Ok(result) => {
            let rows = result
                .collect(RowLimits {
                    max_rows: 1,
                    max_bytes: 4096,
                })
                .await?;
            Ok(rows
                .rows
                .first()
                .and_then(|r| r.first())
                .filter(|v| !v.is_null())
                .map(Value::to_string))
        }
        Err(e) if e.kind() == ErrorKind::Sql => Ok(None),
        Err(e) => Err(e),
    }
}

/// What to try next, by kind of failure.
fn hint(e: &Error, settings: &ConnectionSettings) -> String {
    let message = e.message();
    match e.kind() {
        ErrorKind::Config => "fix the setting named above (config file, connections.toml or SNOWFLAKE_* variables).".into(),
        ErrorKind::Network if message.contains("resolve") => format!(
            "the host does not exist. Check `account` ({}); it looks like `myorg-myaccount` or `xy12345.us-east-1`.",
            settings.account.as_deref().unwrap_or("not set")
        ),
        ErrorKind::Network if message.contains("refused") => {
            "nothing listens there. Check `host`, `port` and `protocol`, or whether the service is up.".into()
        }
        ErrorKind::Network | ErrorKind::Timeout => "check the network path to Snowflake (proxy, firewall, VPN).".into(),
        ErrorKind::Authentication => match e.code() {
            Some("390144") => "check the key: the public key set on the user must match the fingerprint printed above.".into(),
            _ => "check `user` and the credentials for the chosen `authenticator`.".into(),
        },
        ErrorKind::Sql if e.code() == Some("000606") => {
            "no warehouse is in use: set `warehouse` (SNOWFLAKE_WAREHOUSE) to one your role may use.".into()
        }
        _ => "see the message above; rerun with RUST_LOG=debug for details.".into(),
    }
}

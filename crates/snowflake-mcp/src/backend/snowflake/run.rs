//! Running one statement, reading one kept result, and calling one REST API (Cortex), on a
//! session leased from a pool — each bounded by one deadline; a statement is aborted on
//! Snowflake if its call goes away.

use snowflake_client::{QueryOptions, RowLimits, Rows};

use super::super::pool::{AbortOnDrop, Connector, Pool};
use super::super::{Context, QueryLimits};
use crate::error::ToolError;

/// Rows `offset..` of query `query_id`'s stored result (`None` while it runs), read on a
/// session leased from `pool`: a `GET` of the result, no statement. Snowflake holds that GET
/// while the statement runs, so the read is bounded by `limits.timeout`, after which the
/// statement counts as still running.
pub(super) async fn stored_on<C: Connector<Session = snowflake_client::Session>>(
    pool: &Pool<C>,
    ctx: &Context,
    query_id: &str,
    offset: u64,
    limits: QueryLimits,
) -> Result<Option<Rows>, ToolError> {
    super::super::check_query_id(query_id)?;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut lease = pool.lease_by(ctx, deadline).await?;
    let stored = lease.session().stored_result(query_id, deadline).await;
    let mut result = match stored {
        Ok(snowflake_client::Stored::Done(result)) => result,
        Ok(snowflake_client::Stored::Running) => return Ok(None),
        Err(e) if e.kind() == snowflake_client::ErrorKind::Timeout => return Ok(None),
        Err(e) => return Err(ToolError::from(e)),
    };
    result.set_deadline(deadline + CALL_MARGIN);
    result.skip(offset).await?;
    let rows = result
        .collect(RowLimits {
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
        })
        .await?;
    lease.succeeded();
    Ok(Some(rows))
}

/// What a call may take beyond its statement's timeout: the `USE` statements before it, the
/// margin the client allows Snowflake to report the timeout, an abort, the result's chunks.
/// With a silent Snowflake the call answers within the timeout plus this.
pub(super) const CALL_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);
/// Kept for the abort of a statement that got no answer by the call's deadline.
const ABORT_RESERVE: std::time::Duration = std::time::Duration::from_secs(3);

/// Run one statement on a session leased from `pool`. Every request to Snowflake on its way —
/// waiting for a session, `USE`, the statement and its polling, the result's chunks — ends by
/// one deadline: the statement's timeout plus [`CALL_MARGIN`].
pub(super) async fn run_on<C: Connector<Session = snowflake_client::Session>>(
    pool: &Pool<C>,
    ctx: &Context,
    sql: &str,
    limits: RowLimits,
    timeout: std::time::Duration,
    detached: bool,
) -> Result<Rows, ToolError> {
    let deadline = tokio::time::Instant::now() + timeout + CALL_MARGIN;
    {
        let mut lease = pool.lease_by(ctx, deadline - ABORT_RESERVE).await?;
        let options = QueryOptions {
            timeout: Some(timeout),
            query_tag: Some(crate::observe::attribution::current()),
            deadline: Some(deadline - ABORT_RESERVE),
            detached,
            query_id: Some(crate::observe::progress::query_id_cell()),
        };
        // If this future is dropped (the call was cancelled, its MCP session closed, or a
        // timeout fired), the guard aborts the statement on Snowflake.
        let handle = lease.session().handle();
        let guard = AbortOnDrop::new(handle.clone(), pool.tasks());
        let run = async {
            match lease.session().query_with(sql, &options).await {
                Ok(mut result) => {
                    crate::observe::progress::report(crate::observe::progress::Stage::Fetching);
                    result.set_deadline(deadline);
                    result.collect(limits).await
                }
                Err(e) => Err(e),
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            never = report_status(&handle, options.query_id.clone()) => match never {},
        };
        guard.disarm();
        if outcome.is_ok() {
            lease.succeeded();
        }
        outcome.map_err(|e| {
            // A session that got no answer is retired (it may still run the statement) and
            // counts towards opening the circuit.
            lease.retire_if_broken(&e);
            ToolError::from(e)
        })
    }
}

/// While a statement runs, tell a call that asked for progress what Snowflake's monitoring
/// says of it (every 5 s: its status and the rows it produced). Never ends by itself.
async fn report_status(
    handle: &snowflake_client::SessionHandle,
    query_id: Option<snowflake_client::QueryIdCell>,
) -> std::convert::Infallible {
    let every = std::time::Duration::from_secs(5);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let Some(id) = query_id.as_ref().and_then(|c| c.get()) else {
            continue;
        };
        if !crate::observe::progress::wanted() {
            continue;
        }
        if let Ok(Some(s)) = handle.query_status(id).await {
            let status = s.status.to_ascii_lowercase().replace('_', " ");
            crate::observe::progress::running(match s.produced_rows {
                Some(rows) if rows > 0 => format!("Snowflake: {status}, {rows} rows produced"),
                _ => format!("Snowflake: {status}"),
            });
        }
    }
}

/// Call Snowflake's REST API `path` with `body` as a session leased from `pool` (so as its
/// user, and the role and warehouse of `ctx`), within `timeout`: a JSON answer, or `Null` once
/// an event stream handed to `on_event` ends. The session does nothing else meanwhile.
pub(super) async fn api_on<C: Connector<Session = snowflake_client::Session>>(
    pool: &Pool<C>,
    ctx: &Context,
    path: &str,
    body: &serde_json::Value,
    timeout: std::time::Duration,
    on_event: &mut (dyn FnMut(snowflake_client::ApiEvent) + Send),
) -> Result<serde_json::Value, ToolError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut lease = pool.lease_by(ctx, deadline).await?;
    crate::observe::progress::report(crate::observe::progress::Stage::Running);
    match lease.session().api(path, body, deadline, on_event).await {
        Ok(answer) => {
            lease.succeeded();
            Ok(answer)
        }
        Err(e) if e.kind() == snowflake_client::ErrorKind::Timeout => {
            lease.retire_if_broken(&e);
            Err(ToolError::new(
                "timeout",
                format!(
                    "Snowflake's Cortex answer did not end within {} s ([cortex] timeout_secs); ask something narrower, or try again",
                    timeout.as_secs()
                ),
            ))
        }
        Err(e) => {
            lease.retire_if_broken(&e);
            Err(api_error(e))
        }
    }
}

/// A REST API's refusal in the words a model can act on; other failures as any Snowflake error.
fn api_error(e: snowflake_client::Error) -> ToolError {
    let said = e.message().to_string();
    match e.http_status() {
        Some(400 | 409 | 422) => ToolError::invalid(format!("Snowflake refused the request: {said}")),
        Some(403) => ToolError::refused(format!(
            "Snowflake refused it for this role: {said} (the role needs USAGE on the Cortex object, or SELECT on the semantic view)"
        )),
        Some(404) => ToolError::invalid(format!(
            "Snowflake does not know it, or this role may not see it: {said}"
        )),
        Some(429) => {
            let mut busy = ToolError::new("busy", format!("Snowflake is rate limiting Cortex calls: {said}"));
            busy.retry_after_ms = Some(5_000);
            busy
        }
        _ => ToolError::from(e),
    }
}

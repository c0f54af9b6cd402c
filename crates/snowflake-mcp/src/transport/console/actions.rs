//! What an operator may do from the console, only with `[console] actions = true`: stop a
//! running statement, end an MCP session, pause or resume a client. Each action is written to
//! the audit trail under the client it touched (`tool` = `console.cancel`, `console.end_session`,
//! `console.pause`, `console.resume`), naming the operator who did it.
//!
//! Each is reachable two ways that share one function here: `POST /console/api/...` (JSON, for
//! scripts) and a form on the pages (`POST /console/act`, answered with a redirect back). Forms
//! need the console cookie, which is `SameSite=Strict`, and every route checks Host and Origin:
//! another site cannot make a signed-in operator's browser post one.

use axum::extract::{Form, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rmcp::transport::streamable_http_server::SessionManager;
use serde_json::{json, Value};

use super::signin::Operator;
use super::{Console, Shared};
use crate::state::AuditRecord;

/// Why an action was not done: the status and the words.
type Refused = (StatusCode, String);

fn refused(status: StatusCode, why: impl Into<String>) -> Refused {
    (status, why.into())
}

/// Actions are allowed, or 403 saying how to allow them.
fn allowed(c: &Console) -> Result<(), Refused> {
    if c.access.actions {
        Ok(())
    } else {
        Err(refused(
            StatusCode::FORBIDDEN,
            "the console's actions are off; set [console] actions = true to allow them",
        ))
    }
}

/// Write the action to the audit trail under `client`.
async fn audit(c: &Console, client: &str, tool: &str, what: String, who: &Operator) {
    c.app
        .tools
        .auditor
        .record(AuditRecord {
            time_ms: chrono::Utc::now().timestamp_millis(),
            client_id: client.to_string(),
            tool: tool.to_string(),
            statement: Some(what),
            status: "ok".into(),
            confirmed: Some(format!("by {} from the console", who.0)),
            ..Default::default()
        })
        .await;
}

/// Stop the statement running here that the console names `id`.
pub async fn cancel(c: &Console, id: &str, who: &Operator) -> Result<Value, Refused> {
    allowed(c)?;
    let by = format!("the gateway's operator ({}) from the console", who.0);
    let Some(stopped) = c.app.tools.results.stop(id, &by) else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "no such statement is running on this replica (it may have finished)",
        ));
    };
    let what = format!(
        "stopped statement {}{}: {}",
        stopped.id,
        stopped
            .query_id
            .as_deref()
            .map(|q| format!(" (query id {q})"))
            .unwrap_or_default(),
        stopped.sql
    );
    audit(c, &stopped.client, "console.cancel", what, who).await;
    Ok(json!({"cancelled": stopped}))
}

/// End the MCP session the console names `id`: closed here and forgotten by the store, so it
/// cannot be resumed; its client must start a new one.
pub async fn end_session(c: &Console, id: &str, who: &Operator) -> Result<Value, Refused> {
    allowed(c)?;
    let Some((mcp_id, session)) = c.app.registry.find_shown(id) else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "no such session is live on this replica",
        ));
    };
    let store = c.app.tools.admission.store();
    let deleted = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.delete_session(&mcp_id),
    )
    .await;
    if !matches!(deleted, Ok(Ok(()))) {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store could not forget the session; nothing was ended, try again",
        ));
    }
    if let Err(e) = c.sessions.close_session(&mcp_id.into()).await {
        tracing::debug!(error = %e, "the session had already closed");
    }
    let what = format!(
        "ended MCP session {id} ({})",
        session.software.as_deref().unwrap_or("unknown software")
    );
    audit(c, &session.client, "console.end_session", what, who).await;
    Ok(json!({"ended": id, "client": session.client}))
}

/// Pause `client` (its new calls get `unavailable` with `reason`) or resume it (`reason` None).
pub async fn pause(
    c: &Console,
    client: &str,
    reason: Option<&str>,
    who: &Operator,
) -> Result<Value, Refused> {
    allowed(c)?;
    if c.app.clients.by_id(client).is_none() {
        return Err(refused(StatusCode::NOT_FOUND, "no such configured client"));
    }
    let change = reason.map(|r| (r, who.0.as_str()));
    let list = c
        .app
        .tools
        .pauses
        .change(client, change)
        .await
        .map_err(|why| {
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("nothing changed: {why}"),
            )
        })?;
    let (tool, what) = match list.get(client) {
        Some(p) => (
            "console.pause",
            format!("paused client {client}: {}", p.reason),
        ),
        None => ("console.resume", format!("resumed client {client}")),
    };
    audit(c, client, tool, what, who).await;
    Ok(json!({"client": client, "paused": list.get(client)}))
}

fn answer(done: Result<Value, Refused>) -> Response {
    match done {
        Ok(v) => Json(v).into_response(),
        Err((status, why)) => (status, Json(json!({"error": why}))).into_response(),
    }
}

pub(super) async fn cancel_api(
    State(c): Shared,
    Extension(who): Extension<Operator>,
    Path(id): Path<String>,
) -> Response {
    answer(cancel(&c, &id, &who).await)
}

pub(super) async fn end_session_api(
    State(c): Shared,
    Extension(who): Extension<Operator>,
    Path(id): Path<String>,
) -> Response {
    answer(end_session(&c, &id, &who).await)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    #[serde(default)]
    reason: String,
}

pub(super) async fn pause_api(
    State(c): Shared,
    Extension(who): Extension<Operator>,
    Path(client): Path<String>,
    body: Option<Json<PauseBody>>,
) -> Response {
    let reason = body.map(|Json(b)| b.reason).unwrap_or_default();
    answer(pause(&c, &client, Some(&reason), &who).await)
}

pub(super) async fn resume_api(
    State(c): Shared,
    Extension(who): Extension<Operator>,
    Path(client): Path<String>,
) -> Response {
    answer(pause(&c, &client, None, &who).await)
}

/// A form on a page: which action, on what.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Act {
    action: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/act`: a page's action; back to the page it came from, saying what happened.
pub(super) async fn act(
    State(c): Shared,
    Extension(who): Extension<Operator>,
    Form(form): Form<Act>,
) -> Response {
    let (done, page) = match form.action.as_str() {
        "cancel" => (cancel(&c, &form.id, &who).await, "/console/queries"),
        "end_session" => (end_session(&c, &form.id, &who).await, "/console/sessions"),
        "pause" => (
            pause(&c, &form.id, Some(&form.reason), &who).await,
            "/console/clients",
        ),
        "resume" => (pause(&c, &form.id, None, &who).await, "/console/clients"),
        _ => return (StatusCode::BAD_REQUEST, "unknown action\n").into_response(),
    };
    let note = match done {
        Ok(_) => format!("done: {} {}", form.action.replace('_', " "), form.id),
        Err((_, why)) => format!("not done: {why}"),
    };
    let location = format!("{page}?note={}", urlencode(&note));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Percent-encode everything but unreserved characters.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

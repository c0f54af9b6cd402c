//! Asking a person to confirm a write, in whatever way the client can.
//!
//! The tools refuse a write that needs a confirmation with `confirmation_required`, a
//! single-use token and the `prompt` a person should see (see [`crate::tools::writes`]). Here
//! that refusal becomes a question when the request's client can put one to a person:
//!
//! * **2026-07-28** clients that declare form elicitation get an `input_required` answer
//!   (multi-round-trip requests): `inputRequests.confirm` is the form, `requestState` the
//!   token. The client repeats the call with `inputResponses.confirm` and the state; an
//!   accepted form runs the write with that token, anything else runs nothing.
//! * **2025-11-25** sessions whose client declared form elicitation are asked at once with an
//!   `elicitation/create` request, within the token's lifetime; an accepted form repeats the
//!   call with the token.
//! * Any other client gets the refusal itself: the model repeats the call with `confirm`.
//!
//! Either way the repeated call carries the token and the person's [`Answer`]; the tools decide
//! (and audit) what it means. The token is checked whatever the path: bound to the statement,
//! the client and the session, single use. A declined form uses it up, so it cannot be
//! replayed with `confirm`.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ElicitRequestParams,
    ElicitationAction, InputRequiredResult, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};

use super::door::error_kind;
use crate::tools::writes::{Answer, AskedThrough};

/// The key of the confirmation among `inputRequests`.
const KEY: &str = "confirm";

/// How this request's client can put a question to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// An `input_required` answer (2026-07-28).
    Rounds,
    /// An `elicitation/create` request now (2025-11-25 and before).
    Elicit,
    /// Neither: the model repeats the call with `confirm`.
    Neither,
}

fn reach(context: &RequestContext<RoleServer>) -> Reach {
    let modern = context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let form = context
        .client_capabilities()
        .and_then(|c| c.elicitation)
        // `{}` means form only; otherwise form must be named.
        .is_some_and(|e| e.form.is_some() || e.url.is_none());
    match (form, modern) {
        (false, _) => Reach::Neither,
        (true, true) => Reach::Rounds,
        (true, false) => Reach::Elicit,
    }
}

/// A person's answer to the form: confirmed only when they accepted it with `confirm: true`.
fn accepted(answer: &Value) -> bool {
    answer["action"] == "accept" && answer["content"][KEY] == json!(true)
}

/// The form a person answers.
fn form(prompt: &str) -> Value {
    json!({"mode": "form", "message": prompt, "requestedSchema": {"type": "object",
        "properties": {KEY: {"type": "boolean", "title": "Run this statement",
            "description": "Check to run it on Snowflake; leave unchecked or decline to run nothing."}},
        "required": [KEY]}})
}

/// The token and prompt of a `confirmation_required` result.
fn confirmation(result: &CallToolResult) -> Option<(String, String)> {
    if error_kind(result).as_deref() != Some("confirmation_required") {
        return None;
    }
    let error = &result.meta.as_ref()?.0.get("error")?;
    Some((
        error["confirm"].as_str()?.to_string(),
        error["prompt"].as_str()?.to_string(),
    ))
}

/// Run `request` through `call`, asking a person when a write needs it; `valid_for` is how
/// long a token lives (and so how long a question waits for its answer).
pub(super) async fn call<C, F>(
    call: C,
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
    valid_for: Duration,
) -> Result<CallToolResponse, McpError>
where
    C: Fn(CallToolRequestParams, Option<Answer>) -> F,
    F: Future<Output = CallToolResult>,
{
    let mut request = request;
    // A repeated 2026-07-28 call that carries the person's answer.
    let (answers, state) = (request.input_responses.take(), request.request_state.take());
    if let (Some(answer), Some(state)) = (answers.as_ref().and_then(|a| a.get(KEY)), state) {
        let answer = Answer {
            through: AskedThrough::InputRequired,
            accepted: accepted(answer),
        };
        return Ok(call(with_token(request, &state), Some(answer)).await.into());
    }
    let result = call(request.clone(), None).await;
    let Some((token, prompt)) = confirmation(&result) else {
        return Ok(result.into());
    };
    match reach(context) {
        Reach::Neither => Ok(result.into()),
        Reach::Rounds => {
            let input = json!({"resultType": "input_required",
                "inputRequests": {KEY: {"method": "elicitation/create", "params": form(&prompt)}},
                "requestState": token});
            let input: InputRequiredResult = serde_json::from_value(input)
                .map_err(|e| McpError::internal_error(format!("input_required: {e}"), None))?;
            Ok(CallToolResponse::InputRequired(input))
        }
        Reach::Elicit => {
            let params: ElicitRequestParams = serde_json::from_value(form(&prompt))
                .map_err(|e| McpError::internal_error(format!("elicitation: {e}"), None))?;
            let answer = context
                .peer
                .create_elicitation_with_timeout(params, Some(valid_for))
                .await;
            let accepted = match answer {
                Ok(a) => {
                    a.action == ElicitationAction::Accept
                        && a.content.as_ref().is_some_and(|c| c[KEY] == json!(true))
                }
                Err(e) => {
                    // No answer in time (or the client failed to ask): nothing runs.
                    tracing::warn!(error = %e, "a write's confirmation got no answer");
                    false
                }
            };
            let answer = Answer {
                through: AskedThrough::Elicitation,
                accepted,
            };
            Ok(call(with_token(request, &token), Some(answer)).await.into())
        }
    }
}

/// `request` with `confirm` set to `token`.
fn with_token(mut request: CallToolRequestParams, token: &str) -> CallToolRequestParams {
    request
        .arguments
        .get_or_insert_with(Default::default)
        .insert(KEY.into(), Value::String(token.to_string()));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accepted_form_with_confirm_true_confirms() {
        assert!(accepted(
            &json!({"action": "accept", "content": {"confirm": true}})
        ));
        for answer in [
            json!({"action": "accept", "content": {"confirm": false}}),
            json!({"action": "accept", "content": {"confirm": "true"}}),
            json!({"action": "accept"}),
            json!({"action": "decline", "content": {"confirm": true}}),
            json!({"action": "cancel"}),
            json!(null),
        ] {
            assert!(!accepted(&answer), "{answer}");
        }
    }

    #[test]
    fn the_form_parses_as_rmcp_models_it() {
        let params: ElicitRequestParams = serde_json::from_value(form("Run it?")).unwrap();
        let back = serde_json::to_value(params).unwrap();
        assert_eq!(back["message"], "Run it?");
        assert_eq!(back["requestedSchema"]["required"], json!(["confirm"]));
    }
}

//! Small HTTP-level adjustments around rmcp's Streamable HTTP transport, as axum layers.
//!
//! * [`delete_answers_ok`]: a session DELETE answers 204 (rmcp says 202, which SDKs read as a
//!   failed termination).
//! * [`cancel_on_disconnect`]: a sessionless request (protocol 2026-07-28) is cancelled when its
//!   HTTP response is dropped before it completes — the client went away and there is no session
//!   to come back to — so its statement is aborted on Snowflake instead of running on unobserved.
//!   Calls in a session are not: their stream can be resumed with `Last-Event-ID` (see
//!   [`crate::events`]).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

/// Cancelled when a sessionless request's response is dropped; the tool call watches it.
#[derive(Clone, Debug)]
pub struct Disconnect(pub CancellationToken);

/// Answer a session DELETE with 204 No Content.
pub async fn delete_answers_ok(request: Request, next: Next) -> Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Give a sessionless POST a [`Disconnect`] token, cancelled when its response body is dropped
/// (by the client disconnecting, or after the body ended — when the call is over anyway).
pub async fn cancel_on_disconnect(mut request: Request, next: Next) -> Response {
    let sessionless = request.method() == axum::http::Method::POST
        && !request.headers().contains_key("mcp-session-id");
    if !sessionless {
        return next.run(request).await;
    }
    let token = CancellationToken::new();
    request.extensions_mut().insert(Disconnect(token.clone()));
    let response = next.run(request).await;
    if response.headers().contains_key("mcp-session-id") {
        return response; // an `initialize`: the session lives on
    }
    let guard = token.drop_guard();
    let (parts, body) = response.into_parts();
    let body = tokio_stream::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _alive = &guard;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

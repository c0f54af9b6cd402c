//! Small HTTP-level adjustments around rmcp's Streamable HTTP transport, as axum layers.
//!
//! * [`delete_answers_ok`]: a session DELETE answers 204 (rmcp says 202, which SDKs read as a
//!   failed termination).
//! * [`cancel_on_disconnect`]: a sessionless request (protocol 2026-07-28) is cancelled when its
//!   HTTP response is dropped before it completes — the client went away and there is no session
//!   to come back to — so its statement is aborted on Snowflake instead of running on unobserved.
//!   Calls in a session are not: their stream can be resumed with `Last-Event-ID` (see
//!   [`crate::transport::events`]).
//! * [`check_host`]: every route answers only to the expected `Host` names and browser
//!   `Origin`s — the DNS-rebinding check, with rmcp's rules, made once for every route
//!   (`/mcp`, `/healthz`, `/readyz`, `/metrics`, the OAuth metadata); rmcp's own check for `/mcp`
//!   is turned off so a call is not checked twice.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

/// The `Host` names and browser origins the server answers to (`server.allowed_hosts` and
/// `server.allowed_origins` besides the local ones).
pub struct AllowedHosts {
    /// (host, port): a port of `None` matches any.
    hosts: Vec<(String, Option<u16>)>,
    /// (scheme, host, port): a port of `None` matches any (`:*`, or no port given).
    origins: Vec<(String, String, Option<u16>)>,
    null_origin: bool,
}

impl AllowedHosts {
    pub fn new(hosts: &[String], origins: &[String]) -> AllowedHosts {
        AllowedHosts {
            // An entry that is no authority (a bare IPv6 address) is a host name of any port.
            hosts: hosts
                .iter()
                .filter(|h| !h.trim().is_empty())
                .map(|h| authority(h).unwrap_or_else(|| (normalize_host(h.trim()), None)))
                .collect(),
            origins: origins
                .iter()
                .filter_map(|o| {
                    let (text, any_port) = match o.trim().strip_suffix(":*") {
                        Some(base) => (base, true),
                        None => (o.trim(), false),
                    };
                    let (scheme, host, port) = origin(text)?;
                    Some((scheme, host, if any_port { None } else { port }))
                })
                .collect(),
            null_origin: origins
                .iter()
                .any(|o| o.trim().eq_ignore_ascii_case("null")),
        }
    }

    /// True when the (host, port) of a request is one the server answers to.
    fn allows(&self, (host, port): &(String, Option<u16>)) -> bool {
        self.hosts
            .iter()
            .any(|(h, p)| h == host && (p.is_none() || p == port))
    }

    fn origin_allowed(&self, value: &str) -> bool {
        if value.trim().eq_ignore_ascii_case("null") {
            return self.null_origin;
        }
        let Some((scheme, host, port)) = origin(value) else {
            return false;
        };
        let port = port.or(default_port(&scheme));
        self.origins.iter().any(|(s, h, p)| {
            *s == scheme && *h == host && (p.is_none() || p.or(default_port(s)) == port)
        })
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

fn authority(text: &str) -> Option<(String, Option<u16>)> {
    let a = axum::http::uri::Authority::try_from(text.trim()).ok()?;
    Some((normalize_host(a.host()), a.port_u16()))
}

fn origin(text: &str) -> Option<(String, String, Option<u16>)> {
    let uri = axum::http::Uri::try_from(text.trim()).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let a = uri.authority()?;
    Some((scheme, normalize_host(a.host()), a.port_u16()))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Refuse a request whose `Host` (or HTTP/2 authority) or `Origin` is not allowed: 403, or 400
/// without a host at all.
pub async fn check_host(
    axum::extract::State(allowed): axum::extract::State<std::sync::Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    // As rmcp reads it: the Host header, else (HTTP/2) the URI's authority; one that cannot be
    // read is a bad request.
    let host = match request.headers().get(axum::http::header::HOST) {
        Some(value) => value.to_str().ok().and_then(authority),
        None => request
            .uri()
            .authority()
            .map(|a| (normalize_host(a.host()), a.port_u16())),
    };
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "Bad Request: missing or invalid Host header\n",
        )
            .into_response();
    };
    if !allowed.allows(&host) {
        tracing::warn!("refused a request with a Host that is not allowed (DNS rebinding?)");
        return (
            StatusCode::FORBIDDEN,
            "Forbidden: Host header is not allowed\n",
        )
            .into_response();
    }
    if let Some(origin) = request.headers().get(axum::http::header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| allowed.origin_allowed(o)) {
            tracing::warn!("refused a request from a browser origin that is not allowed");
            return (StatusCode::FORBIDDEN, "Forbidden: Origin is not allowed\n").into_response();
        }
    }
    next.run(request).await
}

/// A response body that holds `G` until it is finished or dropped (a count, a cancellation
/// guard), keeping the body's size, so a `Content-Length` survives the wrapping.
pub struct Holding<G> {
    body: axum::body::Body,
    _held: G,
}

impl<G> Holding<G> {
    pub fn wrap(response: Response, held: G) -> Response
    where
        G: Send + Unpin + 'static,
    {
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, axum::body::Body::new(Holding { body, _held: held }))
    }
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

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
    Holding::wrap(response, token.drop_guard())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_are_matched_like_the_mcp_endpoint_does() {
        let allowed = AllowedHosts::new(
            &[
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
                "mcp.example.com:8443".into(),
            ],
            &[
                "http://localhost:*".into(),
                "https://app.example.com".into(),
            ],
        );
        let host_allowed = |h: &str| authority(h).is_some_and(|a| allowed.allows(&a));
        for ok in [
            "localhost",
            "LOCALHOST:8765",
            "127.0.0.1:1",
            "[::1]:80",
            "mcp.example.com:8443",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "mcp.example.com",
            "mcp.example.com:80",
            "127.0.0.2",
            "",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
        assert!(allowed.origin_allowed("http://localhost:3000"));
        assert!(allowed.origin_allowed("https://app.example.com"));
        assert!(allowed.origin_allowed("https://app.example.com:443"));
        assert!(!allowed.origin_allowed("https://evil.example"));
        assert!(!allowed.origin_allowed("http://app.example.com"));
        assert!(!allowed.origin_allowed("null"));
    }
}

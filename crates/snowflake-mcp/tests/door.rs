//! The HTTP door under attack: sockets that trickle blank lines, one address taking every
//! slot (directly or through a trusted proxy), Host checks on every route, oversized
//! `initialize` requests and clients piling up stored sessions.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw request with the given `Host` and extra header lines; (status, body), or `None` when
/// the server closed the connection without an answer.
async fn raw(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    extra: &str,
) -> Option<(u16, String)> {
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n{extra}\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer or a close within 10 s")
            .ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        // Enough for a short answer with a Content-Length.
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            let chunked_end = length.is_none() && body.ends_with("0\r\n\r\n");
            if chunked_end || length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        text.split_once("\r\n\r\n").map_or("", |p| p.1).to_string(),
    ))
}

/// A connection from `source` (a loopback address) to the server.
async fn connect_from(source: &str, server: &Server) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket
        .connect(server.base.trim_start_matches("http://").parse().unwrap())
        .await
}

fn host_of(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Sockets that send blank lines and then one more blank line every 200 ms, for as long as the
/// server lets them.
async fn tricklers(server: &Server, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(host_of(server)).await else {
            continue;
        };
        if s.write_all(b"\r\n\r\n").await.is_err() {
            continue;
        }
        tasks.push(tokio::spawn(async move {
            for _ in 0..300 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if s.write_all(b"\r\n").await.is_err() {
                    return;
                }
            }
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_trickling_blank_lines_do_not_lock_out_a_real_client() {
    // A header deadline far beyond the test: the tricklers must lose their slots by eviction.
    let config = write_config(
        "trickle",
        "[server]\nmax_connections = 4\nheader_read_timeout_secs = 60\nconnection_idle_timeout_secs = 60\n",
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    for hostile in [4, 400] {
        let tasks = tricklers(&server, hostile).await;
        let t = Instant::now();
        let mut s = TcpStream::connect(host_of(&server)).await.unwrap();
        let answer = raw(&mut s, "GET", "/healthz", &host_of(&server), "").await;
        assert_eq!(
            answer.map(|a| a.0),
            Some(200),
            "with {hostile} trickling sockets, /healthz was refused"
        );
        let client = server.client().await;
        ok(&client, "get_context", json!({})).await;
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        drop(client);
        for t in tasks {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection_slot() {
    let config = write_config("per-ip", "[server]\nmax_connections_per_ip = 2\n");
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let host = host_of(&server);
    // Two real keep-alive connections from 127.0.0.1.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.1", &server).await.unwrap();
        let (status, _) = raw(&mut s, "GET", "/healthz", &host, "").await.unwrap();
        assert_eq!(status, 200);
        held.push(s);
    }
    // A third from the same address is closed without an answer.
    let mut third = connect_from("127.0.0.1", &server).await.unwrap();
    assert_eq!(raw(&mut third, "GET", "/healthz", &host, "").await, None);
    // Another address is served.
    let mut other = connect_from("127.0.0.2", &server).await.unwrap();
    let (status, _) = raw(&mut other, "GET", "/healthz", &host, "").await.unwrap();
    assert_eq!(status, 200);
    // Closing one makes room again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from("127.0.0.1", &server).await.unwrap();
        if raw(&mut again, "GET", "/healthz", &host, "")
            .await
            .map(|a| a.0)
            == Some(200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_requests_are_limited_per_forwarded_address() {
    let config = write_config(
        "forwarded",
        "[server]\nmax_connections_per_ip = 1\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let host = host_of(&server);
    // A request from 203.0.113.5 (through the proxy) still in progress: its body never ends.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 203.0.113.5\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let hold = || async {
        let mut held = TcpStream::connect(&host).await.unwrap();
        held.write_all(head.as_bytes()).await.unwrap();
        held
    };
    let mut pending = hold().await;
    let get = |xff: &'static str| {
        let host = host.clone();
        async move {
            let mut s = TcpStream::connect(&host).await.unwrap();
            raw(&mut s, "GET", "/healthz", &host, xff)
                .await
                .map(|a| a.0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get("X-Forwarded-For: 203.0.113.5\r\n").await;
        if answer == Some(429) {
            break;
        }
        // A probe can reach the server before the held request's head does; the held request
        // is then the one refused, and is held again.
        let mut seen = [0u8; 512];
        let held =
            match tokio::time::timeout(Duration::from_millis(20), pending.read(&mut seen)).await {
                Err(_) => None,
                Ok(Ok(0)) => Some("closed by the server".to_string()),
                Ok(Ok(n)) => Some(format!(
                    "answered {:?}",
                    String::from_utf8_lossy(&seen[..n])
                )),
                Ok(Err(e)) => Some(format!("failed: {e}")),
            };
        assert!(
            Instant::now() < deadline,
            "a second request from 203.0.113.5 was never refused (last answer {answer:?}; \
             the held request: {})",
            held.as_deref().unwrap_or("still open, unanswered")
        );
        if held.is_some() {
            pending = hold().await;
        }
    }
    // What a client writes left of the proxy's entry is not believed.
    assert_eq!(
        get("X-Forwarded-For: 198.51.100.9, 203.0.113.5\r\n").await,
        Some(429)
    );
    assert_eq!(get("X-Forwarded-For: 198.51.100.7\r\n").await, Some(200));
    assert_eq!(get("").await, Some(200), "the proxy's own requests");
    drop(pending);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("X-Forwarded-For: 203.0.113.5\r\n").await != Some(200) {
        assert!(Instant::now() < deadline, "the count was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_the_host_and_origin() {
    let server = Server::start(&["--demo"], &[]).await;
    let host = host_of(&server);
    for path in ["/healthz", "/readyz", "/metrics", "/mcp"] {
        let mut s = TcpStream::connect(&host).await.unwrap();
        let (status, _) = raw(&mut s, "GET", path, "rebound.example:80", "")
            .await
            .unwrap();
        assert_eq!(status, 403, "{path} answered a foreign Host");
        let mut s = TcpStream::connect(&host).await.unwrap();
        let (status, _) = raw(
            &mut s,
            "GET",
            path,
            &host,
            "Origin: https://evil.example\r\n",
        )
        .await
        .unwrap();
        assert_eq!(status, 403, "{path} answered a foreign Origin");
        let mut s = TcpStream::connect(&host).await.unwrap();
        let (status, _) = raw(&mut s, "GET", path, "bad host", "").await.unwrap();
        assert_eq!(status, 400, "{path} answered an unreadable Host");
    }
    let mut s = TcpStream::connect(&host).await.unwrap();
    let (status, _) = raw(
        &mut s,
        "GET",
        "/healthz",
        &host,
        "Origin: http://localhost:3000\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "a local page may");
}

const INIT_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

fn initialize(capability_bytes: usize) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"experimental": {"padding": {"x": "y".repeat(capability_bytes)}}},
        "clientInfo": {"name": "big", "version": "1"}
    }})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_initialize_is_refused_and_nothing_is_stored() {
    let state = temp_state();
    let server = Server::start(&["--demo", "--state", &state], &[]).await;
    for _ in 0..20 {
        let (status, head, body) = raw_http(
            &server.base,
            "POST",
            "/mcp",
            &INIT_HEADERS,
            &initialize(900_000),
        )
        .await;
        assert!(
            body.contains("-32602") && body.contains("at most 16384"),
            "a clear JSON-RPC error: {status} {body}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("mcp-session-id"),
            "{head}"
        );
    }
    // A normal one is stored.
    let (status, head, _) = raw_http(
        &server.base,
        "POST",
        "/mcp",
        &INIT_HEADERS,
        &initialize(100),
    )
    .await;
    assert_eq!(status, 200);
    let id = session_of(&head);
    assert_eq!(stored_sessions(&state), [id]);
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{state}{suffix}")).ok())
        .map(|m| m.len())
        .sum();
    assert!(size < 2 << 20, "the store grew to {size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_sessions_are_capped_per_client_and_for_anonymous_clients_together() {
    let config = write_config(
        "stored-caps",
        &format!(
            "[sessions]\nmax_stored_per_client = 3\nmax_stored_anonymous = 2\n[[clients]]\nid = \"a\"\ntoken_sha256 = \"{}\"\n",
            sha("token-a")
        ),
    );
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let open = |auth: Option<&'static str>| {
        let base = server.base.clone();
        async move {
            let mut h = INIT_HEADERS.to_vec();
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            let (_, head, body) = raw_http(&base, "POST", "/mcp", &h, &initialize(10)).await;
            let id = head
                .to_ascii_lowercase()
                .contains("mcp-session-id")
                .then(|| session_of(&head));
            (id, body)
        }
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            open(Some("Bearer token-a"))
                .await
                .0
                .expect("within the cap"),
        );
    }
    let (refused, body) = open(Some("Bearer token-a")).await;
    assert!(refused.is_none(), "a fourth stored session");
    assert!(
        body.contains("too_many_sessions") && body.contains("3 stored sessions"),
        "{body}"
    );
    // Closing one makes room.
    let h = [
        ("mcp-session-id", ids[0].as_str()),
        ("mcp-protocol-version", "2025-06-18"),
        ("authorization", "Bearer token-a"),
    ];
    let (status, _, _) = raw_http(&server.base, "DELETE", "/mcp", &h, "").await;
    assert_eq!(status, 204);
    assert!(
        open(Some("Bearer token-a")).await.0.is_some(),
        "room after a DELETE"
    );

    // Anonymous clients (each session its own client) are bounded together.
    let config = write_config("stored-anonymous", "[sessions]\nmax_stored_anonymous = 2\n");
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    for n in 0..3 {
        let (_, head, body) =
            raw_http(&server.base, "POST", "/mcp", &INIT_HEADERS, &initialize(10)).await;
        let stored = head.to_ascii_lowercase().contains("mcp-session-id");
        assert_eq!(stored, n < 2, "anonymous session {n}: {body}");
        if n == 2 {
            assert!(body.contains("anonymous clients together"), "{body}");
        }
    }
}

//! A scripted HTTP peer: every request is recorded and answered by the test's own closure.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// One recorded request. Header names are lower-case; a gzip body is decompressed.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: serde_json::Value,
}

/// The answer to a request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// When not empty, the body instead: each part sent after its pause (a streamed answer).
    pub parts: Vec<(std::time::Duration, Vec<u8>)>,
}

impl Reply {
    /// HTTP 200 with a JSON body.
    pub fn json(value: serde_json::Value) -> Self {
        Reply {
            status: 200,
            body: value.to_string().into_bytes(),
            headers: vec![("content-type".into(), "application/json".into())],
            parts: vec![],
        }
    }
    /// HTTP 200 with a JSON body and a status of choice.
    pub fn json_status(status: u16, value: serde_json::Value) -> Self {
        Reply {
            status,
            ..Reply::json(value)
        }
    }
    /// HTTP 200 `text/event-stream`: each `(pause, event, data)` sent after its pause.
    pub fn events(events: Vec<(std::time::Duration, String, String)>) -> Self {
        Reply {
            status: 200,
            body: vec![],
            headers: vec![("content-type".into(), "text/event-stream".into())],
            parts: events
                .into_iter()
                .map(|(pause, event, data)| {
                    (
                        pause,
                        format!("event: {event}\ndata: {data}\n\n").into_bytes(),
                    )
                })
                .collect(),
        }
    }
    /// Any status with a plain body.
    pub fn status(status: u16, body: &str) -> Self {
        Reply {
            status,
            body: body.as_bytes().to_vec(),
            headers: vec![],
            parts: vec![],
        }
    }
    /// HTTP 200 with raw bytes.
    pub fn bytes(body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            body,
            headers: vec![],
            parts: vec![],
        }
    }
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running scripted server on a loopback port; stops when dropped.
pub struct Scripted {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Start answering with `script` (called once per request, after it is recorded).
    pub async fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Scripted {
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (recorded, script) = (recorded.clone(), script.clone());
                async move {
                    let request = record(method, uri, headers, body);
                    recorded.lock().unwrap().push(request.clone());
                    let reply = script(&request);
                    let mut response =
                        Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
                    for (k, v) in reply.headers {
                        response = response.header(k, v);
                    }
                    if reply.parts.is_empty() {
                        return response.body(Body::from(reply.body)).unwrap();
                    }
                    let parts = futures_util::stream::unfold(
                        reply.parts.into_iter(),
                        |mut parts| async move {
                            let (pause, bytes) = parts.next()?;
                            tokio::time::sleep(pause).await;
                            Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), parts))
                        },
                    );
                    response.body(Body::from_stream(parts)).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Scripted {
            addr,
            requests,
            task,
        }
    }

    /// All requests so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests went to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Request {
    let query = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut raw = body.to_vec();
    if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        raw = out;
    }
    Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
    }
}

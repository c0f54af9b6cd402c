//! The operator's console API (first part): `GET /console/api/overview` shows what `/metrics`
//! shows, to the admin token only, behind the same Host checks; `snowflake-mcp status` prints
//! it. Off unless `[console]` is configured.

mod common;

use common::*;
use serde_json::{json, Value};

async fn overview(base: &str, token: Option<&str>, host: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (status, _, body) = match host {
        // A request for another Host name (DNS rebinding) goes out raw.
        Some(h) => {
            let addr = base.trim_start_matches("http://");
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let head = format!(
                "GET /console/api/overview HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n{}\r\n",
                auth.map(|a| format!("Authorization: {a}\r\n"))
                    .unwrap_or_default()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
            (status, String::new(), response)
        }
        None => raw_http(base, "GET", "/console/api/overview", &headers, "").await,
    };
    (status, body)
}

/// The `snowflake_mcp_sessions` gauge of a client in a `/metrics` page.
fn sessions_metric(metrics: &str, client: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("snowflake_mcp_sessions{") && l.contains(&format!("client=\"{client}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_is_for_the_admin_token_only_and_matches_the_metrics() {
    let config = write_config(
        "console",
        &format!(
            "[console]\ntoken_sha256 = \"{}\"\n\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 10\nrate_per_minute = 600\n",
            sha("admin-token"),
            sha("analyst-token"),
            sha("bot-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let a1 = server.client_with_token("analyst-token").await;
    let _a2 = server.client_with_token("analyst-token").await;
    let bot = server.client_with_token("bot-token").await;
    ok(
        &a1,
        "run_query",
        json!({"sql": "SELECT COUNT(*) FROM ORDERS"}),
    )
    .await;
    ok(&bot, "list_databases", json!({})).await;
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;

    // Nobody else sees it: no token, a client's token, a wrong one; nor another Host name.
    for token in [None, Some("analyst-token"), Some("admin-tokeN")] {
        let (status, body) = overview(&server.base, token, None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(!body.contains("analyst"), "{body}");
    }
    let (status, _) = overview(&server.base, Some("admin-token"), Some("evil.example")).await;
    assert_eq!(status, 403, "the Host check applies");

    let (status, body) = overview(&server.base, Some("admin-token"), None).await;
    assert_eq!(status, 200, "{body}");
    let o: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(o["backend"], "demo");
    assert_eq!(o["sessions"]["live"], 3, "{o}");
    assert_eq!(o["clients_online"], 2, "{o}");
    let (_, metrics) = http_get(&server.base, "/metrics").await;
    for client in ["analyst", "bot"] {
        let shown = o["sessions"]["by_client"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client"] == client)
            .map(|c| c["sessions"].as_u64().unwrap())
            .unwrap_or(0);
        assert_eq!(
            shown,
            sessions_metric(&metrics, client),
            "{client}: {o}\n{metrics}"
        );
    }
    assert_eq!(o["statements"]["running"], 0);
    assert_eq!(o["state_store"]["shared"], false);
    assert!(
        !body.contains("token"),
        "no secrets in the overview: {body}"
    );

    // Per client: its share, sessions here, and what it has used of its quotas.
    let (status, _, body) = raw_http(
        &server.base,
        "GET",
        "/console/api/clients",
        &[("Authorization", "Bearer admin-token")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let clients: Value = serde_json::from_str(&body).unwrap();
    let row = item_with(&clients["clients"], "id", "bot");
    assert_eq!(row["sessions"], 1, "{row}");
    let queries = row["limits"]["quotas"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        (queries["limit"].as_u64(), queries["remaining"].as_u64()),
        (Some(10), Some(9)),
        "{row}"
    );
    assert_eq!(row["limits"]["rate_limit"]["per_minute"], 600, "{row}");
    let (status, _, _) = raw_http(&server.base, "GET", "/console/api/clients", &[], "").await;
    assert_eq!(status, 401);

    // Every client's audit trail, newest first, filtered.
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;
    let _ = call(&bot, "run_query", json!({"sql": "SELECT nope FROM ORDERS"})).await;
    let get = |path: &'static str, token: Option<&'static str>| {
        let base = server.base.clone();
        async move {
            let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
            let headers: Vec<(&str, &str)> = if auth.is_empty() {
                vec![]
            } else {
                vec![("Authorization", auth.as_str())]
            };
            let (status, _, body) = raw_http(&base, "GET", path, &headers, "").await;
            (status, body)
        }
    };
    let (status, body) = get("/console/api/queries", Some("admin-token")).await;
    assert_eq!(status, 200, "{body}");
    let trail: Value = serde_json::from_str(&body).unwrap();
    let all = trail["queries"].as_array().unwrap();
    assert_eq!(
        all[0]["sql"], "SELECT nope FROM ORDERS",
        "newest first: {trail}"
    );
    assert!(
        all.iter().any(|q| q["client"] == "analyst"
            && q["sql"] == "SELECT COUNT(*) FROM ORDERS"
            && q["status"] == "ok"),
        "{trail}"
    );
    let (_, body) = get(
        "/console/api/queries?client=analyst&tool=run_query",
        Some("admin-token"),
    )
    .await;
    let analyst: Value = serde_json::from_str(&body).unwrap();
    assert!(
        analyst["queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["client"] == "analyst" && q["tool"] == "run_query"),
        "{analyst}"
    );
    assert_eq!(analyst["queries"].as_array().unwrap().len(), 1, "{analyst}");
    let (_, body) = get(
        "/console/api/queries?status=sql_error&limit=5",
        Some("admin-token"),
    )
    .await;
    let failed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(failed["queries"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed["queries"][0]["client"], "bot");
    let (status, _) = get("/console/api/queries?clinet=bot", Some("admin-token")).await;
    assert_eq!(status, 400, "an unknown filter is an error, not ignored");
    for path in ["/console/api/queries", "/console/api/warehouses"] {
        assert_eq!(get(path, None).await.0, 401, "{path}");
        assert_eq!(get(path, Some("analyst-token")).await.0, 401, "{path}");
    }
    let (status, body) = get("/console/api/warehouses", Some("admin-token")).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["warehouses"].is_array());

    // The same picture in a terminal.
    let out = tokio::process::Command::new(BIN)
        .args(["status", &server.base])
        .env("SNOWFLAKE_MCP_CONSOLE_TOKEN", "admin-token")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("clients online: 2, MCP sessions live: 3"),
        "{text}"
    );
    assert!(text.contains("analyst: 2 sessions"), "{text}");
    let out = tokio::process::Command::new(BIN)
        .args(["status", &server.base])
        .env("SNOWFLAKE_MCP_CONSOLE_TOKEN", "wrong")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_console_config_there_is_no_console() {
    let server = Server::start(&["--demo"], &[]).await;
    let (status, _) = overview(&server.base, Some("anything"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_need_a_sign_in_and_escape_what_clients_send() {
    let config = write_config(
        "console-pages",
        &format!(
            "[console]\ntoken_sha256 = \"{}\"\n\n[[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\n",
            sha("admin-token"),
            sha("analyst-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let analyst = server.client_with_token("analyst-token").await;
    ok(
        &analyst,
        "run_query",
        json!({"sql": "SELECT '<script>alert(1)</script>' AS A"}),
    )
    .await;

    // Signed out: every page is the sign-in form, with 401.
    for path in ["/console", "/console/clients", "/console/queries"] {
        let (status, _, body) = raw_http(&server.base, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path}");
        assert!(
            body.contains("action=\"/console/login\"") && !body.contains("analyst"),
            "{path}: {body}"
        );
    }
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, _, _) =
        raw_http(&server.base, "POST", "/console/login", &form, "token=wrong").await;
    assert_eq!(status, 401);

    // Signed in: a session cookie for the console's paths only, kept from scripts.
    let (status, head, _) = raw_http(
        &server.base,
        "POST",
        "/console/login",
        &form,
        "token=admin-token",
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let set = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(part), "{set}");
    }
    let pair = set
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = [("Cookie", pair.as_str())];
    let (status, _, body) = raw_http(&server.base, "GET", "/console", &cookie, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("MCP sessions live") && body.contains("analyst"),
        "{body}"
    );
    let (status, _, body) = raw_http(&server.base, "GET", "/console/clients", &cookie, "").await;
    assert_eq!(status, 200);
    assert!(body.contains("<td>analyst</td>"), "{body}");
    let (status, _, body) = raw_http(
        &server.base,
        "GET",
        "/console/queries?client=analyst&status=",
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(
        !body.contains("<script>alert"),
        "what clients send is escaped: {body}"
    );
    let (status, _, _) = raw_http(&server.base, "GET", "/console/api/overview", &cookie, "").await;
    assert_eq!(status, 200, "the API takes the cookie too");

    // Signed out again: the cookie is worth nothing.
    let (status, head, _) = raw_http(&server.base, "POST", "/console/logout", &cookie, "").await;
    assert_eq!(status, 303);
    assert!(head.contains("Max-Age=0"), "{head}");
    let (status, _, _) = raw_http(&server.base, "GET", "/console", &cookie, "").await;
    assert_eq!(status, 401);
}

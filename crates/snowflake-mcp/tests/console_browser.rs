//! The operator's console in a real browser (Debian's headless Chromium, driven by
//! tests/js/console_browser.mjs) during a busy minute on the demo: several clients working, one
//! flooding, one over its quota, one with a runaway statement. The pages must show it in plain
//! words and in the numbers `/metrics` serves; a stranger sees only the sign-in form; the
//! operator pauses the flood and stops the runaway from the pages; nothing is fetched from
//! elsewhere; the overview fits a phone. Screenshots are kept under the test's target folder
//! (`console-screenshots/`).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const RUNAWAY: &str = "SELECT SYSTEM$WAIT(600)";

/// Live MCP sessions in all, from `/metrics`.
async fn sessions_in_metrics(base: &str) -> u64 {
    let (_, metrics) = http_get(base, "/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("snowflake_mcp_sessions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The row of `rows` whose first cell is `first`.
fn row<'a>(rows: &'a Value, first: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == first)
        .unwrap_or_else(|| panic!("no row {first} in {rows}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_busy_minute_and_acts_on_it_in_a_browser() {
    let config = write_config(
        "console-browser",
        &format!(
            "[console]\ntoken_sha256 = \"{}\"\nactions = true\n\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nweight = 3\n\n\
             [[clients]]\nid = \"flooder\"\ntoken_sha256 = \"{}\"\n\n\
             [[clients]]\nid = \"capped\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 2\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\n",
            sha("admin-token"),
            sha("analyst-token"),
            sha("flooder-token"),
            sha("capped-token"),
            sha("bot-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let base = server.base.clone();

    // The busy minute: the analyst and four flooding workers query all along.
    let busy = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for (token, n) in [("analyst-token", 1), ("flooder-token", 4)] {
        for _ in 0..n {
            let (client, busy) = (server.client_with_token(token).await, busy.clone());
            workers.push(tokio::spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    let sql = "SELECT STATUS, COUNT(*) AS N FROM ORDERS GROUP BY STATUS";
                    call(&client, "run_query", json!({ "sql": sql })).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
    }
    let capped = server.client_with_token("capped-token").await;
    for _ in 0..3 {
        call(&capped, "run_query", json!({"sql": "SELECT 1"})).await;
    }
    let bot = server.client_with_token("bot-token").await;
    let runaway = ok(&bot, "run_query", json!({"sql": RUNAWAY, "wait_secs": 0.2})).await;
    assert_eq!(runaway["status"], "running");
    // Two samples of the console's history, for shares and charts.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let sessions = sessions_in_metrics(&base).await;

    let (seen, out) = run_browser_script(
        "console_browser.mjs",
        "console-screenshots",
        &[
            ("BASE", &base),
            ("TOKEN", "admin-token"),
            ("FLOODER", "flooder"),
            ("RUNAWAY", RUNAWAY),
        ],
    )
    .await;
    busy.store(false, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // A stranger sees the sign-in form only.
    assert_eq!(seen["stranger"]["status"], 401, "{seen}");
    assert_eq!(seen["stranger"]["api_status"], 401);
    let text = seen["stranger"]["text"].as_str().unwrap();
    assert!(
        text.contains("Sign in") && !text.contains("analyst"),
        "{text}"
    );
    assert!(seen["stranger"]["wrong_token"]
        .as_str()
        .unwrap()
        .contains("does not admit"));

    // The overview's numbers are /metrics' numbers; its four charts are drawn.
    let cards = &seen["overview"]["cards"];
    assert_eq!(cards["MCP sessions live"], sessions.to_string(), "{cards}");
    assert_eq!(cards["Clients online"], "4", "{cards}");
    assert_eq!(seen["overview"]["charts"], 4, "{seen}");

    // Clients: the weights' shares, the flood's share of session-time, the spent quota.
    let clients = &seen["clients"];
    let analyst = row(clients, "analyst");
    assert!(
        analyst[1].as_str().unwrap().starts_with("3 (50 %)"),
        "{analyst}"
    );
    let flooder = row(clients, "flooder");
    let share: f64 = flooder[2]
        .as_str()
        .unwrap()
        .split(" %")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(share > 0.0, "the flood holds session-time: {flooder}");
    let capped_row = row(clients, "capped");
    assert!(
        capped_row[6].as_str().unwrap().contains("(spent)"),
        "{capped_row}"
    );

    // Queries: the runaway among the running ones; the trail, filtered.
    let running = &seen["queries"][0];
    assert!(running.to_string().contains(RUNAWAY), "{running}");
    let trail = seen["queries"][1].as_array().unwrap();
    assert!(
        trail.iter().all(|r| r[3] == "ok"),
        "the flood's statements ran: {trail:?}"
    );
    // Filtered by client: the capped client's two calls (its refusal is counted in /metrics,
    // and the Clients page says its quota is spent).
    let capped_trail = seen["capped_queries"][1].as_array().unwrap();
    assert_eq!(capped_trail.len(), 2, "{capped_trail:?}");
    assert!(
        capped_trail.iter().all(|r| r[1] == "capped"),
        "{capped_trail:?}"
    );
    assert_eq!(tool_calls(&base, "run_query", "quota_exceeded").await, 1);

    // Sessions: one row per live session, ids shortened.
    let listed = seen["sessions"].as_array().unwrap();
    assert_eq!(listed.len() as u64, sessions, "{listed:?}");
    for s in listed {
        let id = s[0].as_str().unwrap();
        assert!(id.ends_with('…') && id.chars().count() == 9, "{id}");
    }

    // Per client: all its sessions are live here, none parked.
    assert_eq!(
        row(&seen["sessions_kept"], "flooder"),
        &json!(["flooder", "4", "0"])
    );

    // The actions took effect.
    assert!(
        seen["pause_note"]
            .as_str()
            .unwrap()
            .contains("done: pause flooder"),
        "{seen}"
    );
    assert!(row(&seen["clients_after_pause"], "flooder")[8]
        .as_str()
        .unwrap()
        .contains("paused"));
    let flood = server.client_with_token("flooder-token").await;
    let (kind, message) = err(&flood, "run_query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(kind, "unavailable");
    assert!(message.contains("flooding the warehouse"), "{message}");
    assert!(
        seen["cancel_note"]
            .as_str()
            .unwrap()
            .contains("done: cancel"),
        "{seen}"
    );
    let (kind, _) = err(
        &bot,
        "get_result",
        json!({"result_id": runaway["result_id"], "wait_secs": 10}),
    )
    .await;
    assert_eq!(kind, "cancelled");

    // Offline, phone-sized, and signed out at the end.
    assert_eq!(
        seen["foreign_requests"],
        json!([]),
        "nothing fetched elsewhere"
    );
    assert!(seen["phone"]["width"].as_u64().unwrap() <= 400, "{seen}");
    assert_eq!(seen["after_sign_out"], 401);
    assert_screenshots(
        &out,
        &[
            "sign-in",
            "overview",
            "clients",
            "queries",
            "sessions",
            "warehouses",
            "clients-paused",
            "queries-cancelled",
            "overview-phone",
        ],
    );
    drop((capped, bot, flood));
    server.stop().await;
}

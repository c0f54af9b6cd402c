//! Writes by policy, confirmed by a person, against the emulator (where DML really runs): each
//! client writes only the kinds it may, only where it may; a write that needs a confirmation
//! runs only after one — through a form (2025-11-25 elicitation) or an `input_required` round
//! (2026-07-28) with the official Python SDK, or the two-step `confirm` token, which is single
//! use, bound to the statement, the client and the session, and expires.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/writes_client.py");

/// A scratch database to write in and a sales database that must stay as it is.
async fn seed(prefix: &str) {
    run_on_emulator(&[
        format!("CREATE DATABASE IF NOT EXISTS {prefix}_SCRATCH"),
        format!("CREATE SCHEMA IF NOT EXISTS {prefix}_SCRATCH.PUBLIC"),
        format!("CREATE OR REPLACE TABLE {prefix}_SCRATCH.PUBLIC.NOTES (ID INT, TXT VARCHAR)"),
        format!("CREATE DATABASE IF NOT EXISTS {prefix}_SALES"),
        format!("CREATE SCHEMA IF NOT EXISTS {prefix}_SALES.PUBLIC"),
        format!("CREATE OR REPLACE TABLE {prefix}_SALES.PUBLIC.ORDERS (ID INT)"),
        format!("INSERT INTO {prefix}_SALES.PUBLIC.ORDERS VALUES (1), (2), (3)"),
    ])
    .await;
}

fn config(name: &str, prefix: &str, extra: &str) -> String {
    write_config(
        name,
        &format!(
            "{extra}\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\n\
             allow_statements = [\"INSERT\", \"CREATE TABLE\"]\nwrite_databases = [\"{prefix}_SCRATCH\"]\n\
             default_context = {{ database = \"{prefix}_SCRATCH\", schema = \"PUBLIC\" }}\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\n\
             allow_statements = [\"insert\", \"delete\"]\nwrite_schemas = [\"{prefix}_scratch.public\"]\nconfirm_writes = \"never\"\n\
             default_context = {{ database = \"{prefix}_SCRATCH\", schema = \"PUBLIC\" }}\n\n\
             [[clients]]\nid = \"intern\"\ntoken_sha256 = \"{}\"\n\
             allow_statements = [\"INSERT\"]\nwrite_databases = [\"{prefix}_SCRATCH\"]\n\
             default_context = {{ database = \"{prefix}_SCRATCH\", schema = \"PUBLIC\" }}\n\n\
             [[clients]]\nid = \"reader\"\ntoken_sha256 = \"{}\"\n",
            sha("analyst-token"),
            sha("bot-token"),
            sha("intern-token"),
            sha("reader-token")
        ),
    )
}

/// Rows of a table, read straight from the emulator.
async fn count(table: &str) -> i64 {
    let mut s = emulator_session().await;
    let rows = s
        .query(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
        .collect(snowflake_client::RowLimits::default())
        .await
        .unwrap();
    rows.rows[0][0]
        .to_json()
        .to_string()
        .trim_matches('"')
        .parse()
        .unwrap()
}

/// Whether an error's message says `what`.
fn says(e: &Value, what: &str) -> bool {
    e["message"].as_str().is_some_and(|m| m.contains(what))
}

/// A refused call's `_meta.error`.
async fn refused(client: &Client, args: Value) -> Value {
    let r = call(client, "run_query", args.clone()).await;
    assert_eq!(r.is_error, Some(true), "{args}: {}", text(&r));
    error_of(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_writes_only_what_and_where_it_may() {
    seed("WP").await;
    let config = config("writes-policy", "WP", "");
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let notes = "WP_SCRATCH.PUBLIC.NOTES";

    // The default: read-only.
    let reader = server.client_with_token("reader-token").await;
    let e = refused(
        &reader,
        json!({"sql": format!("INSERT INTO {notes} VALUES (1, 'r')")}),
    )
    .await;
    assert_eq!(e["kind"], "not_allowed");
    assert!(says(&e, "run_query only reads"), "{e}");

    // A trusted bot writes where it may, without being asked.
    let bot = server.client_with_token("bot-token").await;
    let inserted = ok(
        &bot,
        "run_query",
        json!({"sql": "INSERT INTO NOTES VALUES (1, 'bot'), (2, 'bot')"}),
    )
    .await;
    assert_eq!(inserted["rows"][0][0], json!(2), "{inserted}");
    assert_eq!(count(notes).await, 2);
    ok(
        &bot,
        "run_query",
        json!({"sql": "DELETE FROM NOTES WHERE ID = 2"}),
    )
    .await;
    assert_eq!(count(notes).await, 1);
    // ... nowhere else, and no other kind.
    let e = refused(
        &bot,
        json!({"sql": "INSERT INTO WP_SALES.PUBLIC.ORDERS VALUES (9)"}),
    )
    .await;
    assert_eq!(e["kind"], "not_allowed");
    assert!(
        says(
            &e,
            "may not INSERT in WP_SALES.PUBLIC; its writes may only go to WP_SCRATCH.PUBLIC"
        ),
        "{e}"
    );
    let e = refused(&bot, json!({"sql": "CREATE TABLE T2 (A INT)"})).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE is not allowed for this client"),
        "{e}"
    );
    for never in [
        "GRANT SELECT ON TABLE NOTES TO ROLE PUBLIC",
        "INSERT INTO NOTES VALUES (3, 'x'); DELETE FROM NOTES",
        "EXECUTE IMMEDIATE 'DELETE FROM NOTES'",
        "DELETE FROM NOTES USING WP_SALES.PUBLIC.ORDERS o WHERE NOTES.ID = o.ID AND o.ID IN (SELECT ID FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY)",
    ] {
        let e = refused(&bot, json!({"sql": never})).await;
        assert_eq!(e["kind"], "not_allowed", "{never}: {e}");
    }
    assert_eq!(count(notes).await, 1);
    assert_eq!(count("WP_SALES.PUBLIC.ORDERS").await, 3);

    // Writes are in the client's history with how they were confirmed, and in the metrics.
    let history = ok(&bot, "query_history", json!({"limit": 50})).await;
    let queries = history["queries"].as_array().unwrap();
    let insert = queries
        .iter()
        .find(|q| {
            q["sql"]
                .as_str()
                .unwrap()
                .starts_with("INSERT INTO NOTES VALUES (1")
        })
        .unwrap();
    assert_eq!(
        insert["write"], "INSERT WP_SCRATCH.PUBLIC.NOTES",
        "{insert}"
    );
    assert!(
        insert["confirmed"]
            .as_str()
            .unwrap()
            .contains("confirm_writes = \"never\""),
        "{insert}"
    );
    let (_, metrics) = http_get(&server.base, "/metrics").await;
    assert!(
        metrics.contains(
            "snowflake_mcp_writes_total{client=\"bot\",kind=\"INSERT\",outcome=\"ran\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "snowflake_mcp_writes_total{client=\"bot\",kind=\"DELETE\",outcome=\"ran\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_step_token_is_single_use_bound_and_expires() {
    seed("WT").await;
    let config = config("writes-token", "WT", "[query]\nconfirm_within_secs = 3\n");
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let notes = "WT_SCRATCH.PUBLIC.NOTES";
    let analyst = server.client_with_token("analyst-token").await;
    let insert = "INSERT INTO NOTES VALUES (1, 'analyst')";

    // First: refused with a token and what a person should see; nothing ran.
    let e = refused(&analyst, json!({"sql": insert})).await;
    assert_eq!(e["kind"], "confirmation_required", "{e}");
    let token = e["confirm"].as_str().unwrap().to_string();
    let prompt = e["prompt"].as_str().unwrap();
    assert!(
        prompt.contains(insert)
            && prompt.contains("WT_SCRATCH.PUBLIC.NOTES")
            && prompt.contains("analyst"),
        "{prompt}"
    );
    assert!(says(&e, &token));
    assert_eq!(count(notes).await, 0);

    // With the token it runs, once.
    ok(
        &analyst,
        "run_query",
        json!({"sql": insert, "confirm": token}),
    )
    .await;
    assert_eq!(count(notes).await, 1);
    let e = refused(&analyst, json!({"sql": insert, "confirm": token})).await;
    assert_eq!(e["kind"], "confirmation_required");
    assert!(says(&e, "unknown, expired or already used"), "{e}");
    assert_eq!(count(notes).await, 1);

    // Bound to the statement: another statement with it runs nothing and uses it up.
    let token = refused(&analyst, json!({"sql": insert})).await["confirm"]
        .as_str()
        .unwrap()
        .to_string();
    let other = "INSERT INTO NOTES VALUES (2, 'other')";
    let e = refused(&analyst, json!({"sql": other, "confirm": token})).await;
    assert!(says(&e, "another statement, client or session"), "{e}");
    let e = refused(&analyst, json!({"sql": insert, "confirm": token})).await;
    assert!(says(&e, "already used"), "{e}");
    assert_eq!(count(notes).await, 1);

    // Bound to the session: the same client's other session cannot use it.
    let token = refused(&analyst, json!({"sql": insert})).await["confirm"]
        .as_str()
        .unwrap()
        .to_string();
    let second = server.client_with_token("analyst-token").await;
    let e = refused(&second, json!({"sql": insert, "confirm": token})).await;
    assert!(says(&e, "another statement, client or session"), "{e}");
    // ... nor another client.
    let token = refused(&analyst, json!({"sql": insert})).await["confirm"]
        .as_str()
        .unwrap()
        .to_string();
    let intern = server.client_with_token("intern-token").await;
    let e = refused(&intern, json!({"sql": insert, "confirm": token})).await;
    assert!(says(&e, "another statement, client or session"), "{e}");
    assert_eq!(count(notes).await, 1);

    // It expires.
    let token = refused(&analyst, json!({"sql": insert})).await["confirm"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let e = refused(&analyst, json!({"sql": insert, "confirm": token})).await;
    assert!(says(&e, "expired"), "{e}");
    assert_eq!(count(notes).await, 1);

    // A read with a token is a mistake; a write elsewhere is refused before any token.
    let e = refused(&analyst, json!({"sql": "SELECT 1", "confirm": "x"})).await;
    assert_eq!(e["kind"], "invalid_argument");
    let e = refused(
        &analyst,
        json!({"sql": "INSERT INTO WT_SALES.PUBLIC.ORDERS VALUES (9)"}),
    )
    .await;
    assert_eq!(e["kind"], "not_allowed");
    assert!(e.get("confirm").is_none());

    // The history says who confirmed and how.
    let history = ok(&analyst, "query_history", json!({"limit": 50})).await;
    let ran = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["status"] == "ok" && q["write"].is_string())
        .unwrap()
        .clone();
    assert!(
        ran["confirmed"].as_str().unwrap().contains("confirm token"),
        "{ran}"
    );
    assert!(
        ran["confirmed"]
            .as_str()
            .unwrap()
            .contains("WT_SCRATCH.PUBLIC.NOTES"),
        "what was shown is kept: {ran}"
    );
}

/// One call through the Python SDK; its result line.
async fn python(mode: &str, url: &str, answer: &str, sql: &str) -> Value {
    let run = tokio::process::Command::new(testkit::mcp_python())
        .args([PY, mode, url, "analyst-token", answer, sql])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Python SDK client finished within 120 s")
        .expect("run the Python SDK client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("PY_WRITES_OK {mode}")),
        "the Python SDK client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PY_WRITES_RESULT "))
        .unwrap();
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_confirms_through_elicitation_or_input_required() {
    seed("WE").await;
    let config = config("writes-person", "WE", "");
    let server = Server::start(&["--config", &config], &fakesnow_env()).await;
    let notes = "WE_SCRATCH.PUBLIC.NOTES";
    for (i, mode) in ["legacy", "2026-07-28"].into_iter().enumerate() {
        let sql = format!("INSERT INTO NOTES VALUES ({i}, '{mode}')");
        // Declined (or cancelled): nothing runs.
        for answer in ["decline", "cancel"] {
            let r = python(mode, &server.url, answer, &sql).await;
            assert_eq!(r["is_error"], true, "{mode} {answer}: {r}");
            assert_eq!(r["kind"], "declined", "{mode} {answer}: {r}");
            let shown = r["shown"][0].as_str().unwrap();
            assert!(
                shown.contains(&sql) && shown.contains(notes),
                "{mode}: the person saw {shown}"
            );
            assert_eq!(count(notes).await, i as i64, "{mode} {answer}");
        }
        // Accepted: it runs, once.
        let r = python(mode, &server.url, "accept", &sql).await;
        assert_eq!(r["is_error"], false, "{mode}: {r}");
        assert_eq!(
            r["shown"].as_array().unwrap().len(),
            1,
            "{mode}: asked once"
        );
        assert_eq!(count(notes).await, i as i64 + 1, "{mode}");
    }
    let analyst = server.client_with_token("analyst-token").await;
    let history = ok(&analyst, "query_history", json!({"limit": 50})).await;
    let confirmed: Vec<&str> = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["status"] == "ok")
        .filter_map(|q| q["confirmed"].as_str())
        .collect();
    assert!(
        confirmed
            .iter()
            .any(|c| c.contains("through a form (elicitation)")),
        "{confirmed:?}"
    );
    assert!(
        confirmed
            .iter()
            .any(|c| c.contains("through input_required")),
        "{confirmed:?}"
    );
    let declined = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["status"] == "declined")
        .count();
    assert_eq!(declined, 4, "{history}");
    let (_, metrics) = http_get(&server.base, "/metrics").await;
    assert!(
        metrics.contains(
            "snowflake_mcp_writes_total{client=\"analyst\",kind=\"INSERT\",outcome=\"declined\"} 4"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_only_reads_whatever_the_policy() {
    let config = write_config(
        "writes-demo",
        &format!(
            "[[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\nallow_statements = [\"INSERT\"]\n\
             write_databases = [\"DEMO\"]\nconfirm_writes = \"never\"\n",
            sha("bot-token")
        ),
    );
    let server = Server::start(&["--config", &config, "--demo"], &[]).await;
    let bot = server.client_with_token("bot-token").await;
    let before = ok(
        &bot,
        "run_query",
        json!({"sql": "SELECT COUNT(*) FROM DEMO.SALES.REGIONS"}),
    )
    .await;
    let e = refused(
        &bot,
        json!({"sql": "INSERT INTO DEMO.SALES.REGIONS SELECT * FROM DEMO.SALES.REGIONS"}),
    )
    .await;
    assert_eq!(e["kind"], "not_allowed", "{e}");
    assert!(says(&e, "the offline demo only reads"), "{e}");
    let after = ok(
        &bot,
        "run_query",
        json!({"sql": "SELECT COUNT(*) FROM DEMO.SALES.REGIONS"}),
    )
    .await;
    assert_eq!(before["rows"], after["rows"]);
}

//! A scripted Snowflake that runs statements over time and keeps their results, for what the
//! emulator never does: asynchronous execution (`asyncExec`, code 333334), polling a running
//! statement, reading a result again by query id (`GET /queries/<id>/result`), big results in
//! chunks, and aborting (`abort-request`, `SYSTEM$CANCEL_QUERY`).
//!
//! Written from the connector protocol as the official drivers speak it (gosnowflake
//! `restful.go`, `monitoring.go`, `chunk_downloader.go`; snowflake-connector-python
//! `network.py`, `cursor.py`). What a statement does is read from its text:
//!
//! * `SELECT SYSTEM$WAIT(n)` runs for `n` seconds and answers `waited n seconds`;
//! * `... GENERATOR(ROWCOUNT => n) ...` answers `n` rows `(N, S)` = `(i, 'row i')`, the first
//!   [`Warehouse::INLINE_ROWS`] inline and the rest in chunks of [`Warehouse::CHUNK_ROWS`];
//! * `SELECT SYSTEM$CANCEL_QUERY('<id>')` aborts that query;
//! * `EXPLAIN USING JSON <query>` answers a plan (`content`) whose `GlobalStats` say 40 TB in
//!   100,000 partitions when the query names `BIG`, else 1 KB in one partition;
//! * the revenue-by-region SQL of the scripted Cortex services ([`crate::cortex`]) answers
//!   three regions' revenue;
//! * anything else (`USE`, `SELECT 1`) answers one row `1` at once.
//!
//! It also answers Cortex Analyst, Search and Agents as [`crate::cortex`] describes.
//!
//! `GET /monitoring/queries/<id>` reports each statement `RUNNING`, `SUCCESS` or `ABORTED`.
//!
//! Every statement counts as one execution ([`Warehouse::executions`]); reading a result again
//! executes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::scripted::{Reply, Request, Scripted};

struct Query {
    request_id: String,
    sql: String,
    done_at: Instant,
    cancelled: bool,
    rows: u64,
}

#[derive(Default)]
pub(crate) struct State {
    queries: HashMap<String, Query>,
    port: u16,
    pub(crate) cortex: crate::cortex::CortexState,
}

/// A running scripted Snowflake; stops when dropped.
pub struct Warehouse {
    pub server: Scripted,
    state: Arc<Mutex<State>>,
}

impl Warehouse {
    /// Rows answered inline with a finished statement.
    pub const INLINE_ROWS: u64 = 100;
    /// Rows per result chunk after those.
    pub const CHUNK_ROWS: u64 = 1000;

    pub async fn start() -> Warehouse {
        let state: Arc<Mutex<State>> = Arc::default();
        let s = state.clone();
        let server = Scripted::start(move |r| answer(r, &s)).await;
        state.lock().unwrap().port = server.addr.port();
        Warehouse { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// Statements executed whose text contains `needle` (`""`: all of them).
    pub fn executions(&self, needle: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .queries
            .values()
            .filter(|q| q.sql.contains(needle))
            .count()
    }

    /// Whether the statement containing `needle` was aborted.
    pub fn cancelled(&self, needle: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .queries
            .values()
            .any(|q| q.sql.contains(needle) && q.cancelled)
    }

    /// Pause between a Cortex agent's streamed events (default none).
    pub fn set_agent_pace(&self, pace: Duration) {
        self.state.lock().unwrap().cortex.agent_pace = pace;
    }

    /// Cortex agent runs answered so far.
    pub fn agent_runs(&self) -> usize {
        self.state.lock().unwrap().cortex.agent_runs.len()
    }

    /// The most Cortex agent runs that streamed at one moment.
    pub fn agent_max_overlap(&self) -> usize {
        crate::cortex::max_overlap(&self.state.lock().unwrap().cortex.agent_runs)
    }

    /// For each Cortex call to `path`: the token its session logged in with (`None`: a password
    /// login).
    pub fn cortex_callers(&self, path: &str) -> Vec<Option<String>> {
        let st = self.state.lock().unwrap();
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let auth = r.headers.get("authorization").cloned().unwrap_or_default();
                let n: Option<usize> = auth
                    .strip_prefix("Snowflake Token=\"wh-token-")
                    .and_then(|rest| rest.trim_end_matches('"').parse().ok());
                n.and_then(|n| st.cortex.logins.get(n - 1).cloned())
            })
            .collect()
    }

    /// Result chunks downloaded so far.
    pub fn chunk_downloads(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/chunks/"))
            .count()
    }
}

fn number_in(sql: &str, after: &str) -> Option<u64> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find(after)? + after.len();
    let digits: String = upper[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn quoted_in(sql: &str) -> Option<String> {
    let start = sql.find('\'')? + 1;
    let end = start + sql[start..].find('\'')?;
    Some(sql[start..end].to_string())
}

fn error(code: &str, message: &str) -> Reply {
    Reply::json(json!({"success": false, "code": code, "message": message,
        "data": {"errorCode": code, "sqlState": "57014"}}))
}

fn answer(r: &Request, state: &Mutex<State>) -> Reply {
    if let Some(reply) = crate::cortex::answer(r, state) {
        return reply;
    }
    let path = r.path.as_str();
    if path == "/session/v1/login-request" {
        // A login with a token (OAuth) gets a session token of its own, so what that session
        // does can be traced back to the token it logged in with.
        let token = match r.body["data"]["TOKEN"].as_str() {
            Some(sent) => {
                let mut st = state.lock().unwrap();
                st.cortex.logins.push(sent.to_string());
                format!("wh-token-{}", st.cortex.logins.len())
            }
            None => "wh-token".to_string(),
        };
        return Reply::json(json!({"success": true, "data": {
            "token": token, "masterToken": "wh-master", "validityInSeconds": 3600,
            "sessionInfo": {"databaseName": "DB1", "schemaName": "PUBLIC", "warehouseName": "WH", "roleName": "R"}}}));
    }
    if path == "/session/heartbeat" || path == "/session" {
        return Reply::json(json!({"success": true, "data": {}}));
    }
    if path == "/queries/v1/abort-request" {
        let wanted = r.body["requestId"].as_str().unwrap_or_default();
        let mut st = state.lock().unwrap();
        return match st
            .queries
            .values_mut()
            .find(|q| q.request_id == wanted && !q.cancelled && Instant::now() < q.done_at)
        {
            Some(q) => {
                q.cancelled = true;
                Reply::json(json!({"success": true, "data": {}}))
            }
            None => error(
                "000605",
                "Identified SQL statement is not currently executing.",
            ),
        };
    }
    if path == "/queries/v1/query-request" {
        let sql = r.body["sqlText"].as_str().unwrap_or_default().to_string();
        let upper = sql.to_ascii_uppercase();
        let id = format!(
            "01b0{:04x}-0000-4000-8000-{:012x}",
            rand::random::<u16>(),
            rand::random::<u64>() & 0xffff_ffff_ffff
        );
        let mut st = state.lock().unwrap();
        if upper.contains("SYSTEM$CANCEL_QUERY") {
            let target = quoted_in(&sql).unwrap_or_default();
            if let Some(q) = st.queries.get_mut(&target) {
                q.cancelled = q.cancelled || Instant::now() < q.done_at;
            }
        }
        let wait = if upper.contains("SYSTEM$WAIT") {
            number_in(&sql, "SYSTEM$WAIT").unwrap_or(0)
        } else {
            0
        };
        let rows = if upper.contains("GENERATOR") {
            number_in(&sql, "ROWCOUNT").unwrap_or(0)
        } else {
            1
        };
        st.queries.insert(
            id.clone(),
            Query {
                request_id: r.query.get("requestId").cloned().unwrap_or_default(),
                sql,
                done_at: Instant::now() + Duration::from_secs(wait),
                cancelled: false,
                rows,
            },
        );
        let detached = r.body["asyncExec"].as_bool().unwrap_or(false);
        if detached || wait > 0 {
            // Still running (or detached): poll the result URL.
            let code = if detached { "333334" } else { "333333" };
            return Reply::json(json!({"success": true, "code": code, "message": "running",
                "data": {"queryId": id, "getResultUrl": format!("/queries/{id}/result")}}));
        }
        return result(&st, &id);
    }
    if let Some(id) = path
        .strip_prefix("/queries/")
        .and_then(|p| p.strip_suffix("/result"))
    {
        let st = state.lock().unwrap();
        return result(&st, id);
    }
    if let Some(id) = path.strip_prefix("/monitoring/queries/") {
        let st = state.lock().unwrap();
        let Some(q) = st.queries.get(id) else {
            return Reply::json(json!({"success": true, "data": {"queries": []}}));
        };
        let running = Instant::now() < q.done_at && !q.cancelled;
        let status = if q.cancelled {
            "ABORTED"
        } else if running {
            "RUNNING"
        } else {
            "SUCCESS"
        };
        return Reply::json(json!({"success": true, "data": {"queries": [
            {"id": id, "status": status, "stats": {"producedRows": if running { 0 } else { q.rows }}}]}}));
    }
    if let Some(rest) = path.strip_prefix("/chunks/") {
        let st = state.lock().unwrap();
        let (id, index) = rest.split_once('/').unwrap_or((rest, "0"));
        let Some(q) = st.queries.get(id) else {
            return Reply::status(404, "no such chunk");
        };
        let index: u64 = index.parse().unwrap_or(0);
        let from = Warehouse::INLINE_ROWS + index * Warehouse::CHUNK_ROWS;
        let to = (from + Warehouse::CHUNK_ROWS).min(q.rows);
        let body: Vec<String> = (from..to).map(|i| row(i).to_string()).collect();
        return Reply::bytes(body.join(",").into_bytes());
    }
    Reply::status(404, "not scripted")
}

fn row(i: u64) -> Value {
    json!([(i + 1).to_string(), format!("row {}", i + 1)])
}

fn result(st: &State, id: &str) -> Reply {
    let Some(q) = st.queries.get(id) else {
        return error("000709", &format!("Statement {id} not found"));
    };
    if q.cancelled {
        return error("000604", "SQL execution canceled");
    }
    if Instant::now() < q.done_at {
        return Reply::json(
            json!({"success": true, "code": "333334", "message": "running",
            "data": {"queryId": id, "getResultUrl": format!("/queries/{id}/result")}}),
        );
    }
    let upper = q.sql.to_ascii_uppercase();
    if upper.starts_with("EXPLAIN") {
        let (bytes, parts) = if upper.contains("BIG") {
            (40_000_000_000_000u64, 100_000)
        } else {
            (1024, 1)
        };
        let plan = json!({"GlobalStats": {"partitionsTotal": parts, "partitionsAssigned": parts, "bytesAssigned": bytes},
            "Operations": [[{"id": 0, "operation": "TableScan", "objects": ["DB1.PUBLIC.T"], "bytesAssigned": bytes}]]});
        return Reply::json(json!({"success": true, "data": {
            "queryId": id, "queryResultFormat": "json", "total": 1,
            "rowtype": [{"name": "content", "type": "text", "nullable": true}],
            "rowset": [[plan.to_string()]]}}));
    }
    if upper.contains("SYSTEM$WAIT") {
        let n = number_in(&q.sql, "SYSTEM$WAIT").unwrap_or(0);
        return Reply::json(json!({"success": true, "data": {
            "queryId": id, "queryResultFormat": "json", "total": 1,
            "rowtype": [{"name": "SYSTEM$WAIT", "type": "text", "nullable": true}],
            "rowset": [[format!("waited {n} seconds")]]}}));
    }
    if upper.contains("SUM(AMOUNT) AS REVENUE") {
        let regions = crate::cortex::REVENUE.iter().filter(|(r, _)| {
            !upper.contains("REGION = '") || upper.contains(&format!("REGION = '{r}'"))
        });
        let rows: Vec<Value> = regions
            .map(|(r, v)| json!([r, format!("{v:.2}")]))
            .collect();
        return Reply::json(json!({"success": true, "data": {
            "queryId": id, "queryResultFormat": "json", "total": rows.len(),
            "rowtype": [{"name": "REGION", "type": "text", "nullable": true},
                        {"name": "REVENUE", "type": "fixed", "scale": 2, "precision": 38, "nullable": true}],
            "rowset": rows}}));
    }
    let inline = q.rows.min(Warehouse::INLINE_ROWS);
    let chunks: Vec<Value> = (0..(q.rows - inline).div_ceil(Warehouse::CHUNK_ROWS))
        .map(|i| {
            let from = inline + i * Warehouse::CHUNK_ROWS;
            json!({"url": format!("http://127.0.0.1:{}/chunks/{id}/{i}", st.port),
                "rowCount": (q.rows - from).min(Warehouse::CHUNK_ROWS)})
        })
        .collect();
    Reply::json(json!({"success": true, "data": {
        "queryId": id, "queryResultFormat": "json", "total": q.rows,
        "rowtype": [{"name": "N", "type": "fixed", "scale": 0, "precision": 38, "nullable": false},
                    {"name": "S", "type": "text", "nullable": true}],
        "rowset": (0..inline).map(row).collect::<Vec<_>>(),
        "chunks": chunks, "chunkHeaders": {"x-amz-server-side-encryption-customer-key": "k"},
        "finalDatabaseName": "DB1", "finalSchemaName": "PUBLIC"}}))
}

//! Snowflake's Cortex services through the gateway, against the scripted Snowflake
//! (`testkit::cortex`, written from Snowflake's REST documentation): an analyst's question
//! comes back with the SQL and the numbers, a search service answers with cited rows, an
//! agent's run streams progress and ends with its answer, SQL and citations — and each is held
//! to the client's policy: `allowed_cortex`, `allowed_semantic_views`, `analyst_execute` and
//! `cortex_calls_per_*`, refused before anything reaches Snowflake.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(name: &str, extra: &str) -> String {
    write_config(
        name,
        &format!(
            "{CORTEX_CONFIG}\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nanalyst_execute = true\n\n\
             [[clients]]\nid = \"viewer\"\ntoken_sha256 = \"{}\"\n\n\
             [[clients]]\nid = \"bot\"\ntoken_sha256 = \"{}\"\nallowed_cortex = [\"support_docs\"]\ncortex_calls_per_day = 3\n\n\
             [[clients]]\nid = \"fenced\"\ntoken_sha256 = \"{}\"\nallowed_semantic_views = [\"DB1.PUBLIC.OTHER_SV\"]\n\
             {extra}",
            sha("analyst-token"),
            sha("viewer-token"),
            sha("bot-token"),
            sha("fenced-token"),
        ),
    )
}

/// The scripted Snowflake's Cortex requests to `path`.
fn requests_to(wh: &testkit::Warehouse, path: &str) -> Vec<testkit::Request> {
    wh.server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

const ANALYST: &str = "/api/v2/cortex/analyst/message";
const SEARCH: &str =
    "/api/v2/databases/DB1/schemas/PUBLIC/cortex-search-services/SUPPORT_DOCS:query";
const AGENT: &str = "/api/v2/databases/DB1/schemas/PUBLIC/agents/SALES_AGENT:run";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysts_question_comes_back_with_the_sql_and_the_numbers() {
    let wh = testkit::Warehouse::start().await;
    let server = Server::start(
        &["--config", &config("cortex-analyst", "")],
        &warehouse_env(wh.port()),
    )
    .await;
    let analyst = server.client_with_token("analyst-token").await;

    let tools = analyst.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    for listed in [
        "ask_analyst",
        "support_docs",
        "locked_docs",
        "sales_agent",
        "run_query",
    ] {
        assert!(names.contains(&listed), "{names:?}");
    }

    let answer = ok(
        &analyst,
        "ask_analyst",
        json!({"question": "What was revenue by region last quarter?"}),
    )
    .await;
    assert_eq!(answer["semantic_view"], "DB1.PUBLIC.SALES_SV");
    assert!(
        answer["interpretation"]
            .as_str()
            .unwrap()
            .contains("total revenue by region"),
        "{answer}"
    );
    assert_eq!(answer["sql"], testkit::cortex::REVENUE_SQL);
    assert_eq!(
        answer["result"]["rows"],
        json!([["AMER", 3400], ["EMEA", 1200.5], ["APAC", 980.25]]),
        "{answer}"
    );
    // The request, field by field, as the documentation describes it.
    let sent = requests_to(&wh, ANALYST);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headers["authorization"],
        "Snowflake Token=\"wh-token\""
    );
    assert_eq!(
        sent[0].body,
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "What was revenue by region last quarter?"}]}],
            "semantic_view": "DB1.PUBLIC.SALES_SV", "stream": false})
    );
    // The SQL ran as a query of the client's own: on the warehouse, and in its history.
    assert_eq!(wh.executions("SUM(AMOUNT) AS REVENUE"), 1);
    let history = ok(&analyst, "query_history", json!({"limit": 5})).await;
    let tools_run: Vec<&str> = history["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["tool"].as_str())
        .collect();
    assert!(
        tools_run.contains(&"ask_analyst") && tools_run.contains(&"run_query"),
        "{history}"
    );

    // A follow-up carries the caller's history; the analyst narrows its SQL.
    let follow = ok(
        &analyst,
        "ask_analyst",
        json!({"question": "Only EMEA, please",
        "history": [{"role": "user", "text": "What was revenue by region last quarter?"},
                    {"role": "analyst", "text": answer["interpretation"]}]}),
    )
    .await;
    assert_eq!(
        follow["result"]["rows"],
        json!([["EMEA", 1200.5]]),
        "{follow}"
    );
    assert_eq!(
        requests_to(&wh, ANALYST)[1].body["messages"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A vague question gets suggestions and no SQL; nothing runs.
    let vague = ok(
        &analyst,
        "ask_analyst",
        json!({"question": "How are things?"}),
    )
    .await;
    assert!(vague.get("sql").is_none(), "{vague}");
    assert_eq!(
        vague["suggestions"][0],
        "What was revenue by region last quarter?"
    );
    assert_eq!(wh.executions("SUM(AMOUNT) AS REVENUE"), 2);

    // A client that may not run the analyst's SQL gets it to read, not its rows.
    let viewer = server.client_with_token("viewer-token").await;
    let seen = call(
        &viewer,
        "ask_analyst",
        json!({"question": "revenue by region?"}),
    )
    .await;
    let shown = seen.structured_content.clone().unwrap();
    assert_eq!(shown["sql"], testkit::cortex::REVENUE_SQL);
    assert!(shown.get("result").is_none());
    assert!(
        text(&seen).contains("run it with run_query"),
        "{}",
        text(&seen)
    );
    assert_eq!(wh.executions("SUM(AMOUNT) AS REVENUE"), 2);

    // Bad history, unknown and forbidden views: refused clearly.
    let (kind, _) = err(&analyst, "ask_analyst", json!({"question": "x", "history": [{"role": "analyst", "text": "hi"}, {"role": "user", "text": "x"}]})).await;
    assert_eq!(kind, "invalid_argument");
    let (kind, message) = err(
        &analyst,
        "ask_analyst",
        json!({"question": "revenue?", "semantic_view": "DB1.PUBLIC.NOPE"}),
    )
    .await;
    assert_eq!(kind, "invalid_argument", "{message}");
    assert!(
        message.contains("does not exist or not authorized"),
        "{message}"
    );
    let (kind, message) = err(
        &analyst,
        "ask_analyst",
        json!({"question": "revenue?", "semantic_view": "DB1.PUBLIC.LOCKED"}),
    )
    .await;
    assert_eq!(kind, "not_allowed", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_service_answers_with_cited_rows_and_bad_filters_never_leave() {
    let wh = testkit::Warehouse::start().await;
    let server = Server::start(
        &["--config", &config("cortex-search", "")],
        &warehouse_env(wh.port()),
    )
    .await;
    let analyst = server.client_with_token("analyst-token").await;

    let found = ok(
        &analyst,
        "support_docs",
        json!({"query": "refund policy", "filter": {"@eq": {"REGION": "EMEA"}}, "limit": 3}),
    )
    .await;
    assert_eq!(found["results"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["results"][0]["DOC_ID"], "KB-1");
    assert_eq!(found["results"][0]["TITLE"], "Refund policy");
    assert!(found["request_id"]
        .as_str()
        .is_some_and(|id| id.len() == 32));
    let sent = requests_to(&wh, SEARCH);
    assert_eq!(
        sent[0].body,
        json!({"query": "refund policy", "limit": 3, "columns": ["DOC_ID", "TITLE", "BODY", "REGION"],
            "filter": {"@eq": {"REGION": "EMEA"}}})
    );
    let both = ok(&analyst, "support_docs", json!({"query": "refunds", "filter": {"@or": [{"@eq": {"REGION": "EMEA"}}, {"@eq": {"REGION": "AMER"}}]}})).await;
    assert_eq!(both["results"].as_array().unwrap().len(), 2, "{both}");

    for bad in [
        json!({"query": "x", "filter": {"@eq": {"REGION": "EU"}, "@lte": {"A": 1}}}),
        json!({"query": "x", "filter": {"@like": {"REGION": "E%"}}}),
        json!({"query": "x", "filter": {"@eq": {"REGION; DROP": "E"}}}),
        json!({"query": "x", "filter": {"@and": []}}),
        json!({"query": "x", "limit": 6}),
        json!({"query": ""}),
        json!({"query": "x", "columns": ["BODY"]}),
    ] {
        let (kind, _) = err(&analyst, "support_docs", bad.clone()).await;
        assert_eq!(kind, "invalid_argument", "{bad}");
    }
    assert_eq!(
        requests_to(&wh, SEARCH).len(),
        2,
        "refused calls never reach Snowflake"
    );

    // Snowflake's RBAC is the boundary: a 403 reads as not_allowed.
    let (kind, message) = err(&analyst, "locked_docs", json!({"query": "anything"})).await;
    assert_eq!(kind, "not_allowed");
    assert!(message.contains("Insufficient privileges"), "{message}");
}

/// One sessionless tools/call that asks for progress; every message of its answer.
async fn call_with_progress(base: &str, token: &str, tool: &str, arguments: Value) -> Vec<Value> {
    let params = json!({"name": tool, "arguments": arguments,
        "_meta": {"progressToken": "p-1",
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}});
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string();
    let auth = format!("Bearer {token}");
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
        ("authorization", auth.as_str()),
    ];
    let (status, _, answer) = raw_http(base, "POST", "/mcp", &headers, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_run_streams_progress_and_ends_with_its_answer_sql_and_citations() {
    let wh = testkit::Warehouse::start().await;
    wh.set_agent_pace(std::time::Duration::from_millis(50));
    let server = Server::start(
        &["--config", &config("cortex-agent", "")],
        &warehouse_env(wh.port()),
    )
    .await;

    let messages = call_with_progress(
        &server.base,
        "analyst-token",
        "sales_agent",
        json!({"question": "How did sales do last quarter?"}),
    )
    .await;
    let notes: Vec<&str> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .filter_map(|m| m["params"]["message"].as_str())
        .collect();
    for said in [
        "agent: Planning the next steps",
        "agent: using sales_analyst",
        "agent: Executing SQL",
        "agent: Forming the answer",
    ] {
        assert!(notes.contains(&said), "{notes:?}");
    }
    let result = &messages.iter().find(|m| m["id"] == 1).unwrap()["result"];
    let answer = &result["structuredContent"];
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .starts_with("Revenue last quarter was highest in AMER"),
        "{result}"
    );
    assert_eq!(answer["sql"], json!([testkit::cortex::REVENUE_SQL]));
    assert_eq!(answer["citations"][0]["doc_id"], "KB-1");
    assert_eq!(answer["tables"][0]["rows"][0], json!(["AMER", "3400"]));
    let sent = requests_to(&wh, AGENT);
    assert_eq!(
        sent[0].body,
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "How did sales do last quarter?"}]}],
            "tool_choice": {"type": "auto"}, "stream": true})
    );

    // An error event mid-stream fails the call with Snowflake's words.
    let analyst = server.client_with_token("analyst-token").await;
    let (kind, message) = err(&analyst, "sales_agent", json!({"question": "please fail"})).await;
    assert_eq!(kind, "backend_error");
    assert!(message.contains("The agent's tool failed."), "{message}");
    server.stop().await;

    // A run longer than [cortex] timeout_secs is cut off at it, and says so.
    wh.set_agent_pace(std::time::Duration::from_millis(300));
    let config = config("cortex-agent-slow", "");
    let slow = std::fs::read_to_string(&config).unwrap().replace(
        "max_concurrent = 2\n",
        "max_concurrent = 2\ntimeout_secs = 1\n",
    );
    std::fs::write(&config, slow).unwrap();
    let server = Server::start(&["--config", &config], &warehouse_env(wh.port())).await;
    let analyst = server.client_with_token("analyst-token").await;
    let started = std::time::Instant::now();
    let (kind, message) = err(&analyst, "sales_agent", json!({"question": "sales?"})).await;
    assert_eq!(kind, "timeout", "{message}");
    assert!(message.contains("timeout_secs"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_only_the_cortex_they_are_allowed_and_as_often_as_allowed() {
    let wh = testkit::Warehouse::start().await;
    let server = Server::start(
        &["--config", &config("cortex-policy", "")],
        &warehouse_env(wh.port()),
    )
    .await;
    let bot = server.client_with_token("bot-token").await;

    for (tool, args) in [
        ("ask_analyst", json!({"question": "revenue by region?"})),
        ("sales_agent", json!({"question": "sales?"})),
        ("locked_docs", json!({"query": "x"})),
    ] {
        let (kind, message) = err(&bot, tool, args).await;
        assert_eq!(kind, "not_allowed", "{tool}: {message}");
        assert!(message.contains("support_docs"), "{message}");
    }
    // Three calls a day; a refused argument gives its call back; the fourth is refused, and
    // never reaches Snowflake.
    for _ in 0..2 {
        ok(&bot, "support_docs", json!({"query": "warranty"})).await;
    }
    let (kind, _) = err(&bot, "support_docs", json!({"query": ""})).await;
    assert_eq!(kind, "invalid_argument");
    ok(&bot, "support_docs", json!({"query": "warranty"})).await;
    let (kind, message) = err(&bot, "support_docs", json!({"query": "warranty"})).await;
    assert_eq!(kind, "quota_exceeded");
    assert!(message.contains("3 Cortex calls per day"), "{message}");
    assert_eq!(requests_to(&wh, SEARCH).len(), 3);
    // Cortex calls are counted apart from queries.
    ok(&bot, "run_query", json!({"sql": "SELECT 1"})).await;

    // A client held to some semantic views asks only about those.
    let fenced = server.client_with_token("fenced-token").await;
    let (kind, message) = err(&fenced, "ask_analyst", json!({"question": "revenue?"})).await;
    assert_eq!(kind, "not_allowed");
    assert!(message.contains("DB1.PUBLIC.OTHER_SV"), "{message}");
    assert!(requests_to(&wh, ANALYST).is_empty());
}

#[test]
fn a_bad_cortex_config_is_refused_at_start() {
    for (bad, said) in [
        ("[cortex]\nmax_concurrent = 0\n", "max_concurrent"),
        ("[[cortex.search]]\nname = \"run_query\"\nservice = \"A.B.C\"\ndescription = \"x\"\n", "tool name"),
        ("[[cortex.search]]\nname = \"docs\"\nservice = \"B.C\"\ndescription = \"x\"\n", "DATABASE.SCHEMA.NAME"),
        ("[[cortex.agents]]\nname = \"a\"\nagent = \"A.B.C\"\ndescription = \"x\"\n[[clients]]\nid = \"c\"\ntoken_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nallowed_cortex = [\"b\"]\n", "allowed_cortex"),
    ] {
        let path = write_config("cortex-bad", bad);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_snowflake-mcp"))
            .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--config", &path])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("a server with a bad [cortex] config started: {bad}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr.contains(said), "{bad}: {stderr}");
    }
}

/// Fifty agent runs at once queue for the Cortex places (`max_concurrent = 2`) among
/// themselves; a SQL client's statements meanwhile take as long as they take alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agent_runs_do_not_hold_up_a_sql_client() {
    let wh = testkit::Warehouse::start().await;
    // 13 events 40 ms apart: each run streams for about half a second.
    wh.set_agent_pace(std::time::Duration::from_millis(40));
    let extra = "\n[pool]\nmax_sessions = 2\n";
    let server = Server::start(
        &["--config", &config("cortex-fair", extra)],
        &warehouse_env(wh.port()),
    )
    .await;
    let viewer = server.client_with_token("viewer-token").await;
    let statement = "SELECT SYSTEM$WAIT(1)";
    let alone = std::time::Instant::now();
    ok(&viewer, "run_query", json!({"sql": statement})).await;
    let alone = alone.elapsed();

    let analyst = server.client_with_token("analyst-token").await;
    let runs: Vec<_> = (0..50)
        .map(|i| {
            let peer = analyst.peer().clone();
            tokio::spawn(async move {
                let args = json!({"question": format!("sales, take {i}")});
                let request = rmcp::model::CallToolRequestParams::new("sales_agent")
                    .with_arguments(args.as_object().unwrap().clone());
                peer.call_tool(request).await.unwrap()
            })
        })
        .collect();
    wait_for("the agent runs to start", || async { wh.agent_runs() >= 2 }).await;
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..4 {
        let started = std::time::Instant::now();
        ok(&viewer, "run_query", json!({"sql": statement})).await;
        slowest = slowest.max(started.elapsed());
    }
    let during = wh.agent_runs();
    assert!(
        during < 50,
        "the SQL ran while agents were still queued ({during} started)"
    );
    for run in runs {
        let result = run.await.unwrap();
        assert_ne!(result.is_error, Some(true), "{}", text(&result));
    }
    assert_eq!(wh.agent_runs(), 50);
    assert!(
        wh.agent_max_overlap() <= 2,
        "at most max_concurrent agent runs at once: {}",
        wh.agent_max_overlap()
    );
    // Within one statement's length of running alone.
    assert!(
        slowest < alone + std::time::Duration::from_secs(1),
        "a statement took {slowest:?} beside 50 agent runs, {alone:?} alone"
    );
}

/// With `[oauth] snowflake_identity = "token_exchange"`, a person's Cortex calls run as them:
/// on a session logged in with the Snowflake token exchanged for them, never the service
/// user's and never another person's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_cortex_calls_run_as_them() {
    use base64::Engine;
    let wh = testkit::Warehouse::start().await;
    let idp = testkit::TestIdp::start().await;
    let port = testkit::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let secret = std::env::temp_dir().join(format!("snowflake-mcp-cortex-exchange-{port}"));
    std::fs::write(&secret, testkit::EXCHANGE_CLIENT.1).unwrap();
    let config = write_config(
        "cortex-people",
        &format!(
            "{CORTEX_CONFIG}[oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nclient_claim = \"email\"\n\
             snowflake_identity = \"token_exchange\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\n\
             snowflake_audience = \"https://snowflake.test/oauth\"\n\n\
             [[clients]]\nid = \"analysts\"\nmatch = {{ groups = \"analysts\" }}\n",
            idp.issuer,
            testkit::EXCHANGE_CLIENT.0,
            secret.display()
        ),
    );
    let server = Server::start_on(
        &format!("127.0.0.1:{port}"),
        &["--config", &config],
        &warehouse_env(wh.port()),
    )
    .await;
    let person = |email: &str| {
        let mut c = idp.claims(email, &resource);
        c["groups"] = json!(["analysts"]);
        idp.token(&c)
    };
    let email_of = |token: &Option<String>| {
        let payload = token
            .as_deref()
            .unwrap_or_default()
            .split('.')
            .nth(1)
            .unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_default();
        let claims: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(claims["aud"], "https://snowflake.test/oauth", "{claims}");
        claims["email"].as_str().unwrap_or_default().to_string()
    };
    let (ana_token, bob_token) = (person("ana@corp.com"), person("bob@corp.com"));
    let ana = server.client_with_token(&ana_token).await;
    let bob = server.client_with_token(&bob_token).await;
    ok(&ana, "sales_agent", json!({"question": "sales?"})).await;
    ok(&bob, "support_docs", json!({"query": "warranty"})).await;
    ok(&ana, "support_docs", json!({"query": "refund"})).await;

    let agent_callers = wh.cortex_callers(AGENT);
    assert_eq!(agent_callers.len(), 1);
    assert_eq!(email_of(&agent_callers[0]), "ana@corp.com");
    let search_callers: Vec<String> = wh.cortex_callers(SEARCH).iter().map(email_of).collect();
    assert_eq!(search_callers, ["bob@corp.com", "ana@corp.com"]);
    for caller in wh.cortex_callers(SEARCH) {
        let sent = caller.unwrap();
        assert!(
            sent != ana_token && sent != bob_token,
            "a client's own token reached Snowflake"
        );
    }
}

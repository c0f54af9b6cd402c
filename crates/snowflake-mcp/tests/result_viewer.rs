//! The result viewer (an MCP App) in a real browser: a test host written from the ext-apps
//! specification (tests/js/app_host.mjs) reads the viewer from the demo server with the
//! official TypeScript SDK, loads it sandboxed in Debian's headless Chromium under the spec's
//! CSP, and feeds it real results. "Monthly revenue by region" comes back as a line per region
//! and a sortable table; a category breakdown as bars in the host's dark theme; a long result
//! pages through the server's own fetch_rows; the viewer reaches no network and not the host.
//! Clients without Apps get the same tool list and results as before. Screenshots are kept under
//! the test's target folder (`result-viewer-screenshots/`).

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_real_results_as_a_table_and_a_chart_and_pages_through_the_server() {
    let server = Server::start(&["--demo"], &[]).await;
    let url = format!("{}/mcp", server.base);
    let (seen, out) = run_browser_script(
        "app_host.mjs",
        "result-viewer-screenshots",
        &[("MCP_URL", &url)],
    )
    .await;

    // Found the way the extension says: the tool's _meta, a listed ui:// resource.
    assert_eq!(
        seen["resource_uri"],
        "ui://snowflake-mcp/result-viewer.html"
    );
    assert!(
        seen["listed"].as_array().unwrap().contains(&json!({"uri": "ui://snowflake-mcp/result-viewer.html", "mimeType": "text/html;profile=mcp-app"})),
        "{}",
        seen["listed"]
    );
    assert_eq!(seen["app"]["mimeType"], "text/html;profile=mcp-app");
    assert!(seen["app"]["bytes"].as_u64().unwrap() < 200 * 1024);

    // Monthly revenue by region: one line per region, the table as the result has it.
    let monthly = &seen["monthly"];
    assert_eq!(monthly["chart"], "line", "{monthly}");
    assert!(
        monthly["series"].as_u64().unwrap() >= 2,
        "a line per region: {monthly}"
    );
    assert_eq!(monthly["headers"], json!(["MONTH", "REGION", "REVENUE"]));
    assert_eq!(monthly["rows"], monthly["structured_rows"]);
    assert!(
        monthly["sql"].as_str().unwrap().contains("DATE_TRUNC"),
        "{monthly}"
    );
    assert!(
        monthly["queryId"]
            .as_str()
            .unwrap()
            .starts_with("query id "),
        "{monthly}"
    );
    assert_eq!(
        monthly["numericRight"][2], "right",
        "numbers aligned: {monthly}"
    );
    let sorted: Vec<f64> = serde_json::from_value(monthly["sorted"].clone()).unwrap();
    assert!(
        sorted.windows(2).all(|w| w[0] >= w[1]),
        "sorted descending: {sorted:?}"
    );
    assert_eq!(monthly["aria"], "descending");
    assert_eq!(monthly["switched"], "bar", "the person switches the chart");
    let copied = seen["copied"].as_str().unwrap();
    assert!(copied.starts_with("MONTH,REGION,REVENUE\n"), "{copied}");
    assert_eq!(
        copied.lines().count() as u64,
        monthly["rows"].as_u64().unwrap() + 1
    );

    // A breakdown by one category: bars, in the host's dark theme.
    let regions = &seen["regions"];
    assert_eq!(regions["chart"], "bar", "{regions}");
    assert_eq!(regions["theme"], "dark");
    assert_ne!(regions["background"], "rgb(255, 255, 255)", "{regions}");

    // Paging through the server: 25 rows, then two "load more" (fetch_rows, 100 rows each).
    let paging = &seen["paging"];
    assert_eq!(paging["before"]["rows"], 25, "{paging}");
    assert_eq!(paging["after"]["rows"], 225, "{paging}");
    assert_eq!(paging["after"]["counts"], "225 of 5000 rows", "{paging}");
    assert_eq!(
        paging["after"]["nulls"], 225,
        "NULLs shown as such: {paging}"
    );
    let ids: Vec<String> = serde_json::from_value(paging["after"]["firstColumn"].clone()).unwrap();
    let expected: Vec<String> = (1..=225).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected, "the same result, in order, with no gap");
    assert_eq!(seen["tool_calls"], json!(["fetch_rows", "fetch_rows"]));
    assert_eq!(
        paging["before"]["chart"], "line",
        "a date and numbers: {paging}"
    );

    // The sandbox holds: no network, no reach into the host page, nothing fetched elsewhere.
    assert_eq!(
        seen["sandbox"],
        json!({"fetch": "blocked", "parent": "blocked"})
    );
    assert_eq!(seen["foreign_requests"], json!([]));
    assert_screenshots(
        &out,
        &[
            "monthly-revenue-line",
            "revenue-by-region-bar-dark",
            "orders-paged",
        ],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_apps_get_the_same_tools_and_results() {
    let server = Server::start(&["--demo"], &[]).await;
    let client = server.client().await;
    // The server offers MCP Apps beside the tasks extension.
    let caps = serde_json::to_value(&client.peer_info().unwrap().capabilities).unwrap();
    let offered: Vec<&String> = caps["extensions"].as_object().unwrap().keys().collect();
    assert!(
        offered.iter().any(|k| *k == "io.modelcontextprotocol/ui"),
        "{caps}"
    );
    assert!(offered.iter().any(|k| k.contains("tasks")), "{caps}");
    let tools = client.list_all_tools().await.unwrap();
    // Only a client that declares MCP Apps gets the link (tests/js/app_host.mjs does).
    assert!(tools.iter().all(|t| t.meta.is_none()), "{tools:?}");
    assert_eq!(tools, snowflake_mcp::tools::definitions());
    let r = call(
        &client,
        "run_query",
        json!({"sql": "SELECT STATUS, COUNT(*) AS N FROM ORDERS GROUP BY STATUS ORDER BY STATUS"}),
    )
    .await;
    let text = text(&r);
    assert!(
        text.starts_with("STATUS | N\n"),
        "the same text table: {text}"
    );
    assert!(!text.contains("ui://"), "{text}");
    assert_eq!(
        r.structured_content.unwrap()["columns"][0]["name"],
        "STATUS"
    );
    let resources = client.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].uri, "ui://snowflake-mcp/result-viewer.html");
    drop(client);
    server.stop().await;
}

//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/js/package-lock.json`, run on Node 22) against `serve --demo`: every server scenario.
//!
//! Scenarios that cannot apply to this server are listed, each with the reason, in
//! `tests/conformance/expected-failures.yml`; the suite fails the run if one of them starts to
//! pass (so the list stays honest) or if any other scenario fails or warns.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_conformance_suite_passes_every_applicable_server_scenario() {
    let server = Server::start(&["--demo"], &[]).await;
    let suite = testkit::node_modules()
        .join("@modelcontextprotocol")
        .join("conformance")
        .join("dist")
        .join("index.js");
    let expected = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/expected-failures.yml"
    );
    let out_dir =
        std::env::temp_dir().join(format!("snowflake-mcp-conformance-{}", std::process::id()));
    let run = tokio::process::Command::new(testkit::node22())
        .arg(suite)
        .args(["server", "--url", &server.url, "--suite", "all"])
        .args(["--expected-failures", expected])
        .arg("-o")
        .arg(&out_dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the conformance suite finished within 300 s")
        .expect("run the conformance suite");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "conformance suite failed:\n{report}");
    // The scenarios that apply, each passed with no failure and no warning.
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "resources-list",
        "dns-rebinding-protection",
        "server-sse-multiple-streams",
    ] {
        let checks = std::fs::read_dir(&out_dir)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("server-{scenario}-"))
            })
            .unwrap_or_else(|| panic!("no result for {scenario}:\n{report}"))
            .path()
            .join("checks.json");
        let checks: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&checks).unwrap()).unwrap();
        let checks = checks.as_array().expect("checks.json is a list");
        assert!(!checks.is_empty(), "{scenario} ran no checks");
        for check in checks {
            assert_eq!(check["status"], "SUCCESS", "{scenario}: {check}\n{report}");
        }
    }
}

//! What `deploy/` ships for teams on Prometheus stays true to the server: every metric the
//! Grafana dashboard and the alerting rules use exists in a real server's `/metrics` (one with
//! a Snowflake pool, a shared state store and quotas, so every family is there), and the rules
//! pass `promtool check rules`; and the shipped HAProxy configuration, run in front of a real
//! server configured as it says, finds that server up.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// Every `snowflake_mcp_*` name in `text`, as the metric family it belongs to (the names
/// Prometheus queries carry `_total`, `_bucket`, `_sum` and `_count`; `# TYPE` lines do not).
fn families(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("snowflake_mcp_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        found.insert(family.to_string());
    }
    found
}

#[test]
fn the_dashboard_is_grafana_json_whose_panels_all_query() {
    let text = std::fs::read_to_string(deploy("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "snowflake-mcp");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{}", panels.len());
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert!(
                t["expr"].as_str().unwrap().contains("snowflake_mcp_"),
                "{t}"
            );
        }
    }
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let promtool = std::env::var("MCP_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = std::process::Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(deploy("prometheus-alerts.yml"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {promtool} ({e}): install it with scripts/test-env.sh (Debian's prometheus package), or run the suite with scripts/test")
        });
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    for alert in [
        "SnowflakeUnreachable",
        "SnowflakeMcpQueueWaitHigh",
        "SnowflakeMcpQuotaNearlySpent",
        "SnowflakeMcpStateStoreUnreachable",
        "SnowflakeMcpReplicasDropped",
    ] {
        let rules = std::fs::read_to_string(deploy("prometheus-alerts.yml")).unwrap();
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_served() {
    let wanted: BTreeSet<String> = ["grafana-dashboard.json", "prometheus-alerts.yml"]
        .iter()
        .flat_map(|f| families(&std::fs::read_to_string(deploy(f)).unwrap()))
        .collect();
    assert!(wanted.len() >= 15, "{wanted:?}");

    let redis = testkit::Valkey::start();
    let wh = testkit::Warehouse::start().await;
    let config = write_config(
        "deploy-metrics",
        &format!(
            "[console]\ntoken_sha256 = \"{}\"\nactions = true\n\n\
             [[clients]]\nid = \"analyst\"\ntoken_sha256 = \"{}\"\nqueries_per_day = 100\n\
             max_scan_bytes = 1e12\nallow_statements = [\"INSERT\"]\nwrite_databases = [\"SCRATCH\"]\n",
            sha("admin-token"),
            sha("analyst-token")
        ),
    );
    let url = redis.url();
    let server = Server::start(
        &["--config", &config, "--state", &url],
        &warehouse_env(wh.port()),
    )
    .await;
    let analyst = server.client_with_token("analyst-token").await;
    // Whatever its plan says, the statement needs the pool.
    call(&analyst, "run_query", json!({"sql": "SELECT 1"})).await;
    // Gauges read at scrape time are there at once; the quota gauge after its first reading.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let served = loop {
        let (_, metrics) = http_get(&server.base, "/metrics").await;
        let served: BTreeSet<String> = metrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect();
        if wanted.is_subset(&served) || std::time::Instant::now() > deadline {
            break served;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let missing: Vec<_> = wanted.difference(&served).collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}");
    drop(analyst);
    server.stop().await;
}

/// The shipped HAProxy configuration in front of a server configured as its header says
/// (`allowed_hosts = ["mcp.example.com"]`): its health check must pass. HAProxy's plain
/// `option httpchk GET /readyz` sends HTTP/1.0 without a Host, which the server's DNS-rebinding
/// guard answers with 400, and every replica was marked down (the benchmark found it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_haproxy_configuration_finds_its_replica_up() {
    let haproxy = std::env::var("MCP_HAPROXY").unwrap_or_else(|_| "haproxy".into());
    let config = write_config(
        "deploy-haproxy",
        "[server]\nallowed_hosts = [\"mcp.example.com\"]\n",
    );
    let server = Server::start(&["--demo", "--config", &config], &[]).await;
    let replica = server.base.trim_start_matches("http://").to_string();
    // The shipped file as it is, but for its listener (loopback, plain HTTP), its example
    // replicas (this server), its check interval (fast, so that failing checks mark the
    // replica down within the test) and its connection limit (its file descriptors may be
    // more than a test machine allows a process).
    let port = testkit::free_port();
    let mut cfg = String::new();
    for line in std::fs::read_to_string(deploy("haproxy.cfg"))
        .unwrap()
        .lines()
    {
        let t = line.trim_start();
        if t.starts_with("bind ") {
            cfg.push_str(&format!("    bind 127.0.0.1:{port}\n"));
        } else if !t.starts_with("server ") {
            let line = line.replace("check inter 5s", "check inter 200ms");
            cfg.push_str(&line.replace("maxconn 20000", "maxconn 1000"));
            cfg.push('\n');
        }
    }
    assert!(
        cfg.contains("check inter 200ms") && cfg.contains("maxconn 1000"),
        "{cfg}"
    );
    cfg.push_str(&format!("    server mcp1 {replica}\n"));
    let path = std::env::temp_dir().join(format!("snowflake-mcp-haproxy-{port}.cfg"));
    std::fs::write(&path, &cfg).unwrap();
    let valid = std::process::Command::new(&haproxy)
        .args(["-c", "-q", "-f"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {haproxy} ({e}): install it with scripts/test-env.sh (Debian's haproxy package), or run the suite with scripts/test")
        });
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    let _proxy = tokio::process::Command::new(&haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    wait_for("HAProxy to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    // Three failed checks (0.6 s) would mark the replica down: HAProxy then answers 503.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let (status, _, body) = raw_http(&front, "GET", "/readyz", &[], "").await;
        assert_eq!(status, 200, "through HAProxy: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let _ = std::fs::remove_file(&path);
}

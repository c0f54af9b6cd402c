use super::*;

#[test]
fn exposition_has_counters_histograms_and_gauges() {
    let m = Metrics::default();
    m.call("run_query", "analyst", "ok", Duration::from_millis(3));
    m.call("run_query", "analyst", "ok", Duration::from_millis(30));
    m.call(
        "run_query",
        "anonymous",
        "rate_limited",
        Duration::from_micros(50),
    );
    m.quota_used("analyst", "queries_per_day", 0.5);
    let text = m.render(&Gauges {
        queue_depth: 2,
        sessions_by_client: vec![("analyst".into(), 3)],
        session_seconds: vec![("analyst".into(), 1.5)],
        paused: vec!["bot".into()],
        ..Default::default()
    });
    assert!(
        text.contains("snowflake_mcp_session_seconds_total{client=\"analyst\"} 1.5"),
        "{text}"
    );
    assert!(
        text.contains("snowflake_mcp_client_paused{client=\"bot\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "snowflake_mcp_quota_used_ratio{client=\"analyst\",quota=\"queries_per_day\"} 0.5"
        ),
        "{text}"
    );
    assert!(text.contains("snowflake_mcp_tool_calls_total{tool=\"run_query\",client=\"analyst\",outcome=\"ok\"} 2"), "{text}");
    assert!(text.contains("client=\"anonymous\",outcome=\"rate_limited\"} 1"));
    assert!(text.contains(
        "snowflake_mcp_duration_seconds_bucket{le=\"0.005\",stage=\"total\",tool=\"run_query\"} 2"
    ), "{text}");
    assert!(
        text.contains("snowflake_mcp_duration_seconds_count{stage=\"total\",tool=\"run_query\"} 3")
    );
    assert!(text.contains(
        "snowflake_mcp_duration_seconds_bucket{le=\"+Inf\",stage=\"total\",tool=\"run_query\"} 3"
    ));
    assert!(text.contains("snowflake_mcp_queue_depth 2"));
    assert!(text.contains("snowflake_mcp_sessions{client=\"analyst\"} 3"));
    assert!(text.contains("snowflake_mcp_cache_hits_total 0"));
    assert!(text.contains("snowflake_mcp_audit_dropped_total 0"));
    assert!(
        !text.contains("pool_sessions_idle"),
        "pool gauges only when there is a pool"
    );
    assert!(
        !text.contains("circuit_open"),
        "circuit metrics only when there is a circuit"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!text.contains(".."), "help texts end with one full stop");
}

#[test]
fn every_sample_keeps_its_name() {
    let m = Metrics::default();
    m.call("list_tables", "bi", "ok", Duration::from_millis(1));
    m.observe("queue_wait", "list_tables", Duration::from_millis(1));
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    m.connection_refused();
    let text = m.render(&Gauges {
        pool_in_use: Some(1),
        pool_idle: Some(4),
        pool_logins: Some(5),
        context_switches: Some(6),
        cache_hits: 7,
        cache_misses: 8,
        audit_dropped: 9,
        circuit: Some((true, 10)),
        ..Default::default()
    });
    for sample in [
        "snowflake_mcp_statements_running 0",
        "snowflake_mcp_pool_sessions_in_use 1",
        "snowflake_mcp_pool_sessions_idle 4",
        "snowflake_mcp_pool_logins_total 5",
        "snowflake_mcp_context_switches_total 6",
        "snowflake_mcp_cache_hits_total 7",
        "snowflake_mcp_cache_misses_total 8",
        "snowflake_mcp_audit_dropped_total 9",
        "snowflake_mcp_circuit_open 1",
        "snowflake_mcp_login_failures_total 10",
        "snowflake_mcp_http_connections_open 1",
        "snowflake_mcp_http_connections_refused_total 1",
        "snowflake_mcp_duration_seconds_sum{stage=\"queue_wait\",tool=\"list_tables\"} 0.001",
        "# TYPE snowflake_mcp_tool_calls counter",
        "# TYPE snowflake_mcp_duration_seconds histogram",
        "# TYPE snowflake_mcp_circuit_open gauge",
    ] {
        assert!(
            text.contains(&format!("{sample}\n")),
            "{sample} in:\n{text}"
        );
    }
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::default();
    m.call("run_query", "a\"b\\c\nd", "ok", Duration::ZERO);
    let text = m.render(&Gauges::default());
    assert!(
        text.contains("client=\"a\\\"b\\\\c\\nd\""),
        "quotes, backslashes and newlines escaped:\n{text}"
    );
}

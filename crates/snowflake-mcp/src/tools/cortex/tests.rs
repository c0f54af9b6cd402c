use serde_json::json;

use super::*;

#[test]
fn filters_follow_cortex_searchs_grammar() {
    for good in [
        json!({"@eq": {"REGION": "EU"}}),
        json!({"@and": [{"@gte": {"UPDATED_AT": "2025-01-01"}}, {"@not": {"@contains": {"TAGS": "old"}}}]}),
        json!({"@or": [{"@eq": {"N": 1}}, {"@lte": {"N": 2.5}}, {"@eq": {"ON": true}}]}),
        json!({"@primarykey": {"ID": 7, "KIND": "doc"}}),
    ] {
        assert!(filter::check(&good, 0).is_ok(), "{good}");
    }
    let mut deep = json!({"@eq": {"A": 1}});
    for _ in 0..10 {
        deep = json!({"@not": deep});
    }
    for bad in [
        json!("REGION = 'EU'"),
        json!({"@eq": {"REGION": "EU"}, "@lte": {"A": 1}}),
        json!({"@like": {"REGION": "E%"}}),
        json!({"@eq": {"REGION) OR (1": "E"}}),
        json!({"@eq": {"A": 1, "B": 2}}),
        json!({"@eq": {"A": [1, 2]}}),
        json!({"@eq": {"A": {"nested": 1}}}),
        json!({"@and": []}),
        json!({"@and": {"@eq": {"A": 1}}}),
        json!({"@primarykey": {}}),
        deep,
    ] {
        let e = filter::check(&bad, 0).unwrap_err();
        assert_eq!(e.kind, "invalid_argument", "{bad}");
    }
}

#[test]
fn a_conversation_alternates_and_ends_with_the_question() {
    let turn = |role: &str, text: &str| Turn {
        role: role.into(),
        text: text.into(),
    };
    let m = messages(
        "and EMEA?",
        &[turn("user", "revenue?"), turn("analyst", "here")],
        "analyst",
    )
    .unwrap();
    assert_eq!(
        m,
        json!([{"role": "user", "content": [{"type": "text", "text": "revenue?"}]},
               {"role": "analyst", "content": [{"type": "text", "text": "here"}]},
               {"role": "user", "content": [{"type": "text", "text": "and EMEA?"}]}])
    );
    for history in [
        vec![turn("user", "a")],
        vec![turn("analyst", "a"), turn("user", "b")],
        vec![turn("user", "a"), turn("assistant", "b")],
        vec![turn("user", ""), turn("analyst", "b")],
    ] {
        assert!(messages("q", &history, "analyst").is_err());
    }
    assert!(messages(" ", &[], "analyst").is_err());
    assert!(messages(&"x".repeat(MAX_QUESTION + 1), &[], "analyst").is_err());
    let long: Vec<Turn> = (0..22)
        .map(|i| turn(if i % 2 == 0 { "user" } else { "analyst" }, "t"))
        .collect();
    assert!(messages("q", &long, "analyst").is_err());
}

#[test]
fn object_names_become_safe_path_segments() {
    let plain = ObjectName::resolve("DB1.PUBLIC.SUPPORT_DOCS", &Default::default()).unwrap();
    assert_eq!(
        object_path(&plain, "cortex-search-services", ":query"),
        "api/v2/databases/DB1/schemas/PUBLIC/cortex-search-services/SUPPORT_DOCS:query"
    );
    let odd = ObjectName::resolve("\"My Db\".s.\"a/../b\"", &Default::default()).unwrap();
    let path = object_path(&odd, "agents", ":run");
    assert_eq!(
        path,
        "api/v2/databases/%22My%20Db%22/schemas/S/agents/%22a%2F..%2Fb%22:run"
    );
    assert!(!path.contains("/../"));
}

#[test]
fn an_agents_events_fold_into_one_answer() {
    let citation = json!({"type": "cortex_search_citation", "index": 1, "doc_id": "KB-1", "doc_title": "Refunds", "text": "30 days"});
    // Deltas alone make the answer when no final event came.
    let folded = agent::fold(&[
        (
            "response.status",
            json!({"status": "planning", "message": "Planning"}),
        ),
        (
            "response.tool_result",
            json!({"content": [{"type": "json", "json": {"sql": "SELECT 1"}}]}),
        ),
        ("response.text.delta", json!({"text": "Hello "})),
        ("response.text.delta", json!({"text": "world"})),
        ("response.text.annotation", json!({"annotation": citation})),
        ("something.new", json!({"ignored": true})),
    ])
    .unwrap();
    assert_eq!(folded["answer"], "Hello world");
    assert_eq!(folded["sql"], json!(["SELECT 1"]));
    assert_eq!(folded["citations"][0]["doc_id"], "KB-1");
    // The final event is the whole story.
    let folded = agent::fold(&[
        ("response.text.delta", json!({"text": "partial"})),
        ("response", json!({"role": "assistant", "content": [
            {"type": "text", "text": "Final.", "annotations": [citation]},
            {"type": "tool_result", "tool_result": {"content": [{"type": "json", "json": {"sql": "SELECT 2"}}]}}]})),
    ])
    .unwrap();
    assert_eq!(folded["answer"], "Final.");
    assert_eq!(folded["sql"], json!(["SELECT 2"]));
    // An error event fails the run; so does an empty one.
    let e = agent::fold(&[
        ("response.text.delta", json!({"text": "so far"})),
        (
            "error",
            json!({"code": "399505", "message": "boom", "request_id": "r1"}),
        ),
    ])
    .unwrap_err();
    assert!(e.message.contains("boom (request id r1)"), "{}", e.message);
    assert!(agent::fold(&[("response.status", json!({"message": "x"}))]).is_err());
}

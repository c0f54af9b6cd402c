use super::*;

#[test]
fn the_tool_list_is_small() {
    let list = serde_json::to_string(&definitions()).unwrap();
    // About four characters per token: twelve tools stay below 1,850 tokens (each tool's
    // description and schemas are as short as they can be and still guide a model).
    assert!(
        list.len() / 4 < 1_850,
        "tool list is ~{} tokens",
        list.len() / 4
    );
    let names: Vec<String> = definitions().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "list_databases",
            "list_schemas",
            "list_objects",
            "describe_object",
            "run_query",
            "get_result",
            "fetch_rows",
            "cancel_query",
            "explain_query",
            "get_context",
            "query_history",
            "set_context"
        ]
    );
    assert!(definitions()
        .iter()
        .all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)));
}

#[test]
fn object_names_complete_from_the_context() {
    let ctx = Context {
        database: Some("DB".into()),
        schema: Some("S".into()),
        ..Default::default()
    };
    assert_eq!(
        ObjectName::resolve("orders", &ctx).unwrap().quoted(),
        "\"DB\".\"S\".\"ORDERS\""
    );
    assert_eq!(
        ObjectName::resolve("x.\"My T\"", &ctx).unwrap().quoted(),
        "\"DB\".\"X\".\"My T\""
    );
    assert!(ObjectName::resolve("a.b.c.d", &ctx).is_err());
    assert!(ObjectName::resolve("t", &Context::default())
        .unwrap_err()
        .message
        .contains("set_context"));
}

#[test]
fn set_context_moves_schema_with_database() {
    let ctx = Context {
        database: Some("A".into()),
        schema: Some("S".into()),
        ..Default::default()
    };
    let a = SetContext {
        database: Some("b".into()),
        schema: None,
        warehouse: None,
        role: None,
    };
    let t = a.apply_to(&ctx).unwrap();
    assert_eq!(
        (t.database.as_deref(), t.schema.as_deref()),
        (Some("B"), None)
    );
    let none = SetContext {
        database: None,
        schema: None,
        warehouse: None,
        role: None,
    };
    assert!(none.apply_to(&ctx).is_err());
    let bad = SetContext {
        database: Some("x; drop".into()),
        schema: None,
        warehouse: None,
        role: None,
    };
    assert_eq!(bad.apply_to(&ctx).unwrap_err().kind, "invalid_argument");
}

#[test]
fn where_a_client_may_write_run_query_says_so_and_takes_confirm() {
    let tools = definitions_for(true);
    let run = tools.iter().find(|t| t.name == "run_query").unwrap();
    let hints = run.annotations.as_ref().unwrap();
    assert_eq!(hints.read_only_hint, Some(false));
    assert_eq!(hints.destructive_hint, Some(true));
    assert!(run.input_schema["properties"]["confirm"].is_object());
    // A read-only server's list has no confirm (every token of it is paid for).
    let read_only = definitions();
    let run = read_only.iter().find(|t| t.name == "run_query").unwrap();
    assert!(run.input_schema["properties"].get("confirm").is_none());
    let list = serde_json::to_string(&tools).unwrap();
    assert!(
        list.len() / 4 < 1_900,
        "tool list is ~{} tokens",
        list.len() / 4
    );
}

/// The size of the future `f` returns, without running it.
fn future_size<'a, A: 'a, B: 'a, F: std::future::Future>(
    _: impl FnOnce(&'a A, &'a B) -> F,
) -> usize {
    std::mem::size_of::<F>()
}

/// A future is copied whole each time it is moved, and the statement path moves its future
/// through several wrappers per call. Unboxed, `call`'s future was 13.7 KB (release build)
/// and the job's 27 KB, copied six times per call; with each tool's work boxed where it is
/// made it is 2.5 KB. This keeps a new await from growing it back unnoticed.
#[test]
fn the_call_paths_futures_stay_small() {
    // `'a` names the borrows the closures take, so their futures' types can be named.
    #[allow(clippy::extra_unused_lifetimes)]
    fn sizes<'a>() -> [(&'static str, usize); 2] {
        [
            (
                "call",
                future_size(|t: &'a Arc<Tools>, c: &'a Caller| {
                    t.call("run_query", JsonObject::new(), c)
                }),
            ),
            (
                "call_now",
                future_size(|t: &'a Arc<Tools>, c: &'a Caller| {
                    t.call_now("run_query", JsonObject::new(), c)
                }),
            ),
        ]
    }
    for (what, size) in sizes() {
        assert!(size <= 8 * 1024, "{what}'s future is {size} bytes");
    }
}

use super::*;

fn run(sql: &str) -> String {
    rewrite(sql, &Context::default()).unwrap().to_string()
}

#[test]
fn unquoted_names_fold_to_upper_case_and_quoted_ones_stay() {
    assert_eq!(
        run(r#"select o.order_id, "Mixed" from demo.sales.orders o"#),
        r#"SELECT O.ORDER_ID, "Mixed" FROM DEMO.SALES.ORDERS O"#
    );
}

#[test]
fn snowflake_functions_become_the_engines() {
    let sql =
        run("select iff(a > 1, 'x', 'y'), count_if(b), dateadd(day, -30, current_date()) from t");
    assert!(
        sql.contains("CASE WHEN A > 1 THEN 'x' ELSE 'y' END"),
        "{sql}"
    );
    assert!(sql.contains("count(CASE WHEN B THEN 1 END)"), "{sql}");
    assert!(
        sql.contains("snow_dateadd('DAY', -30, CURRENT_DATE())"),
        "{sql}"
    );
}

#[test]
fn top_becomes_limit_and_division_is_never_integer_division() {
    let sql = run("select top 5 a / b from t");
    assert!(sql.ends_with("LIMIT 5"), "{sql}");
    assert!(sql.contains("CAST(A AS DOUBLE) / B"), "{sql}");
}

#[test]
fn path_keys_keep_their_case() {
    let sql = run("select parse_json(j):Name.first::string from t");
    assert!(sql.contains("'Name.first'"), "{sql}");
}

#[test]
fn date_formats_translate() {
    assert_eq!(chrono_format("YYYY-MM-DD HH24:MI"), "%Y-%m-%d %H:%M");
    assert_eq!(chrono_format("Mon DD, YYYY"), "%b %d, %Y");
}

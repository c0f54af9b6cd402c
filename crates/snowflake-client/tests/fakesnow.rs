//! The client against a real peer: the `fakesnow` emulator (see `testkit`).

use snowflake_client::{Client, ConnectionSettings, ErrorKind, RowLimits, Secret, Session, Value};

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        account: Some("testacct".into()),
        user: Some("tester".into()),
        password: Some(Secret::new("pw")),
        host: Some("127.0.0.1".into()),
        port: Some(testkit::fakesnow().port),
        protocol: Some("http".into()),
        database: Some("TESTDB".into()),
        schema: Some("PUBLIC".into()),
        ..Default::default()
    }
}

async fn session() -> Session {
    Client::new(&settings()).unwrap().login().await.unwrap()
}

async fn rows(s: &mut Session, sql: &str) -> Vec<Vec<Value>> {
    s.query(sql)
        .await
        .unwrap()
        .collect(RowLimits::default())
        .await
        .unwrap()
        .rows
}

#[tokio::test]
async fn select_returns_each_data_type() {
    let mut s = session().await;
    let sql =
        "SELECT 42 AS i, 12.50::NUMBER(10,2) AS d, 1.5::FLOAT AS f, 'héllo' AS t, TRUE AS b, \
        '2024-02-29'::DATE AS dt, '13:14:15.5'::TIME AS tm, \
        '2024-02-29 13:14:15.123456'::TIMESTAMP_NTZ AS ntz, \
        '2024-02-29 13:14:15+00:00'::TIMESTAMP_TZ AS tz, \
        PARSE_JSON('{\"a\": [1, 2]}') AS v, TO_BINARY('CAFE', 'HEX') AS bin, NULL AS n";
    let result = s.query(sql).await.unwrap();
    let names: Vec<&str> = result.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["I", "D", "F", "T", "B", "DT", "TM", "NTZ", "TZ", "V", "BIN", "N"]
    );
    assert_eq!(result.columns()[1].scale, Some(2));
    let rows = result.collect(RowLimits::default()).await.unwrap();
    let r = &rows.rows[0];
    assert_eq!(r[0].to_string(), "42");
    assert_eq!(r[1].to_string(), "12.50");
    assert_eq!(r[2], Value::Real(1.5));
    assert_eq!(r[3], Value::Text("héllo".into()));
    assert_eq!(r[4], Value::Boolean(true));
    assert_eq!(r[5].to_string(), "2024-02-29");
    assert_eq!(r[6].to_string(), "13:14:15.500");
    assert_eq!(r[7].to_string(), "2024-02-29 13:14:15.123456");
    assert_eq!(r[8].to_string(), "2024-02-29 13:14:15 +00:00");
    assert_eq!(r[9].to_json()["a"][1], 2);
    assert_eq!(r[10], Value::Binary(vec![0xCA, 0xFE]));
    assert_eq!(r[11], Value::Null);
    assert!(!rows.query_id.is_empty());
    s.close().await.unwrap();
}

#[tokio::test]
async fn nulls_in_every_type_and_row_caps() {
    let mut s = session().await;
    let sql = "SELECT NULL::NUMBER(10,2), NULL::FLOAT, NULL::TEXT, NULL::BOOLEAN, NULL::DATE, NULL::TIME, NULL::TIMESTAMP_NTZ, NULL::VARIANT, NULL::BINARY";
    let r = rows(&mut s, sql).await;
    assert!(r[0].iter().all(Value::is_null), "{:?}", r[0]);

    let result = s
        .query("SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 1000))")
        .await
        .unwrap();
    let capped = result
        .collect(RowLimits {
            max_rows: 10,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    assert_eq!(capped.rows.len(), 10);
    assert!(capped.truncated);
    let result = s
        .query("SELECT 'x' || seq4() FROM TABLE(GENERATOR(ROWCOUNT => 1000))")
        .await
        .unwrap();
    let capped = result
        .collect(RowLimits {
            max_rows: usize::MAX,
            max_bytes: 100,
        })
        .await
        .unwrap();
    assert!(capped.truncated && capped.bytes <= 100 && !capped.rows.is_empty());
}

#[tokio::test]
async fn ddl_dml_and_show() {
    let mut s = session().await;
    rows(&mut s, "CREATE DATABASE IF NOT EXISTS DML_DB").await;
    rows(&mut s, "USE DATABASE DML_DB").await;
    rows(&mut s, "CREATE SCHEMA IF NOT EXISTS DML_DB.S1").await;
    rows(
        &mut s,
        "CREATE OR REPLACE TABLE DML_DB.S1.T (id INT, name TEXT)",
    )
    .await;
    let inserted = rows(&mut s, "INSERT INTO DML_DB.S1.T VALUES (1, 'a'), (2, 'b')").await;
    assert_eq!(inserted[0][0].to_string(), "2");
    let got = rows(&mut s, "SELECT name FROM DML_DB.S1.T ORDER BY id").await;
    assert_eq!(
        got,
        vec![vec![Value::Text("a".into())], vec![Value::Text("b".into())]]
    );
    let dbs = s.query("SHOW DATABASES").await.unwrap();
    let name_col = dbs
        .columns()
        .iter()
        .position(|c| c.name == "name")
        .expect("SHOW DATABASES has a name column");
    let dbs = dbs.collect(RowLimits::default()).await.unwrap();
    assert!(dbs
        .rows
        .iter()
        .any(|r| r[name_col] == Value::Text("DML_DB".into())));
}

#[tokio::test]
async fn use_database_stays_in_its_own_session() {
    let mut a = session().await;
    let mut b = session().await;
    rows(&mut a, "CREATE DATABASE IF NOT EXISTS ISO_A").await;
    rows(&mut a, "CREATE DATABASE IF NOT EXISTS ISO_B").await;
    rows(&mut a, "USE DATABASE ISO_A").await;
    rows(&mut b, "USE DATABASE ISO_B").await;
    assert_eq!(
        rows(&mut a, "SELECT CURRENT_DATABASE()").await[0][0],
        Value::Text("ISO_A".into())
    );
    assert_eq!(
        rows(&mut b, "SELECT CURRENT_DATABASE()").await[0][0],
        Value::Text("ISO_B".into())
    );
    assert_eq!(a.context().database.as_deref(), Some("ISO_A"));
    assert_eq!(b.context().database.as_deref(), Some("ISO_B"));
}

#[tokio::test]
async fn bad_statement_is_a_sql_error_with_code_and_state() {
    let mut s = session().await;
    let err = s
        .query("SELECT * FROM NO_SUCH_DB.NO_SUCH_SCHEMA.NO_SUCH_TABLE")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sql, "{err}");
    assert!(err.code().is_some_and(|c| c.len() == 6), "{err:?}");
    assert!(err.sql_state().is_some(), "{err:?}");
    // The session is still usable after a failed statement.
    assert_eq!(rows(&mut s, "SELECT 1").await[0][0].to_string(), "1");
}

#[tokio::test]
async fn closed_session_token_is_refused() {
    let s = session().await;
    let handle = s.handle();
    handle.heartbeat().await.unwrap();
    s.close().await.unwrap();
    let err = handle.heartbeat().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionExpired, "{err}");
    assert_eq!(err.code(), Some("390104"));
}

#[tokio::test]
async fn key_pair_login_sends_a_jwt() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let dir = std::env::temp_dir().join(format!("sfc-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.p8");
    let pem = key
        .to_pkcs8_encrypted_pem(&mut rand::thread_rng(), b"pass", LineEnding::LF)
        .unwrap();
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let settings = ConnectionSettings {
        authenticator: Some("snowflake_jwt".into()),
        password: None,
        private_key_file: Some(path),
        private_key_file_pwd: Some(Secret::new("pass")),
        ..settings()
    };
    let client = Client::new(&settings).unwrap();
    assert!(client.key_fingerprint().unwrap().starts_with("SHA256:"));
    let mut s = client.login().await.unwrap();
    assert_eq!(rows(&mut s, "SELECT 7").await[0][0].to_string(), "7");
    std::fs::remove_dir_all(dir).unwrap();
}

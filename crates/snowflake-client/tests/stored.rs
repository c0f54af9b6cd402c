//! Statements that outlive their caller: submitted asynchronously, their query id known at once,
//! their result read again by query id (pages deep in a chunked result without the chunks
//! before), and aborted — against a scripted Snowflake (`testkit::Warehouse`).

mod common;

use common::settings;
use std::time::Duration;

use snowflake_client::{Client, QueryIdCell, QueryOptions, RowLimits, Stored, Value};
use testkit::Warehouse;
use tokio::time::Instant;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn a_detached_statement_is_named_at_once_and_its_result_read_from_elsewhere() {
    let wh = Warehouse::start().await;
    let client = Client::new(&settings(wh.port())).unwrap();
    let mut runner = client.login().await.unwrap();
    let mut reader = client.login().await.unwrap();

    let cell = QueryIdCell::default();
    let options = QueryOptions {
        detached: true,
        query_id: Some(cell.clone()),
        ..Default::default()
    };
    let running = tokio::spawn(async move {
        let r = runner.query_with("SELECT SYSTEM$WAIT(2)", &options).await;
        r.map(|r| r.query_id().to_string())
    });
    let started = Instant::now();
    while cell.get().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the id comes with the submission"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = cell.get().unwrap().clone();
    let submit = wh
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/queries/v1/query-request")
        .unwrap();
    assert_eq!(submit.body["asyncExec"], true);
    // Another session of the same user sees it running, then reads its result.
    assert!(matches!(
        reader.stored_result(&id, soon()).await.unwrap(),
        Stored::Running
    ));
    assert_eq!(running.await.unwrap().unwrap(), id);
    let Stored::Done(result) = reader.stored_result(&id, soon()).await.unwrap() else {
        panic!("finished")
    };
    let rows = result.collect(RowLimits::default()).await.unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![Value::Text("waited 2 seconds".into())]]
    );
    assert_eq!(
        wh.executions("SYSTEM$WAIT"),
        1,
        "reading a result runs nothing"
    );

    // An unknown id is Snowflake's error, not a hang or a panic.
    let e = reader
        .stored_result("01b00000-0000-4000-8000-000000000000", soon())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
}

#[tokio::test]
async fn a_page_deep_in_a_big_result_downloads_only_its_chunks() {
    let wh = Warehouse::start().await;
    let mut s = Client::new(&settings(wh.port()))
        .unwrap()
        .login()
        .await
        .unwrap();
    let first = s
        .query("SELECT SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 10000))")
        .await
        .unwrap();
    let id = first.query_id().to_string();
    assert_eq!(first.total(), Some(10_000));
    drop(first);
    assert_eq!(wh.chunk_downloads(), 0);

    // Rows 5,051..5,060: inline rows are 1..100, chunk k holds 101+1000k..1100+1000k.
    let Stored::Done(mut page) = s.stored_result(&id, soon()).await.unwrap() else {
        panic!("finished")
    };
    page.skip(5_050).await.unwrap();
    let rows = page
        .collect(RowLimits {
            max_rows: 10,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    let first_n = rows.rows[0][0].to_string();
    assert_eq!(first_n, "5051");
    assert_eq!(rows.rows.len(), 10);
    assert!(rows.truncated, "more rows follow");
    assert_eq!(
        wh.chunk_downloads(),
        1,
        "only the chunk holding the page is read"
    );

    // The last page says there is nothing more.
    let Stored::Done(mut last) = s.stored_result(&id, soon()).await.unwrap() else {
        panic!("finished")
    };
    last.skip(9_995).await.unwrap();
    let rows = last
        .collect(RowLimits {
            max_rows: 10,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 5);
    assert!(!rows.truncated);
    assert_eq!(wh.executions("GENERATOR"), 1);
}

#[tokio::test]
async fn a_detached_statement_is_aborted_by_its_handle() {
    let wh = Warehouse::start().await;
    let client = Client::new(&settings(wh.port())).unwrap();
    let mut s = client.login().await.unwrap();
    let handle = s.handle();
    let options = QueryOptions {
        detached: true,
        ..Default::default()
    };
    let running =
        tokio::spawn(async move { s.query_with("SELECT SYSTEM$WAIT(60)", &options).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handle.abort().await.unwrap());
    let e = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the abort ends the statement")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), snowflake_client::ErrorKind::Cancelled, "{e}");
    assert!(wh.cancelled("SYSTEM$WAIT(60)"));
}

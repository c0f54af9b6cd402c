//! Raw coverage of polyglot-sql on the demo corpus: each Snowflake query transpiled to SQLite
//! and run on the demo's SQLite file as it is — no added SQLite functions.
//! Usage: probe-polyglot queries.json demo.sqlite
use polyglot_sql::{transpile, DialectType};

fn main() {
    let mut args = std::env::args().skip(1);
    let corpus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(args.next().expect("queries.json")).unwrap()).unwrap();
    let db = rusqlite::Connection::open(args.next().expect("demo.sqlite")).unwrap();
    let (mut ok, mut total) = (0, 0);
    for q in corpus.as_array().unwrap() {
        total += 1;
        let sql = q["snowflake"].as_str().unwrap();
        let ran = transpile(sql, DialectType::Snowflake, DialectType::SQLite)
            .map_err(|e| format!("transpile: {e}"))
            .and_then(|out| {
                let text = out.join("; ");
                let mut stmt = db.prepare(&text).map_err(|e| format!("{e} [{text}]"))?;
                let n = stmt.column_count();
                let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
                while let Some(r) = rows.next().map_err(|e| e.to_string())? {
                    for i in 0..n {
                        let _ = r.get_ref(i);
                    }
                }
                Ok(())
            });
        match ran {
            Ok(()) => ok += 1,
            Err(e) => println!("{}: {}", q["id"], e.lines().next().unwrap_or("")),
        }
    }
    println!("polyglot-sql -> sqlite raw: {ok} of {total} run");
}

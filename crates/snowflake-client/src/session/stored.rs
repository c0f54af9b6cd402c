//! Reading a statement's result again, by its query id, without running it again.
//!
//! Snowflake keeps every result for 24 hours. `GET /queries/<id>/result` answers with the same
//! envelope a finished statement does (first rows inline, the rest in chunks), or 333333/333334
//! while the statement still runs — what gosnowflake's `WithFetchResultByID` and the Python
//! connector's `cursor.query_result(qid)` do (gosnowflake `monitoring.go`
//! `getQueryResultResp`; snowflake-connector-python `cursor.py` `query_result`). A gateway reads
//! pages of a big result this way, and another process reads the result of a statement it did
//! not start (a restart, another replica): the result belongs to the Snowflake user, not to the
//! session that ran it.

use tokio::time::Instant;

use super::statement::is_in_progress;
use super::Session;
use crate::error::{Error, Result};
use crate::result::{parse_query_data, QueryResult};

/// A stored result, or word that its statement still runs.
#[derive(Debug)]
pub enum Stored {
    /// The statement has not finished.
    Running,
    /// Its result, read lazily like any statement's.
    Done(Box<QueryResult>),
}

/// Whether `text` can be a query id: Snowflake's are UUIDs (letters, digits, dashes; at most
/// 64 characters). Nothing else is put in a URL path or a statement.
pub fn is_query_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn check_query_id(query_id: &str) -> Result<()> {
    if is_query_id(query_id) {
        Ok(())
    } else {
        Err(Error::protocol(format!(
            "'{query_id}' is not a Snowflake query id"
        )))
    }
}

impl Session {
    /// The result of query `query_id` as Snowflake stored it, or [`Stored::Running`] while its
    /// statement runs. Nothing is executed. A failed statement's error is returned as its
    /// error; an unknown or expired id as Snowflake words it. Chunks are read by `deadline`.
    pub async fn stored_result(&mut self, query_id: &str, deadline: Instant) -> Result<Stored> {
        check_query_id(query_id)?;
        self.check_open()?;
        let transport = self.client.transport.clone();
        let url = transport.url(&format!("queries/{query_id}/result"), &[])?;
        let env = self
            .with_renewal(deadline, |token| {
                let (transport, url) = (&transport, url.clone());
                async move { transport.get(url, Some(&token), deadline).await }
            })
            .await?;
        if is_in_progress(&env) {
            return Ok(Stored::Running);
        }
        if !env.success {
            return Err(env.error().with_query_id(Some(query_id.to_string())));
        }
        let mut data = parse_query_data(env.data)?;
        if data.query_id.as_deref().is_none_or(str::is_empty) {
            data.query_id = Some(query_id.to_string());
        }
        QueryResult::from_data(data, transport, deadline).map(|r| Stored::Done(Box::new(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_query_ids_reach_the_url() {
        assert!(check_query_id("01b2c3d4-0000-1a2b-0000-00010002e00a").is_ok());
        for bad in ["", "../session", "a/b", "q?x=1", &"a".repeat(65)] {
            assert!(check_query_id(bad).is_err(), "{bad}");
        }
    }
}

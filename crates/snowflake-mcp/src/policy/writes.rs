//! What a client may write, and where: the statement kinds of `allow_statements`, inside
//! `write_databases` / `write_schemas`, and whether a person confirms each write
//! (`confirm_writes`). Empty is read-only, the default for every client.
//!
//! This is defence in depth like the rest of [`crate::policy`]: the client's Snowflake role
//! still decides what it can actually write.

use crate::config::{ConfirmWrites, WriteKind};
use crate::error::ToolError;

/// A client's writes; the default allows none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    pub kinds: Vec<WriteKind>,
    /// Databases every schema of which may be written.
    pub databases: Vec<String>,
    /// (database, schema) pairs that may be written.
    pub schemas: Vec<(String, String)>,
    pub confirm: ConfirmWrites,
}

impl Writes {
    /// Whether this client may write at all.
    pub fn any(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// `Ok` when `kind` may write into `database.schema`; the refusal says where it may.
    pub fn check_place(
        &self,
        client: &str,
        kind: WriteKind,
        database: &str,
        schema: &str,
    ) -> Result<(), ToolError> {
        let allowed = self.databases.iter().any(|d| d == database)
            || self
                .schemas
                .iter()
                .any(|(d, s)| d == database && s == schema);
        if allowed {
            return Ok(());
        }
        let places: Vec<String> = self
            .databases
            .iter()
            .cloned()
            .chain(self.schemas.iter().map(|(d, s)| format!("{d}.{s}")))
            .collect();
        Err(ToolError::refused(format!(
            "client '{client}' may not {kind} in {database}.{schema}; its writes may only go to {}. Name the object there (DB.SCHEMA.NAME)",
            places.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_goes_only_where_its_client_may_write() {
        let writes = Writes {
            kinds: vec![WriteKind::Insert],
            databases: vec!["SCRATCH".into()],
            schemas: vec![("SALES".into(), "STAGING".into())],
            confirm: ConfirmWrites::Always,
        };
        assert!(writes.any());
        assert!(!Writes::default().any());
        let insert = WriteKind::Insert;
        assert!(writes.check_place("a", insert, "SCRATCH", "ANY").is_ok());
        assert!(writes.check_place("a", insert, "SALES", "STAGING").is_ok());
        let e = writes
            .check_place("a", insert, "SALES", "PUBLIC")
            .unwrap_err();
        assert_eq!(e.kind, "not_allowed");
        assert!(
            e.message.contains("INSERT in SALES.PUBLIC")
                && e.message.contains("SCRATCH, SALES.STAGING"),
            "{}",
            e.message
        );
        // Names are compared as Snowflake resolved them: case matters.
        assert!(writes.check_place("a", insert, "scratch", "X").is_err());
    }
}

//! The words of a client's write policy: which statement kinds it may run
//! (`allow_statements`), and whether a person confirms each (`confirm_writes`).
//!
//! The kinds are the ones the guard tells apart from the parsed statement
//! ([`crate::tools::guard`]); a config naming anything else is refused when it is loaded, and
//! the statements that are never allowed (GRANT, REVOKE, ownership, account-level objects,
//! `EXECUTE IMMEDIATE`, procedures) say so.

use serde::Deserialize;

/// A statement kind a client may be allowed to run besides reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteKind {
    Insert,
    Update,
    Delete,
    Merge,
    Truncate,
    CreateTable,
    CreateView,
    DropTable,
    DropView,
}

impl WriteKind {
    pub const ALL: [WriteKind; 9] = [
        WriteKind::Insert,
        WriteKind::Update,
        WriteKind::Delete,
        WriteKind::Merge,
        WriteKind::Truncate,
        WriteKind::CreateTable,
        WriteKind::CreateView,
        WriteKind::DropTable,
        WriteKind::DropView,
    ];

    /// The name as `allow_statements` spells it.
    pub fn name(self) -> &'static str {
        match self {
            WriteKind::Insert => "INSERT",
            WriteKind::Update => "UPDATE",
            WriteKind::Delete => "DELETE",
            WriteKind::Merge => "MERGE",
            WriteKind::Truncate => "TRUNCATE",
            WriteKind::CreateTable => "CREATE TABLE",
            WriteKind::CreateView => "CREATE VIEW",
            WriteKind::DropTable => "DROP TABLE",
            WriteKind::DropView => "DROP VIEW",
        }
    }

    /// Read a kind as written in config: case and spacing do not matter.
    pub fn parse(text: &str) -> Result<WriteKind, String> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let spelled = words.join(" ");
        let spelled = match spelled.as_str() {
            "TRUNCATE TABLE" => "TRUNCATE",
            other => other,
        };
        if let Some(kind) = WriteKind::ALL.into_iter().find(|k| k.name() == spelled) {
            return Ok(kind);
        }
        let never = matches!(
            words.first().map(String::as_str),
            Some("GRANT" | "REVOKE" | "EXECUTE" | "CALL" | "USE" | "SET" | "UNSET" | "PUT" | "GET")
        ) || words.iter().any(|w| {
            matches!(
                w.as_str(),
                "OWNERSHIP"
                    | "ACCOUNT"
                    | "USER"
                    | "ROLE"
                    | "WAREHOUSE"
                    | "INTEGRATION"
                    | "PROCEDURE"
                    | "SHARE"
                    | "NETWORK"
                    | "POLICY"
            )
        });
        let known: Vec<&str> = WriteKind::ALL.iter().map(|k| k.name()).collect();
        Err(if never {
            format!(
                "'{text}' is never allowed through this server (privileges, ownership, account-level objects, procedures and dynamic SQL stay with administrators); the kinds a client may be allowed: {}",
                known.join(", ")
            )
        } else {
            format!(
                "'{text}' is not a statement kind this server can allow; the kinds: {}",
                known.join(", ")
            )
        })
    }

    /// Whether this kind puts or changes rows in a table (its plan has a scan to estimate).
    pub fn changes_rows(self) -> bool {
        matches!(
            self,
            WriteKind::Insert | WriteKind::Update | WriteKind::Delete | WriteKind::Merge
        )
    }
}

impl std::fmt::Display for WriteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for WriteKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        WriteKind::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `confirm_writes`: whether a person confirms each write before it runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmWrites {
    /// Every write waits for a confirmation (the default).
    #[default]
    Always,
    /// Writes run without asking: for unattended clients the team trusts.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_written_and_dangerous_ones_are_named_as_never_allowed() {
        assert_eq!(WriteKind::parse("insert"), Ok(WriteKind::Insert));
        assert_eq!(
            WriteKind::parse("create   table"),
            Ok(WriteKind::CreateTable)
        );
        assert_eq!(WriteKind::parse("TRUNCATE TABLE"), Ok(WriteKind::Truncate));
        for never in [
            "GRANT",
            "REVOKE",
            "GRANT OWNERSHIP",
            "EXECUTE IMMEDIATE",
            "CREATE USER",
            "ALTER ACCOUNT",
            "CALL",
        ] {
            let e = WriteKind::parse(never).unwrap_err();
            assert!(e.contains("never allowed"), "{never}: {e}");
        }
        let e = WriteKind::parse("ALTER TABLE").unwrap_err();
        assert!(
            e.contains("not a statement kind") && e.contains("CREATE VIEW"),
            "{e}"
        );
        for kind in WriteKind::ALL {
            assert_eq!(WriteKind::parse(kind.name()), Ok(kind));
        }
    }
}

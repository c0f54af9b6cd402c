//! The console's operators: who may sign in to it (`[console]`), and how the audit names them.
//! The admin token is compared by SHA-256 in constant time; with `[oauth]`, a person is an
//! operator while their valid access token lists one of `admin_groups` in `groups_claim`.

use serde_json::Value;

use crate::identity::Clients;

/// Who may sign in to the console.
#[derive(Clone, Debug, Default)]
pub struct ConsoleAccess {
    /// The SHA-256 of the admin token.
    pub token: Option<[u8; 32]>,
    /// With OAuth: the groups whose members are admins.
    pub admin_groups: Vec<String>,
    /// The claim listing a person's groups.
    pub groups_claim: String,
    /// Whether the console's actions are allowed.
    pub actions: bool,
}

/// The operator a request is from: how the audit names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(pub String);

impl ConsoleAccess {
    pub fn from_config(config: &crate::config::ConsoleConfig) -> Option<ConsoleAccess> {
        let token = match &config.token_sha256 {
            Some(hex) => Some(crate::identity::decode_hex32(hex)?),
            None => None,
        };
        Some(ConsoleAccess {
            token,
            admin_groups: config.admin_groups.clone(),
            groups_claim: config.groups_claim.clone(),
            actions: config.actions,
        })
    }

    /// The operator `given` (a token) stands for, with when their sign-in must end (Unix ms,
    /// `None`: no sooner than [`LIFETIME`]); `None` for anyone else.
    pub async fn operator(
        &self,
        clients: &Clients,
        given: &str,
    ) -> Option<(Operator, Option<i64>)> {
        let given = given.trim();
        if let Some(token) = &self.token {
            if crate::identity::token_matches(given, token) {
                return Some((Operator("the admin token".into()), None));
            }
        }
        if self.admin_groups.is_empty() {
            return None;
        }
        let person = clients.oauth()?.verify(given).await.ok()?;
        let groups = groups_of(&person.claims[&self.groups_claim]);
        if !self.admin_groups.iter().any(|g| groups.contains(g)) {
            return None;
        }
        let expires = person.claims["exp"].as_i64().map(|s| s * 1000);
        Some((Operator(format!("{} (signed in)", person.name)), expires))
    }
}

/// The groups a claim lists: an array of strings, or one string separated by spaces or commas.
fn groups_of(claim: &Value) -> Vec<String> {
    match claim {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_come_as_a_list_or_a_string() {
        assert_eq!(
            groups_of(&json!(["ops", "data", 3])),
            vec!["ops".to_string(), "data".to_string()]
        );
        assert_eq!(groups_of(&json!("ops data,bi")), vec!["ops", "data", "bi"]);
        assert!(groups_of(&Value::Null).is_empty());
    }
}

//! `[cortex]`, `[[cortex.search]]` and `[[cortex.agents]]`: Snowflake's Cortex services offered
//! as tools (see `tools::cortex`). Nothing is listed unless configured.

use serde::Deserialize;

/// `[cortex]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CortexConfig {
    /// List `ask_analyst` (Cortex Analyst over a semantic view).
    pub analyst: bool,
    /// The semantic view `ask_analyst` uses when the call names none (`DB.SCHEMA.VIEW`).
    pub default_semantic_view: Option<String>,
    /// Cortex calls in flight at once, across all clients (each holds a Snowflake session of
    /// its own for its length: a separate small pool, so SQL clients never wait for them).
    pub max_concurrent: usize,
    /// The longest one Cortex call may take (agents run for minutes; Snowflake stops them at
    /// 15 minutes).
    pub timeout_secs: u64,
    /// One tool per Cortex Search service.
    pub search: Vec<SearchConfig>,
    /// One tool per Cortex Agent.
    pub agents: Vec<AgentConfig>,
}

impl Default for CortexConfig {
    fn default() -> Self {
        CortexConfig {
            analyst: false,
            default_semantic_view: None,
            max_concurrent: 4,
            timeout_secs: 300,
            search: Vec::new(),
            agents: Vec::new(),
        }
    }
}

/// `[[cortex.search]]`: a Cortex Search service as a tool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The tool's name.
    pub name: String,
    /// `DB.SCHEMA.SERVICE`.
    pub service: String,
    /// What the service searches, for the model (one sentence).
    pub description: String,
    /// Columns returned with each result (default: the service's search column).
    #[serde(default)]
    pub columns: Vec<String>,
    /// The most results one call may ask for (at most 1000).
    #[serde(default = "default_max_results")]
    pub max_results: u64,
}

/// `[[cortex.agents]]`: a Cortex Agent object as a tool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The tool's name.
    pub name: String,
    /// `DB.SCHEMA.AGENT`.
    pub agent: String,
    /// What the agent knows and does, for the model (one sentence).
    pub description: String,
}

fn default_max_results() -> u64 {
    10
}

/// Names a configured Cortex tool may not take: the server's own tools.
const RESERVED: [&str; 16] = [
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
    "set_context",
    "list_semantic_views",
    "describe_semantic_view",
    "query_semantic_view",
    "ask_analyst",
];

fn three_parts(what: &str, name: &str, value: &str) -> Result<(), String> {
    match crate::ident::split_parts(value, what).map(|p| p.len()) {
        Ok(3) => Ok(()),
        _ => Err(format!(
            "[cortex] {name}: '{value}' must be DATABASE.SCHEMA.NAME"
        )),
    }
}

impl CortexConfig {
    /// Whether any Cortex tool is listed.
    pub fn any(&self) -> bool {
        self.analyst || !self.search.is_empty() || !self.agents.is_empty()
    }

    /// The names of the Cortex tools this configuration lists.
    pub fn tool_names(&self) -> Vec<&str> {
        let analyst = self.analyst.then_some("ask_analyst");
        analyst
            .into_iter()
            .chain(self.search.iter().map(|s| s.name.as_str()))
            .chain(self.agents.iter().map(|a| a.name.as_str()))
            .collect()
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.max_concurrent == 0 || self.timeout_secs == 0 || self.timeout_secs > 900 {
            return Err(
                "[cortex] max_concurrent must be at least 1 and timeout_secs from 1 to 900".into(),
            );
        }
        if let Some(view) = &self.default_semantic_view {
            three_parts("a semantic view", "default_semantic_view", view)?;
        }
        let mut names = std::collections::HashSet::new();
        let entries = self
            .search
            .iter()
            .map(|s| (&s.name, &s.service, &s.description))
            .chain(
                self.agents
                    .iter()
                    .map(|a| (&a.name, &a.agent, &a.description)),
            );
        for (name, object, description) in entries {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid || RESERVED.contains(&name.as_str()) || !names.insert(name.as_str()) {
                return Err(format!(
                    "[cortex] tool name '{name}' must be unique, 1-64 of a-z 0-9 _, and not one of the server's own tools"
                ));
            }
            three_parts("a Cortex object", name, object)?;
            if description.trim().is_empty() || description.len() > 300 {
                return Err(format!(
                    "[cortex] {name}: description must say in up to 300 characters what it answers"
                ));
            }
        }
        for s in &self.search {
            if !(1..=1000).contains(&s.max_results) {
                return Err(format!(
                    "[cortex] {}: max_results must be from 1 to 1000",
                    s.name
                ));
            }
        }
        Ok(())
    }
}

//! What a statement may be before it runs: the read-only guard and the client's databases
//! (`check_statement`), and what it would scan (`check_cost`): a client with `max_scan_bytes`
//! or `max_scan_partitions` has each query's plan asked for first (Snowflake's
//! `EXPLAIN USING JSON`: compiled, not run, no warehouse) and one over the limit refused with
//! `cost_exceeded` before it costs anything. `explain_query` shows a model the same estimate.

use serde_json::json;

use super::arguments::ExplainQuery;
use super::writes::{plan_write, PlannedWrite};
use super::{success, Caller, Outcome, Tools};
use crate::error::ToolError;
use crate::policy::{human_bytes, ClientPolicy, ClientShare};
use crate::tools::guard::{check_for, referenced_databases, referenced_semantic_views};
use crate::Context;

/// Statements that scan no table (nothing to estimate).
fn scans_nothing(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "SHOW" | "DESC" | "DESCRIBE" | "EXPLAIN")
}

impl Tools {
    /// The checks every statement passes before anything runs: its size, the guard (reads,
    /// and the writes this client may run, where it may write them), and for a client limited
    /// to some databases, every reference inside them. A write comes back with its target.
    pub(super) fn check_statement(
        &self,
        sql: &str,
        ctx: &Context,
        policy: &ClientPolicy,
    ) -> Result<Option<PlannedWrite>, ToolError> {
        if sql.len() > self.limits.max_sql_bytes {
            return Err(ToolError::invalid(format!(
                "the SQL text is {} bytes; at most {} are accepted",
                sql.len(),
                self.limits.max_sql_bytes
            )));
        }
        let kinds = &policy.access.writes.kinds;
        let write = check_for(&policy.id, sql, kinds).map_err(|r| ToolError::refused(r.0))?;
        if policy.access.is_restricted() {
            // A client limited to some databases may only reach objects of those databases:
            // every reference (tables, functions, SHOW/DESCRIBE scopes) must resolve to one of
            // them, and one the guard cannot resolve is refused (fail closed).
            for db in referenced_databases(sql, ctx.database.as_deref(), kinds)
                .map_err(|r| ToolError::refused(r.0))?
            {
                policy.access.check_database(policy.display(), &db)?;
            }
        }
        if policy.access.semantic_views.is_some() {
            let views = referenced_semantic_views(
                sql,
                ctx.database.as_deref(),
                ctx.schema.as_deref(),
                kinds,
            )
            .map_err(|r| ToolError::refused(r.0))?;
            for view in views {
                policy.access.check_semantic_view(policy.display(), &view)?;
            }
        }
        write.map(|w| plan_write(w, ctx, policy)).transpose()
    }

    /// Refuse a query whose plan scans more than the client may. A plan that cannot be had
    /// refuses the query too (the check fails closed).
    pub(super) async fn check_cost(
        &self,
        sql: &str,
        ctx: &Context,
        client: &ClientShare,
        policy: &ClientPolicy,
    ) -> Result<(), ToolError> {
        if !policy.access.limits_scans() || scans_nothing(sql) {
            return Ok(());
        }
        let plan = self.gateway.explain(client, ctx, sql).await.map_err(|e| {
            if matches!(e.kind, "sql_error" | "backend_error") {
                ToolError::new(
                    "cost_exceeded",
                    format!("this client may only run queries whose scan Snowflake can estimate, and EXPLAIN failed: {}", e.message),
                )
            } else {
                e
            }
        })?;
        let checked = policy.access.check_scan(
            policy.display(),
            plan.bytes_assigned,
            plan.partitions_assigned,
        );
        if checked.is_err() {
            self.gateway.metrics().cost_refused(&policy.metric_label());
        }
        checked
    }

    /// `explain_query`: the plan and what it would scan.
    pub(super) async fn explain_query(
        &self,
        a: ExplainQuery,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let (ctx, policy) = (&caller.context, &caller.client);
        self.check_statement(&a.sql, ctx, policy)?;
        if scans_nothing(&a.sql) {
            return Err(ToolError::invalid(
                "SHOW, DESCRIBE and EXPLAIN scan no table; explain a SELECT",
            ));
        }
        let plan = self.gateway.explain(&policy.share(), ctx, &a.sql).await?;
        let verdict = match policy.access.check_scan(
            policy.display(),
            plan.bytes_assigned,
            plan.partitions_assigned,
        ) {
            Ok(()) => "within this client's limits".to_string(),
            Err(e) => format!(
                "over this client's limits: run_query would refuse it ({})",
                e.kind
            ),
        };
        let text = format!(
            "would scan up to {} in {} of {} micro-partitions (before pruning at run time); {verdict}",
            human_bytes(plan.bytes_assigned),
            plan.partitions_assigned,
            plan.partitions_total
        );
        let structured = json!({
            "plan": plan.plan,
            "partitions_total": plan.partitions_total,
            "partitions_assigned": plan.partitions_assigned,
            "bytes_assigned": plan.bytes_assigned,
        });
        Ok(Outcome::plain(success(structured, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statements_that_read_tables_are_estimated() {
        for sql in [
            "SHOW TABLES",
            "  describe table t",
            "EXPLAIN SELECT 1",
            "desc t",
        ] {
            assert!(scans_nothing(sql), "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "/* SHOW */ SELECT 1",
        ] {
            assert!(!scans_nothing(sql), "{sql}");
        }
    }
}

//! # Stage: tools — what a call does
//!
//! Owns the tool contract and each tool's work: parsing arguments (`arguments.rs`), the
//! read-only [`guard`], admission of the call (through [`crate::policy::admission`]), handing
//! it to the [`crate::scheduling::gateway`], rendering the answer ([`render`]) and the audit
//! record. It must not speak a transport (it gets a [`Caller`]), build engine-specific SQL (the
//! backend does), or schedule work itself.
//!
//! The MCP tools: their public contract (names, arguments, output schemas) and what each does.
//!
//! Names and fields are fixed by DESIGN.md. Descriptions are one sentence each because every
//! token of the tool list is paid for on every model turn; the whole list stays well under
//! 1,500 tokens (checked by a test). Arguments are parsed strictly (unknown fields refused),
//! identifiers validated and quoted by [`crate::ident`], and SQL checked by [`crate::tools::guard`]
//! before any of it reaches a [`Backend`](crate::backend::Backend).

mod cortex;
mod cost;
pub mod guard;
pub mod render;
pub mod results;
mod semantic;
pub mod writes;

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::{json, Value};

use crate::backend::{current, ObjectName, QueryLimits};
use crate::config::QueryConfig;
use crate::config::MICROCREDITS_PER_CREDIT;
use crate::error::ToolError;
use crate::ident::Ident;
use crate::observe::audit::{time_text, Auditor, CallSummary, PendingAudit};
use crate::policy::admission::{Admission, Ticket};
use crate::policy::ClientPolicy;
use crate::scheduling::gateway::Gateway;
use crate::state::{Amounts, Cost, Grant};
use crate::Context;
use arguments::*;
use render::context_result;
use results::Results;

/// Everything a tool call needs besides its arguments and its caller.
pub struct Tools {
    pub admission: Admission,
    pub auditor: Auditor,
    pub gateway: Gateway,
    pub limits: QueryConfig,
    /// Statements left running past their call, and results bigger than a page.
    pub results: Results,
    /// Clients an operator paused.
    pub pauses: Arc<crate::policy::pause::Pauses>,
    /// The Cortex tools configured (`[cortex]`).
    pub cortex: crate::config::CortexConfig,
}

/// Who is calling: the client (policy, limits) and its MCP session's context.
#[derive(Clone)]
pub struct Caller {
    pub client: Arc<ClientPolicy>,
    pub context: Context,
    /// The transport session id, for the audit record.
    pub session_id: Option<String>,
    /// On a call the transport repeats after asking a person about a write: their answer.
    pub answer: Option<writes::Answer>,
}

/// A tool's work, boxed where it is made so the futures that wrap it stay small (see
/// [`Tools::audited`]).
type Work<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, ToolError>> + Send + 'a>>;

/// The outcome of a tool: the result, the caller's new context when it changed, and the rows
/// and bytes returned (charged to quotas).
pub struct Outcome {
    pub result: CallToolResult,
    pub new_context: Option<Context>,
    pub returned: Option<(u64, u64)>,
}

impl Outcome {
    /// A result that changes no context and returns no rows to charge.
    pub fn plain(result: CallToolResult) -> Outcome {
        Outcome {
            result,
            new_context: None,
            returned: None,
        }
    }
}

impl Tools {
    pub fn new(
        admission: Admission,
        auditor: Auditor,
        gateway: Gateway,
        limits: QueryConfig,
        cortex: crate::config::CortexConfig,
    ) -> Arc<Tools> {
        let results = Results::new(admission.store().clone());
        let pauses = crate::policy::pause::Pauses::new(admission.store().clone());
        let tools = Arc::new(Tools {
            admission,
            auditor,
            gateway,
            limits,
            results,
            pauses,
            cortex,
        });
        let weak = Arc::downgrade(&tools);
        crate::spawn_every(std::time::Duration::from_secs(60), move || {
            if let Some(tools) = weak.upgrade() {
                tools.results.prune();
            }
            async {}
        });
        tools
    }

    /// Run tool `name` for `caller`. A query runs in a task of its own, which the call waits
    /// for within its bound (see [`results`]); the result tools read what such tasks left.
    pub async fn call(
        self: &Arc<Self>,
        name: &str,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        if let Err(paused) = self.pauses.check(&caller.client) {
            return self
                .audited(name, None, caller, Box::pin(async { Err(paused) }))
                .await;
        }
        match name {
            "run_query" => self.run_query_within(args, caller).await,
            "get_result" => {
                let work = Box::pin(async { self.get_result(parse(args)?, caller).await });
                self.audited(name, None, caller, work).await
            }
            "fetch_rows" => {
                let work = Box::pin(async { self.fetch_rows(parse(args)?, caller).await });
                self.audited(name, None, caller, work).await
            }
            "list_semantic_views" | "describe_semantic_view" | "query_semantic_view" => {
                self.semantic(name, args, caller).await
            }
            "cancel_query" => {
                let work = Box::pin(async { self.cancel_query(parse(args)?, caller).await });
                self.audited(name, None, caller, work).await
            }
            _ if self.cortex.tool_names().contains(&name) => self.cortex(name, args, caller).await,
            _ => self.call_now(name, args, caller).await,
        }
    }

    /// Run `work` for tool `name`, audited whatever happens: a call cancelled mid-way is
    /// recorded as such on drop.
    ///
    /// `work` comes boxed. A future taken by value is stored in this function's future, again
    /// in the audit scope's, and each level above holds all of it: unboxed, the statement path
    /// made `call`'s future 13.7 KB and the job's 27 KB, copied whole six times per call
    /// (callgrind: `memcpy` was a third of the server's instructions per call; BENCHMARKS.md).
    async fn audited(
        &self,
        name: &str,
        statement: Option<String>,
        caller: &Caller,
        work: Work<'_>,
    ) -> Result<Outcome, ToolError> {
        let audit = PendingAudit::new(
            self.auditor.clone(),
            name,
            statement,
            &caller.client.id,
            caller.session_id.clone(),
        );
        let outcome = audit.scope(work).await;
        let summary = outcome.as_ref().map(|o| CallSummary {
            query_id: o
                .result
                .structured_content
                .as_ref()
                .and_then(|s| s["query_id"].as_str())
                .map(str::to_string),
            rows: o.returned.unwrap_or_default().0,
            bytes: o.returned.unwrap_or_default().1,
        });
        audit.finish(summary).await;
        outcome
    }

    /// Run tool `name` for `caller` to its end: its quota reservation first, then the tool,
    /// then the quota is settled with what the tool returned. (The rate limit was taken before
    /// the caller's context was resolved, by [`Tools::check_rate`].)
    async fn call_now(
        &self,
        name: &str,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        // Admission, part two (the rate limit was taken by `check_rate`, before the caller's
        // context was resolved): for a query, its quota grant.
        let want = match name {
            "run_query" => {
                let amounts = Amounts {
                    rows: caller.client.row_cap(
                        self.limits.max_rows,
                        self.limits.default_max_rows,
                        args.get("max_rows").and_then(Value::as_u64),
                    ) as u64,
                    bytes: self.limits.max_result_bytes as u64,
                };
                // Credits are estimated from session-time × the warehouse size's rate.
                let credits_per_hour = match &caller.context.warehouse {
                    Some(w) if caller.client.quotas.counts_credits() => self
                        .gateway
                        .credits_per_hour(&caller.client.share(), &caller.context, w)
                        .await
                        .unwrap_or(0.0),
                    _ => 0.0,
                };
                // Cost quotas reserve session-time up to the statement's timeout.
                let cost = Cost {
                    ms: self.limits.statement_timeout().as_millis() as u64,
                    microcredits_per_hour: (credits_per_hour * MICROCREDITS_PER_CREDIT).round()
                        as u64,
                };
                Some((amounts, cost))
            }
            _ => None,
        };
        let ticket = self.admission.admit(&caller.client, want).await?;
        let grant = ticket.as_ref().map(Ticket::granted);
        let statement = args
            .get("sql")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(10_000).collect());
        let work = Box::pin(async {
            let outcome = self.dispatch(name, args, caller, grant).await;
            if let Some(ticket) = ticket {
                let used = outcome.as_ref().map(|o| {
                    let (rows, bytes) = o.returned.unwrap_or_default();
                    Amounts { rows, bytes }
                });
                ticket.settle(used).await;
            }
            outcome
        });
        if name == "get_context" || name == "query_history" {
            return work.await;
        }
        self.audited(name, statement, caller, work).await
    }

    /// Admission, part one, before anything else of a call happens (resolving the caller's
    /// default context may log in to Snowflake): the rate limit. `get_context` is free: it
    /// touches no database and is how a limited model plans.
    pub async fn check_rate(&self, name: &str, client: &ClientPolicy) -> Result<(), ToolError> {
        if name == "get_context" {
            return Ok(());
        }
        self.admission.check_rate(client).await
    }

    async fn dispatch(
        &self,
        name: &str,
        args: JsonObject,
        caller: &Caller,
        grant: Option<Grant>,
    ) -> Result<Outcome, ToolError> {
        let share = caller.client.share();
        let (ctx, client, access) = (&caller.context, &share, &caller.client.access);
        let plain = Outcome::plain;
        match name {
            "list_databases" => {
                parse::<NoArgs>(args)?;
                let mut dbs = self.gateway.list_databases(client, ctx).await?;
                dbs.retain(|d| access.allows_database(&d.name));
                let rows: Vec<Vec<Value>> = dbs
                    .iter()
                    .map(|d| vec![json!(d.name), json!(d.comment)])
                    .collect();
                Ok(plain(success(
                    json!({ "databases": dbs }),
                    render::table(&["name", "comment"], &rows),
                )))
            }
            "list_schemas" => {
                let a: ListSchemas = parse(args)?;
                let db = database_or_current(a.database.as_deref(), ctx)?;
                access.check_database(caller.client.display(), db.name())?;
                let schemas = self.gateway.list_schemas(client, ctx, &db).await?;
                let rows: Vec<Vec<Value>> = schemas
                    .iter()
                    .map(|s| vec![json!(s.name), json!(s.comment)])
                    .collect();
                Ok(plain(success(
                    json!({ "schemas": schemas }),
                    render::table(&["name", "comment"], &rows),
                )))
            }
            "list_objects" => {
                let a: ListObjects = parse(args)?;
                let db = database_or_current(a.database.as_deref(), ctx)?;
                let schema = match a.schema.as_deref() {
                    Some(s) => Ident::parse(s, "schema")?,
                    None if a.database.is_some() => {
                        return Err(ToolError::invalid(
                            "with database, also pass schema (list_schemas shows them)",
                        ))
                    }
                    None => current(&ctx.schema, "schema")?,
                };
                access.check_database(caller.client.display(), db.name())?;
                let pattern = a.pattern.as_deref().map(check_pattern).transpose()?;
                let objects = self
                    .gateway
                    .list_objects(client, ctx, &db, &schema, a.kind, pattern)
                    .await?;
                let rows: Vec<Vec<Value>> = objects
                    .iter()
                    .map(|o| vec![json!(o.name), json!(o.kind), json!(o.rows)])
                    .collect();
                Ok(plain(success(
                    json!({ "objects": objects }),
                    render::table(&["name", "kind", "rows"], &rows),
                )))
            }
            "describe_object" => {
                let a: DescribeObject = parse(args)?;
                let name = ObjectName::resolve(&a.name, ctx)?;
                access.check_database(caller.client.display(), name.database.name())?;
                let columns = self.gateway.describe_object(client, ctx, &name).await?;
                let rows: Vec<Vec<Value>> = columns
                    .iter()
                    .map(|c| {
                        vec![
                            json!(c.name),
                            json!(c.type_name),
                            json!(if c.nullable { "Y" } else { "N" }),
                            json!(c.comment),
                        ]
                    })
                    .collect();
                let text = format!(
                    "{name}\n{}",
                    render::table(&["column", "type", "null", "comment"], &rows)
                );
                Ok(plain(success(
                    json!({ "name": name.to_string(), "columns": columns }),
                    text,
                )))
            }
            "run_query" => self.run_query(parse(args)?, caller, grant).await,
            "explain_query" => self.explain_query(parse(args)?, caller).await,
            "query_history" => {
                let a: QueryHistory = parse(args)?;
                let limit = a.limit.unwrap_or(20).clamp(1, 200) as usize;
                // Records still in the audit buffer (a cancelled call's) are read too.
                self.auditor.flush().await;
                let records = self
                    .auditor
                    .store()
                    .history(&caller.client.id, limit)
                    .await
                    .map_err(|e| ToolError::new("unavailable", e.to_string()))?;
                let rows: Vec<Vec<Value>> = records
                    .iter()
                    .map(|r| {
                        vec![
                            json!(time_text(r.time_ms)),
                            json!(r.tool),
                            json!(r.status),
                            json!(r.rows),
                            json!(r.duration_ms),
                            json!(r.statement),
                        ]
                    })
                    .collect();
                let queries: Vec<Value> = records
                    .iter()
                    .map(|r| json!({"time": time_text(r.time_ms), "tool": r.tool, "sql": r.statement, "status": r.status,
                        "rows": r.rows, "bytes": r.bytes, "duration_ms": r.duration_ms, "query_id": r.query_id, "error_code": r.error_code,
                        "write": r.write, "confirmed": r.confirmed}))
                    .collect();
                let text = render::table(&["time", "tool", "status", "rows", "ms", "sql"], &rows);
                Ok(plain(success(json!({ "queries": queries }), text)))
            }
            "get_context" => {
                parse::<NoArgs>(args)?;
                let headroom = self.admission.headroom(&caller.client).await?;
                let note = self.gateway.backend().note();
                Ok(plain(context_result(ctx, Some(headroom), note)))
            }
            "set_context" => {
                let a: SetContext = parse(args)?;
                let target = a.apply_to(ctx)?;
                access.check_context(caller.client.display(), &target)?;
                let resolved = self.gateway.resolve_context(client, &target).await?;
                Ok(Outcome {
                    result: context_result(&resolved, None, None),
                    new_context: Some(resolved),
                    returned: None,
                })
            }
            other => Err(ToolError::invalid(format!("unknown tool '{other}'"))),
        }
    }

    async fn run_query(
        &self,
        a: RunQuery,
        caller: &Caller,
        grant: Option<Grant>,
    ) -> Result<Outcome, ToolError> {
        let (ctx, policy) = (&caller.context, &*caller.client);
        let client = &policy.share();
        let write = self.check_statement(&a.sql, ctx, policy)?;
        self.check_cost(&a.sql, ctx, client, policy).await?;
        match &write {
            Some(w) => {
                self.confirm_write(w, &a.sql, caller, a.confirm.as_deref())
                    .await?
            }
            None if a.confirm.is_some() => {
                return Err(ToolError::invalid(
                    "confirm is only for writes; leave it out for this statement",
                ))
            }
            None => {}
        }
        if a.max_rows == Some(0) {
            return Err(ToolError::invalid("max_rows must be at least 1"));
        }
        // Within the quota grant: a query never returns more rows or bytes than were reserved.
        let mut max_rows = policy.row_cap(
            self.limits.max_rows,
            self.limits.default_max_rows,
            a.max_rows,
        );
        let mut max_bytes = self.limits.max_result_bytes;
        let mut timeout = self.limits.statement_timeout();
        if let Some(grant) = grant {
            max_rows = max_rows.min(grant.amounts.rows as usize);
            max_bytes = max_bytes.min(grant.amounts.bytes as usize);
            // Never run past the session-time reserved for this statement (under a cost quota):
            // statements running at once split what the client has left.
            if let Some(ms) = grant.ms {
                timeout = timeout.min(std::time::Duration::from_millis(ms.max(1000)));
            }
        }
        let limits = QueryLimits {
            max_rows,
            max_bytes,
            timeout,
        };
        let out = self.gateway.run_query(client, ctx, &a.sql, limits).await;
        if let Some(w) = &write {
            let outcome = if out.is_ok() { "ran" } else { "failed" };
            let metrics = self.gateway.metrics();
            metrics.write(&policy.metric_label(), w.kind.name(), outcome);
        }
        Ok(render::page(
            out?,
            0,
            max_rows,
            self.limits.max_result_bytes,
        ))
    }
}

pub(crate) fn success(structured: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::structured(structured);
    result.content = vec![ContentBlock::text(text)];
    result
}

mod arguments;
mod definitions;
pub use cortex::cortex_definitions;
pub use definitions::{
    definitions, definitions_for, semantic_definitions, with_viewer, VIEWER_URI,
};

#[cfg(test)]
mod tests;

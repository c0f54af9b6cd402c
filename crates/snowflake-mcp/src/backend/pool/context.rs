//! Moving a session to a request's context: only the `USE` statements that differ, and never
//! *away from* a database, warehouse or role into "none" (Snowflake has no `UNUSE`).

use std::sync::atomic::Ordering;

use snowflake_client::{Error as SfError, ErrorKind};
use tokio::time::Instant;

use super::{Connector, Lease, PooledSession};
use crate::error::ToolError;
use crate::ident::Ident;
use crate::Context;

/// A session can move to `to` only where `to` names something: it cannot forget a database,
/// warehouse or role it has. A schema is forgotten by moving to another database (`USE
/// DATABASE` selects that database's default schema, which is what "no schema" asks for).
pub(super) fn can_switch(from: &Context, to: &Context) -> bool {
    let schema_ok = from.schema == to.schema
        || to.schema.is_some()
        || (to.database.is_some() && to.database != from.database);
    schema_ok
        && [
            (&from.database, &to.database),
            (&from.warehouse, &to.warehouse),
            (&from.role, &to.role),
        ]
        .iter()
        .all(|(f, t)| f == t || t.is_some())
}

impl<C: Connector> Lease<C> {
    /// Run the `USE` statements that differ between the session's context and `ctx`.
    pub(super) async fn apply(
        &mut self,
        ctx: &Context,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        for sql in switch_statements(self.session().context(), ctx) {
            self.pool
                .stats
                .context_switches
                .fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.session().execute(&sql, deadline).await {
                self.retire_if_broken(&e);
                return Err(context_error(&sql, e));
            }
        }
        let known = Context {
            warehouse: ctx.warehouse.clone(),
            role: ctx.role.clone(),
            ..Default::default()
        };
        self.session().record_context(&known);
        Ok(())
    }
}

/// The `USE` statements that take a session from `current` to `wanted`, fewest first.
fn switch_statements(current: &Context, wanted: &Context) -> Vec<String> {
    let q = |name: &String| Ident::exact(name.clone()).quoted();
    let mut statements = Vec::new();
    if let Some(role) = wanted
        .role
        .as_ref()
        .filter(|r| current.role.as_ref() != Some(*r))
    {
        statements.push(format!("USE ROLE {}", q(role)));
    }
    if let Some(wh) = wanted
        .warehouse
        .as_ref()
        .filter(|w| current.warehouse.as_ref() != Some(*w))
    {
        statements.push(format!("USE WAREHOUSE {}", q(wh)));
    }
    let place_differs = wanted.database != current.database
        || (wanted.schema.is_some() && wanted.schema != current.schema);
    match (&wanted.database, &wanted.schema) {
        (Some(db), Some(schema)) if place_differs => {
            statements.push(format!("USE SCHEMA {}.{}", q(db), q(schema)))
        }
        (Some(db), None) if place_differs => statements.push(format!("USE DATABASE {}", q(db))),
        _ => {}
    }
    statements
}

fn context_error(sql: &str, e: SfError) -> ToolError {
    if e.kind() != ErrorKind::Sql {
        return e.into();
    }
    let what = sql
        .trim_start_matches("USE ")
        .split_whitespace()
        .next()
        .unwrap_or("object")
        .to_ascii_lowercase();
    let mut t = ToolError::from(e);
    t.kind = "not_found";
    t.message = format!(
        "cannot use that {what}: it does not exist or the role may not use it ({}). Check the name with list_databases / list_schemas.",
        t.message.split(" Fix the SQL").next().unwrap_or_default()
    );
    t
}

//! Writes: where a write may go, and the confirmation a person gives before one runs.
//!
//! A client runs writes only of the kinds in its `allow_statements` (the guard recognises them,
//! [`crate::tools::guard`]), into `write_databases` / `write_schemas` ([`plan_write`] resolves
//! the target against the caller's context and fails closed when it cannot). With
//! `confirm_writes = "always"` (the default) a write then needs a confirmation:
//!
//! * The first call is refused with `confirmation_required`: its `_meta.error` carries a
//!   single-use `confirm` token and the `prompt` a person should see (the statement, its target,
//!   and the plan's scan estimate where Snowflake gives one).
//! * The transport turns that into a question where the client can ask a person — form
//!   elicitation (MCP 2025-11-25) or an `input_required` round (2026-07-28) — and repeats the call
//!   with the token when they accept. A client that supports neither repeats it itself with
//!   `confirm`: a weaker guarantee, since a model can do that without a person.
//! * The token is kept in the state store (by its digest, like result handles, so any replica
//!   redeems it) for `[query] confirm_within_secs` (default 5 minutes). It is taken, not read:
//!   of two calls presenting it, on any replica, one gets it. It is bound to the statement's
//!   SHA-256, the client and the MCP session; presented for anything else it is used up and
//!   refused, and a new confirmation is asked for.
//!
//! Every write notes on its audit record what it wrote and how it was confirmed
//! ([`crate::observe::audit::note_write`]).

use serde_json::json;

use super::{Caller, Tools};
use crate::config::{ConfirmWrites, WriteKind};
use crate::error::ToolError;
use crate::observe::audit::{note_write, WriteNote};
use crate::policy::{human_bytes, ClientPolicy};
use crate::tools::guard::Write;
use crate::{sha256_hex, Context};

/// A write the guard recognised, with where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedWrite {
    pub kind: WriteKind,
    /// Whether it reads tables (its plan then has a scan to estimate).
    pub reads: bool,
    /// `DB.SCHEMA.NAME`, as Snowflake resolves it.
    pub target: String,
}

/// Key prefix of confirmation tokens among the state store's handles.
const KEY_PREFIX: &str = "confirm:";

/// A person's answer to a write's confirmation, as the transport reports it on the call it
/// repeats with the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub through: AskedThrough,
    /// Accepted with `confirm: true`; anything else (declined, cancelled, no answer) is not.
    pub accepted: bool,
}

/// How the person was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskedThrough {
    /// A form elicitation (2025-11-25) the person accepted.
    Elicitation,
    /// An `input_required` round (2026-07-28) the person accepted.
    InputRequired,
}

/// Resolve where `write` goes for a caller in `ctx`, and check it may write there.
pub(super) fn plan_write(
    write: Write,
    ctx: &Context,
    policy: &ClientPolicy,
) -> Result<PlannedWrite, ToolError> {
    let unresolved = |what: &str| {
        ToolError::refused(format!(
            "{} into {} can't be placed ({what} is set), so it was refused; name the object as DB.SCHEMA.NAME",
            write.kind,
            write.target.join(".")
        ))
    };
    let (database, schema, name) = match write.target.as_slice() {
        [db, schema, name] => (db.clone(), schema.clone(), name),
        [schema, name] => (
            ctx.database
                .clone()
                .ok_or_else(|| unresolved("no database"))?,
            schema.clone(),
            name,
        ),
        [name] => (
            ctx.database
                .clone()
                .ok_or_else(|| unresolved("no database"))?,
            ctx.schema.clone().ok_or_else(|| unresolved("no schema"))?,
            name,
        ),
        _ => return Err(unresolved("a name of more than three parts")),
    };
    for kind in write.needs() {
        policy
            .access
            .writes
            .check_place(policy.display(), kind, &database, &schema)?;
    }
    Ok(PlannedWrite {
        kind: write.kind,
        reads: write.reads,
        target: format!("{database}.{schema}.{name}"),
    })
}

/// What a confirmation token is bound to.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Binding {
    session: Option<String>,
    statement: String,
    shown: String,
}

impl Tools {
    /// Let `write` run only when its client need not confirm, or `token` confirms exactly this
    /// statement for this caller; otherwise refuse it with `confirmation_required` and a new token.
    pub(super) async fn confirm_write(
        &self,
        write: &PlannedWrite,
        sql: &str,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<(), ToolError> {
        let policy = &caller.client;
        let label = policy.metric_label();
        let kind = write.kind.name();
        let described = format!("{kind} {}", write.target);
        if policy.access.writes.confirm == ConfirmWrites::Never {
            note_write(WriteNote {
                write: Some(described),
                confirmed: Some("not asked: confirm_writes = \"never\"".into()),
            });
            return Ok(());
        }
        let binding = Binding {
            session: caller.session_id.clone(),
            statement: sha256_hex(sql),
            shown: String::new(),
        };
        let how = match caller.answer.map(|a| a.through) {
            Some(AskedThrough::Elicitation) => "a person, through a form (elicitation)",
            Some(AskedThrough::InputRequired) => "a person, through input_required",
            None => "the client, repeating the call with its confirm token (no person was necessarily asked)",
        };
        if caller.answer.is_some_and(|a| !a.accepted) {
            // Declined: the token is used up, so it cannot be replayed with `confirm`.
            if let Some(token) = token {
                self.redeem(token, &binding, policy).await?.ok();
            }
            self.gateway.metrics().write(&label, kind, "declined");
            note_write(WriteNote {
                write: Some(described),
                confirmed: Some(format!("declined (or not answered) by {how}")),
            });
            return Err(ToolError::new(
                "declined",
                "the person declined this write (or did not answer in time); nothing ran. Do not try it again unless they ask for it.",
            ));
        }
        let why_again = match token {
            None => None,
            Some(token) => match self.redeem(token, &binding, policy).await? {
                Ok(shown) => {
                    note_write(WriteNote {
                        write: Some(described),
                        confirmed: Some(format!(
                            "confirmed by {how} for {}; shown: {shown}",
                            policy.display()
                        )),
                    });
                    return Ok(());
                }
                Err(why) => Some(why),
            },
        };
        let prompt = self.prompt(write, sql, caller).await;
        let token = self.issue(&binding, &prompt, policy).await?;
        self.gateway.metrics().write(&label, kind, "asked");
        note_write(WriteNote {
            write: Some(described),
            confirmed: None,
        });
        let minutes = self.limits.confirm_within().as_secs().div_ceil(60);
        let again = why_again.map(|w| format!("{w}. ")).unwrap_or_default();
        Err(ToolError::new(
            "confirmation_required",
            format!(
                "{again}a person must confirm this write before it runs.\n{prompt}\nShow them the statement; if they agree, call run_query again with the same sql and confirm: \"{token}\" (single use, valid {minutes} min). If they do not, do nothing."
            ),
        )
        .with("confirm", token)
        .with("prompt", prompt))
    }

    /// What a person is shown: who asks, the statement, where it writes, and what it would scan.
    async fn prompt(&self, write: &PlannedWrite, sql: &str, caller: &Caller) -> String {
        let ctx = &caller.context;
        let estimate = if write.reads {
            match self
                .gateway
                .explain(&caller.client.share(), ctx, sql)
                .await
            {
                Ok(plan) => format!(
                    "reads up to {} in {} of {} micro-partitions (Snowflake's plan; it does not count rows)",
                    human_bytes(plan.bytes_assigned),
                    plan.partitions_assigned,
                    plan.partitions_total
                ),
                Err(_) => "none (the plan could not be had)".into(),
            }
        } else {
            "none (no table is read)".into()
        };
        let role = ctx.role.as_deref().unwrap_or("the default role");
        format!(
            "Client '{}' asks to run this {} on {} (role {role}):\n\n{}\n\nEstimate: {estimate}.",
            caller.client.display(),
            write.kind,
            write.target,
            sql.trim()
        )
    }

    async fn issue(
        &self,
        binding: &Binding,
        prompt: &str,
        policy: &ClientPolicy,
    ) -> Result<String, ToolError> {
        let token = format!(
            "c{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let shown = prompt
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let record = json!({"session": binding.session, "statement": binding.statement, "shown": shown.trim()});
        let expires =
            chrono::Utc::now().timestamp_millis() + self.limits.confirm_within().as_millis() as i64;
        let store = self.admission.store();
        store
            .save_handle(
                &format!("{KEY_PREFIX}{}", sha256_hex(&token)),
                &policy.id,
                &record.to_string(),
                expires,
            )
            .await
            .map_err(|e| {
                let mut error = ToolError::new(
                    "unavailable",
                    format!("the confirmation could not be kept ({e}); try again shortly"),
                );
                error.retry_after_ms = Some(2000);
                error
            })?;
        Ok(token)
    }

    /// Take `token` (whatever happens next, it is used up); `Ok(what was shown)` when it was
    /// issued to this caller for this statement, else why not.
    async fn redeem(
        &self,
        token: &str,
        binding: &Binding,
        policy: &ClientPolicy,
    ) -> Result<Result<String, &'static str>, ToolError> {
        let key = format!("{KEY_PREFIX}{}", sha256_hex(token));
        let taken = self
            .admission
            .store()
            .take_handle(&key)
            .await
            .map_err(|e| {
                ToolError::new(
                    "unavailable",
                    format!("the confirmation could not be checked ({e}); try again shortly"),
                )
            })?;
        let Some(taken) = taken else {
            return Ok(Err(
                "that confirm token is unknown, expired or already used",
            ));
        };
        let stored: Option<Binding> = serde_json::from_str(&taken.record).ok();
        match stored {
            Some(b)
                if *taken.owner == *policy.id
                    && b.session == binding.session
                    && b.statement == binding.statement =>
            {
                Ok(Ok(b.shown))
            }
            _ => Ok(Err(
                "that confirm token was given for another statement, client or session (it is now used up)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfirmWrites;
    use crate::policy::writes::Writes;
    use crate::policy::Access;

    fn writer() -> ClientPolicy {
        ClientPolicy {
            access: Access {
                writes: Writes {
                    kinds: vec![WriteKind::Insert, WriteKind::CreateTable],
                    databases: vec!["SCRATCH".into()],
                    schemas: vec![("SALES".into(), "STAGING".into())],
                    confirm: ConfirmWrites::Always,
                },
                ..Access::default()
            },
            ..ClientPolicy::for_test("w")
        }
    }

    fn ctx(db: Option<&str>, schema: Option<&str>) -> Context {
        Context {
            database: db.map(Into::into),
            schema: schema.map(Into::into),
            ..Context::default()
        }
    }

    #[test]
    fn a_target_resolves_against_the_context_and_must_be_writable() {
        let w = |target: &[&str]| Write {
            kind: WriteKind::Insert,
            target: target.iter().map(|s| s.to_string()).collect(),
            also: None,
            reads: false,
        };
        let p = writer();
        let here = ctx(Some("SCRATCH"), Some("PUBLIC"));
        assert_eq!(
            plan_write(w(&["T"]), &here, &p).unwrap().target,
            "SCRATCH.PUBLIC.T"
        );
        assert_eq!(
            plan_write(w(&["STAGING", "T"]), &ctx(Some("SALES"), None), &p)
                .unwrap()
                .target,
            "SALES.STAGING.T"
        );
        let e = plan_write(w(&["SALES", "PUBLIC", "T"]), &here, &p).unwrap_err();
        assert_eq!(e.kind, "not_allowed");
        // Nothing to resolve against: refused, not guessed.
        let e = plan_write(w(&["T"]), &ctx(Some("SCRATCH"), None), &p).unwrap_err();
        assert!(e.message.contains("no schema is set"), "{}", e.message);
        let e = plan_write(w(&["S", "T"]), &ctx(None, None), &p).unwrap_err();
        assert!(e.message.contains("no database is set"), "{}", e.message);
        // CREATE OR REPLACE also drops: it needs DROP TABLE where it writes, which the guard
        // checks; the place is checked for every kind it needs.
        let replace = Write {
            kind: WriteKind::CreateTable,
            target: vec!["T".into()],
            also: Some(WriteKind::DropTable),
            reads: false,
        };
        assert!(plan_write(replace, &here, &p).is_ok());
    }
}

//! Writes: which statements a client allowed to write may run, recognised from the parsed
//! statement, never from its text.
//!
//! A write is one of the kinds of [`WriteKind`], in its plain form only. Each statement is
//! compared with a plain statement of its kind into which the parts a plain form may have
//! (its target, columns, source query, conditions) are copied; anything else that differs —
//! an option sqlparser knows and this guard does not allow, or one added by a newer sqlparser —
//! refuses the statement. So `CREATE TABLE ... CLONE`, `COPY GRANTS`, row access and masking
//! policies, tags, external and dynamic tables, `RETURNING` and the like are refused without
//! being listed one by one. Temporary tables and views are refused too: they belong to a
//! Snowflake session, and pooled sessions outlive a call.
//!
//! The statement's reads (the query of `INSERT ... SELECT`, `CREATE TABLE ... AS`, a view's
//! definition, `UPDATE ... FROM`, `MERGE ... USING`, subqueries) pass the same checks as any
//! query (see [`super::query`]); where the write goes is checked by the caller against the
//! client's `write_databases` / `write_schemas`.

use std::sync::LazyLock;

use sqlparser::ast::{
    ColumnOption, CreateTableOptions, FromTable, ObjectName, ObjectType, SetExpr, SqlOption,
    Statement, TableConstraint, TableFactor, TableObject, TableWithJoins,
};
use sqlparser::dialect::SnowflakeDialect;
use sqlparser::parser::Parser;

use super::query::normalized_parts;
use super::Refusal;
use crate::config::WriteKind;

/// A write the guard recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub kind: WriteKind,
    /// The object written: its name's parts as Snowflake resolves them (one to three).
    pub target: Vec<String>,
    /// A second kind the statement also is: `CREATE OR REPLACE` drops what it replaces,
    /// `INSERT OVERWRITE` truncates first.
    pub also: Option<WriteKind>,
    /// Whether it reads tables: its plan then has a scan to estimate (`INSERT ... SELECT`,
    /// `CREATE TABLE ... AS`, `UPDATE`, `DELETE`, `MERGE`).
    pub reads: bool,
}

impl Write {
    /// The kinds a client must be allowed for this statement to run.
    pub fn needs(&self) -> impl Iterator<Item = WriteKind> + '_ {
        std::iter::once(self.kind).chain(self.also)
    }
}

/// The plain statements each kind is compared with.
struct Plain {
    insert: Statement,
    update: Statement,
    delete: Statement,
    merge: Statement,
    create_table: Statement,
    create_view: Statement,
}

static PLAIN: LazyLock<Plain> = LazyLock::new(|| {
    let parse = |sql: &str| {
        Parser::parse_sql(&SnowflakeDialect {}, sql)
            .ok()
            .and_then(|mut s| s.pop())
            .expect("the plain statements parse (checked by tests)")
    };
    Plain {
        insert: parse("INSERT INTO x VALUES (1)"),
        update: parse("UPDATE x SET a = 1"),
        delete: parse("DELETE FROM x"),
        merge: parse("MERGE INTO x USING y ON TRUE WHEN MATCHED THEN DELETE"),
        create_table: parse("CREATE TABLE x (a INT)"),
        create_view: parse("CREATE VIEW x AS SELECT 1"),
    }
});

/// The write `statement` is, `Ok(None)` when it is no kind of write, or `Err` when it is a
/// write in a form that is not allowed.
pub(super) fn classify(statement: &Statement) -> Result<Option<Write>, Refusal> {
    let plain = &*PLAIN;
    let reads = match statement {
        Statement::Insert(insert) => insert
            .source
            .as_ref()
            .is_some_and(|q| !matches!(*q.body, SetExpr::Values(_))),
        Statement::CreateTable(create) => create.query.is_some(),
        Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => true,
        _ => false,
    };
    let write = |kind, name: &ObjectName, also| -> Result<Option<Write>, Refusal> {
        let target = normalized_parts(name).ok_or_else(|| {
            form(
                kind,
                "with a computed name; write the name itself, e.g. DB.SCHEMA.NAME",
            )
        })?;
        Ok(Some(Write {
            kind,
            target,
            also,
            reads,
        }))
    };
    match statement {
        Statement::Insert(insert) => {
            let kind = WriteKind::Insert;
            let Statement::Insert(mut shape) = plain.insert.clone() else {
                unreachable!("the plain INSERT is an INSERT")
            };
            shape.table = insert.table.clone();
            shape.columns = insert.columns.clone();
            shape.source = insert.source.clone();
            shape.overwrite = insert.overwrite;
            shape.into = insert.into;
            let TableObject::TableName(name) = &insert.table else {
                return Err(form(kind, "into a table function; insert into a table"));
            };
            same(
                kind,
                &shape,
                insert,
                "INSERT [OVERWRITE] INTO table [(columns)] VALUES (...) | SELECT ...",
            )?;
            write(kind, name, insert.overwrite.then_some(WriteKind::Truncate))
        }
        Statement::Update(update) => {
            let kind = WriteKind::Update;
            let Statement::Update(mut shape) = plain.update.clone() else {
                unreachable!("the plain UPDATE is an UPDATE")
            };
            shape.table = update.table.clone();
            shape.assignments = update.assignments.clone();
            shape.from = update.from.clone();
            shape.selection = update.selection.clone();
            same(
                kind,
                &shape,
                update,
                "UPDATE table SET ... [FROM ...] [WHERE ...]",
            )?;
            write(kind, single_table(kind, &update.table)?, None)
        }
        Statement::Delete(delete) => {
            let kind = WriteKind::Delete;
            let Statement::Delete(mut shape) = plain.delete.clone() else {
                unreachable!("the plain DELETE is a DELETE")
            };
            shape.from = delete.from.clone();
            shape.using = delete.using.clone();
            shape.selection = delete.selection.clone();
            same(
                kind,
                &shape,
                delete,
                "DELETE FROM table [USING ...] [WHERE ...]",
            )?;
            let FromTable::WithFromKeyword(tables) = &delete.from else {
                return Err(form(kind, "without FROM; write DELETE FROM table"));
            };
            match tables.as_slice() {
                [one] => write(kind, single_table(kind, one)?, None),
                _ => Err(form(
                    kind,
                    "of several tables; delete from one table at a time",
                )),
            }
        }
        Statement::Merge(merge) => {
            let kind = WriteKind::Merge;
            let Statement::Merge(mut shape) = plain.merge.clone() else {
                unreachable!("the plain MERGE is a MERGE")
            };
            shape.into = merge.into;
            shape.table = merge.table.clone();
            shape.source = merge.source.clone();
            shape.on = merge.on.clone();
            shape.clauses = merge.clauses.clone();
            same(
                kind,
                &shape,
                merge,
                "MERGE INTO table USING ... ON ... WHEN ...",
            )?;
            write(kind, table_name(kind, &merge.table)?, None)
        }
        Statement::CreateTable(create) => {
            let kind = WriteKind::CreateTable;
            let Statement::CreateTable(mut shape) = plain.create_table.clone() else {
                unreachable!("the plain CREATE TABLE is a CREATE TABLE")
            };
            if create.temporary || create.volatile || create.global.is_some() {
                return Err(temporary(kind));
            }
            shape.or_replace = create.or_replace;
            shape.transient = create.transient;
            shape.if_not_exists = create.if_not_exists;
            shape.name = create.name.clone();
            shape.columns = create.columns.clone();
            shape.constraints = create.constraints.clone();
            shape.query = create.query.clone();
            shape.comment = create.comment.clone();
            shape.cluster_by = create.cluster_by.clone();
            // `COMMENT = '...'` is the one table option allowed.
            if let CreateTableOptions::Plain(options) = &create.table_options {
                if options.iter().all(|o| matches!(o, SqlOption::Comment(_))) {
                    shape.table_options = create.table_options.clone();
                }
            }
            same(
                kind,
                &shape,
                create,
                "CREATE [OR REPLACE] [TRANSIENT] TABLE [IF NOT EXISTS] name (columns) | AS SELECT ... [CLUSTER BY (...)] [COMMENT = '...']",
            )?;
            check_columns(create)?;
            let also = create.or_replace.then_some(WriteKind::DropTable);
            write(kind, &create.name, also)
        }
        Statement::CreateView(view) => {
            let kind = WriteKind::CreateView;
            let Statement::CreateView(mut shape) = plain.create_view.clone() else {
                unreachable!("the plain CREATE VIEW is a CREATE VIEW")
            };
            if view.temporary {
                return Err(temporary(kind));
            }
            shape.or_replace = view.or_replace;
            shape.secure = view.secure;
            shape.if_not_exists = view.if_not_exists;
            shape.name = view.name.clone();
            shape.columns = view.columns.clone();
            shape.query = view.query.clone();
            shape.comment = view.comment.clone();
            same(
                kind,
                &shape,
                view,
                "CREATE [OR REPLACE] [SECURE] VIEW [IF NOT EXISTS] name [(columns)] [COMMENT = '...'] AS SELECT ...",
            )?;
            if view.columns.iter().any(|c| c.options.is_some()) {
                return Err(form(
                    kind,
                    "with column options (policies, tags); name the columns only",
                ));
            }
            let also = view.or_replace.then_some(WriteKind::DropView);
            write(kind, &view.name, also)
        }
        Statement::Truncate(truncate) => {
            let kind = WriteKind::Truncate;
            let plain_form = truncate.partitions.is_none()
                && truncate.identity.is_none()
                && truncate.cascade.is_none()
                && truncate.on_cluster.is_none();
            match truncate.table_names.as_slice() {
                [one] if plain_form && !one.only => write(kind, &one.name, None),
                _ => Err(form(
                    kind,
                    "in this form; write TRUNCATE TABLE [IF EXISTS] name",
                )),
            }
        }
        Statement::Drop {
            object_type,
            names,
            purge,
            temporary,
            table,
            ..
        } => {
            let kind = match object_type {
                ObjectType::Table => WriteKind::DropTable,
                ObjectType::View => WriteKind::DropView,
                _ => return Ok(None),
            };
            match names.as_slice() {
                [one] if !purge && !temporary && table.is_none() => write(kind, one, None),
                _ => Err(form(
                    kind,
                    "in this form; drop one object: DROP TABLE|VIEW [IF EXISTS] name",
                )),
            }
        }
        _ => Ok(None),
    }
}

fn form(kind: WriteKind, what: &str) -> Refusal {
    Refusal(format!("{kind} {what}"))
}

fn temporary(kind: WriteKind) -> Refusal {
    form(
        kind,
        "TEMPORARY (it would belong to a pooled Snowflake session that outlives this call); create a TRANSIENT or permanent one in a schema you may write",
    )
}

/// Refuse `statement` when it differs from its plain `shape` in anything a plain form lacks.
fn same<T: PartialEq>(
    kind: WriteKind,
    shape: &T,
    statement: &T,
    plain: &str,
) -> Result<(), Refusal> {
    if shape == statement {
        Ok(())
    } else {
        Err(form(
            kind,
            &format!("with options this server does not allow (clones, grants, policies, tags, RETURNING and the like); the allowed form: {plain}"),
        ))
    }
}

/// The one table of `UPDATE`/`DELETE`, without joins.
fn single_table(kind: WriteKind, table: &TableWithJoins) -> Result<&ObjectName, Refusal> {
    if !table.joins.is_empty() {
        return Err(form(kind, "with joins; join in FROM/USING instead"));
    }
    table_name(kind, &table.relation)
}

fn table_name(kind: WriteKind, factor: &TableFactor) -> Result<&ObjectName, Refusal> {
    match factor {
        TableFactor::Table {
            name,
            args: None,
            version: None,
            ..
        } => Ok(name),
        _ => Err(form(kind, "of something other than a named table")),
    }
}

/// Column definitions: types, NULL/NOT NULL, defaults, comments, collation, identity and key
/// constraints; no policies, tags or other options.
fn check_columns(create: &sqlparser::ast::CreateTable) -> Result<(), Refusal> {
    let options_ok = create.columns.iter().flat_map(|c| &c.options).all(|o| {
        matches!(
            o.option,
            ColumnOption::Null
                | ColumnOption::NotNull
                | ColumnOption::Default(_)
                | ColumnOption::Comment(_)
                | ColumnOption::Collation(_)
                | ColumnOption::Identity(_)
                | ColumnOption::PrimaryKey(_)
                | ColumnOption::Unique(_)
        )
    });
    let constraints_ok = create.constraints.iter().all(|c| {
        matches!(
            c,
            TableConstraint::PrimaryKey(_) | TableConstraint::Unique(_)
        )
    });
    if options_ok && constraints_ok {
        Ok(())
    } else {
        Err(form(
            WriteKind::CreateTable,
            "with column options or constraints this server does not allow (policies, tags, foreign keys, checks); use types, NULL/NOT NULL, DEFAULT, COMMENT, PRIMARY KEY and UNIQUE",
        ))
    }
}

//! Stopping a statement that runs on the demo's engine: at its deadline, or when its call goes
//! away.
//!
//! DataFusion stops work when its stream is dropped, but only at the next point where a task
//! waits; an aggregate over a large join can compute for minutes without waiting, so neither a
//! timer nor dropping the call would reach it. Every operator of the physical plan is
//! therefore wrapped in [`Checked`], which looks at the statement's [`Stop`] each time a batch
//! passes: past the deadline or once the call is gone, the next batch is an error, and the
//! operators above give up. Before each batch it also gives its thread back once, so statements
//! sharing the engine's threads take turns.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::RecordBatchStream;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use tokio_stream::Stream;

/// The text of the error a statement past its deadline ends with.
pub const TIMED_OUT: &str = "the statement ran past its timeout";

/// One statement's deadline, and whether its call has gone away.
#[derive(Debug)]
pub struct Stop {
    deadline: Instant,
    gone: AtomicBool,
}

impl Stop {
    pub fn new(deadline: Instant) -> Arc<Stop> {
        Arc::new(Stop {
            deadline,
            gone: AtomicBool::new(false),
        })
    }

    fn check(&self) -> Result<()> {
        if self.gone.load(Ordering::Relaxed) {
            return Err(DataFusionError::Execution("the call was cancelled".into()));
        }
        if Instant::now() > self.deadline {
            return Err(DataFusionError::Execution(TIMED_OUT.into()));
        }
        Ok(())
    }
}

/// Marks the statement's call gone when dropped (the call finished, failed or was cancelled),
/// so work still running in the engine's tasks stops at its next batch.
pub struct OnDrop(pub Arc<Stop>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::Relaxed);
    }
}

/// `plan` with every operator checking `stop`.
pub fn checked(plan: Arc<dyn ExecutionPlan>, stop: &Arc<Stop>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(Transformed::yes(Arc::new(Checked {
            inner: node,
            stop: stop.clone(),
        }) as Arc<dyn ExecutionPlan>))
    })
    .map(|t| t.data)
}

/// An operator whose batches are let through only while its statement may go on.
#[derive(Debug)]
struct Checked {
    inner: Arc<dyn ExecutionPlan>,
    stop: Arc<Stop>,
}

impl DisplayAs for Checked {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Checked")
    }
}

impl ExecutionPlan for Checked {
    fn name(&self) -> &str {
        "Checked"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue) // a pass-through: no expressions of its own
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = children.into_iter().next().unwrap_or(self.inner.clone());
        Ok(Arc::new(Checked {
            inner,
            stop: self.stop.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.stop.check()?;
        Ok(Box::pin(CheckedStream {
            inner: self.inner.execute(partition, context)?,
            stop: self.stop.clone(),
            yielded: false,
        }))
    }
}

/// An operator's output: before each batch it gives its thread back once (a long aggregate
/// would otherwise hold the thread until it is done, and other statements on the engine's
/// threads would wait), then checks the statement may go on.
struct CheckedStream {
    inner: SendableRecordBatchStream,
    stop: Arc<Stop>,
    yielded: bool,
}

impl Stream for CheckedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        if let Err(e) = self.stop.check() {
            return Poll::Ready(Some(Err(e)));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for CheckedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

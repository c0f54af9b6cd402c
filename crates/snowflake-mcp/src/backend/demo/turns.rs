//! Statements on the demo's engine take turns on its threads.
//!
//! DataFusion gives its thread back only where a task waits; an aggregate over a large join
//! can compute for minutes without waiting. Then neither another statement on the engine's
//! threads nor the abort of this one (its deadline passed, or its call went away: the task
//! is aborted, which takes effect where it next waits) would get a turn. Every operator of the
//! physical plan is therefore wrapped in [`TakingTurns`], which gives the thread back once
//! before each batch it passes on.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::execution::RecordBatchStream;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use tokio_stream::Stream;

/// `plan` with every operator taking turns.
pub fn taking_turns(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(Transformed::yes(
            Arc::new(TakingTurns { inner: node }) as Arc<dyn ExecutionPlan>
        ))
    })
    .map(|t| t.data)
}

/// An operator that gives its thread back before each batch.
#[derive(Debug)]
struct TakingTurns {
    inner: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for TakingTurns {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TakingTurns")
    }
}

impl ExecutionPlan for TakingTurns {
    fn name(&self) -> &str {
        "TakingTurns"
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
        Ok(Arc::new(TakingTurns { inner }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(TurnStream {
            inner: self.inner.execute(partition, context)?,
            yielded: false,
        }))
    }
}

/// An operator's output, giving the thread back once before each batch.
struct TurnStream {
    inner: SendableRecordBatchStream,
    yielded: bool,
}

impl Stream for TurnStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for TurnStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

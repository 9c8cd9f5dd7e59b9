//! `JoinHandle` and `JoinError`, shaped like tokio's.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::harness::{TaskCtl, TaskRef};
use super::id::Id;

/// Why a task did not produce its output.
///
/// `Send + Sync`, so `handle.await?` converts into `Box<dyn Error + Send +
/// Sync>` and `anyhow::Error`.
pub struct JoinError {
    /// Cancelled, or the panic payload.
    repr: Repr,
    /// The task's id.
    id: Id,
}

/// What happened to the task.
enum Repr {
    /// The task was aborted or the runtime shut down first.
    Cancelled,
    /// The task panicked.
    Panic(Payload),
}

/// A panic payload that is `Sync` because nothing reaches it through a
/// shared reference except as a `Sync` type.
struct Payload(Box<dyn Any + Send + 'static>);

// SAFETY: a `&Payload` gives access to the box's contents only through
// `downcast_ref`, which returns a reference to a type that is itself `Sync`;
// the `!Sync` payload is reached only by value (`into_inner`), which needs
// ownership. So sharing `&Payload` between threads shares no `!Sync` data.
unsafe impl Sync for Payload {}

impl Payload {
    /// The payload as a `T`, if it is one; only for `Sync` types (see the
    /// `Sync` impl).
    fn downcast_ref<T: Any + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }

    fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0
    }
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(Payload(payload)),
            id,
        }
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Whether the task was cancelled (aborted, or dropped at shutdown).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload. Panics if the task did not panic; see
    /// [`try_into_panic`](JoinError::try_into_panic).
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("`JoinError::into_panic` on a task that did not panic; check `is_panic` first")
    }

    /// The panic payload, or the error back if the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner()),
            Repr::Cancelled => Err(self),
        }
    }
}

fn panic_message(p: &Payload) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match &self.repr {
            Repr::Cancelled => write!(f, "task {id} was cancelled"),
            Repr::Panic(p) => match panic_message(p) {
                Some(m) => write!(f, "task {id} panicked with message {m:?}"),
                None => write!(f, "task {id} panicked"),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({id:?})"),
            Repr::Panic(p) => match panic_message(p) {
                Some(m) => write!(f, "JoinError::Panic({id:?}, {m:?})"),
                None => write!(f, "JoinError::Panic({id:?}, ..)"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
}

/// A task's output while async-task holds it. If nobody takes it (the task
/// was detached), async-task drops it inside an abort-on-panic guard; a
/// panicking `Drop` of the output (or of a panic payload) must not abort
/// the process, so that drop is caught here.
pub(crate) struct Caught<T>(pub(crate) Option<T>);

impl<T> Caught<T> {
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("output taken once")
    }
}

impl<T> Drop for Caught<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(v)));
            // A payload whose own Drop panics again is leaked, not dropped.
            if let Err(payload) = caught {
                std::mem::forget(payload);
            }
        }
    }
}

/// An owned permission to join a task: a future of its output.
///
/// Dropping the handle detaches the task; it keeps running.
pub struct JoinHandle<T> {
    /// async-task's handle; `None` once the output was taken.
    task: Option<async_task::FallibleTask<Caught<Result<T, JoinError>>, TaskCtl>>,
    /// Abort control.
    ctl: TaskRef,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(
        task: async_task::Task<Caught<Result<T, JoinError>>, TaskCtl>,
        ctl: TaskRef,
    ) -> Self {
        JoinHandle {
            task: Some(task.fallible()),
            ctl,
        }
    }

    /// Cancels the task: its future is dropped the next time it would run,
    /// and awaiting the handle gives a cancelled [`JoinError`]. A task that
    /// already finished is unaffected.
    pub fn abort(&self) {
        self.ctl.abort();
    }

    /// Whether the task has finished (completed, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// A handle that can abort the task without owning its output.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle {
            ctl: self.ctl.clone(),
        }
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.ctl.ctl().task_id()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self
            .task
            .as_mut()
            .expect("JoinHandle polled after it returned its output");
        if !super::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                self.task = None;
                let id = self.ctl.ctl().task_id();
                Poll::Ready(out.map_or_else(|| Err(JoinError::cancelled(id)), Caught::into_inner))
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.ctl.ctl().task_id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Aborts a task without owning its output.
#[derive(Clone)]
pub struct AbortHandle {
    /// Abort control.
    ctl: TaskRef,
}

impl AbortHandle {
    /// See [`JoinHandle::abort`].
    pub fn abort(&self) {
        self.ctl.abort();
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.ctl.ctl().is_finished()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.ctl.ctl().task_id()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.ctl.ctl().task_id())
            .finish()
    }
}

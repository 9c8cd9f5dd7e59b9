//! How the runtime starts its threads (workers and the blocking pool):
//! name, stack size, and the start/stop hooks of `Builder`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A hook run on a runtime thread.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync>;

/// Thread settings shared by the workers and the blocking pool.
#[derive(Clone, Default)]
pub(crate) struct ThreadConfig {
    /// Names every thread when set (`Builder::thread_name_fn`).
    pub(crate) name_fn: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Stack size of every thread.
    pub(crate) stack_size: Option<usize>,
    /// Runs first on every new thread.
    pub(crate) on_start: Option<Hook>,
    /// Runs last on every thread, as it stops.
    pub(crate) on_stop: Option<Hook>,
    /// tokio's runtime, entered on every thread for its whole life
    /// (feature `tokio-compat`).
    #[cfg(feature = "tokio-compat")]
    pub(crate) tokio: Option<Arc<super::tokio_compat::TokioCompat>>,
}

impl ThreadConfig {
    /// Starts a thread named by `name_fn`, else `default_name`, that runs
    /// the start hook, `f`, then the stop hook (even if `f` unwinds).
    pub(crate) fn spawn<F>(&self, default_name: String, f: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        let name = self.name_fn.as_ref().map_or(default_name, |n| n());
        let mut builder = std::thread::Builder::new().name(name);
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let on_start = self.on_start.clone();
        let on_stop = self.on_stop.clone();
        #[cfg(feature = "tokio-compat")]
        let tokio = self.tokio.clone();
        builder.spawn(move || {
            // Entered before the start hook, so the hook may use tokio too;
            // left after the stop hook (guards drop in reverse order).
            #[cfg(feature = "tokio-compat")]
            let _tokio = tokio.as_ref().map(|t| t.handle().enter());
            /// Runs the stop hook when the thread's work ends.
            struct Stop(Option<Hook>);
            impl Drop for Stop {
                fn drop(&mut self) {
                    if let Some(hook) = &self.0 {
                        hook();
                    }
                }
            }
            if let Some(hook) = &on_start {
                hook();
            }
            let _stop = Stop(on_stop);
            f();
        })
    }
}

impl fmt::Debug for ThreadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadConfig")
            .field("name_fn", &self.name_fn.as_ref().map(|_| ".."))
            .field("stack_size", &self.stack_size)
            .field("on_start", &self.on_start.as_ref().map(|_| ".."))
            .field("on_stop", &self.on_stop.as_ref().map(|_| ".."))
            .finish()
    }
}

//! Task-local storage: `task_local!`, `LocalKey::scope` and friends.
//!
//! A task-local value lives in the future returned by
//! [`LocalKey::scope`]. Each time that future is polled (or dropped), the
//! value moves into a thread-local slot for the duration of the poll and
//! back out afterwards, so code running inside the future, on whichever
//! worker, sees it; code outside does not. Scopes of one key nest: the
//! inner scope's value is seen inside it, the outer one's again after.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Declares task-local keys (tokio's `task_local!`):
///
/// ```
/// kevent_runtime::task_local! {
///     /// The request being served.
///     pub static REQUEST_ID: u64;
///     static USER: String;
/// }
///
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// let seen = REQUEST_ID
///     .scope(7, async { REQUEST_ID.get() + 1 })
///     .await;
/// assert_eq!(seen, 8);
/// assert!(REQUEST_ID.try_with(|_| ()).is_err());
/// # });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

/// One key of `task_local!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __KEVENT_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(__KEVENT_TASK_LOCAL)
        };
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
pub struct LocalKey<T: 'static> {
    /// The thread-local slot the value occupies while its scope runs.
    slot: std::thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: 'static> LocalKey<T> {
    /// Used by `task_local!`; not part of the API.
    #[doc(hidden)]
    pub const fn __new(slot: std::thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// A future that runs `future` with this key set to `value`.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            value: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with this key set to `value`.
    ///
    /// # Panics
    ///
    /// When called from inside [`with`](LocalKey::with) or
    /// [`try_with`](LocalKey::try_with) of the same key.
    #[track_caller]
    pub fn sync_scope<F: FnOnce() -> R, R>(&'static self, value: T, f: F) -> R {
        let mut value = Some(value);
        let _scope = self.enter(&mut value);
        f()
    }

    /// Moves `value` into the thread-local slot until the guard drops
    /// (and the slot's previous content into `value`).
    #[track_caller]
    fn enter<'a>(&'static self, value: &'a mut Option<T>) -> Scope<'a, T> {
        self.swap(value);
        Scope { key: self, value }
    }

    #[track_caller]
    fn swap(&'static self, value: &mut Option<T>) {
        let swapped = self.slot.try_with(|slot| {
            slot.try_borrow_mut()
                .map(|mut s| std::mem::swap(&mut *s, value))
        });
        match swapped {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!(
                "a task-local scope was entered inside `with`/`try_with` of the same key: \
                 finish using the value before polling a `scope` future or calling \
                 `sync_scope` of that key"
            ),
            Err(_) => panic!(
                "a task-local scope was entered while this thread's locals are being \
                 destroyed: do not poll or drop task-local futures in thread-local \
                 destructors"
            ),
        }
    }

    /// Runs `f` with a reference to the value.
    ///
    /// # Panics
    ///
    /// Outside a [`scope`](LocalKey::scope) or
    /// [`sync_scope`](LocalKey::sync_scope) of this key; use
    /// [`try_with`](LocalKey::try_with) where that can happen.
    #[track_caller]
    pub fn with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "a task-local value was read outside its scope: set it with \
                 `LocalKey::scope` (around a future) or `LocalKey::sync_scope` (around a \
                 closure) first, or use `try_with`, which returns an error there"
            ),
        }
    }

    /// Runs `f` with a reference to the value, or fails with
    /// [`AccessError`] outside a scope of this key.
    pub fn try_with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> Result<R, AccessError> {
        let borrowed = self.slot.try_with(|slot| {
            let slot = slot.try_borrow().map_err(|_| AccessError(()))?;
            match slot.as_ref() {
                Some(v) => Ok(f(v)),
                None => Err(AccessError(())),
            }
        });
        borrowed.unwrap_or(Err(AccessError(())))
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A clone of the value.
    ///
    /// # Panics
    ///
    /// Outside a scope of this key (see [`with`](LocalKey::with)).
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(T::clone)
    }

    /// A clone of the value, or [`AccessError`] outside a scope.
    pub fn try_get(&'static self) -> Result<T, AccessError> {
        self.try_with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey { .. }")
    }
}

/// Puts the slot's previous content back when dropped (also on unwind).
struct Scope<'a, T: 'static> {
    key: &'static LocalKey<T>,
    value: &'a mut Option<T>,
}

impl<T: 'static> Drop for Scope<'_, T> {
    fn drop(&mut self) {
        // The slot was borrowable when the scope was entered and every
        // borrow inside it has ended, so this swap cannot fail on a borrow;
        // a thread already destroying its locals leaves the value there.
        let _ = self.key.slot.try_with(|slot| {
            if let Ok(mut s) = slot.try_borrow_mut() {
                std::mem::swap(&mut *s, self.value);
            }
        });
    }
}

/// The future of [`LocalKey::scope`]: runs its future with the key set.
///
/// Dropping it drops the inner future inside the scope too, so the inner
/// future's destructors see the value.
pub struct TaskLocalFuture<T: 'static, F> {
    key: &'static LocalKey<T>,
    /// The value while the future is not being polled.
    value: Option<T>,
    /// The future; `None` once dropped. Structurally pinned (the
    /// struct is `Unpin` only when `F` is, by the auto impl).
    future: Option<F>,
}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    /// Takes the value out (so the future, if polled again, runs without
    /// it set); `None` if taken already or while the future is polled.
    pub fn take_value(self: Pin<&mut Self>) -> Option<T> {
        // SAFETY: `value` is not structurally pinned; only `future` is,
        // and it is not touched here.
        unsafe { self.get_unchecked_mut() }.value.take()
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is only polled
        // through `Pin::new_unchecked` below and dropped in place (in
        // `Drop`), never moved; `value` and `key` are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let key = this.key;
        let _scope = key.enter(&mut this.value);
        let future = this
            .future
            .as_mut()
            .expect("a task-local `scope` future polled after it completed");
        // SAFETY: see above; `future` lives in the pinned `TaskLocalFuture`.
        unsafe { Pin::new_unchecked(future) }.poll(cx)
    }
}

impl<T: 'static, F> Drop for TaskLocalFuture<T, F> {
    fn drop(&mut self) {
        if self.future.is_none() {
            return;
        }
        // Drop the future inside the scope, where the thread allows it.
        let key = self.key;
        let enterable = key
            .slot
            .try_with(|slot| slot.try_borrow_mut().is_ok())
            .unwrap_or(false);
        let _scope = enterable.then(|| key.enter(&mut self.value));
        // Dropped in place: assignment drops the pinned future without
        // moving it.
        self.future = None;
    }
}

impl<T: fmt::Debug + 'static, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

/// A task-local value was read outside its scope.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError(());

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessError")
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set (read outside its scope)")
    }
}

impl Error for AccessError {}

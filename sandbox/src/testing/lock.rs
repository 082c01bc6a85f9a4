//! A test's lock from `serial_test` (`#[serial]`, `#[parallel]`, `#[file_serial]`), taken where
//! the test is dispatched.
//!
//! The lock belongs to the process that holds it. Inside the sandbox, in a copy of a fork server,
//! it would keep no other test out, so `#[isolated]` lifts serial_test's call out of the body
//! into a function of its own, a [`TestLock`], which calls [`run_locked_test`] where the body was.
//! The dispatching thread (the stock harness's test thread, a runner thread) calls
//! [`run_locked`]: serial_test takes its lock on that thread and calls back on it, so the run
//! of the test is handed over in a thread-local.

use std::cell::Cell;

/// Takes a test's lock and, holding it, calls [`run_locked_test`].
pub type TestLock = fn();

thread_local! {
    /// The run that [`run_locked_test`] makes, while [`run_locked`] is on the stack.
    static LOCKED_RUN: Cell<Option<*mut (dyn FnMut() + 'static)>> = const { Cell::new(None) };
}

/// Runs `run` while holding the test's `lock`, and returns what it returned.
pub fn run_locked<R>(lock: TestLock, run: impl FnOnce() -> R) -> R {
    /// Clears the hand-over however `lock` returns (a panic of the test, under the stock harness).
    struct Clear(Option<*mut (dyn FnMut() + 'static)>);
    impl Drop for Clear {
        fn drop(&mut self) {
            LOCKED_RUN.set(self.0);
        }
    }
    let (mut run, mut result) = (Some(run), None);
    let mut once = || result = run.take().map(|run| run());
    let once: &mut dyn FnMut() = &mut once;
    // SAFETY: only the lifetime is erased. The pointer lives in the thread-local only until
    // `Clear` restores the previous value, before `once`'s borrow ends, and is only used by
    // `run_locked_test` on this thread meanwhile.
    let once: *mut (dyn FnMut() + 'static) = unsafe { std::mem::transmute(once) };
    let clear = Clear(LOCKED_RUN.replace(Some(once)));
    lock();
    drop(clear);
    result.expect("sandbox: a test's lock returned without running the test")
}

/// Called by a [`TestLock`] holding its lock: runs the test that [`run_locked`] was given.
///
/// # Panics
/// Outside a [`run_locked`] on this thread: a lock function called by anything else.
pub fn run_locked_test() {
    let run = LOCKED_RUN.take().expect("sandbox: a test's lock was taken outside run_locked");
    /// Puts the run back for a lock that calls it again, and for `run_locked`'s restore.
    struct Restore(*mut (dyn FnMut() + 'static));
    impl Drop for Restore {
        fn drop(&mut self) {
            LOCKED_RUN.set(Some(self.0));
        }
    }
    let _restore = Restore(run);
    // SAFETY: set by `run_locked` on this thread, whose frame (and so the borrow) is still on
    // the stack; taken out of the cell meanwhile, so no second `&mut` exists.
    unsafe { (*run)() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static HELD: AtomicU32 = AtomicU32::new(0);

    fn counting_lock() {
        HELD.fetch_add(1, Ordering::SeqCst);
        run_locked_test();
        HELD.fetch_sub(1, Ordering::SeqCst);
    }

    #[test]
    fn the_run_happens_inside_the_lock() {
        let seen = run_locked(counting_lock, || HELD.load(Ordering::SeqCst));
        assert_eq!(seen, 1);
        assert_eq!(HELD.load(Ordering::SeqCst), 0);
    }

    #[test]
    #[should_panic(expected = "outside run_locked")]
    fn a_lock_called_outside_run_locked_panics() {
        run_locked_test();
    }
}

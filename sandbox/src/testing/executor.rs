//! The built-in executor of `#[isolated] async fn` tests that name no runtime.
//!
//! A runtime's own attribute (`#[tokio::test]`, `#[async_std::test]`) is the way to run futures
//! that need its reactor: timers, sockets, `spawn`. Without one, the future is polled on the
//! test's thread, which sleeps until a waker wakes it. That suits futures that are complete when
//! polled (test-case's async cases of a plain body), and those woken by other threads: channels
//! and combinators of the `futures` crate, async-std's, work handed to a thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the thread that polls.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking between polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            // A wake-up before the park makes it return at once; a spurious one polls again.
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_ready_future_completes_at_the_first_poll() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    /// A future that is pending until another thread sets its value and wakes it.
    #[test]
    fn a_future_woken_by_another_thread_completes() {
        struct Handoff {
            value: mpsc::Receiver<u32>,
            waker_to: Option<mpsc::Sender<Waker>>,
        }
        impl Future for Handoff {
            type Output = u32;
            fn poll(mut self: std::pin::Pin<&mut Self>, context: &mut Context<'_>) -> Poll<u32> {
                if let Ok(value) = self.value.try_recv() {
                    return Poll::Ready(value);
                }
                if let Some(waker_to) = self.waker_to.take() {
                    waker_to.send(context.waker().clone()).unwrap();
                }
                Poll::Pending
            }
        }
        let (value_tx, value_rx) = mpsc::channel();
        let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
        let helper = thread::spawn(move || {
            let waker = waker_rx.recv().unwrap();
            thread::sleep(Duration::from_millis(20));
            value_tx.send(42).unwrap();
            waker.wake();
        });
        assert_eq!(block_on(Handoff { value: value_rx, waker_to: Some(waker_tx) }), 42);
        helper.join().unwrap();
    }
}

//! What the crate's tests share: a timer for test runtimes that run each
//! task on a thread of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A timer on a thread of its own, started when first polled: a test
/// runtime's `Sleep`.
pub(crate) struct ThreadSleep {
    deadline: Instant,
    started: bool,
}

impl ThreadSleep {
    pub(crate) fn until(deadline: Instant) -> Self {
        ThreadSleep {
            deadline,
            started: false,
        }
    }
}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        if !std::mem::replace(&mut self.started, true) {
            let waker = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                waker.wake();
            });
        }
        Poll::Pending
    }
}

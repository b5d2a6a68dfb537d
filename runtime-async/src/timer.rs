//! Timers of the shared hubs: a hub keeps its core state machine's
//! deadlines, and a runtime task (or, on threads, an OS thread) sleeps
//! until the next one, woken early when a deadline moves earlier.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::task::AtomicWaker;

/// Something with deadlines, driven by one timer.
pub trait Timed: Send + Sync + 'static {
    /// Runs what is due at `now`; returns the next deadline.
    fn run_timers(&self, now: Instant) -> Option<Instant>;
    /// The signal that wakes the timer.
    fn timer_signal(&self) -> &TimerSignal;
}

/// Wakes a sleeping timer when its deadline moves earlier (or its owner is
/// dropped), and makes sure only one timer runs per owner.
#[derive(Debug, Default)]
pub struct TimerSignal {
    waker: AtomicWaker,
    woken: AtomicBool,
    claimed: AtomicBool,
}

impl TimerSignal {
    /// Wakes the timer.
    pub fn wake(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Ready once [`TimerSignal::wake`] was called since the last ready.
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.woken.swap(false, Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Clears a pending wake-up (the timer is about to look anyway).
    pub fn clear(&self) {
        self.woken.store(false, Ordering::SeqCst);
    }

    /// `true` for the first caller only: the one that runs the timer.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }
}

/// A timer's hold on its owner, which does not keep the owner alive.
pub type WeakTimed = Weak<dyn Timed>;

/// Polls until `timed` is woken or dropped.
pub fn poll_woken_or_gone(timed: &WeakTimed, cx: &mut Context<'_>) -> Poll<()> {
    match timed.upgrade() {
        Some(timed) => timed.timer_signal().poll_woken(cx),
        None => Poll::Ready(()),
    }
}

/// Runs the timers of `timed` once, if it still exists: `None` once it is
/// gone, else the next deadline.
pub fn run_once(timed: &WeakTimed) -> Option<Option<Instant>> {
    let timed: Arc<dyn Timed> = timed.upgrade()?;
    timed.timer_signal().clear();
    Some(timed.run_timers(Instant::now()))
}

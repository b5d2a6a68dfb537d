//! Timers of the shared hubs: a hub keeps its core state machine's
//! deadlines, and a runtime task (or, on threads, an OS thread) sleeps
//! until the next one, woken early when a deadline moves earlier; and the
//! lazily re-armed timer of a connection's own timeouts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
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

/// One runtime timer for a deadline that mostly moves later (a keep-alive
/// or read timeout pushed back by each request or message), re-armed
/// lazily: a later deadline keeps the timer already armed, which when it
/// fires re-arms at the deadline then current. A busy connection so
/// touches the runtime's timers about once per timeout instead of once per
/// request; on `async-io` (smol, async-std), where each new timer wakes the
/// reactor thread, that was a wake-up per request. A deadline moved
/// earlier re-arms at once.
pub(crate) struct LazyTimer<S> {
    armed: Option<(Instant, Pin<Box<S>>)>,
}

impl<S> Default for LazyTimer<S> {
    fn default() -> Self {
        Self { armed: None }
    }
}

impl<S: Future<Output = ()>> LazyTimer<S> {
    /// Ready once `deadline` has passed, by a timer from `sleep_until`.
    pub(crate) fn poll_until(
        &mut self,
        deadline: Instant,
        cx: &mut Context<'_>,
        sleep_until: impl Fn(Instant) -> S,
    ) -> Poll<()> {
        loop {
            match &mut self.armed {
                Some((at, _)) if *at > deadline => self.armed = None,
                Some((at, sleep)) => {
                    ready!(sleep.as_mut().poll(cx));
                    let fired_at = *at;
                    self.armed = None;
                    if fired_at == deadline {
                        return Poll::Ready(());
                    }
                }
                None => self.armed = Some((deadline, Box::pin(sleep_until(deadline)))),
            }
        }
    }

    /// Drops the armed timer.
    pub(crate) fn clear(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_util::task::noop_waker_ref;

    use super::*;

    /// A timer the test fires by hand; `armed` lists every one created.
    struct HandTimer(Rc<RefCell<bool>>);

    impl Future for HandTimer {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if *self.0.borrow() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[derive(Default)]
    struct Timers {
        armed: RefCell<Vec<(Instant, Rc<RefCell<bool>>)>>,
    }

    impl Timers {
        fn poll(&self, timer: &mut LazyTimer<HandTimer>, deadline: Instant) -> Poll<()> {
            let mut cx = Context::from_waker(noop_waker_ref());
            timer.poll_until(deadline, &mut cx, |at| {
                let fired = Rc::new(RefCell::new(false));
                self.armed.borrow_mut().push((at, fired.clone()));
                HandTimer(fired)
            })
        }

        fn fire_last(&self) {
            *self.armed.borrow().last().expect("a timer").1.borrow_mut() = true;
        }

        fn armed_at(&self) -> Vec<Instant> {
            self.armed.borrow().iter().map(|(at, _)| *at).collect()
        }
    }

    #[test]
    fn a_later_deadline_keeps_the_armed_timer_until_it_fires() {
        let timers = Timers::default();
        let mut timer = LazyTimer::default();
        let start = Instant::now();
        let (first, later) = (
            start + Duration::from_secs(30),
            start + Duration::from_secs(60),
        );
        assert!(timers.poll(&mut timer, first).is_pending());
        for _ in 0..3 {
            assert!(timers.poll(&mut timer, later).is_pending());
        }
        assert_eq!(timers.armed_at(), [first]);
        // The first timer fires before the deadline now asked for: re-armed
        // there, not ready.
        timers.fire_last();
        assert!(timers.poll(&mut timer, later).is_pending());
        assert_eq!(timers.armed_at(), [first, later]);
        timers.fire_last();
        assert!(timers.poll(&mut timer, later).is_ready());
    }

    #[test]
    fn an_earlier_deadline_rearms_at_once() {
        let timers = Timers::default();
        let mut timer = LazyTimer::default();
        let start = Instant::now();
        let (late, early) = (
            start + Duration::from_secs(60),
            start + Duration::from_secs(5),
        );
        assert!(timers.poll(&mut timer, late).is_pending());
        assert!(timers.poll(&mut timer, early).is_pending());
        assert_eq!(timers.armed_at(), [late, early]);
        timers.fire_last();
        assert!(timers.poll(&mut timer, early).is_ready());
        // Cleared, the next deadline gets a timer of its own.
        timer.clear();
        assert!(timers.poll(&mut timer, late).is_pending());
        assert_eq!(timers.armed_at(), [late, early, late]);
    }
}

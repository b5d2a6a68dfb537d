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
///
/// Reminders due at given instants; a runtime drives them with
/// `server::spawn_timer(&runtime, Arc::new(reminders))`:
///
/// ```
/// use std::sync::Mutex;
/// use std::time::{Duration, Instant};
/// use switchboard_async::timer::{Timed, TimerSignal};
///
/// #[derive(Default)]
/// struct Reminders {
///     due: Mutex<Vec<Instant>>,
///     signal: TimerSignal,
/// }
///
/// impl Reminders {
///     fn add(&self, at: Instant) {
///         self.due.lock().unwrap().push(at);
///         self.signal.wake(); // it may be due before the timer's deadline
///     }
/// }
///
/// impl Timed for Reminders {
///     fn run_timers(&self, now: Instant) -> Option<Instant> {
///         let mut due = self.due.lock().unwrap();
///         due.retain(|&at| at > now); // (what is due would fire here)
///         due.iter().min().copied()
///     }
///
///     fn timer_signal(&self) -> &TimerSignal {
///         &self.signal
///     }
/// }
///
/// let (reminders, now) = (Reminders::default(), Instant::now());
/// let (soon, later) = (now + Duration::from_secs(5), now + Duration::from_secs(60));
/// reminders.add(later);
/// reminders.add(soon);
/// assert_eq!(reminders.run_timers(now), Some(soon));
/// assert_eq!(reminders.run_timers(soon), Some(later));
/// assert_eq!(reminders.run_timers(later), None);
/// ```
pub trait Timed: Send + Sync + 'static {
    /// Runs what is due at `now`; returns the next deadline.
    ///
    /// See [`Timed`]'s example.
    fn run_timers(&self, now: Instant) -> Option<Instant>;
    /// The signal that wakes the timer.
    ///
    /// See [`Timed`]'s example.
    fn timer_signal(&self) -> &TimerSignal;
}

/// Wakes a sleeping timer when its deadline moves earlier (or its owner is
/// dropped), and makes sure only one timer runs per owner.
///
/// ```
/// use std::task::{Context, Waker};
/// use switchboard_async::timer::TimerSignal;
///
/// let signal = TimerSignal::default();
/// assert!(signal.claim()); // this caller runs the timer
/// assert!(!signal.claim()); // any other does not
///
/// // The timer, asleep until its deadline or until woken:
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(signal.poll_woken(&mut cx).is_pending());
/// signal.wake(); // a deadline moved earlier
/// assert!(signal.poll_woken(&mut cx).is_ready()); // it looks again
/// ```
#[derive(Debug, Default)]
pub struct TimerSignal {
    waker: AtomicWaker,
    woken: AtomicBool,
    claimed: AtomicBool,
}

impl TimerSignal {
    /// Wakes the timer.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures_executor::block_on;
    /// use switchboard_async::timer::TimerSignal;
    ///
    /// let signal = Arc::new(TimerSignal::default());
    /// let waker = signal.clone();
    /// std::thread::spawn(move || waker.wake()); // from anywhere
    /// block_on(std::future::poll_fn(|cx| signal.poll_woken(cx))); // the timer wakes up
    /// ```
    pub fn wake(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Ready once [`TimerSignal::wake`] was called since the last ready.
    ///
    /// ```
    /// use std::task::{Context, Waker};
    /// use switchboard_async::timer::TimerSignal;
    ///
    /// let signal = TimerSignal::default();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// signal.wake();
    /// signal.wake();
    /// assert!(signal.poll_woken(&mut cx).is_ready());
    /// assert!(signal.poll_woken(&mut cx).is_pending()); // both wakes taken at once
    /// ```
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.woken.swap(false, Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Clears a pending wake-up (the timer is about to look anyway).
    ///
    /// ```
    /// use std::task::{Context, Waker};
    /// use switchboard_async::timer::TimerSignal;
    ///
    /// let signal = TimerSignal::default();
    /// signal.wake();
    /// signal.clear(); // the timer runs everything due now anyway
    /// assert!(signal.poll_woken(&mut Context::from_waker(Waker::noop())).is_pending());
    /// ```
    pub fn clear(&self) {
        self.woken.store(false, Ordering::SeqCst);
    }

    /// `true` for the first caller only: the one that runs the timer.
    ///
    /// See [`TimerSignal`]'s example.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }

    /// Gives the claim up: the timer that held it will not run (its task
    /// was dropped with its runtime), so the next [`claim`](Self::claim)
    /// succeeds and starts another.
    ///
    /// ```
    /// use switchboard_async::timer::TimerSignal;
    /// let signal = TimerSignal::default();
    /// assert!(signal.claim());
    /// signal.release();
    /// assert!(signal.claim());
    /// ```
    pub fn release(&self) {
        self.claimed.store(false, Ordering::SeqCst);
    }

    /// Whether a timer holds the claim (runs, or is about to).
    ///
    /// ```
    /// use switchboard_async::timer::TimerSignal;
    /// let signal = TimerSignal::default();
    /// assert!(!signal.is_claimed());
    /// signal.claim();
    /// assert!(signal.is_claimed());
    /// ```
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// A timer's hold on its owner, which does not keep the owner alive.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_async::timer::WeakTimed;
/// use switchboard_core::engineio::ServerConfig;
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let weak: WeakTimed = Arc::downgrade(&engine.timed());
/// assert!(weak.upgrade().is_some());
/// drop(engine);
/// assert!(weak.upgrade().is_none()); // the timer does not keep it alive
/// ```
pub type WeakTimed = Weak<dyn Timed>;

/// Polls until `timed` is woken or dropped.
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Context, Waker};
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_async::timer::{WeakTimed, poll_woken_or_gone};
/// use switchboard_core::engineio::ServerConfig;
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let weak: WeakTimed = Arc::downgrade(&engine.timed());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(poll_woken_or_gone(&weak, &mut cx).is_pending()); // asleep
/// drop(engine);
/// assert!(poll_woken_or_gone(&weak, &mut cx).is_ready()); // gone: stop
/// ```
pub fn poll_woken_or_gone(timed: &WeakTimed, cx: &mut Context<'_>) -> Poll<()> {
    match timed.upgrade() {
        Some(timed) => timed.timer_signal().poll_woken(cx),
        None => Poll::Ready(()),
    }
}

/// Runs the timers of `timed` once, if it still exists: `None` once it is
/// gone, else the next deadline.
///
/// A timer thread's loop, as the threads adapter runs it:
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Context, Wake, Waker};
/// use std::time::Instant;
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_async::timer::{WeakTimed, poll_woken_or_gone, run_once};
/// use switchboard_core::engineio::ServerConfig;
///
/// struct Unpark(std::thread::Thread);
/// impl Wake for Unpark {
///     fn wake(self: Arc<Self>) {
///         self.0.unpark();
///     }
/// }
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let weak: WeakTimed = Arc::downgrade(&engine.timed());
/// let timer = std::thread::spawn(move || {
///     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     while let Some(next) = run_once(&weak) {
///         if poll_woken_or_gone(&weak, &mut cx).is_ready() {
///             continue; // woken meanwhile: look again
///         }
///         match next {
///             Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
///             None => std::thread::park(),
///         }
///     }
/// });
/// drop(engine); // the endpoint is gone: its timer ends
/// timer.join().unwrap();
/// ```
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

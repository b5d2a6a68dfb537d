//! Ordered delivery of a hub's events to the application: in order per key
//! (an Engine.IO session, a Socket.IO socket), concurrently across keys.
//!
//! A hub pushes events in the order its core produced them, then calls
//! [`OrderedDispatch::deliver`] from whichever task or thread did the work.
//! A key's events are handed to the handler one at a time, by one caller at
//! a time; a caller that finds the key busy leaves its events to the caller
//! already delivering it. Different keys are delivered by different callers
//! at once, so a slow handler holds back only its own session, and the
//! connection that read a message usually runs its handler itself.
//!
//! A caller already delivering from this dispatcher (a handler that
//! disconnects another socket, say) does not deliver again from inside the
//! handler: the events wait for the outer delivery loop, which runs them
//! once the handler has returned. Handlers are therefore never re-entered
//! on one thread, and a handler holding its own lock cannot deadlock on it.

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use switchboard_core::ids::IdMap;

/// Runs application code (a handler with its event) so that a panic in it
/// ends only that call: it is logged, and the task or thread delivering
/// (a connection, a hub's timer, a handler thread) goes on with the next
/// event. Without this, a panicking handler called from the timer would
/// stop the heartbeats of a whole endpoint.
pub(crate) fn run_handler(handle: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)) {
        log_handler_panic(&*panic);
    }
}

/// Logs the panic of a handler (sync, or an async one's task).
pub(crate) fn log_handler_panic(panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-string payload)");
    tracing::error!(panic = message, "a handler panicked; its event was dropped");
}

/// How many emptied queues a dispatcher shard keeps for reuse.
const SPARE_QUEUES: usize = 64;

thread_local! {
    /// The dispatchers this thread is delivering from (by address).
    static DELIVERING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// The shard this thread last queued events in: where its next
    /// delivery looks first, so threads delivering at once start on
    /// different shards.
    static LAST_SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Events waiting for the application, in order per key.
///
/// The keys are split among shards, each under its own lock (as the
/// Engine.IO sessions are): callers queueing and delivering different
/// keys on different threads rarely wait for each other. A key lives in
/// one shard, so its order is one shard's business.
pub(crate) struct OrderedDispatch<K, E> {
    shards: Box<[DispatchShard<K, E>]>,
    /// Picks a key's shard.
    hasher: foldhash::fast::RandomState,
    /// How many shards have ready keys, read without a lock by
    /// [`is_idle`](Self::is_idle) (every pusher delivers after pushing, so
    /// a stale zero loses nothing).
    ready_shards: AtomicUsize,
    /// Events waiting across all keys (a deliverer's current batch not
    /// counted), changed under a shard's lock and read without it.
    waiting: AtomicUsize,
    /// Keys paused by a deliverer (see
    /// [`deliver_pausable`](OrderedDispatch::deliver_pausable)), likewise.
    paused: AtomicUsize,
}

/// One shard of a dispatcher, on cache lines of its own.
#[repr(align(128))]
struct DispatchShard<K, E> {
    state: Mutex<State<K, E>>,
    /// `state.ready.len()` as of the last change under the lock.
    ready_len: AtomicUsize,
}

struct State<K, E> {
    /// Keys with events waiting or being delivered.
    keys: IdMap<K, KeyQueue<E>>,
    /// Keys with events waiting and nobody delivering them, oldest first.
    /// Holds exactly the keys of `keys` that are neither busy nor paused.
    ready: VecDeque<K>,
    /// Emptied queues, kept so a steady stream of events allocates nothing.
    spare: Vec<VecDeque<E>>,
}

struct KeyQueue<E> {
    events: VecDeque<E>,
    /// A caller is delivering this key's events.
    busy: bool,
    /// When a deliverer paused the key: nobody delivers its events until
    /// it is [resumed](OrderedDispatch::resume).
    paused: Option<Instant>,
    /// Resumed for good: not paused again until its queue empties.
    unpausable: bool,
}

type Guard<'a, K, E> = MutexGuard<'a, State<K, E>>;

impl<K: Hash + Eq + Clone, E> OrderedDispatch<K, E> {
    /// A dispatcher with one shard: one lock for every key.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_shards(1)
    }

    /// A dispatcher whose keys are split among `shards` locks (at least
    /// one).
    pub(crate) fn with_shards(shards: usize) -> Self {
        OrderedDispatch {
            shards: (0..shards.max(1))
                .map(|_| DispatchShard {
                    state: Mutex::new(State {
                        keys: IdMap::default(),
                        ready: VecDeque::new(),
                        spare: Vec::new(),
                    }),
                    ready_len: AtomicUsize::new(0),
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            ready_shards: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            paused: AtomicUsize::new(0),
        }
    }

    /// Queues events, each under its key, keeping their order per key.
    pub(crate) fn push_all(&self, events: impl IntoIterator<Item = (K, E)>) {
        let overflowed = self.push_all_bounded(events, usize::MAX);
        debug_assert!(overflowed.is_empty());
    }

    /// Queues events as [`push_all`](Self::push_all) does, and returns the
    /// keys whose waiting events grew past `limit` with this push (each
    /// once, when its queue reaches `limit + 1`), for the caller to stop
    /// their source. A deliverer may hold one more batch of a key's events
    /// than its queue, so a key holds at most about twice `limit`.
    pub(crate) fn push_all_bounded(
        &self,
        events: impl IntoIterator<Item = (K, E)>,
        limit: usize,
    ) -> Vec<K> {
        let mut overflowed = Vec::new();
        let mut events = events.into_iter().peekable();
        // The shard locked now, and how many events were queued in it.
        let mut held: Option<(usize, Guard<'_, K, E>, usize)> = None;
        while let Some((key, event)) = events.next() {
            let index = self.shard_of(&key);
            if held.as_ref().is_none_or(|(at, ..)| *at != index) {
                if let Some((at, state, pushed)) = held.take() {
                    self.pushed(at, &state, pushed);
                }
                held = Some((index, self.lock(index), 0));
            }
            let (_, state, pushed) = held.as_mut().expect("just locked");
            let State { keys, ready, spare } = &mut **state;
            // A run of events for one key (a read's burst from one
            // session) is queued with one lookup.
            let run_key = key.clone();
            // Busy keys are picked up by their deliverer; idle ones with
            // events are already ready; paused ones wait.
            let queue = match keys.entry(key) {
                Entry::Occupied(queue) => queue.into_mut(),
                Entry::Vacant(slot) => {
                    ready.push_back(slot.key().clone());
                    slot.insert(KeyQueue {
                        events: spare.pop().unwrap_or_default(),
                        busy: false,
                        paused: None,
                        unpausable: false,
                    })
                }
            };
            let before = queue.events.len();
            queue.events.push_back(event);
            while let Some((_, event)) = events.next_if(|(next, _)| *next == run_key) {
                queue.events.push_back(event);
            }
            let after = queue.events.len();
            *pushed += after - before;
            if before <= limit && after > limit {
                overflowed.push(run_key);
            }
        }
        if let Some((at, state, pushed)) = held {
            self.pushed(at, &state, pushed);
            LAST_SHARD.set(at);
        }
        overflowed
    }

    /// Counts `pushed` events queued in shard `index` (under its lock).
    fn pushed(&self, index: usize, state: &State<K, E>, pushed: usize) {
        self.publish(index, &state.ready);
        self.waiting.fetch_add(pushed, Ordering::Relaxed);
    }

    /// How many events of `key` wait to be taken by a deliverer (a
    /// deliverer's current batch not counted).
    pub(crate) fn queued<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_of(key)
            .keys
            .get(key)
            .map_or(0, |queue| queue.events.len())
    }

    /// How many events wait to be taken by a deliverer, across all keys.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether no event waits for a deliverer.
    pub(crate) fn is_idle(&self) -> bool {
        self.ready_shards.load(Ordering::Acquire) == 0
    }

    /// Hands every ready key's events to `handle`, in order per key, until
    /// none is ready. Returns at once when called from inside `handle` (of
    /// this dispatcher, on this thread): the outer call delivers them.
    pub(crate) fn deliver(&self, handle: impl FnMut(E)) {
        self.deliver_pausable(|_| false, handle);
    }

    /// [`deliver`](Self::deliver), asking `pause` first for each event: if
    /// it says so, the event's key is paused, the event first in its
    /// queue, and its events wait (new ones too) until
    /// [`resume`](Self::resume).
    pub(crate) fn deliver_pausable(&self, pause: impl FnMut(&E) -> bool, handle: impl FnMut(E)) {
        let Some(_delivering) = DeliveringMark::enter(self as *const Self as usize) else {
            return;
        };
        BusyKey {
            dispatch: self,
            shard: LAST_SHARD.get() % self.shards.len(),
            key: None,
            batch: VecDeque::new(),
            only_this_key: false,
            pausable: false,
        }
        .run(pause, handle);
    }

    /// Whether `key` is paused.
    pub(crate) fn is_paused<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_of(key)
            .keys
            .get(key)
            .is_some_and(|queue| queue.paused.is_some())
    }

    /// Whether `key` has events waiting, being delivered or paused.
    pub(crate) fn has_events<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_of(key).keys.contains_key(key)
    }

    /// The paused keys, with when each was paused.
    pub(crate) fn paused_keys(&self) -> Vec<(K, Instant)> {
        (0..self.shards.len())
            .flat_map(|index| {
                self.lock(index)
                    .keys
                    .iter()
                    .filter_map(|(key, queue)| Some((key.clone(), queue.paused?)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// How many keys are paused.
    pub(crate) fn paused(&self) -> usize {
        self.paused.load(Ordering::Relaxed)
    }

    /// Lets a paused key's events be delivered again (by the next
    /// [`deliver`](Self::deliver) call); `for_good`, without pausing it
    /// again until its queue empties, also when it is not paused now
    /// (waiting, or being delivered by a caller that would pause it next).
    /// Returns whether it was paused.
    pub(crate) fn resume<Q>(&self, key: &Q, for_good: bool) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = self.shard_of(key);
        let mut state = self.lock(index);
        let State { keys, ready, .. } = &mut *state;
        let Some(key) = keys
            .get_key_value(key)
            .filter(|(_, queue)| queue.paused.is_some())
            .map(|(key, _)| key.clone())
        else {
            if for_good && let Some(queue) = keys.get_mut(key) {
                queue.unpausable = true;
            }
            return false;
        };
        let queue = keys.get_mut::<K>(&key).expect("just found");
        queue.paused = None;
        queue.unpausable = for_good;
        self.paused.fetch_sub(1, Ordering::Relaxed);
        ready.push_back(key);
        self.publish(index, ready);
        LAST_SHARD.set(index);
        true
    }

    /// Takes the oldest ready key of a shard for delivery elsewhere (on a
    /// thread of a pool, say): the key is busy, so its events wait for
    /// [`deliver_taken`](Self::deliver_taken) with it.
    pub(crate) fn take_ready(&self) -> Option<K> {
        let start = LAST_SHARD.get();
        let (index, mut state, key) = self.next_ready(start)?;
        state
            .keys
            .get_mut(&key)
            .expect("a ready key has a queue (see State::ready)")
            .busy = true;
        drop(state);
        LAST_SHARD.set(index);
        Some(key)
    }

    /// Hands the events of `key` (from [`take_ready`](Self::take_ready)) to
    /// `handle`, in order, including those queued meanwhile, then releases
    /// the key.
    pub(crate) fn deliver_taken(&self, key: K, handle: impl FnMut(E)) {
        BusyKey {
            dispatch: self,
            shard: self.shard_of(&key),
            key: Some(key),
            batch: VecDeque::new(),
            only_this_key: true,
            pausable: false,
        }
        .run(|_| false, handle);
    }

    /// The shard that holds `key`.
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        match self.shards.len() {
            1 => 0,
            n => (self.hasher.hash_one(key) % n as u64) as usize,
        }
    }

    fn lock(&self, index: usize) -> Guard<'_, K, E> {
        self.shards[index]
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_of<Q: Hash + ?Sized>(&self, key: &Q) -> Guard<'_, K, E> {
        self.lock(self.shard_of(key))
    }

    /// Pops the oldest ready key of the first shard from `start` on that
    /// has one; returns it with its shard, still locked.
    fn next_ready(&self, start: usize) -> Option<(usize, Guard<'_, K, E>, K)> {
        let n = self.shards.len();
        for offset in 0..n {
            if self.is_idle() {
                return None;
            }
            let index = (start + offset) % n;
            if self.shards[index].ready_len.load(Ordering::Acquire) == 0 {
                continue;
            }
            let mut state = self.lock(index);
            if let Some(key) = state.ready.pop_front() {
                self.publish(index, &state.ready);
                return Some((index, state, key));
            }
        }
        None
    }

    /// Whether no key has events waiting, being delivered or paused.
    #[cfg(test)]
    fn holds_no_key(&self) -> bool {
        (0..self.shards.len()).all(|index| self.lock(index).keys.is_empty())
    }

    /// Counts out `n` events a deliverer took (under the lock).
    fn took(&self, n: usize) {
        self.waiting.fetch_sub(n, Ordering::Relaxed);
    }

    /// Records the length of shard `index`'s `ready` (called under its
    /// lock after changing it), and whether the shard has ready keys.
    fn publish(&self, index: usize, ready: &VecDeque<K>) {
        let ready_len = &self.shards[index].ready_len;
        let was_empty = ready_len.load(Ordering::Relaxed) == 0;
        ready_len.store(ready.len(), Ordering::Release);
        match (was_empty, ready.is_empty()) {
            (true, false) => {
                self.ready_shards.fetch_add(1, Ordering::Release);
            }
            (false, true) => {
                self.ready_shards.fetch_sub(1, Ordering::Release);
            }
            _ => {}
        }
    }
}

/// A key being delivered and its current batch. If a handler panics,
/// dropping it hands the key back: the rest of the batch goes back in front
/// of the key's queue, ready for the next caller.
struct BusyKey<'a, K: Hash + Eq + Clone, E> {
    dispatch: &'a OrderedDispatch<K, E>,
    /// The shard of `key`, or where to look for the next key.
    shard: usize,
    key: Option<K>,
    batch: VecDeque<E>,
    /// Stop when this key is done rather than take the next ready one.
    only_this_key: bool,
    /// The key may be paused (see `KeyQueue::unpausable`; set with each
    /// batch).
    pausable: bool,
}

impl<K: Hash + Eq + Clone, E> BusyKey<'_, K, E> {
    /// Hands batch after batch to `handle` until there is nothing more;
    /// an event `pause` picks pauses its key instead.
    fn run(mut self, mut pause: impl FnMut(&E) -> bool, mut handle: impl FnMut(E)) {
        while self.next_batch() {
            while let Some(event) = self.batch.pop_front() {
                if self.pausable && pause(&event) {
                    self.batch.push_front(event);
                    if !self.pause() {
                        // Resumed for good meanwhile: handled after all.
                        continue;
                    }
                    if self.only_this_key {
                        return;
                    }
                    break;
                }
                handle(event);
            }
        }
    }

    /// Hands the key back paused, its batch first in its queue; or, if it
    /// was [resumed for good](OrderedDispatch::resume) since its batch was
    /// taken (its session closed, say), keeps it and returns false.
    fn pause(&mut self) -> bool {
        let Some(key) = self.key.take() else {
            return true;
        };
        let mut state = self.dispatch.lock(self.shard);
        let queue = state
            .keys
            .get_mut(&key)
            .expect("a busy key has a queue (see State::keys)");
        if queue.unpausable {
            self.pausable = false;
            self.key = Some(key);
            return false;
        }
        hand_back(self.dispatch, &mut self.batch, queue);
        queue.busy = false;
        queue.paused = Some(Instant::now());
        self.dispatch.paused.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Fills the (empty) batch with the key's newly queued events or, when
    /// there are none, releases the key and takes the next ready one
    /// (unless `only_this_key`): from the key's shard first, then from the
    /// others. Returns false when there is nothing more.
    fn next_batch(&mut self) -> bool {
        let dispatch = self.dispatch;
        if let Some(key) = &self.key {
            let mut state = dispatch.lock(self.shard);
            let State { keys, ready, spare } = &mut *state;
            match keys.get_mut(key) {
                Some(queue) if !queue.events.is_empty() => {
                    std::mem::swap(&mut self.batch, &mut queue.events);
                    dispatch.took(self.batch.len());
                    self.pausable = !queue.unpausable;
                    return true;
                }
                _ => {
                    if let Some(queue) = keys.remove(key) {
                        keep_spare(spare, queue.events);
                    }
                    self.key = None;
                }
            }
            if self.only_this_key {
                return false;
            }
            if let Some(key) = ready.pop_front() {
                dispatch.publish(self.shard, ready);
                self.start(&mut state, key);
                return true;
            }
            // The emptied batch is the next key's queue, not garbage.
            keep_spare(spare, std::mem::take(&mut self.batch));
        }
        let Some((index, mut state, key)) = dispatch.next_ready(self.shard) else {
            return false;
        };
        self.shard = index;
        self.start(&mut state, key);
        true
    }

    /// Makes `key` (just taken off its shard's ready list, that shard
    /// locked as `state`) this deliverer's, with its events as the batch.
    fn start(&mut self, state: &mut State<K, E>, key: K) {
        let queue = state
            .keys
            .get_mut(&key)
            .expect("a ready key has a queue (see State::ready)");
        queue.busy = true;
        std::mem::swap(&mut self.batch, &mut queue.events);
        self.dispatch.took(self.batch.len());
        self.pausable = !queue.unpausable;
        self.key = Some(key);
    }
}

impl<K: Hash + Eq + Clone, E> Drop for BusyKey<'_, K, E> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut state = self.dispatch.lock(self.shard);
        let State { keys, ready, .. } = &mut *state;
        let Some(queue) = keys.get_mut(&key) else {
            return;
        };
        hand_back(self.dispatch, &mut self.batch, queue);
        if queue.events.is_empty() {
            keys.remove(&key);
        } else {
            queue.busy = false;
            ready.push_back(key);
            self.dispatch.publish(self.shard, ready);
        }
    }
}

/// Puts a deliverer's untaken `batch` back in front of its key's queue,
/// counted as waiting again.
fn hand_back<K, E>(
    dispatch: &OrderedDispatch<K, E>,
    batch: &mut VecDeque<E>,
    queue: &mut KeyQueue<E>,
) {
    dispatch.waiting.fetch_add(batch.len(), Ordering::Relaxed);
    while let Some(event) = batch.pop_back() {
        queue.events.push_front(event);
    }
}

/// Keeps an emptied queue for reuse, if it holds an allocation and fewer
/// than [`SPARE_QUEUES`] are kept.
fn keep_spare<E>(spare: &mut Vec<VecDeque<E>>, queue: VecDeque<E>) {
    if queue.capacity() > 0 && spare.len() < SPARE_QUEUES {
        spare.push(queue);
    }
}

/// This thread delivering from one dispatcher, until dropped.
struct DeliveringMark(usize);

impl DeliveringMark {
    fn enter(dispatch: usize) -> Option<Self> {
        DELIVERING.with(|delivering| {
            let mut delivering = delivering.borrow_mut();
            if delivering.contains(&dispatch) {
                return None;
            }
            delivering.push(dispatch);
            Some(DeliveringMark(dispatch))
        })
    }
}

impl Drop for DeliveringMark {
    fn drop(&mut self) {
        DELIVERING.with(|delivering| {
            let mut delivering = delivering.borrow_mut();
            if let Some(at) = delivering.iter().rposition(|&d| d == self.0) {
                delivering.remove(at);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, mpsc};
    use std::time::Duration;

    #[test]
    fn events_of_one_key_arrive_in_order_across_batches() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1), ("b", 10), ("a", 2)]);
        let mut seen = Vec::new();
        dispatch.deliver(|event| {
            if event == 1 {
                // Queued while "a" is being delivered: the same caller
                // picks it up after the batch, before moving on to "b".
                dispatch.push_all([("a", 3)]);
            }
            seen.push(event);
        });
        assert_eq!(seen, [1, 2, 3, 10]);
        assert!(dispatch.is_idle());
        assert!(dispatch.holds_no_key());
    }

    #[test]
    fn a_key_past_its_limit_is_reported_once_per_crossing() {
        let dispatch = OrderedDispatch::new();
        let pushed = dispatch.push_all_bounded([("a", 1), ("a", 2), ("b", 1), ("a", 3)], 2);
        assert_eq!(pushed, ["a"]);
        assert!(
            dispatch.push_all_bounded([("a", 4)], 2).is_empty(),
            "reported again"
        );
        let mut seen = Vec::new();
        dispatch.deliver(|n| seen.push(n));
        assert_eq!(seen.len(), 5, "nothing is dropped");
        // Drained: a new crossing is reported again.
        assert_eq!(
            dispatch.push_all_bounded([("a", 5), ("a", 6), ("a", 7)], 2),
            ["a"]
        );
    }

    #[test]
    fn a_nested_delivery_waits_for_the_outer_one() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1)]);
        let mut seen = Vec::new();
        dispatch.deliver(|event| {
            seen.push(event);
            if event == 1 {
                dispatch.push_all([("b", 2)]);
                let mut nested = 0;
                dispatch.deliver(|_| nested += 1);
                assert_eq!(nested, 0, "a handler is never re-entered");
            }
        });
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn a_busy_key_does_not_hold_back_other_keys() {
        let dispatch = Arc::new(OrderedDispatch::new());
        let (entered, wait_entered) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        dispatch.push_all([("slow", 0)]);
        let slow = {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                dispatch.deliver(|event| {
                    if event == 0 {
                        entered.send(()).unwrap();
                        wait_release.recv_timeout(Duration::from_secs(10)).unwrap();
                    }
                    seen.push(event);
                });
                seen
            })
        };
        wait_entered.recv_timeout(Duration::from_secs(10)).unwrap();
        // "slow" is busy in its handler; its next event waits for that
        // caller, while "fast" is delivered here and now.
        dispatch.push_all([("fast", 1), ("slow", 2)]);
        let mut seen = Vec::new();
        dispatch.deliver(|event| seen.push(event));
        assert_eq!(seen, [1]);
        release.send(()).unwrap();
        assert_eq!(slow.join().unwrap(), [0, 2], "the slow key's caller took 2");
        assert!(dispatch.holds_no_key());
    }

    #[test]
    fn concurrent_callers_lose_nothing_and_keep_each_keys_order() {
        for shards in [1, 3, 8] {
            concurrent_callers_on(shards);
        }
    }

    fn concurrent_callers_on(shards: usize) {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 2_000;
        let dispatch = Arc::new(OrderedDispatch::with_shards(shards));
        let last = Arc::new(Mutex::new(IdMap::<usize, usize>::default()));
        let delivered = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (dispatch, last, delivered, start) = (
                    dispatch.clone(),
                    last.clone(),
                    delivered.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    for n in 0..PER_THREAD {
                        // Keys are shared between threads; a key's events
                        // are numbered per thread, which keys them apart.
                        let key = n % 8;
                        dispatch.push_all([(key, (thread, n))]);
                        dispatch.deliver(|(thread, n)| {
                            let mut last = last.lock().unwrap();
                            let slot = last.entry(key_of(thread, n)).or_insert(0);
                            assert!(n + 1 > *slot, "{thread}/{n} after {}", *slot - 1);
                            *slot = n + 1;
                            delivered.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                })
            })
            .collect();
        fn key_of(thread: usize, n: usize) -> usize {
            thread * 8 + n % 8
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(delivered.load(Ordering::Relaxed), THREADS * PER_THREAD);
        assert!(dispatch.holds_no_key());
        assert!(dispatch.is_idle());
        assert_eq!(dispatch.waiting(), 0);
    }

    /// Keys that land in different shards of `dispatch`, in order.
    fn keys_in_distinct_shards(dispatch: &OrderedDispatch<String, i32>, n: usize) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for candidate in (0..1000).map(|i| format!("key{i}")) {
            if keys
                .iter()
                .all(|key| dispatch.shard_of(key) != dispatch.shard_of(&candidate))
            {
                keys.push(candidate);
            }
            if keys.len() == n {
                return keys;
            }
        }
        panic!("no {n} keys in distinct shards");
    }

    #[test]
    fn events_queued_in_another_shard_during_a_delivery_are_delivered_by_it() {
        let dispatch = OrderedDispatch::with_shards(4);
        let keys = keys_in_distinct_shards(&dispatch, 3);
        dispatch.push_all([(keys[0].clone(), 1)]);
        let mut seen = Vec::new();
        dispatch.deliver(|event| {
            seen.push(event);
            if event == 1 {
                // Pushed from inside the handler, into other shards: not
                // delivered here (no re-entry), but by the outer loop.
                dispatch.push_all([(keys[1].clone(), 2), (keys[2].clone(), 3)]);
                let mut nested = 0;
                dispatch.deliver(|_| nested += 1);
                assert_eq!(nested, 0, "a handler is never re-entered");
            }
        });
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3]);
        assert!(dispatch.is_idle() && dispatch.holds_no_key());
        assert_eq!(dispatch.waiting(), 0);
    }

    #[test]
    fn sharded_pause_resume_and_take_find_their_key() {
        let dispatch = OrderedDispatch::with_shards(4);
        let keys = keys_in_distinct_shards(&dispatch, 2);
        let (a, b) = (keys[0].clone(), keys[1].clone());
        dispatch.push_all([(a.clone(), 1), (b.clone(), 10), (a.clone(), 2)]);
        let mut seen = Vec::new();
        dispatch.deliver_pausable(|&event| event == 1, |event| seen.push(event));
        assert_eq!(seen, [10], "a paused at its first event, b delivered");
        assert!(dispatch.is_paused(&a) && !dispatch.is_paused(&b));
        assert_eq!(dispatch.queued(&a), 2);
        assert_eq!(dispatch.paused_keys().len(), 1);
        assert!(dispatch.is_idle(), "a paused key is not ready");
        assert!(dispatch.resume(&a, false));
        assert!(!dispatch.is_idle());
        assert_eq!(dispatch.take_ready(), Some(a.clone()));
        dispatch.deliver_taken(a, |event| seen.push(event));
        assert_eq!(seen, [10, 1, 2]);
        assert!(dispatch.holds_no_key());
        assert_eq!(dispatch.waiting(), 0);
    }

    #[test]
    fn a_taken_key_is_delivered_by_its_taker_alone() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1), ("b", 10), ("a", 2)]);
        assert_eq!(dispatch.take_ready(), Some("a"));
        // "a" is busy until its taker runs: others deliver only "b".
        dispatch.push_all([("a", 3)]);
        let mut seen = Vec::new();
        dispatch.deliver(|event| seen.push(event));
        assert_eq!(seen, [10]);
        let mut taken = Vec::new();
        dispatch.deliver_taken("a", |event| {
            if event == 1 {
                dispatch.push_all([("a", 4), ("c", 20)]);
            }
            taken.push(event);
        });
        assert_eq!(taken, [1, 2, 3, 4], "the taker stops at its own key");
        assert_eq!(dispatch.take_ready(), Some("c"));
        dispatch.deliver_taken("c", drop);
        assert!(dispatch.holds_no_key());
    }

    #[test]
    fn a_panicking_handler_hands_its_key_back() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1), ("a", 2)]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            dispatch.deliver(|event| {
                if event == 1 {
                    dispatch.push_all([("a", 3)]);
                    panic!("handler failed");
                }
            })
        }));
        assert!(result.is_err());
        let mut seen = Vec::new();
        dispatch.deliver(|event| seen.push(event));
        assert_eq!(seen, [2, 3], "the rest of the failed batch, then the rest");
    }

    #[test]
    fn a_paused_key_waits_for_resume_and_others_go_on() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1), ("b", 10), ("a", 2), ("a", 3)]);
        let mut seen = Vec::new();
        dispatch.deliver_pausable(|&event| event == 2, |event| seen.push(event));
        assert_eq!(seen, [1, 10], "a paused at 2, b delivered");
        assert!(dispatch.is_paused("a"));
        assert_eq!(dispatch.paused(), 1);
        let paused: Vec<_> = dispatch
            .paused_keys()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(paused, ["a"]);
        assert!(dispatch.has_events("a") && !dispatch.has_events("b"));
        assert_eq!(dispatch.queued("a"), 2);
        assert_eq!(dispatch.waiting(), 2);
        dispatch.push_all([("a", 4), ("b", 11)]);
        dispatch.deliver(|event| seen.push(event));
        assert_eq!(seen, [1, 10, 11], "a still paused");
        assert!(dispatch.resume("a", false));
        assert!(!dispatch.resume("a", false), "resumed once");
        assert_eq!(dispatch.paused(), 0);
        dispatch.deliver(|event| seen.push(event));
        assert_eq!(seen, [1, 10, 11, 2, 3, 4], "in order after the resume");
        assert_eq!(dispatch.waiting(), 0);

        // Resumed for good: not paused again until its queue empties.
        dispatch.push_all([("a", 5), ("a", 6)]);
        dispatch.deliver_pausable(|_| true, |event| seen.push(event));
        assert!(dispatch.resume("a", true));
        dispatch.push_all([("a", 7)]);
        dispatch.deliver_pausable(|_| true, |event| seen.push(event));
        assert_eq!(seen[6..], [5, 6, 7]);
        dispatch.push_all([("a", 8)]);
        dispatch.deliver_pausable(|_| true, |event| seen.push(event));
        assert!(dispatch.is_paused("a"), "emptied, then pausable again");
    }

    #[test]
    fn waiting_counts_what_no_deliverer_took_yet() {
        let dispatch = OrderedDispatch::new();
        dispatch.push_all([("a", 1), ("b", 10), ("a", 2)]);
        assert_eq!(dispatch.waiting(), 3);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            dispatch.deliver(|_event| {
                // `a`'s batch taken, `b` still waiting.
                assert_eq!(dispatch.waiting(), 1);
                dispatch.push_all([("a", 3)]);
                assert_eq!(dispatch.waiting(), 2);
                panic!("handler failed");
            })
        }));
        assert!(result.is_err());
        assert_eq!(dispatch.waiting(), 3, "event 2 handed back, with 3 and 10");
        dispatch.deliver(|_| {});
        assert_eq!(dispatch.waiting(), 0);
    }
}

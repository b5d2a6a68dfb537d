//! The threads the Socket.IO handlers run on (python-socketio's threading
//! mode): a socket's events are delivered by a pool thread, not by the
//! connection thread that read them, so a handler may block (sleep, wait
//! for an ack of its own socket) while its connection goes on reading.
//!
//! Threads are made when every one is busy and leave after
//! [`IDLE_TIMEOUT`] without work, so the pool holds about as many threads
//! as there are sockets with a handler running, as a thread per event
//! would, without a thread start per event. It has no cap of its own (a
//! handler waiting for another socket's handler must not wait for a free
//! thread): the servers' connection limit (`max_connections`) bounds the
//! sockets, and so the pool.
//!
//! When no thread can be started (the system has none to give), a job
//! from a handler thread waits for the first handler thread that is done
//! with its job, that one included: it never runs inside the handler that
//! made it due (which may hold a lock its handler takes too), as the
//! dispatcher promises. A job from any other thread (a connection's, a
//! timer's) runs in place, as it would on an async runtime.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchboard_async::socketio::HandlerRunner;

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle thread waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

static POOL: Pool = Pool {
    state: Mutex::new(PoolState {
        idle: Vec::new(),
        waiting: VecDeque::new(),
    }),
    next_worker: AtomicU64::new(0),
};

thread_local! {
    /// This thread is one of the pool's.
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

/// The process's handler pool as a [`HandlerRunner`].
pub(crate) fn handler_runner() -> HandlerRunner {
    Arc::new(|job| POOL.run(job))
}

struct Pool {
    state: Mutex<PoolState>,
    next_worker: AtomicU64,
}

struct PoolState {
    /// Idle threads (by number), each waiting on its own channel.
    idle: Vec<(u64, mpsc::Sender<Job>)>,
    /// Jobs no thread could be started for, given by handler threads:
    /// each taken by the next thread done with its job, before it goes
    /// idle (so there are none while a thread is idle). At most one a
    /// socket lane, as a lane has at most one job given out at a time.
    waiting: VecDeque<Job>,
}

impl Pool {
    fn run(&'static self, job: Job) {
        let job = match self.give_idle(job) {
            Ok(()) => return,
            Err(job) => job,
        };
        let number = self.next_worker.fetch_add(1, Ordering::Relaxed);
        // Kept here too, so that the job survives a failed thread start.
        let first = Arc::new(Mutex::new(Some(job)));
        let theirs = first.clone();
        let start = move || {
            if let Some(job) = take(&theirs) {
                self.work(number, job);
            }
        };
        let started = if starved() {
            Err(std::io::Error::other("no threads, as a test"))
        } else {
            std::thread::Builder::new()
                .name("switchboard-handler".into())
                .spawn(start)
        };
        if let Err(error) = started {
            let Some(job) = take(&first) else {
                return;
            };
            if IN_POOL.get() {
                // Not inside the handler running here: after it, here or
                // on whichever thread is done first.
                tracing::warn!(%error, "no handler thread; the handler waits for one");
                let mut state = self.state();
                let job = match (!starved()).then(|| state.idle.pop()).flatten() {
                    Some((_, worker)) => match worker.send(job) {
                        Ok(()) => return,
                        Err(mpsc::SendError(job)) => job,
                    },
                    None => job,
                };
                state.waiting.push_back(job);
            } else {
                // The job delivers a socket's events: it must run somewhere.
                tracing::warn!(%error, "no handler thread; running the handler in place");
                job();
            }
        }
    }

    /// Hands `job` to an idle thread, if there is one.
    fn give_idle(&self, job: Job) -> Result<(), Job> {
        let idle = if starved() {
            None
        } else {
            self.state().idle.pop()
        };
        match idle {
            Some((_, worker)) => worker.send(job).map_err(|mpsc::SendError(job)| job),
            None => Err(job),
        }
    }

    /// Runs `job`, then the jobs waiting for a thread, then whatever is
    /// sent to this thread while it is idle, until it has been idle for
    /// [`IDLE_TIMEOUT`].
    fn work(&self, number: u64, mut job: Job) {
        IN_POOL.set(true);
        let (tx, rx) = mpsc::channel::<Job>();
        loop {
            job();
            let mut state = self.state();
            if let Some(next) = state.waiting.pop_front() {
                job = next;
                continue;
            }
            state.idle.push((number, tx.clone()));
            drop(state);
            job = match rx.recv_timeout(IDLE_TIMEOUT) {
                Ok(job) => job,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let mut state = self.state();
                    if let Some(at) = state.idle.iter().position(|(n, _)| *n == number) {
                        state.idle.remove(at);
                        return;
                    }
                    drop(state);
                    // Taken from the idle list meanwhile: its job is coming.
                    match rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            };
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
thread_local! {
    /// Jobs given to the pool from this thread find no idle thread and
    /// cannot start one, as when the system has no threads to give.
    static STARVED: Cell<bool> = const { Cell::new(false) };
}

#[cfg(test)]
fn starved() -> bool {
    STARVED.get()
}

#[cfg(not(test))]
fn starved() -> bool {
    false
}

fn take(slot: &Mutex<Option<Job>>) -> Option<Job> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

#[cfg(test)]
mod tests {
    //! The Socket.IO server on the threads runtime, its handlers on this
    //! pool: handlers that block on acks, disconnect sockets, call into the
    //! server, all at once, and (with no thread to start) never one inside
    //! another.

    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use super::*;
    use crate::socketio::client::{ClientBuilder, Transport};
    use crate::socketio::{SocketIo, SocketIoConfig};
    use crate::testing::{HANG, TRANSPORTS, bounded, connect, connect_with, recv, serve};

    #[test]
    fn handlers_disconnect_sockets_and_call_into_the_server() {
        for transport in TRANSPORTS {
            let io = SocketIo::new(SocketIoConfig::default());
            let (left_tx, left) = mpsc::channel::<String>();
            let left_tx = Arc::new(Mutex::new(left_tx));
            io.ns("/", move |socket| {
                let _ = socket.join("all");
                let left_tx = left_tx.clone();
                socket.on_disconnect(move |socket, _reason| {
                    // Calls into the server from the disconnect handler.
                    let _ = socket.io().to("all").emit("gone", &socket.id().to_string());
                    let _ = left_tx.lock().unwrap().send(socket.id().to_string());
                });
                socket.on("kick", |socket, mut event| {
                    let others: Vec<_> = socket
                        .io()
                        .sockets("/")
                        .into_iter()
                        .filter(|other| other.id() != socket.id())
                        .collect();
                    for other in &others {
                        other.disconnect();
                    }
                    let _ = socket.join("kickers");
                    let count = socket.io().socket_count();
                    let room = socket.room_size("kickers");
                    if let Some(ack) = event.take_ack() {
                        let _ = ack.send(&(count, room));
                    }
                });
                socket.on("quit", |socket, _| {
                    socket.disconnect();
                    let _ = socket.emit("after", &());
                    let _ = socket.join("late");
                });
            });
            let url = serve(&io);
            let (a, b) = (connect(&url, transport), connect(&url, transport));
            let b_id = b.id().expect("an id");
            let answer = bounded("kick", move || {
                a.emit_with_ack("kick", &(), HANG)
                    .expect("emit")
                    .wait()
                    .map(|x| (x, a))
            });
            let (answer, a) = answer.expect("answered");
            let (count, room): (usize, usize) = answer.args().expect("two numbers");
            assert_eq!((count, room), (1, 1), "{transport:?}");
            assert_eq!(recv(&left, "b's disconnect"), b_id);
            a.emit("quit", &()).expect("emit");
            recv(&left, "a's disconnect");
            let deadline = Instant::now() + HANG;
            while io.socket_count() > 0 {
                assert!(Instant::now() < deadline, "sockets left: {transport:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn a_handler_waits_for_a_broadcasts_acks_including_its_own() {
        for transport in TRANSPORTS {
            let io = SocketIo::new(SocketIoConfig::default());
            io.ns("/", |socket| {
                let _ = socket.join("room");
                socket.on("poll", |socket, mut event| {
                    let answers = socket
                        .io()
                        .to("room")
                        .emit_with_ack("vote", &(), HANG)
                        .expect("emit")
                        .wait();
                    let ok = answers.into_iter().filter(|(_, a)| a.is_ok()).count();
                    if let Some(ack) = event.take_ack() {
                        let _ = ack.send(&ok);
                    }
                });
            });
            let url = serve(&io);
            let voter = || {
                ClientBuilder::new(&url).on("vote", |_, mut event| {
                    if let Some(ack) = event.take_ack() {
                        let _ = ack.send(&true);
                    }
                })
            };
            let a = connect_with(voter(), transport);
            let _b = connect_with(voter(), transport);
            let answer = bounded("the broadcast's acks", move || {
                a.emit_with_ack("poll", &(), HANG).expect("emit").wait()
            });
            let ok: usize = answer.expect("answered").arg(0).expect("a number");
            assert_eq!(ok, 2, "{transport:?}");
        }
    }

    #[test]
    fn many_sockets_block_in_handlers_at_once() {
        const SOCKETS: usize = 20;
        let io = SocketIo::new(SocketIoConfig::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let ins = inside.clone();
        io.ns("/", move |socket| {
            let inside = ins.clone();
            socket.on("wait", move |socket, mut event| {
                inside.fetch_add(1, Ordering::SeqCst);
                // Waits until every socket's handler runs at once.
                let deadline = Instant::now() + HANG;
                while inside.load(Ordering::SeqCst) < SOCKETS && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let answer = socket.emit_with_ack("q", &(), HANG).expect("emit").wait();
                if let Some(ack) = event.take_ack() {
                    let _ = ack.send(&answer.is_ok());
                }
            });
        });
        let url = serve(&io);
        let sockets: Vec<_> = (0..SOCKETS)
            .map(|i| {
                connect_with(
                    ClientBuilder::new(&url).on("q", |_, mut event| {
                        if let Some(ack) = event.take_ack() {
                            let _ = ack.send(&());
                        }
                    }),
                    TRANSPORTS[i % 2],
                )
            })
            .collect();
        let (done_tx, done) = mpsc::channel();
        for socket in &sockets {
            let done_tx = done_tx.clone();
            socket
                .emit_with_ack_callback("wait", &(), HANG, move |answer| {
                    let _ = done_tx.send(answer.map(|a| a.arg::<bool>(0).unwrap_or(false)));
                })
                .expect("emit");
        }
        for _ in 0..SOCKETS {
            assert_eq!(recv(&done, "a handler"), Ok(true));
        }
    }

    /// A handler that makes another socket's handler due (it disconnects
    /// it) while the pool can start no thread: the other handler does not
    /// run inside this one, on its thread (where a lock the first holds
    /// would deadlock it), but after it.
    #[test]
    fn a_handler_is_never_run_inside_another_on_its_thread() {
        thread_local! {
            static IN_KICK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        let io = SocketIo::new(SocketIoConfig::default());
        let (left_tx, left) = mpsc::channel::<bool>();
        let left_tx = Arc::new(Mutex::new(left_tx));
        io.ns("/", move |socket| {
            let left_tx = left_tx.clone();
            socket.on_disconnect(move |_, _| {
                let _ = left_tx.lock().unwrap().send(IN_KICK.get());
            });
            socket.on("kick", |socket, mut event| {
                IN_KICK.set(true);
                STARVED.set(true);
                for other in socket.io().sockets("/") {
                    if other.id() != socket.id() {
                        other.disconnect();
                    }
                }
                STARVED.set(false);
                IN_KICK.set(false);
                if let Some(ack) = event.take_ack() {
                    let _ = ack.send(&());
                }
            });
        });
        let url = serve(&io);
        let (a, _b) = (
            connect(&url, Transport::WebSocket),
            connect(&url, Transport::WebSocket),
        );
        bounded("kick", move || {
            a.emit_with_ack("kick", &(), HANG).expect("emit").wait()
        })
        .expect("answered");
        assert!(
            !recv(&left, "the other's disconnect"),
            "run inside the kick handler"
        );
    }
}

//! How many connections a server keeps open at once.
//!
//! An accept loop takes a slot with [`ConnectionCount::try_open`] before it
//! accepts, and gives it back with [`ConnectionCount::close`] when the
//! connection ends. At the limit the adapter stops accepting and waits for a
//! close: further clients wait in the listener's backlog, held by the
//! kernel, and are served in order as slots free up (as Tomcat's
//! `maxConnections` does), instead of being accepted only to be refused. A
//! thread-per-connection server thus never starts more threads than the
//! limit, and an async one never holds more tasks and buffers.
//!
//! Reaching the limit is logged (a warning, at most once every
//! [`WARNING_INTERVAL`]), since clients then wait unseen.
//!
//! ```
//! use std::time::Instant;
//! use switchboard_core::connections::ConnectionCount;
//!
//! let mut count = ConnectionCount::new(2);
//! let now = Instant::now();
//! assert!(count.try_open(now));
//! assert!(count.try_open(now));
//! assert!(!count.try_open(now)); // full: the accept loop waits
//! count.close();
//! assert!(count.try_open(now));
//! assert_eq!(count.open(), 2);
//! ```

use std::time::{Duration, Instant};

/// The default limit on a server's open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// At most one warning about the limit per this interval.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Lets a repeated warning through at most once every
/// [`WARNING_INTERVAL`] (a limit that stays reached would otherwise log at
/// every refusal).
#[derive(Debug, Clone, Default)]
pub(crate) struct WarningThrottle {
    last: Option<Instant>,
}

impl WarningThrottle {
    /// Whether to warn now; if so, the next warning waits an interval.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|at| now.saturating_duration_since(at) >= WARNING_INTERVAL);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// Whether a failed accept was about one queued connection (reset or
/// aborted by its client before it was taken, which BSD, macOS and Windows
/// report) rather than the listener or the process (out of file
/// descriptors, of memory). The error took that connection off the queue,
/// so an accept loop accepts again at once, as hyper's does: pausing would
/// let any client that resets its connections hold every other one back.
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use switchboard_core::connections::is_lost_connection;
///
/// assert!(is_lost_connection(&Error::from(ErrorKind::ConnectionReset)));
/// assert!(!is_lost_connection(&Error::from_raw_os_error(24))); // EMFILE: pause
/// ```
pub fn is_lost_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

/// Whether `error` says the peer closed or reset the connection (an end of
/// stream, a reset, an abort, a broken pipe). A client that sent a request
/// on a pooled connection and got nothing of an answer sends it again on
/// another, as browsers do: the server closed the idle connection as the
/// request came.
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use switchboard_core::connections::is_closed_by_peer;
///
/// assert!(is_closed_by_peer(&Error::from(ErrorKind::ConnectionReset)));
/// assert!(!is_closed_by_peer(&Error::from(ErrorKind::TimedOut)));
/// ```
pub fn is_closed_by_peer(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// Failed accepts (a process out of file descriptors, say), logged at most
/// once every [`WARNING_INTERVAL`] with how many failed since the last
/// warning: an accept loop retries every few milliseconds and would
/// otherwise fill the log while the condition lasts.
///
/// ```
/// use std::time::Instant;
/// use switchboard_core::connections::AcceptErrors;
///
/// let mut errors = AcceptErrors::default();
/// let error = std::io::Error::from_raw_os_error(24); // EMFILE
/// let now = Instant::now();
/// assert!(errors.failed(&error, now)); // warned
/// assert!(!errors.failed(&error, now)); // counted for the next warning
/// assert_eq!(errors.unreported(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct AcceptErrors {
    throttle: WarningThrottle,
    unreported: u64,
}

impl AcceptErrors {
    /// Records a failed accept; returns whether it was logged as a warning
    /// (the others are logged at debug level and counted).
    pub fn failed(&mut self, error: &std::io::Error, now: Instant) -> bool {
        if self.throttle.due(now) {
            tracing::warn!(
                %error,
                failed_since_last_warning = self.unreported,
                "accept failed; retrying"
            );
            self.unreported = 0;
            true
        } else {
            tracing::debug!(%error, "accept failed; retrying");
            self.unreported += 1;
            false
        }
    }

    /// The failures since the last warning.
    pub fn unreported(&self) -> u64 {
        self.unreported
    }
}

/// A server's open connections, counted against its limit.
#[derive(Debug, Clone)]
pub struct ConnectionCount {
    open: usize,
    max: usize,
    limit_warning: WarningThrottle,
}

impl ConnectionCount {
    /// A count that allows `max` open connections (at least one).
    pub fn new(max: usize) -> Self {
        ConnectionCount {
            open: 0,
            max: max.max(1),
            limit_warning: WarningThrottle::default(),
        }
    }

    /// Takes a slot for a connection about to be accepted, if one is free.
    /// `false` means the limit is reached: accept nothing until
    /// [`close`](Self::close) is called.
    pub fn try_open(&mut self, now: Instant) -> bool {
        if self.open < self.max {
            self.open += 1;
            return true;
        }
        if self.limit_warning.due(now) {
            tracing::warn!(
                max_connections = self.max,
                "connection limit reached: new connections wait in the listen backlog until one closes"
            );
        }
        false
    }

    /// Gives back the slot of a connection that ended (or was never
    /// accepted).
    pub fn close(&mut self) {
        debug_assert!(self.open > 0, "closed more connections than opened");
        self.open = self.open.saturating_sub(1);
    }

    /// The connections open now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_warn_once_an_interval() {
        let mut errors = AcceptErrors::default();
        let error = std::io::Error::from_raw_os_error(24);
        let t0 = Instant::now();
        assert!(errors.failed(&error, t0));
        for step in 1..200 {
            assert!(!errors.failed(&error, t0 + Duration::from_millis(50 * step)));
        }
        assert_eq!(errors.unreported(), 199);
        assert!(errors.failed(&error, t0 + WARNING_INTERVAL));
        assert_eq!(errors.unreported(), 0);
    }

    #[test]
    fn a_zero_limit_still_admits_one_connection() {
        let mut count = ConnectionCount::new(0);
        assert_eq!(count.max(), 1);
        assert!(count.try_open(Instant::now()));
        assert!(!count.try_open(Instant::now()));
    }

    #[test]
    fn the_limit_warning_is_rate_limited() {
        let mut count = ConnectionCount::new(1);
        let start = Instant::now();
        assert!(count.try_open(start));
        assert!(!count.try_open(start));
        assert_eq!(count.limit_warning.last, Some(start));
        assert!(!count.try_open(start + WARNING_INTERVAL / 2));
        assert_eq!(
            count.limit_warning.last,
            Some(start),
            "warned again too soon"
        );
        let later = start + WARNING_INTERVAL;
        assert!(!count.try_open(later));
        assert_eq!(count.limit_warning.last, Some(later));
    }

    #[test]
    fn slots_come_back_in_any_order_of_closing() {
        let mut count = ConnectionCount::new(3);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(count.try_open(now));
        }
        assert!(!count.try_open(now));
        count.close();
        count.close();
        assert_eq!(count.open(), 1);
        assert!(count.try_open(now));
        assert!(count.try_open(now));
        assert!(!count.try_open(now));
    }
}

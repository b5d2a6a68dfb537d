//! Per-connection settings: size limits, keep-alive, close timing,
//! backpressure, compression.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::DeflateConfig;

/// Which end of the connection this is. Servers require masked frames and
/// send unmasked ones; clients the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The connecting side: masks what it sends.
    Client,
    /// The accepting side: closes the TCP connection first.
    Server,
}

/// Sends a ping every `interval`; fails the connection when no pong arrives
/// within `timeout` of a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Time between pings.
    pub interval: Duration,
    /// How long to wait for the pong.
    pub timeout: Duration,
}

/// Settings of one WebSocket connection. Every limit has a default.
///
/// ```
/// use switchboard_core::ws::Config;
/// let config = Config { max_message_size: 1 << 20, ..Config::default() };
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest accepted frame payload (default 4 MiB); larger fails with 1009.
    pub max_frame_size: usize,
    /// Largest accepted message, after inflating (default 4 MiB); larger
    /// fails with 1009.
    pub max_message_size: usize,
    /// Most fragments accepted in one message (default 4096); more fails with
    /// 1009.
    pub max_fragments: usize,
    /// Outgoing bytes buffered before senders are made to wait (default
    /// 128 KiB).
    pub write_buffer_limit: usize,
    /// Ping keep-alive (default off).
    pub keepalive: Option<KeepAlive>,
    /// How long to wait for the peer's close frame after sending one, and
    /// (client) for the server to close the TCP connection (default 5 s).
    /// Also how long a failed or closed connection waits for the peer to
    /// take what is left to write (its close frame, say) before it drops
    /// that and closes the transport.
    pub close_timeout: Duration,
    /// How long the opening handshake may take (default 10 s); a client's
    /// TCP connect counts too. `Duration::MAX` waits for good.
    pub handshake_timeout: Duration,
    /// Largest accepted HTTP head in the opening handshake (default 8 KiB);
    /// larger is answered with 431.
    pub max_head_size: usize,
    /// Most header lines accepted in the opening handshake (default 64).
    pub max_headers: usize,
    /// permessage-deflate: offered by a client, accepted by a server. Default
    /// on with [`DeflateConfig::default`].
    pub deflate: Option<DeflateConfig>,
    /// Sub-protocols: offered by a client in order, or supported by a server
    /// (the first one the client offers that the server supports is chosen).
    pub protocols: Vec<String>,
    /// Which `Origin` a server accepts (default any); refused with 403.
    pub origin: OriginPolicy,
    /// The most connections a WebSocket server's accept loop (the adapters'
    /// `ws::serve`) keeps open at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`](crate::connections::DEFAULT_MAX_CONNECTIONS),
    /// 10,000); further clients wait in the listen backlog until one
    /// closes. Servers with routes take theirs from
    /// [`ServerLimits`](crate::http::ServerLimits) instead.
    pub max_connections: usize,
}

/// A callback deciding on an `Origin` header value (`None` when absent).
pub type OriginCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// Which browser origins a server accepts in the opening handshake.
#[derive(Clone, Default)]
pub enum OriginPolicy {
    /// Any origin, or none.
    #[default]
    Any,
    /// Only requests whose `Origin` is one of these (compared
    /// case-insensitively); requests without an `Origin` (non-browser
    /// clients) are accepted.
    AllowList(Vec<String>),
    /// A callback deciding on the `Origin` header value (`None` when absent).
    Custom(OriginCheck),
}

impl OriginPolicy {
    /// Whether a request with this `Origin` header is allowed.
    ///
    /// ```
    /// use switchboard_core::ws::OriginPolicy;
    /// let policy = OriginPolicy::AllowList(vec!["https://example.com".into()]);
    /// assert!(policy.allows(Some("https://example.com")));
    /// assert!(!policy.allows(Some("https://evil.example")));
    /// assert!(policy.allows(None));
    /// ```
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::AllowList(list) => {
                origin.is_none_or(|o| list.iter().any(|a| a.eq_ignore_ascii_case(o)))
            }
            OriginPolicy::Custom(check) => check(origin),
        }
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginPolicy::Any => f.write_str("Any"),
            OriginPolicy::AllowList(list) => f.debug_tuple("AllowList").field(list).finish(),
            OriginPolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 4 << 20,
            max_message_size: 4 << 20,
            max_fragments: 4096,
            write_buffer_limit: 128 << 10,
            keepalive: None,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_head_size: 8 << 10,
            max_headers: 64,
            deflate: Some(DeflateConfig::default()),
            protocols: Vec::new(),
            origin: OriginPolicy::Any,
            max_connections: crate::connections::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

//! The opening handshake (RFC 6455 section 4), both roles, without IO.
//!
//! Server: [`accept`] checks an Upgrade request and builds the 101 response,
//! or a [`Rejection`] with the HTTP status to answer (400 malformed, 403
//! origin refused, 405 not GET, 426 wrong version, 431 head too large).
//! Client: [`ClientHandshake`] builds the request with a random key and checks
//! the server's response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use super::Config;
use super::deflate::{self, DeflateParams, NegotiationError};
use crate::http::{HttpError, Request, Response, encode_response};

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Decodes a `Sec-WebSocket-Key`: standard base64 with its padding, but
/// ignoring the bits of the last character beyond the decoded bytes (RFC
/// 4648 3.5 allows that), as Node's `ws` does: a client may fill its key
/// with random base64 characters rather than encode random bytes.
const KEY_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
///
/// ```
/// use switchboard_core::ws::handshake::accept_key;
/// // The example of RFC 6455 section 1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A refused opening handshake: the HTTP status and reason to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct Rejection {
    /// The HTTP status.
    pub status: u16,
    /// Why, sent as the plain-text body.
    pub reason: String,
    /// Extra response headers (e.g. `Sec-WebSocket-Version` with 426).
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// The full HTTP response to send before closing the connection.
    pub fn to_response(&self) -> Vec<u8> {
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        headers.push(("Content-Type", "text/plain; charset=utf-8"));
        headers.push(("Connection", "close"));
        encode_response(self.status, &headers, self.reason.as_bytes())
    }
}

impl From<HttpError> for Rejection {
    fn from(error: HttpError) -> Self {
        Rejection::new(error.status(), error.to_string())
    }
}

/// An accepted opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The sub-protocol chosen, if any.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters agreed, if any.
    pub deflate: Option<DeflateParams>,
    /// The `101 Switching Protocols` response to send.
    pub response: Vec<u8>,
}

/// Whether a request asks for a WebSocket upgrade at all (so a server can
/// route it to [`accept`] rather than answer it as plain HTTP).
pub fn is_upgrade_request(request: &Request) -> bool {
    request.headers.has_token("upgrade", "websocket")
}

/// Checks a server-side Upgrade request against RFC 6455 and `config`, and
/// builds the response.
///
/// ```
/// use switchboard_core::http::{Limits, Request};
/// use switchboard_core::ws::{handshake, Config};
/// let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let (request, _) = Request::parse(raw, &Limits::default()).unwrap().unwrap();
/// let accepted = handshake::accept(&request, &Config::default()).unwrap();
/// let response = String::from_utf8(accepted.response).unwrap();
/// assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// ```
pub fn accept(request: &Request, config: &Config) -> Result<Accepted, Rejection> {
    let headers = &request.headers;
    if request.method != "GET" {
        let mut rejection = Rejection::new(405, "the WebSocket handshake must be a GET request");
        rejection.headers.push(("Allow".into(), "GET".into()));
        return Err(rejection);
    }
    if request.version < 1 {
        return Err(Rejection::new(
            400,
            "the WebSocket handshake requires HTTP/1.1",
        ));
    }
    if !headers.has_token("upgrade", "websocket") {
        return Err(Rejection::new(400, "missing or invalid Upgrade header"));
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(Rejection::new(400, "missing or invalid Connection header"));
    }
    // RFC 6455 11.3.1 and 11.3.5: neither header may appear more than once.
    let key = match single(headers.get_all("sec-websocket-key")) {
        Some(Some(key)) if KEY_BASE64.decode(key).map(|k| k.len()) == Ok(16) => key,
        _ => {
            return Err(Rejection::new(
                400,
                "missing or invalid Sec-WebSocket-Key header",
            ));
        }
    };
    let version = single(headers.get_all("sec-websocket-version"));
    if version.is_none() {
        return Err(Rejection::new(400, "repeated Sec-WebSocket-Version header"));
    }
    if version != Some(Some("13")) {
        let mut rejection = Rejection::new(426, "unsupported Sec-WebSocket-Version; use 13");
        rejection
            .headers
            .push(("Sec-WebSocket-Version".into(), "13".into()));
        return Err(rejection);
    }
    if !config.origin.allows(headers.get("origin")) {
        return Err(Rejection::new(403, "origin not allowed"));
    }
    let protocol = headers
        .get_all("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|offered| config.protocols.iter().any(|p| p == offered))
        .map(str::to_string);
    let (deflate, extension) = match &config.deflate {
        Some(deflate_config) => {
            let offers: Vec<&str> = headers.get_all("sec-websocket-extensions").collect();
            match deflate::server_accept(&offers, deflate_config) {
                Ok(Some((params, value))) => (Some(params), Some(value)),
                Ok(None) => (None, None),
                Err(error) => return Err(Rejection::new(400, error.to_string())),
            }
        }
        None => (None, None),
    };
    let accept = accept_key(key);
    let mut response_headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept.as_str()),
    ];
    if let Some(protocol) = &protocol {
        response_headers.push(("Sec-WebSocket-Protocol", protocol));
    }
    if let Some(extension) = &extension {
        response_headers.push(("Sec-WebSocket-Extensions", extension));
    }
    let response = encode_response(101, &response_headers, b"");
    Ok(Accepted {
        protocol,
        deflate,
        response,
    })
}

/// The only value of a header that must not be repeated: `Some(None)` when
/// absent, `None` when repeated.
fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<Option<&'a str>> {
    let first = values.next();
    values.next().is_none().then_some(first)
}

/// Why a client handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The URL is not a usable `ws://` (or `wss://`) URL.
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(String),
    /// The response head could not be read.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server answered something other than 101.
    #[error("server answered {status} instead of 101")]
    Status {
        /// The status received.
        status: u16,
    },
    /// The response lacks `Upgrade: websocket` or `Connection: Upgrade`.
    #[error("response is not a WebSocket upgrade")]
    NotUpgrade,
    /// `Sec-WebSocket-Accept` does not match the key sent.
    #[error("Sec-WebSocket-Accept does not match the key")]
    AcceptMismatch,
    /// The server chose a sub-protocol the client did not offer.
    #[error("server chose sub-protocol {0:?}, which was not offered")]
    UnexpectedProtocol(String),
    /// The server answered an extension the client did not offer or cannot
    /// accept.
    #[error(transparent)]
    Extension(#[from] NegotiationError),
    /// The server did not answer within the handshake timeout.
    #[error("handshake timed out")]
    Timeout,
}

/// A `ws://host:port/path?query` URL split into what the handshake needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss` (TLS) rather than `ws`.
    pub secure: bool,
    /// The host (without brackets for IPv6).
    pub host: String,
    /// The port (80 or 443 by default).
    pub port: u16,
    /// The `Host` header value.
    pub authority: String,
    /// The request target, at least `/`.
    pub target: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (`http`/`https` are accepted as
    /// aliases).
    ///
    /// ```
    /// use switchboard_core::ws::handshake::WsUrl;
    /// let url = WsUrl::parse("ws://[::1]:9001/runCase?case=1").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("::1", 9001, "/runCase?case=1"));
    /// ```
    pub fn parse(url: &str) -> Result<WsUrl, HandshakeError> {
        let invalid = || HandshakeError::InvalidUrl(url.to_string());
        // The URL goes into the request line and the Host header as it is:
        // a space or control character would split the request.
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid());
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(invalid()),
        };
        // The fragment is never sent (RFC 6455, 3).
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(invalid)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
            }
        } else {
            match authority.split_once(':') {
                // An IPv6 literal needs its brackets.
                Some((_, p)) if p.contains(':') => return Err(invalid()),
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            // An empty port is the scheme's default (RFC 3986, 3.2.3).
            Some(p) if !p.is_empty() => {
                // `u16::from_str` would also take a leading `+`.
                if !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                p.parse().map_err(|_| invalid())?
            }
            _ if secure => 443,
            _ => 80,
        };
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(WsUrl {
            secure,
            host: host.to_string(),
            port,
            authority: authority.strip_suffix(':').unwrap_or(authority).to_string(),
            target,
        })
    }
}

/// What a successful client handshake agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The sub-protocol the server chose, if any.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters, if the server accepted the offer.
    pub deflate: Option<DeflateParams>,
}

/// The client side of the opening handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    request: Vec<u8>,
}

impl ClientHandshake {
    /// Builds the request for `url` with a fresh random key from the OS
    /// CSPRNG, offering `config`'s sub-protocols and permessage-deflate.
    /// `extra_headers` are added as they are (e.g. `Origin`, cookies),
    /// except a line that would split the request
    /// ([`is_valid_header`](crate::http::is_valid_header)), left out.
    pub fn new(url: &WsUrl, config: &Config, extra_headers: &[(&str, &str)]) -> Self {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        let key = BASE64.encode(nonce);
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            url.target, url.authority, key
        );
        if !config.protocols.is_empty() {
            request.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                config.protocols.join(", ")
            ));
        }
        if let Some(deflate_config) = &config.deflate {
            request.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                deflate::client_offer(deflate_config)
            ));
        }
        let mut request = request.into_bytes();
        crate::http::write_headers(&mut request, extra_headers.iter().copied());
        request.extend_from_slice(b"\r\n");
        Self { key, request }
    }

    /// The request bytes to send.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Checks the server's response.
    pub fn finish(
        &self,
        response: &Response,
        config: &Config,
    ) -> Result<Negotiated, HandshakeError> {
        if response.status != 101 {
            return Err(HandshakeError::Status {
                status: response.status,
            });
        }
        let headers = &response.headers;
        if !headers.has_token("upgrade", "websocket") || !headers.has_token("connection", "upgrade")
        {
            return Err(HandshakeError::NotUpgrade);
        }
        // RFC 6455 11.3.3 and 11.3.4: neither header may appear more than
        // once in a response.
        let expected = accept_key(&self.key);
        if single(headers.get_all("sec-websocket-accept")) != Some(Some(expected.as_str())) {
            return Err(HandshakeError::AcceptMismatch);
        }
        let protocol = match single(headers.get_all("sec-websocket-protocol")) {
            Some(protocol) => protocol.map(str::to_string),
            None => {
                let all: Vec<&str> = headers.get_all("sec-websocket-protocol").collect();
                return Err(HandshakeError::UnexpectedProtocol(all.join(", ")));
            }
        };
        if let Some(p) = &protocol
            && !config.protocols.iter().any(|offered| offered == p)
        {
            return Err(HandshakeError::UnexpectedProtocol(p.clone()));
        }
        let extensions: Vec<&str> = headers.get_all("sec-websocket-extensions").collect();
        let deflate = match (extensions.is_empty(), &config.deflate) {
            (true, _) => None,
            (false, Some(deflate_config)) => Some(deflate::client_accept(
                &extensions.join(", "),
                deflate_config,
            )?),
            (false, None) => {
                return Err(HandshakeError::Extension(NegotiationError::NotOffered));
            }
        };
        Ok(Negotiated { protocol, deflate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::Limits;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(headers: &str) -> Request {
        let raw = format!(
            "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\n{headers}\r\n"
        );
        Request::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn status(headers: &str) -> Result<(), u16> {
        accept(&request(headers), &Config::default())
            .map(|_| ())
            .map_err(|rejection| rejection.status)
    }

    /// RFC 6455 11.3.1 and 11.3.5: `Sec-WebSocket-Key` and
    /// `Sec-WebSocket-Version` must not appear more than once in a request.
    /// A second key is not one the server may silently ignore (which key
    /// would the client check the accept value against?).
    #[test]
    fn server_refuses_repeated_key_or_version_lines() {
        let key = format!("Sec-WebSocket-Key: {KEY}\r\n");
        let other = "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n";
        let version = "Sec-WebSocket-Version: 13\r\n";
        assert_eq!(status(&format!("{key}{version}")), Ok(()));
        assert_eq!(status(&format!("{key}{other}{version}")), Err(400));
        assert_eq!(status(&format!("{key}{key}{version}")), Err(400));
        assert_eq!(status(&format!("{key}{version}{version}")), Err(400));
        assert_eq!(
            status(&format!("{key}{version}Sec-WebSocket-Version: 8\r\n")),
            Err(400)
        );
    }

    /// A key is 16 bytes in base64 (RFC 6455 4.1); the two bits the last
    /// character carries beyond them are padding, which RFC 4648 3.5 lets a
    /// decoder ignore. A client that fills its key with 22 random base64
    /// characters (as Node's `ws` server accepts) must not fail 15 times out
    /// of 16.
    #[test]
    fn keys_are_16_bytes_of_base64_whatever_their_padding_bits() {
        let version = "Sec-WebSocket-Version: 13\r\n";
        for key in [KEY, "dGhlIHNhbXBsZSBub25jZR==", "AAAAAAAAAAAAAAAAAAAAA/=="] {
            let accepted = accept(
                &request(&format!("Sec-WebSocket-Key: {key}\r\n{version}")),
                &Config::default(),
            )
            .unwrap_or_else(|e| panic!("{key}: {e}"));
            let expected = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(key));
            assert!(
                String::from_utf8(accepted.response)
                    .unwrap()
                    .contains(&expected)
            );
        }
        for key in [
            "",
            "c2hvcnQ=",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZQAA",
            "dGhlIHNhbXBsZSBub25jZ-==",
            "dGhlIHNhbXBsZSBub25j ZQ==",
        ] {
            assert_eq!(
                status(&format!("Sec-WebSocket-Key: {key}\r\n{version}")),
                Err(400),
                "{key:?}"
            );
        }
    }

    fn response(handshake: &ClientHandshake, headers: &str) -> Response {
        let raw = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{headers}\r\n",
            accept_key(handshake.key())
        );
        Response::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    /// RFC 6455 11.3.3 and 11.3.4: `Sec-WebSocket-Accept` and
    /// `Sec-WebSocket-Protocol` must not appear more than once in a
    /// response; a client that reads only the first line would accept a
    /// second, contradicting, answer unseen.
    #[test]
    fn client_refuses_repeated_accept_or_protocol_lines() {
        let config = Config {
            protocols: vec!["chat".into(), "superchat".into()],
            deflate: None,
            ..Config::default()
        };
        let url = WsUrl::parse("ws://example.com/chat").unwrap();
        let handshake = ClientHandshake::new(&url, &config, &[]);
        let finish = |headers: &str| handshake.finish(&response(&handshake, headers), &config);
        assert_eq!(
            finish("Sec-WebSocket-Protocol: chat\r\n")
                .unwrap()
                .protocol
                .as_deref(),
            Some("chat")
        );
        assert!(matches!(
            finish("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n"),
            Err(HandshakeError::UnexpectedProtocol(_))
        ));
        assert!(matches!(
            finish("Sec-WebSocket-Protocol: chat, superchat\r\n"),
            Err(HandshakeError::UnexpectedProtocol(_))
        ));
        assert_eq!(
            finish("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            Err(HandshakeError::AcceptMismatch)
        );
    }

    /// An extra header line with a line break (an application passing a
    /// peer's input on) does not split the request.
    #[test]
    fn extra_headers_that_would_split_the_request_are_left_out() {
        let url = WsUrl::parse("ws://example.com/chat").unwrap();
        let headers = [
            ("Cookie", "a=b\r\nX-Injected: 1"),
            ("Origin", "https://app"),
        ];
        let handshake = ClientHandshake::new(&url, &Config::default(), &headers);
        let request = std::str::from_utf8(handshake.request()).unwrap();
        assert!(!request.contains("X-Injected"), "{request:?}");
        assert!(
            request.contains("\r\nOrigin: https://app\r\n"),
            "{request:?}"
        );
        assert!(request.ends_with("\r\n\r\n"));
    }

    /// A URL is put into the request line and the `Host` header as it is:
    /// whitespace or a control character there would split the request
    /// (`ws://host/\r\nX-Injected: 1` adds a header), so such URLs are
    /// refused, as is a port that is not plain digits.
    #[test]
    fn urls_that_would_break_the_request_are_refused() {
        for bad in [
            "ws://example.com/a b",
            "ws://example.com/\r\nX-Injected: 1",
            "ws://example.com/?q=\n",
            "ws://exa mple.com/",
            "ws://example.com\r\nX-Injected: 1/",
            "ws://example.com/\t",
            "ws://example.com/\u{7f}",
            "ws://example.com:+80/",
        ] {
            assert!(
                matches!(WsUrl::parse(bad), Err(HandshakeError::InvalidUrl(_))),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(parts("ws://example.com/a%20b").3, "/a%20b");
    }

    fn parts(url: &str) -> (String, u16, String, String) {
        let url = WsUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (url.host, url.port, url.authority, url.target)
    }

    /// RFC 6455 (3) and RFC 3986: the fragment is never part of the
    /// request, an empty port is the scheme's default, and an IPv6
    /// literal needs its brackets, with nothing but a port after them.
    #[test]
    fn urls_split_as_rfc_3986_reads_them() {
        let own = |host: &str, port, authority: &str, target: &str| {
            (
                host.to_owned(),
                port,
                authority.to_owned(),
                target.to_owned(),
            )
        };
        assert_eq!(
            parts("ws://example.com?room=1#top"),
            own("example.com", 80, "example.com", "/?room=1")
        );
        assert_eq!(
            parts("ws://example.com#top"),
            own("example.com", 80, "example.com", "/")
        );
        assert_eq!(
            parts("wss://example.com:/chat"),
            own("example.com", 443, "example.com", "/chat")
        );
        assert_eq!(parts("ws://[::1]/a?b"), own("::1", 80, "[::1]", "/a?b"));
        for bad in [
            "ws://[::1]junk/",
            "ws://[::1]:80x/",
            "ws://::1:9001/",
            "ws://[::1/",
            "ws://host:99999/",
            "ws:///path",
        ] {
            assert!(
                matches!(WsUrl::parse(bad), Err(HandshakeError::InvalidUrl(_))),
                "{bad} was accepted"
            );
        }
    }
}

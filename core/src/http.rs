//! HTTP/1.1 request and response heads: parsing with limits on head size and
//! header count, header lookups, and encoding responses.
//!
//! Used by the WebSocket opening handshake and (later) the long-polling
//! transport. Bodies are not handled here.

use bytes::{Bytes, BytesMut};

/// Limits applied while reading a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head in bytes (request line and headers); larger is 431.
    pub max_head_size: usize,
    /// Most header lines; more is 431.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_size: 8 << 10,
            max_headers: 64,
        }
    }
}

/// A head that cannot be accepted, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head is larger than [`Limits::max_head_size`].
    #[error("request head exceeds {0} bytes")]
    HeadTooLarge(usize),
    /// More header lines than [`Limits::max_headers`].
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
    /// Not valid HTTP/1.x.
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
}

impl HttpError {
    /// The HTTP status that answers this error.
    ///
    /// ```
    /// use switchboard_core::http::HttpError;
    /// assert_eq!(HttpError::HeadTooLarge(8192).status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge(_) | HttpError::TooManyHeaders(_) => 431,
            HttpError::Malformed(_) => 400,
        }
    }
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, as sent.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
}

/// Header lines with case-insensitive lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Whether any value of `name`, read as a comma-separated list, holds
    /// `token` (case-insensitive).
    ///
    /// ```
    /// use switchboard_core::http::{Header, Headers};
    /// let headers = Headers(vec![Header { name: "Connection".into(), value: "keep-alive, Upgrade".into() }]);
    /// assert!(headers.has_token("connection", "upgrade"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

fn parse_headers(raw: &[httparse::Header<'_>]) -> Result<Headers, HttpError> {
    raw.iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::Malformed(format!("header {} is not UTF-8", h.name)))?;
            Ok(Header {
                name: h.name.to_string(),
                value: value.trim().to_string(),
            })
        })
        .collect::<Result<_, _>>()
        .map(Headers)
}

fn map_parse_error(error: httparse::Error, limits: &Limits) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders(limits.max_headers),
        other => HttpError::Malformed(other.to_string()),
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub target: String,
    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The headers.
    pub headers: Headers,
}

impl Request {
    /// Parses a request head from the start of `buf`. Returns the request and
    /// the head's length, or `Ok(None)` when more bytes are needed.
    ///
    /// ```
    /// use switchboard_core::http::{Limits, Request};
    /// let (req, len) = Request::parse(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nrest", &Limits::default())
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!((req.path(), req.query(), len), ("/a", Some("b=1"), 32));
    /// ```
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
        let mut raw = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut raw);
        match req.parse(buf).map_err(|e| map_parse_error(e, limits))? {
            httparse::Status::Partial => {
                if buf.len() > limits.max_head_size {
                    return Err(HttpError::HeadTooLarge(limits.max_head_size));
                }
                Ok(None)
            }
            httparse::Status::Complete(len) => {
                if len > limits.max_head_size {
                    return Err(HttpError::HeadTooLarge(limits.max_head_size));
                }
                Ok(Some((
                    Request {
                        method: req.method.unwrap_or_default().to_string(),
                        target: req.path.unwrap_or_default().to_string(),
                        version: req.version.unwrap_or(1),
                        headers: parse_headers(req.headers)?,
                    },
                    len,
                )))
            }
        }
    }

    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The target's query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers.
    pub headers: Headers,
}

impl Response {
    /// Parses a response head from the start of `buf`, like
    /// [`Request::parse`].
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Response, usize)>, HttpError> {
        let mut raw = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut res = httparse::Response::new(&mut raw);
        match res.parse(buf).map_err(|e| map_parse_error(e, limits))? {
            httparse::Status::Partial => {
                if buf.len() > limits.max_head_size {
                    return Err(HttpError::HeadTooLarge(limits.max_head_size));
                }
                Ok(None)
            }
            httparse::Status::Complete(len) => Ok(Some((
                Response {
                    status: res.code.unwrap_or_default(),
                    reason: res.reason.unwrap_or_default().to_string(),
                    headers: parse_headers(res.headers)?,
                },
                len,
            ))),
        }
    }
}

/// Accumulates bytes until a whole head has arrived, enforcing the limits.
/// Bytes after the head (a pipelined body or WebSocket frames) are kept.
#[derive(Debug, Default)]
pub struct HeadReader {
    buf: BytesMut,
    limits: Limits,
}

impl HeadReader {
    /// A reader with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
        }
    }

    /// Feeds bytes; returns the request and the bytes after its head once the
    /// head is complete.
    ///
    /// ```
    /// use switchboard_core::http::{HeadReader, Limits};
    /// let mut reader = HeadReader::new(Limits::default());
    /// assert!(reader.push_request(b"GET / HTTP/1.1\r\n").unwrap().is_none());
    /// let (req, rest) = reader.push_request(b"Host: x\r\n\r\n\x81\x00").unwrap().unwrap();
    /// assert_eq!((req.method.as_str(), &rest[..]), ("GET", &b"\x81\x00"[..]));
    /// ```
    pub fn push_request(&mut self, data: &[u8]) -> Result<Option<(Request, Bytes)>, HttpError> {
        self.buf.extend_from_slice(data);
        Ok(Request::parse(&self.buf, &self.limits)?.map(|(req, len)| {
            let rest = self.buf.split_off(len).freeze();
            (req, rest)
        }))
    }

    /// Feeds bytes; returns the response and the bytes after its head.
    pub fn push_response(&mut self, data: &[u8]) -> Result<Option<(Response, Bytes)>, HttpError> {
        self.buf.extend_from_slice(data);
        Ok(Response::parse(&self.buf, &self.limits)?.map(|(res, len)| {
            let rest = self.buf.split_off(len).freeze();
            (res, rest)
        }))
    }
}

/// The standard reason phrase of `status`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}

/// Encodes a response head and body. A body gets a `Content-Length`.
///
/// ```
/// use switchboard_core::http::encode_response;
/// let bytes = encode_response(400, &[("Content-Type", "text/plain")], b"no");
/// assert!(bytes.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
/// assert!(bytes.ends_with(b"Content-Length: 2\r\n\r\nno"));
/// ```
pub fn encode_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(128 + body.len());
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if status != 101 && status != 204 {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_heads_are_431() {
        let limits = Limits {
            max_head_size: 64,
            max_headers: 4,
        };
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            Request::parse(long.as_bytes(), &limits)
                .unwrap_err()
                .status(),
            431
        );
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
        let limits = Limits {
            max_head_size: 1024,
            max_headers: 4,
        };
        assert_eq!(
            Request::parse(many.as_bytes(), &limits)
                .unwrap_err()
                .status(),
            431
        );
    }

    #[test]
    fn garbage_is_400() {
        let err = Request::parse(b"\x00\x01 nonsense\r\n\r\n", &Limits::default()).unwrap_err();
        assert_eq!(err.status(), 400);
    }
}

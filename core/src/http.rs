//! HTTP/1.1 messages: request and response heads parsed with limits on head
//! size and header count, bodies framed by `Content-Length` or chunked
//! transfer coding with a size limit, keep-alive rules, and encoding
//! responses.
//!
//! Used by the WebSocket opening handshake and the Engine.IO long-polling
//! transport: [`RequestReader`] turns a keep-alive connection's bytes into
//! whole requests, [`ResponseReader`] does the same for a client.

use std::borrow::Cow;

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
    /// A body whose framing cannot be read: a bad `Content-Length`, a
    /// malformed chunk, or an unsupported `Transfer-Encoding`.
    #[error("malformed HTTP body: {0}")]
    MalformedBody(String),
    /// A request begun (or a connection's first one) did not arrive
    /// within [`ServerLimits::request_timeout`].
    #[error("request not received within {0:?}")]
    RequestTimeout(std::time::Duration),
}

impl HttpError {
    /// The HTTP status that answers this error.
    ///
    /// ```
    /// use switchboard_core::http::HttpError;
    /// assert_eq!(HttpError::HeadTooLarge(8192).status(), 431);
    /// assert_eq!(HttpError::RequestTimeout(std::time::Duration::from_secs(30)).status(), 408);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge(_) | HttpError::TooManyHeaders(_) => 431,
            HttpError::Malformed(_) | HttpError::MalformedBody(_) => 400,
            HttpError::RequestTimeout(_) => 408,
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

    /// The target's path, without the query. A target in absolute form
    /// (`http://host/path`, which a server must accept, RFC 9112, 3.2.2)
    /// gives its URI's path, `/` when it has none.
    pub fn path(&self) -> &str {
        self.path_and_query().0
    }

    /// The target's query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query().1
    }

    fn path_and_query(&self) -> (&str, Option<&str>) {
        let target = self.target.as_str();
        let scheme = ["http://", "https://"].into_iter().find(|scheme| {
            target
                .get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        });
        let Some(scheme) = scheme else {
            return target
                .split_once('?')
                .map_or((target, None), |(p, q)| (p, Some(q)));
        };
        let after = &target[scheme.len()..];
        let rest = &after[after.find(['/', '?', '#']).unwrap_or(after.len())..];
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        (if path.is_empty() { "/" } else { path }, query)
    }

    /// Whether the connection stays open after this request's response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`; never after a request whose framing could
    /// be read two ways (`Transfer-Encoding` with `Content-Length`, or in
    /// HTTP/1.0), as RFC 9112 (6.1) requires against request smuggling.
    ///
    /// ```
    /// use switchboard_core::http::{Limits, Request};
    /// let parse = |head: &str| Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0;
    /// assert!(parse("GET / HTTP/1.1\r\n\r\n").keep_alive());
    /// assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    /// assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive());
    /// let both = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    /// assert!(!parse(both).keep_alive());
    /// ```
    pub fn keep_alive(&self) -> bool {
        let chunked = self.headers.get("transfer-encoding").is_some();
        if chunked && (self.version == 0 || self.headers.get("content-length").is_some()) {
            return false;
        }
        if self.version == 0 {
            self.headers.has_token("connection", "keep-alive")
        } else {
            !self.headers.has_token("connection", "close")
        }
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        query_param(self.query()?, name)
    }
}

/// The first value of query parameter `name`, percent-decoded (left as is
/// when the decoding is not UTF-8).
///
/// ```
/// use switchboard_core::http::query_param;
/// assert_eq!(query_param("EIO=4&sid=a%2Db", "sid").as_deref(), Some("a-b"));
/// assert_eq!(query_param("EIO=4", "sid"), None);
/// ```
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let raw = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })?;
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8(out).map_or(Cow::Borrowed(raw), Cow::Owned))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
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
            httparse::Status::Complete(len) if len > limits.max_head_size => {
                Err(HttpError::HeadTooLarge(limits.max_head_size))
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

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` bytes remain.
    Length(usize),
    /// Chunked transfer coding, in the given step.
    Chunked(ChunkStep),
    /// Everything until the peer closes (responses only).
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkStep {
    /// A chunk-size line.
    Size,
    /// Chunk data with this many bytes left.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to the empty line.
    Trailers,
}

/// Reads one body out of a connection's buffer, keeping at most
/// `max + 1` bytes of it.
#[derive(Debug)]
struct BodyReader {
    framing: Framing,
    max: usize,
    body: BytesMut,
    truncated: bool,
    /// Chunk extension and trailer bytes read so far.
    overhead: usize,
}

impl BodyReader {
    fn new(headers: &Headers, max: usize, until_close_allowed: bool) -> Result<Self, HttpError> {
        // Every line, as one list: chunked must be the one coding.
        let mut codings = headers
            .get_all("transfer-encoding")
            .flat_map(|value| value.split(','))
            .map(str::trim);
        let chunked = match (codings.next(), codings.next()) {
            (None, _) => false,
            (Some(coding), None) if coding.eq_ignore_ascii_case("chunked") => true,
            _ => {
                let all: Vec<&str> = headers.get_all("transfer-encoding").collect();
                return Err(HttpError::MalformedBody(format!(
                    "unsupported transfer-encoding {:?}",
                    all.join(", ")
                )));
            }
        };
        let framing = if chunked {
            Framing::Chunked(ChunkStep::Size)
        } else {
            let mut lengths = headers.get_all("content-length");
            match (lengths.next(), lengths.next()) {
                (None, _) if until_close_allowed => Framing::UntilClose,
                (None, _) => Framing::Length(0),
                (Some(value), None) => Framing::Length(parse_length(value)?),
                (Some(_), Some(_)) => {
                    return Err(HttpError::MalformedBody(
                        "several content-length headers".into(),
                    ));
                }
            }
        };
        Ok(BodyReader {
            framing,
            max,
            body: BytesMut::new(),
            truncated: false,
            overhead: 0,
        })
    }

    /// Keeps body bytes, cutting at `max + 1`.
    fn keep(&mut self, data: &[u8]) {
        let room = self.max.saturating_add(1).saturating_sub(self.body.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// A body of no bytes, whatever its head says (a response that has
    /// none: 1xx, 204, 304).
    fn empty(max: usize) -> Self {
        BodyReader {
            framing: Framing::Length(0),
            max,
            body: BytesMut::new(),
            truncated: false,
            overhead: 0,
        }
    }

    /// Counts chunk extension and trailer bytes against
    /// [`MAX_CHUNK_OVERHEAD`].
    fn add_overhead(&mut self, bytes: usize) -> Result<(), HttpError> {
        self.overhead = self.overhead.saturating_add(bytes);
        if self.overhead > MAX_CHUNK_OVERHEAD {
            return Err(HttpError::MalformedBody(
                "chunk extensions and trailers too large".into(),
            ));
        }
        Ok(())
    }

    fn over_limit(&self) -> bool {
        self.body.len() > self.max
    }

    /// Consumes body bytes from `buf`; `Ok(true)` once the body is complete
    /// (or over the limit, which ends it early).
    fn advance(&mut self, buf: &mut BytesMut) -> Result<bool, HttpError> {
        loop {
            if self.over_limit() {
                self.truncated = true;
                return Ok(true);
            }
            match self.framing {
                Framing::Length(0) => return Ok(true),
                Framing::Length(remaining) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = remaining.min(buf.len());
                    let data = buf.split_to(take);
                    self.keep(&data);
                    self.framing = Framing::Length(remaining - take);
                }
                Framing::UntilClose => {
                    let data = buf.split();
                    self.keep(&data);
                    return Ok(false);
                }
                Framing::Chunked(ChunkStep::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        // httparse reads a line without digits as size 0
                        // and lets a bare LF into an extension.
                        let line = &buf[..used - 2];
                        if !line.first().is_some_and(u8::is_ascii_hexdigit) || line.contains(&b'\n')
                        {
                            return Err(chunk_error());
                        }
                        if let Some(semicolon) = line.iter().position(|&b| b == b';') {
                            self.add_overhead(line.len() - semicolon)?;
                        }
                        let _ = buf.split_to(used);
                        let size = usize::try_from(size).map_err(|_| chunk_error())?;
                        self.framing = Framing::Chunked(if size == 0 {
                            ChunkStep::Trailers
                        } else {
                            ChunkStep::Data(size)
                        });
                    }
                    Ok(httparse::Status::Partial)
                        if buf.len() <= MAX_CHUNK_LINE && !buf.contains(&b'\n') =>
                    {
                        return Ok(false);
                    }
                    _ => return Err(chunk_error()),
                },
                Framing::Chunked(ChunkStep::Data(remaining)) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = remaining.min(buf.len());
                    let data = buf.split_to(take);
                    self.keep(&data);
                    self.framing = Framing::Chunked(if take == remaining {
                        ChunkStep::DataEnd
                    } else {
                        ChunkStep::Data(remaining - take)
                    });
                }
                Framing::Chunked(ChunkStep::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(chunk_error());
                    }
                    let _ = buf.split_to(2);
                    self.framing = Framing::Chunked(ChunkStep::Size);
                }
                Framing::Chunked(ChunkStep::Trailers) => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if buf.len() > MAX_CHUNK_LINE || buf.contains(&b'\n') {
                            return Err(chunk_error());
                        }
                        return Ok(false);
                    };
                    // A bare CR or LF within a trailer line.
                    if buf[..end].iter().any(|&b| b == b'\r' || b == b'\n') {
                        return Err(chunk_error());
                    }
                    self.add_overhead(end + 2)?;
                    let _ = buf.split_to(end + 2);
                    if end == 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }

    fn finish(self) -> (Bytes, bool) {
        (self.body.freeze(), self.truncated)
    }
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Most chunk extension and trailer bytes in one body (16 KiB, as hyper
/// and Node): they are not body bytes, so the body limit does not bound
/// them.
const MAX_CHUNK_OVERHEAD: usize = 16 << 10;

fn chunk_error() -> HttpError {
    HttpError::MalformedBody("invalid chunked encoding".into())
}

fn parse_length(value: &str) -> Result<usize, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::MalformedBody(format!(
            "invalid content-length {value:?}"
        )));
    }
    // A length too large for memory is simply over any body limit.
    Ok(value.parse().unwrap_or(usize::MAX))
}

/// A whole request: head and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// The head.
    pub request: Request,
    /// The body, cut at the reader's body limit plus one byte.
    pub body: Bytes,
    /// Whether the body was longer than the limit. The rest of it was not
    /// read, so the connection cannot carry another request.
    pub truncated: bool,
}

/// Splits a server connection's bytes into requests (keep-alive,
/// pipelining), sans IO: feed bytes with [`RequestReader::receive`], take
/// requests with [`RequestReader::next_request`].
///
/// Bodies are framed by `Content-Length` or chunked transfer coding. A body
/// longer than `max_body` is cut at `max_body + 1` bytes and the request is
/// handed out as soon as that much has arrived, marked
/// [`truncated`](IncomingRequest::truncated), so the handler can refuse it
/// (413) without the reader ever holding more than the limit.
///
/// ```
/// use switchboard_core::http::{Limits, RequestReader};
/// let mut reader = RequestReader::new(Limits::default(), 1024);
/// reader.receive(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
/// assert!(reader.next_request().unwrap().is_none());
/// reader.receive(b"loGET /b HTTP/1.1\r\n\r\n");
/// let first = reader.next_request().unwrap().unwrap();
/// assert_eq!((first.request.path(), &first.body[..]), ("/a", &b"hello"[..]));
/// let second = reader.next_request().unwrap().unwrap();
/// assert_eq!((second.request.path(), second.body.len()), ("/b", 0));
/// ```
#[derive(Debug)]
pub struct RequestReader {
    buf: BytesMut,
    limits: Limits,
    max_body: usize,
    pending: Option<(Request, BodyReader)>,
    /// The pending request asked for `100 Continue` (`Expect:
    /// 100-continue`) and has not had it yet.
    owes_continue: bool,
}

/// The interim response a client that sent `Expect: 100-continue` waits
/// for before it sends the body (RFC 9110, 10.1.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl RequestReader {
    /// A reader with head `limits` and a body limit.
    pub fn new(limits: Limits, max_body: usize) -> Self {
        RequestReader {
            buf: BytesMut::new(),
            limits,
            max_body,
            pending: None,
            owes_continue: false,
        }
    }

    /// [`CONTINUE`], once, when the request whose body is awaited asked for
    /// it with `Expect: 100-continue` and none of its body has arrived: the
    /// adapter writes it before reading on. (A request whose body is
    /// already there, or that has none, is answered without it.)
    ///
    /// ```
    /// use switchboard_core::http::{CONTINUE, Limits, RequestReader};
    /// let mut reader = RequestReader::new(Limits::default(), 1024);
    /// reader.receive(b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    /// assert!(reader.next_request().unwrap().is_none());
    /// assert_eq!(reader.take_interim(), Some(CONTINUE));
    /// assert_eq!(reader.take_interim(), None);
    /// reader.receive(b"hi");
    /// assert_eq!(&reader.next_request().unwrap().unwrap().body[..], b"hi");
    /// ```
    pub fn take_interim(&mut self) -> Option<&'static [u8]> {
        let owed = std::mem::take(&mut self.owes_continue);
        let waiting = self
            .pending
            .as_ref()
            .is_some_and(|(_, body)| body.body.is_empty() && !body.truncated);
        (owed && waiting).then_some(CONTINUE)
    }

    /// Buffers bytes read from the connection.
    pub fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole request, if its bytes have all arrived.
    ///
    /// An error means the connection's framing is lost: answer with
    /// [`HttpError::status`] and close.
    pub fn next_request(&mut self) -> Result<Option<IncomingRequest>, HttpError> {
        if self.pending.is_none() {
            let Some((request, len)) = Request::parse(&self.buf, &self.limits)? else {
                return Ok(None);
            };
            let _ = self.buf.split_to(len);
            let body = BodyReader::new(&request.headers, self.max_body, false)?;
            self.owes_continue = request.version == 1
                && request
                    .headers
                    .get("expect")
                    .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
            self.pending = Some((request, body));
        }
        let (_, body) = self.pending.as_mut().expect("set above");
        let done = body.advance(&mut self.buf)?;
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        if !done {
            return Ok(None);
        }
        let (request, body) = self.pending.take().expect("set above");
        let (body, truncated) = body.finish();
        Ok(Some(IncomingRequest {
            request,
            body,
            truncated,
        }))
    }

    /// How many bytes are buffered and not yet handed out.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() + self.pending.as_ref().map_or(0, |(_, body)| body.body.len())
    }

    /// Whether bytes of an unfinished request are buffered.
    pub fn has_partial_request(&self) -> bool {
        !self.buf.is_empty() || self.pending.is_some()
    }

    /// Takes the bytes buffered after the last request (the first frames of
    /// a WebSocket after an upgrade request).
    pub fn take_buffered(&mut self) -> Bytes {
        std::mem::take(&mut self.buf).freeze()
    }
}

/// A whole response: head and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingResponse {
    /// The head.
    pub response: Response,
    /// The body, cut at the reader's body limit plus one byte.
    pub body: Bytes,
    /// Whether the body was longer than the limit (the connection cannot be
    /// reused).
    pub truncated: bool,
}

/// Splits a client connection's bytes into responses, like
/// [`RequestReader`]. A response without `Content-Length` or chunked coding
/// ends when the server closes: call [`ResponseReader::handle_eof`].
///
/// ```
/// use switchboard_core::http::{Limits, ResponseReader};
/// let mut reader = ResponseReader::new(Limits::default(), 1024);
/// reader.receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
/// let response = reader.next_response().unwrap().unwrap();
/// assert_eq!((response.response.status, &response.body[..]), (200, &b"ok"[..]));
/// ```
#[derive(Debug)]
pub struct ResponseReader {
    buf: BytesMut,
    limits: Limits,
    max_body: usize,
    pending: Option<(Response, BodyReader)>,
}

impl ResponseReader {
    /// A reader with head `limits` and a body limit.
    pub fn new(limits: Limits, max_body: usize) -> Self {
        ResponseReader {
            buf: BytesMut::new(),
            limits,
            max_body,
            pending: None,
        }
    }

    /// Buffers bytes read from the connection.
    pub fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole response, if its bytes have all arrived.
    pub fn next_response(&mut self) -> Result<Option<IncomingResponse>, HttpError> {
        if self.pending.is_none() {
            let Some((response, len)) = Response::parse(&self.buf, &self.limits)? else {
                return Ok(None);
            };
            let _ = self.buf.split_to(len);
            // No body, whatever framing the head names (a 304 may name
            // the one the full response would have had, RFC 9112, 6.1).
            let body = if matches!(response.status, 100..=199 | 204 | 304) {
                BodyReader::empty(self.max_body)
            } else {
                BodyReader::new(&response.headers, self.max_body, true)?
            };
            self.pending = Some((response, body));
        }
        let (_, body) = self.pending.as_mut().expect("set above");
        if !body.advance(&mut self.buf)? {
            return Ok(None);
        }
        Ok(self.pending.take().map(|(response, body)| {
            let (body, truncated) = body.finish();
            IncomingResponse {
                response,
                body,
                truncated,
            }
        }))
    }

    /// The connection ended: completes a body delimited by the close, or
    /// fails if a response was cut short.
    pub fn handle_eof(&mut self) -> Result<Option<IncomingResponse>, HttpError> {
        match self.pending.take() {
            Some((response, body)) if body.framing == Framing::UntilClose => {
                let (body, truncated) = body.finish();
                Ok(Some(IncomingResponse {
                    response,
                    body,
                    truncated,
                }))
            }
            Some(_) => Err(HttpError::MalformedBody("response cut short".into())),
            None if self.buf.is_empty() => Ok(None),
            None => Err(HttpError::Malformed("response head cut short".into())),
        }
    }
}

/// Limits and timeouts of an HTTP/1.1 server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Request head limits.
    pub head: Limits,
    /// How long an idle keep-alive connection waits for its next request
    /// (default 60 s).
    pub keep_alive_timeout: std::time::Duration,
    /// How long a request may take to arrive once it has begun, head and
    /// body (default 30 s). The first request of a connection must also
    /// begin within this time.
    pub request_timeout: std::time::Duration,
    /// The most connections the server's accept loop keeps open at once
    /// (default [`DEFAULT_MAX_CONNECTIONS`](crate::connections::DEFAULT_MAX_CONNECTIONS),
    /// 10,000); further clients wait in the listen backlog until one
    /// closes (see [`connections`](crate::connections)).
    pub max_connections: usize,
    /// The longest request body handed to the application's own HTTP
    /// handler (default [`DEFAULT_MAX_HTTP_BODY`], 2 MiB, as axum's
    /// default body limit); a longer one is answered `413 Payload Too
    /// Large` instead. Engine.IO requests have their endpoint's
    /// `max_payload`.
    pub max_http_body: usize,
}

/// [`ServerLimits::max_http_body`]'s default: 2 MiB.
pub const DEFAULT_MAX_HTTP_BODY: usize = 2 << 20;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            head: Limits::default(),
            keep_alive_timeout: std::time::Duration::from_secs(60),
            request_timeout: std::time::Duration::from_secs(30),
            max_connections: crate::connections::DEFAULT_MAX_CONNECTIONS,
            max_http_body: DEFAULT_MAX_HTTP_BODY,
        }
    }
}

/// A server connection's wait for its next request, and the rule of
/// [`ServerLimits`]' two timeouts: a request must arrive whole within
/// `request_timeout` of its first byte (the first request of a connection,
/// of the connection's start), or it is answered 408; between requests a
/// connection idles at most `keep_alive_timeout`, then closes quietly.
///
/// A driver makes one per wait, with what its [`RequestReader`] already
/// holds, reads until [`deadline`](Self::deadline), and tells it of every
/// read ([`received`](Self::received)).
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_core::http::{HttpError, RequestReader, RequestWait, ServerLimits};
///
/// let limits = ServerLimits::default(); // 60 s keep-alive, 30 s per request
/// let mut reader = RequestReader::new(limits.head, 1 << 20);
/// let t0 = Instant::now();
/// // Between two requests of a keep-alive connection: idle up to 60 s.
/// let mut wait = RequestWait::new(&reader, false, t0);
/// assert_eq!(wait.deadline(&limits), t0 + Duration::from_secs(60));
/// assert!(wait.timed_out(&limits).is_none()); // at the deadline: closed quietly
///
/// // The next request begins after 50 s: it has 30 s from then.
/// let t1 = t0 + Duration::from_secs(50);
/// reader.receive(b"GET / HTTP/1.1\r\n");
/// wait.received(&reader, t1);
/// assert_eq!(wait.deadline(&limits), t1 + Duration::from_secs(30));
/// assert!(matches!(wait.timed_out(&limits), Some(HttpError::RequestTimeout(_)))); // 408
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestWait {
    started: std::time::Instant,
    began: Option<std::time::Instant>,
    first: bool,
}

impl RequestWait {
    /// A wait starting at `now`, for the connection's `first` request or a
    /// later one, with what `reader` already buffered.
    pub fn new(reader: &RequestReader, first: bool, now: std::time::Instant) -> Self {
        RequestWait {
            started: now,
            began: reader.has_partial_request().then_some(now),
            first,
        }
    }

    /// Bytes were read at `now` into `reader`: a request that began with
    /// them starts its timeout.
    pub fn received(&mut self, reader: &RequestReader, now: std::time::Instant) {
        if self.began.is_none() && reader.has_partial_request() {
            self.began = Some(now);
        }
    }

    /// When the wait ends (a timeout of `Duration::MAX` a century on, as
    /// good as never: [`LONGEST_TIMEOUT`](crate::LONGEST_TIMEOUT)).
    pub fn deadline(&self, limits: &ServerLimits) -> std::time::Instant {
        let (from, timeout) = match self.began {
            Some(at) => (at, limits.request_timeout),
            None if self.first => (self.started, limits.request_timeout),
            None => (self.started, limits.keep_alive_timeout),
        };
        from + timeout.min(crate::LONGEST_TIMEOUT)
    }

    /// What the deadline passing means: a request that did not arrive in
    /// time (408), or `None` for an idle keep-alive connection, closed
    /// without an answer.
    pub fn timed_out(&self, limits: &ServerLimits) -> Option<HttpError> {
        (self.first || self.began.is_some())
            .then_some(HttpError::RequestTimeout(limits.request_timeout))
    }
}

/// Whether `status` is an interim answer (`100 Continue`, `103 Early
/// Hints`, ...) that a final one follows: a client reads on (RFC 9110
/// 15.2). `101 Switching Protocols` is final.
///
/// ```
/// use switchboard_core::http::is_interim;
///
/// assert!(is_interim(100) && is_interim(103));
/// assert!(!is_interim(101) && !is_interim(200));
/// ```
pub fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
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
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}

/// Encodes the response to a request made with `method`: as
/// [`encode_response`], except that a `HEAD` request gets the head alone,
/// with the `Content-Length` the body would have had (RFC 9110, 9.3.2), so
/// the next response on the connection is not read as this one's body.
///
/// ```
/// use switchboard_core::http::encode_response_for;
/// let bytes = encode_response_for("HEAD", 404, &[], b"Not Found");
/// assert!(bytes.ends_with(b"Content-Length: 9\r\n\r\n"));
/// let bytes = encode_response_for("GET", 404, &[], b"Not Found");
/// assert!(bytes.ends_with(b"\r\n\r\nNot Found"));
/// ```
pub fn encode_response_for(
    method: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = encode_head(status, headers, body.len());
    if method != "HEAD" {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text response with `status` and its reason phrase as the body
/// (a server's 404 for a path it does not serve), to a request made with
/// `method`, saying whether the connection stays open.
///
/// ```
/// use switchboard_core::http::encode_status_response;
/// let bytes = encode_status_response("GET", 404, false);
/// assert!(bytes.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
/// assert!(bytes.ends_with(b"Connection: close\r\nContent-Length: 9\r\n\r\nNot Found"));
/// ```
pub fn encode_status_response(method: &str, status: u16, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    encode_response_for(
        method,
        status,
        &[("Content-Type", "text/plain"), ("Connection", connection)],
        reason_phrase(status).as_bytes(),
    )
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
    let mut out = encode_head(status, headers, body.len());
    out.extend_from_slice(body);
    out
}

/// Whether a header line `name: value` may be written as it is: `name` a
/// token (RFC 9110 5.1), `value` without CR, LF or NUL (5.5). A value an
/// application builds from a peer's input could otherwise split the head
/// (response splitting, header injection).
///
/// ```
/// use switchboard_core::http::is_valid_header;
///
/// assert!(is_valid_header("Location", "/chat?room=a%20b"));
/// assert!(!is_valid_header("Location", "/\r\nSet-Cookie: x=1"));
/// assert!(!is_valid_header("Bad Name", "v"));
/// ```
pub fn is_valid_header(name: &str, value: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty()
        && name.bytes().all(token)
        && !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Writes the header lines of `headers` to `out`, leaving out (with a
/// warning) any that [`is_valid_header`] refuses.
pub fn write_headers<'a>(out: &mut Vec<u8>, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        if is_valid_header(name, value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            tracing::warn!(name, "a header line that would split the head; left out");
        }
    }
}

/// A response head, with room for a body of `body_len` bytes after it.
fn encode_head(status: u16, headers: &[(&str, &str)], body_len: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(128 + body_len);
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    write_headers(&mut out, headers.iter().copied());
    // Never on a 1xx or 204 (RFC 9110, 8.6).
    if !(100..200).contains(&status) && status != 204 {
        let _ = write!(out, "Content-Length: {body_len}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header value with a line break (an application echoing a peer's
    /// input into a header) does not split the response.
    #[test]
    fn header_lines_that_would_split_the_head_are_left_out() {
        let bytes = encode_response(
            302,
            &[
                ("Location", "/a\r\nSet-Cookie: stolen=1"),
                ("X-Ok", "fine"),
                ("Bad:Name", "v"),
            ],
            b"",
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("Set-Cookie"), "{text:?}");
        assert!(!text.contains("Bad"), "{text:?}");
        assert!(text.contains("\r\nX-Ok: fine\r\n"), "{text:?}");
    }

    /// Server timeouts of `Duration::MAX` (a way to say "never") give a
    /// deadline a century on, rather than panicking.
    #[test]
    fn request_timeouts_past_the_end_of_time_do_not_panic() {
        let limits = ServerLimits {
            request_timeout: std::time::Duration::MAX,
            keep_alive_timeout: std::time::Duration::MAX,
            ..ServerLimits::default()
        };
        let mut reader = RequestReader::new(limits.head, 1 << 20);
        let t0 = std::time::Instant::now();
        let century = t0 + crate::LONGEST_TIMEOUT;
        assert_eq!(
            RequestWait::new(&reader, true, t0).deadline(&limits),
            century
        );
        let mut wait = RequestWait::new(&reader, false, t0);
        assert_eq!(wait.deadline(&limits), century);
        reader.receive(b"GET / HTTP/1.1\r\n");
        wait.received(&reader, t0);
        assert_eq!(wait.deadline(&limits), century);
    }

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

    fn read_all(reader: &mut RequestReader) -> Vec<IncomingRequest> {
        std::iter::from_fn(|| reader.next_request().unwrap()).collect()
    }

    #[test]
    fn requests_arrive_whole_whatever_the_split() {
        let wire: &[u8] = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
            POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nde\r\n1\r\nf\r\n0\r\nT: 1\r\n\r\n\
            GET /c HTTP/1.1\r\n\r\n";
        for chunk in 1..wire.len() {
            let mut reader = RequestReader::new(Limits::default(), 100);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                reader.receive(piece);
                got.extend(read_all(&mut reader));
            }
            let summary: Vec<_> = got
                .iter()
                .map(|r| (r.request.path().to_string(), r.body.clone(), r.truncated))
                .collect();
            assert_eq!(
                summary,
                [
                    ("/a".to_string(), Bytes::from_static(b"abc"), false),
                    ("/b".to_string(), Bytes::from_static(b"def"), false),
                    ("/c".to_string(), Bytes::new(), false),
                ],
                "split every {chunk} bytes"
            );
            assert!(!reader.has_partial_request());
        }
    }

    #[test]
    fn oversize_bodies_are_cut_at_the_limit_plus_one() {
        let mut reader = RequestReader::new(Limits::default(), 4);
        reader.receive(b"POST / HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n123456");
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!(
            (&request.body[..], request.truncated),
            (&b"12345"[..], true)
        );

        let mut reader = RequestReader::new(Limits::default(), 4);
        reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\nd");
        assert!(reader.next_request().unwrap().is_none());
        reader.receive(b"e");
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!(
            (&request.body[..], request.truncated),
            (&b"abcde"[..], true)
        );
        // The limit itself is fine; one byte more is over.
        let mut reader = RequestReader::new(Limits::default(), 4);
        reader.receive(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd");
        assert!(!reader.next_request().unwrap().unwrap().truncated);
    }

    #[test]
    fn bad_framing_is_400() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        ] {
            let mut reader = RequestReader::new(Limits::default(), 100);
            reader.receive(head.as_bytes());
            assert_eq!(reader.next_request().unwrap_err().status(), 400, "{head:?}");
        }
    }

    /// Request smuggling shapes (RFC 9112, 6.1 and 6.3): a request with
    /// both `Transfer-Encoding` and `Content-Length` is framed by the
    /// former and the connection closes after its response, as does an
    /// HTTP/1.0 request with `Transfer-Encoding`.
    #[test]
    fn ambiguous_framing_closes_the_connection() {
        let mut reader = RequestReader::new(Limits::default(), 100);
        reader.receive(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
              0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        );
        let first = reader.next_request().unwrap().unwrap();
        assert_eq!(first.body.len(), 0, "framed by the chunked coding");
        assert!(!first.request.keep_alive());
        let head =
            "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (request, _) = Request::parse(head.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        assert!(!request.keep_alive());
    }

    /// Every `Transfer-Encoding` line counts, as one list (RFC 9110, 5.3):
    /// chunked must be the only coding, wherever the others are.
    #[test]
    fn transfer_encoding_lines_are_read_together() {
        for head in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        ] {
            let mut reader = RequestReader::new(Limits::default(), 100);
            reader.receive(head.as_bytes());
            assert_eq!(reader.next_request().unwrap_err().status(), 400, "{head:?}");
        }
        let mut reader = RequestReader::new(Limits::default(), 100);
        reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
        assert_eq!(&reader.next_request().unwrap().unwrap().body[..], b"x");
    }

    #[test]
    fn upgrade_leftovers_are_handed_over() {
        let mut reader = RequestReader::new(Limits::default(), 100);
        reader.receive(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x80");
        assert_eq!(
            reader.next_request().unwrap().unwrap().request.path(),
            "/ws"
        );
        assert_eq!(&reader.take_buffered()[..], b"\x81\x80");
    }

    #[test]
    fn responses_by_length_chunks_and_close() {
        let mut reader = ResponseReader::new(Limits::default(), 100);
        reader.receive(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nuntil close");
        assert_eq!(
            reader.next_response().unwrap().unwrap().response.status,
            204
        );
        assert_eq!(&reader.next_response().unwrap().unwrap().body[..], b"ok");
        assert!(reader.next_response().unwrap().is_none());
        assert_eq!(
            &reader.handle_eof().unwrap().unwrap().body[..],
            b"until close"
        );
        assert_eq!(reader.handle_eof().unwrap(), None);

        let mut reader = ResponseReader::new(Limits::default(), 100);
        reader.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok");
        assert!(reader.next_response().unwrap().is_none());
        assert!(reader.handle_eof().is_err());
    }

    /// A chunk-size line needs at least one hex digit (RFC 9112, 7.1):
    /// an empty line, or an extension alone, is not a last chunk.
    /// httparse reads both as size 0, which would end the body early.
    #[test]
    fn chunk_size_lines_without_digits_are_400() {
        for body in ["\r\n\r\n", ";x\r\n\r\n", "3\r\nabc\r\n\r\n\r\n"] {
            let mut reader = RequestReader::new(Limits::default(), 100);
            reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
            reader.receive(body.as_bytes());
            assert_eq!(reader.next_request().unwrap_err().status(), 400, "{body:?}");
        }
    }

    /// A bare LF inside a chunk extension or a trailer section is refused
    /// (as hyper and Node do): a peer that ends lines at LF would frame the
    /// body differently, and read what follows as a smuggled request.
    #[test]
    fn bare_lf_in_chunk_lines_and_trailers_is_400() {
        for body in [
            "1;a\nb\r\nx\r\n0\r\n\r\n",
            "0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n",
            "0\r\nX: 1\nY: 2\r\n\r\n",
        ] {
            let mut reader = RequestReader::new(Limits::default(), 100);
            reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
            reader.receive(body.as_bytes());
            assert_eq!(reader.next_request().unwrap_err().status(), 400, "{body:?}");
        }
    }

    /// Chunk extensions and trailers do not count toward the body limit,
    /// so they have their own (16 KiB a body, as hyper and Node since
    /// CVE-2024-22019): otherwise a request could stream them forever.
    #[test]
    fn chunk_extensions_and_trailers_are_bounded() {
        let mut reader = RequestReader::new(Limits::default(), 1 << 20);
        reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("1;{}\r\nx\r\n", "e".repeat(1000));
        let mut result = Ok(None);
        for _ in 0..100 {
            reader.receive(chunk.as_bytes());
            result = reader.next_request();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().status(), 400);

        let mut reader = RequestReader::new(Limits::default(), 1 << 20);
        reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
        let trailer = format!("X: {}\r\n", "t".repeat(1000));
        let mut result = Ok(None);
        for _ in 0..100 {
            reader.receive(trailer.as_bytes());
            result = reader.next_request();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().status(), 400);

        // Modest ones are fine.
        let mut reader = RequestReader::new(Limits::default(), 100);
        reader.receive(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!(&reader.next_request().unwrap().unwrap().body[..], b"x");
    }

    /// A response without a body (1xx, 204, 304) has no framing to read:
    /// a 304 may say the `Transfer-Encoding` the full response would have
    /// had (RFC 9112, 6.1), and is not an error.
    #[test]
    fn bodyless_responses_ignore_their_framing_headers() {
        let mut reader = ResponseReader::new(Limits::default(), 100);
        reader.receive(
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
              HTTP/1.1 204 No Content\r\nContent-Length: 5, 5\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!(
            reader.next_response().unwrap().unwrap().response.status,
            304
        );
        assert_eq!(
            reader.next_response().unwrap().unwrap().response.status,
            204
        );
        assert_eq!(&reader.next_response().unwrap().unwrap().body[..], b"ok");
    }

    /// A body limit of `usize::MAX` (no limit) neither panics nor cuts
    /// every body to nothing.
    #[test]
    fn a_body_limit_of_usize_max_is_no_limit() {
        let mut reader = RequestReader::new(Limits::default(), usize::MAX);
        reader.receive(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!((&request.body[..], request.truncated), (&b"abc"[..], false));
        let mut reader = ResponseReader::new(Limits::default(), usize::MAX);
        reader
            .receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        let response = reader.next_response().unwrap().unwrap();
        assert_eq!(
            (&response.body[..], response.truncated),
            (&b"ok"[..], false)
        );
    }

    /// A server must accept a target in absolute form (RFC 9112, 3.2.2):
    /// its path and query are those of the URI, so it routes as the
    /// origin form would.
    #[test]
    fn absolute_form_targets_route_by_their_path() {
        let parse = |head: &str| {
            Request::parse(head.as_bytes(), &Limits::default())
                .unwrap()
                .unwrap()
                .0
        };
        let request = parse("GET http://example.com:8080/engine.io/?EIO=4 HTTP/1.1\r\n\r\n");
        assert_eq!(request.path(), "/engine.io/");
        assert_eq!(request.query(), Some("EIO=4"));
        assert_eq!(request.query_param("EIO").as_deref(), Some("4"));
        let request = parse("GET HTTPS://example.com?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!((request.path(), request.query()), ("/", Some("x=1")));
        let request = parse("GET /a?u=http://b/c HTTP/1.1\r\n\r\n");
        assert_eq!(
            (request.path(), request.query()),
            ("/a", Some("u=http://b/c"))
        );
    }

    /// A response head is held to the head size limit whether it arrives
    /// in pieces or at once, as a request head is.
    #[test]
    fn oversize_response_heads_are_refused_whole_too() {
        let limits = Limits {
            max_head_size: 64,
            max_headers: 4,
        };
        let head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert!(matches!(
            Response::parse(head.as_bytes(), &limits),
            Err(HttpError::HeadTooLarge(64))
        ));
    }

    /// Percent-decoding of query values: `+` is a space, an invalid or
    /// cut-short escape is kept as is, a decoding that is not UTF-8
    /// leaves the value raw; the first of duplicates wins.
    #[test]
    fn query_values_are_decoded_leniently() {
        assert_eq!(query_param("a=x+y%20z", "a").as_deref(), Some("x y z"));
        assert_eq!(query_param("a=%zz%4", "a").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("a=%4", "a").as_deref(), Some("%4"));
        assert_eq!(query_param("a=%41", "a").as_deref(), Some("A"));
        assert_eq!(query_param("a=%ff", "a").as_deref(), Some("%ff"));
        assert_eq!(query_param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(query_param("a", "a").as_deref(), Some(""));
    }

    /// No `Content-Length` on a 1xx or 204 response (RFC 9110, 8.6: a
    /// server must not send one there).
    #[test]
    fn informational_responses_have_no_content_length() {
        for status in [100, 101, 103, 204] {
            let bytes = encode_response(status, &[("X", "y")], b"");
            let text = String::from_utf8(bytes).unwrap();
            assert!(!text.contains("Content-Length"), "{text:?}");
            assert!(text.ends_with("X: y\r\n\r\n"), "{text:?}");
        }
        let bytes = encode_response(200, &[], b"");
        assert!(bytes.ends_with(b"Content-Length: 0\r\n\r\n"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn wire() -> impl Strategy<Value = Vec<u8>> {
            let request = prop_oneof![
                Just(&b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"[..]),
                Just(&b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..]),
                Just(&b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nab\r\n0\r\nT: v\r\n\r\n"[..]),
                Just(&b"GET /d HTTP/1.1\nHost: h\n\n"[..]),
                Just(&b"POST /e HTTP/1.1\r\nContent-Length: 0005\r\nExpect: 100-continue\r\n\r\nhello"[..]),
            ];
            proptest::collection::vec(request, 1..5).prop_map(|parts| parts.concat())
        }

        fn summary(reader: &mut RequestReader, pieces: &[&[u8]]) -> Vec<(String, Bytes, bool)> {
            let mut got = Vec::new();
            for piece in pieces {
                reader.receive(piece);
                let _ = reader.take_interim();
                while let Some(r) = reader.next_request().unwrap() {
                    got.push((r.request.target.clone(), r.body, r.truncated));
                }
            }
            got
        }

        proptest! {
            /// Pipelined requests come out the same however the bytes are split.
            #[test]
            fn any_split_gives_the_same_requests(wire in wire(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
                let whole = summary(&mut RequestReader::new(Limits::default(), 4), &[&wire]);
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
                at.push(0);
                at.push(wire.len());
                at.sort_unstable();
                let pieces: Vec<&[u8]> = at.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
                let mut reader = RequestReader::new(Limits::default(), 4);
                prop_assert_eq!(summary(&mut reader, &pieces), whole);
                prop_assert!(!reader.has_partial_request());
            }

            /// Any bytes, in any pieces: an answer or an error, never a panic.
            #[test]
            fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), split in 1usize..64, max in 0usize..16) {
                let mut reader = RequestReader::new(Limits { max_head_size: 256, max_headers: 8 }, max);
                let mut responses = ResponseReader::new(Limits { max_head_size: 256, max_headers: 8 }, max);
                for piece in data.chunks(split) {
                    reader.receive(piece);
                    responses.receive(piece);
                    let _ = reader.take_interim();
                    while let Ok(Some(r)) = reader.next_request() {
                        let _ = (r.request.path(), r.request.query(), r.request.keep_alive(), r.request.query_param("a"));
                    }
                    while let Ok(Some(_)) = responses.next_response() {}
                }
                let _ = responses.handle_eof();
            }

            /// Chunked bodies with random prefixes of valid-looking lines do not panic either.
            #[test]
            fn random_chunked_bodies_never_panic(body in "[0-9a-fA-F;= \r\nxT:]{0,200}") {
                let mut reader = RequestReader::new(Limits::default(), 8);
                reader.receive(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
                reader.receive(body.as_bytes());
                let _ = reader.next_request();
            }
        }
    }
}

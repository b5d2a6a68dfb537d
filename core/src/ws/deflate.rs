//! permessage-deflate (RFC 7692): parameter negotiation and the per-message
//! compressor / decompressor.
//!
//! This module owns everything that is specific to the extension:
//!
//! - **Negotiation** (RFC 7692 §7.1): [`client_offer`] builds the
//!   `Sec-WebSocket-Extensions` value a client sends, [`server_accept`] picks
//!   the first acceptable offer of a request and builds the response value,
//!   and [`client_accept`] validates the server's response. All three parse
//!   and print the header grammar of RFC 6455 §9.1 (comma-separated
//!   extensions, `;` parameters, optional quoted values, optional whitespace).
//! - **The codec** ([`Deflate`], RFC 7692 §7.2): raw DEFLATE with a sync
//!   flush whose `00 00 ff ff` tail is stripped on send and re-appended on
//!   receive, honouring the negotiated LZ77 window sizes and context-takeover
//!   rules, with a hard bound on the inflated size of a message.
//!
//! Framing (the RSV1 bit, which messages are compressed, fragmentation) is
//! the caller's business. Like the rest of the crate it is sans-IO: no IO, no
//! clocks, no locks.
//!
//! # Window size 8
//!
//! RFC 7692 allows LZ77 windows of 2^8..=2^15 bytes, but zlib (and zlib-rs)
//! cannot open a *raw* deflate stream with an 8-bit window. Negotiation
//! therefore never yields 8 in [`DeflateParams`]:
//!
//! - A window the *peer* compresses with only matters to our inflater, and an
//!   inflater with a larger window reads every stream made with a smaller one,
//!   so an 8 there is recorded (and inflated) as 9.
//! - A server asked to compress with `server_max_window_bits=8` declines that
//!   offer (the client may have sent another offer; otherwise the connection
//!   simply goes uncompressed), which keeps the server strictly compliant.
//! - A client told by the server to compress with `client_max_window_bits=8`
//!   has no such graceful way out (declining means failing the connection,
//!   yet it offered the parameter). It compresses with a 9-bit zlib window:
//!   zlib never emits a match farther back than `window - MIN_LOOKAHEAD`
//!   (512 - 262 = 250 bytes for 9 bits), so every back-reference fits the
//!   256-byte window the server allocated.
//!
//! # Memory
//!
//! zlib state is large (about 300 KB for a compressor at the default memory
//! level and a 15-bit window; about 45 KB for an inflater, whose zlib-rs
//! window is always 32 KB whatever the window bits), so [`Deflate`] allocates
//! each stream on first use and frees it again after every message when the
//! corresponding side does not take its context over. An idle connection
//! without context takeover therefore holds no zlib state at all; with
//! context takeover the state must (and does) live as long as the connection.
//! Inflated output grows in bounded steps with exact-capacity buffers, so a
//! decompression bomb costs at most the caller's size limit.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension token of RFC 7692.
const EXTENSION_NAME: &str = "permessage-deflate";

/// The four octets a sync flush ends with and which RFC 7692 §7.2.1 strips
/// from every compressed message (and §7.2.2 appends again before inflating).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest LZ77 window (in bits) zlib can use for raw deflate.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;
/// Largest LZ77 window (in bits) DEFLATE allows.
const MAX_WINDOW_BITS: u8 = 15;
/// Smallest value RFC 7692 allows on the wire.
const MIN_WIRE_WINDOW_BITS: u8 = 8;

/// Output produced per inflate call at most. Bounds how far beyond the caller's
/// limit a message can inflate (and how much is zero-filled ahead of use).
const INFLATE_STEP: usize = 64 * 1024;
/// Output space offered per deflate call at most.
const DEFLATE_STEP: usize = 64 * 1024;
/// Final (BFINAL) blocks accepted in one message. Each one restarts the
/// inflater and primes it with up to a whole window (32 KB) of output, which
/// two input bytes (an empty fixed-Huffman final block) could otherwise buy
/// again and again. RFC 7692 §7.2.3.4 shows one per message.
const MAX_FINAL_BLOCKS: u8 = 4;

/// What an endpoint offers (client) or accepts (server) for permessage-deflate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask (client) or agree (server) that the server resets its compression
    /// context after every message.
    pub server_no_context_takeover: bool,
    /// Ask (client) or require (server) that the client resets its
    /// compression context after every message.
    pub client_no_context_takeover: bool,
    /// LZ77 window the server may use when compressing (9..=15); `None` means 15.
    pub server_max_window_bits: Option<u8>,
    /// LZ77 window the client may use when compressing (9..=15); `None` means 15.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0..=9.
    pub compression_level: u32,
    /// Messages shorter than this many bytes are sent uncompressed
    /// (default 1024, as Node's `ws`: below it compression rarely saves
    /// bytes and costs a compressor flush per message).
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            compression_level: 6,
            threshold: 1024,
        }
    }
}

/// The parameters both sides agreed on in the opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// Window bits the server compresses with (9..=15).
    pub server_max_window_bits: u8,
    /// Window bits the client compresses with (9..=15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// What a bare `permessage-deflate` negotiates: full 15-bit windows and
    /// context takeover in both directions.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The compressed data is not valid DEFLATE.
    #[error("invalid compressed data")]
    Corrupt,
    /// The message inflates to more than the allowed size.
    #[error("decompressed message exceeds the size limit")]
    TooLarge,
}

/// Why a `Sec-WebSocket-Extensions` header could not be used.
///
/// [`server_accept`] returns only [`NegotiationError::Malformed`]; the other
/// variants come from [`client_accept`] (for the server they just mean "this
/// offer is declined", which is not an error, and are only logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The header value does not follow the grammar of RFC 6455 §9.1.
    #[error("malformed Sec-WebSocket-Extensions header: {0}")]
    Malformed(&'static str),
    /// The response accepts no extension at all.
    #[error("the response accepts no permessage-deflate extension")]
    MissingExtension,
    /// The response accepts an extension the client did not offer.
    #[error("the response accepts extension `{0}`, which was not offered")]
    UnexpectedExtension(String),
    /// The response accepts permessage-deflate more than once.
    #[error("the response accepts permessage-deflate more than once")]
    DuplicateExtension,
    /// A permessage-deflate parameter that RFC 7692 does not define.
    #[error("unknown permessage-deflate parameter `{0}`")]
    UnknownParameter(String),
    /// A permessage-deflate parameter given more than once.
    #[error("duplicate permessage-deflate parameter `{0}`")]
    DuplicateParameter(String),
    /// A parameter value that is missing, superfluous or out of range.
    #[error("invalid value for permessage-deflate parameter `{0}`")]
    InvalidValue(&'static str),
    /// The peer asks for an 8-bit (256-byte) compression window, which zlib
    /// cannot produce; see the module docs.
    #[error("cannot compress with the 256-byte window that `{0}=8` asks for")]
    WindowTooSmall(&'static str),
    /// The response holds a parameter (or value) the offer did not allow.
    #[error("the response holds `{0}`, which the offer did not allow")]
    ParameterNotOffered(&'static str),
    /// The response accepts an extension although the client offered none
    /// (never returned by this module; for the handshake to report).
    #[error("the response accepts an extension, but none was offered")]
    NotOffered,
}

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

/// Builds the `Sec-WebSocket-Extensions` value a client sends to offer
/// permessage-deflate with `config`.
///
/// The offer always carries `client_max_window_bits` (RFC 7692 §7.1.2.2): bare
/// when `config.client_max_window_bits` is `None`, which tells the server it
/// may limit our window, or with our own limit as a value. Window values in
/// `config` are clamped to 9..=15. `compression_level` and `threshold` are
/// local settings and never sent.
///
/// ```
/// use switchboard_core::ws::deflate::{client_offer, DeflateConfig};
///
/// assert_eq!(
///     client_offer(&DeflateConfig::default()),
///     "permessage-deflate; client_max_window_bits"
/// );
/// let config = DeflateConfig {
///     server_no_context_takeover: true,
///     server_max_window_bits: Some(10),
///     client_max_window_bits: Some(12),
///     ..DeflateConfig::default()
/// };
/// assert_eq!(
///     client_offer(&config),
///     "permessage-deflate; server_no_context_takeover; \
///      server_max_window_bits=10; client_max_window_bits=12"
/// );
/// ```
#[must_use]
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = config.server_max_window_bits {
        _ = write!(offer, "; server_max_window_bits={}", clamp_window(bits));
    }
    match config.client_max_window_bits {
        Some(bits) => _ = write!(offer, "; client_max_window_bits={}", clamp_window(bits)),
        None => offer.push_str("; client_max_window_bits"),
    }
    offer
}

/// Chooses permessage-deflate parameters for a handshake request (server side).
///
/// `offer_headers` holds every `Sec-WebSocket-Extensions` value of the request,
/// in order; each may list several comma-separated offers. The first
/// `permessage-deflate` offer that is acceptable under RFC 7692 §7.1 wins, and
/// the function returns the agreed parameters together with the value of the
/// `Sec-WebSocket-Extensions` response header. Other extensions are ignored.
///
/// An offer is declined (and the next one tried) when it holds an unknown or
/// repeated parameter, an invalid value, or `server_max_window_bits=8` (zlib
/// cannot compress with a 256-byte raw window; see the module docs). When no
/// offer is acceptable the result is `Ok(None)`: the connection proceeds
/// without compression and the response carries no extension header.
///
/// The answer honours `config`: `server_no_context_takeover` and
/// `client_no_context_takeover` are included when either the client asked for
/// them or `config` requires them; the server window is the smaller of the
/// client's request and `config.server_max_window_bits`;
/// `client_max_window_bits` is answered (with `config.client_max_window_bits`
/// or the client's own hint, whichever is smaller) only when the offer
/// carried that parameter, as RFC 7692 §7.1.2.2 requires.
///
/// # Errors
///
/// [`NegotiationError::Malformed`] when a header value does not follow the
/// grammar of RFC 6455 §9.1 (an unterminated quoted string, a stray
/// character, a missing name). Such a request is invalid and the server
/// should answer `400 Bad Request` (RFC 6455 §4.2.1); a lenient server may
/// instead treat the error like `Ok(None)` and continue without compression.
///
/// ```
/// use switchboard_core::ws::deflate::{server_accept, DeflateConfig, DeflateParams};
///
/// let offers = ["permessage-deflate; server_max_window_bits=8, \
///                permessage-deflate; client_no_context_takeover; client_max_window_bits"];
/// let (params, response) = server_accept(&offers, &DeflateConfig::default())
///     .unwrap()
///     .expect("the second offer is acceptable");
/// assert_eq!(response, "permessage-deflate; client_no_context_takeover");
/// assert!(params.client_no_context_takeover);
/// assert_eq!(params.server_max_window_bits, 15);
///
/// // Nothing acceptable: no compression.
/// let offers = ["permessage-deflate; foo=1", "x-webkit-deflate-frame"];
/// assert_eq!(server_accept(&offers, &DeflateConfig::default()), Ok(None));
/// ```
pub fn server_accept(
    offer_headers: &[&str],
    config: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    let mut extensions = Vec::new();
    for value in offer_headers {
        parse_extensions(value, &mut extensions)?;
    }
    for extension in extensions
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
    {
        match accept_offer(&extension.params, config) {
            Ok(accepted) => return Ok(Some(accepted)),
            Err(reason) => {
                tracing::debug!(%reason, "declining a permessage-deflate offer");
            }
        }
    }
    Ok(None)
}

/// Validates the server's `Sec-WebSocket-Extensions` response to the offer
/// [`client_offer`]`(config)` and returns the agreed parameters (client side).
///
/// `response_header` is the whole response value (join several header lines
/// with `", "`). Call this only when the response has the header at all; a
/// response without it means the connection is uncompressed.
///
/// Rules (RFC 7692 §7.1): exactly one extension, `permessage-deflate` (the
/// only one [`client_offer`] offers); known parameters only, none repeated;
/// window values 8..=15 written as plain decimals; `server_max_window_bits`
/// no larger than the one we asked for; `client_max_window_bits` only with a
/// value and only because we offered it, no larger than our own limit. The
/// server may add `server_no_context_takeover` or `client_no_context_takeover`
/// unasked. Where the server left out something we asked for, the result is
/// the safe reading: a server that omits `server_no_context_takeover` or
/// `server_max_window_bits` is inflated with context kept and a 15-bit window.
///
/// Window 8 never reaches the returned parameters: `server_max_window_bits=8`
/// is inflated with a 9-bit window (a larger window reads any smaller one),
/// and `client_max_window_bits=8` is compressed with 9 bits, which zlib keeps
/// within 250-byte distances (see the module docs).
///
/// # Errors
///
/// Any rule above broken; the client must then fail the WebSocket connection.
///
/// ```
/// use switchboard_core::ws::deflate::{client_accept, DeflateConfig};
///
/// let config = DeflateConfig::default();
/// let params = client_accept(
///     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
///     &config,
/// )
/// .unwrap();
/// assert!(params.server_no_context_takeover);
/// assert_eq!(params.client_max_window_bits, 10);
/// assert_eq!(params.server_max_window_bits, 15);
///
/// assert!(client_accept("permessage-deflate; foo", &config).is_err());
/// ```
pub fn client_accept(
    response_header: &str,
    config: &DeflateConfig,
) -> Result<DeflateParams, NegotiationError> {
    let mut extensions = Vec::new();
    parse_extensions(response_header, &mut extensions)?;
    let mut deflate = None;
    for extension in &extensions {
        if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(NegotiationError::UnexpectedExtension(
                extension.name.to_owned(),
            ));
        }
        if deflate.replace(extension).is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
    }
    let response = parse_params(&deflate.ok_or(NegotiationError::MissingExtension)?.params)?;

    // Judge the response against exactly what `client_offer` sent.
    let our_offer = client_offer(config);
    let mut offered = Vec::new();
    parse_extensions(&our_offer, &mut offered)?;
    let offered = parse_params(&offered[0].params)?;

    let server_max_window_bits = match response.server_max_window_bits {
        Some(bits) => {
            if offered
                .server_max_window_bits
                .is_some_and(|limit| bits > limit)
            {
                return Err(NegotiationError::ParameterNotOffered(
                    "server_max_window_bits",
                ));
            }
            bits
        }
        None => MAX_WINDOW_BITS,
    };
    let client_max_window_bits = match (
        response.client_max_window_bits,
        offered.client_max_window_bits,
    ) {
        (None, Some(Some(ours))) => ours,
        (None, _) => MAX_WINDOW_BITS,
        (Some(None), _) => return Err(NegotiationError::InvalidValue("client_max_window_bits")),
        (Some(Some(_)), None) => {
            return Err(NegotiationError::ParameterNotOffered(
                "client_max_window_bits",
            ));
        }
        (Some(Some(bits)), Some(ours)) => {
            if ours.is_some_and(|limit| bits > limit) {
                return Err(NegotiationError::ParameterNotOffered(
                    "client_max_window_bits",
                ));
            }
            bits
        }
    };
    Ok(DeflateParams {
        server_no_context_takeover: response.server_no_context_takeover,
        // Resetting our own compressor is always allowed, so honour our own
        // wish even when the server did not echo it.
        client_no_context_takeover: response.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: server_max_window_bits.max(MIN_ZLIB_WINDOW_BITS),
        client_max_window_bits: client_max_window_bits.max(MIN_ZLIB_WINDOW_BITS),
    })
}

/// Decides one permessage-deflate offer (server side).
fn accept_offer(
    params: &[Param<'_>],
    config: &DeflateConfig,
) -> Result<(DeflateParams, String), NegotiationError> {
    let offer = parse_params(params)?;

    let server_no_context_takeover =
        offer.server_no_context_takeover || config.server_no_context_takeover;
    let client_no_context_takeover =
        offer.client_no_context_takeover || config.client_no_context_takeover;

    // Our compressor's window: never above what the client asked for. An ask
    // of 8 cannot be met by zlib's raw deflate, so the offer is declined
    // rather than answered with a window the client did not allow.
    let our_bits = config
        .server_max_window_bits
        .map_or(MAX_WINDOW_BITS, clamp_window);
    let (server_bits, send_server_bits) = match offer.server_max_window_bits {
        Some(asked) if asked < MIN_ZLIB_WINDOW_BITS => {
            return Err(NegotiationError::WindowTooSmall("server_max_window_bits"));
        }
        // RFC 7692 §7.1.2.1: accepting the parameter means echoing it.
        Some(asked) => (our_bits.min(asked), true),
        None => (our_bits, our_bits < MAX_WINDOW_BITS),
    };

    // The client's window: answerable only if the client offered the
    // parameter (§7.1.2.2), and then no larger than the client's own hint.
    let (client_bits, send_client_bits) = match offer.client_max_window_bits {
        None => (MAX_WINDOW_BITS, false),
        Some(hint) => {
            let wanted = config
                .client_max_window_bits
                .map_or(MAX_WINDOW_BITS, clamp_window);
            let bits = wanted.min(hint.unwrap_or(MAX_WINDOW_BITS));
            (bits, bits < MAX_WINDOW_BITS)
        }
    };

    let mut response = String::from(EXTENSION_NAME);
    if server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if send_server_bits {
        _ = write!(response, "; server_max_window_bits={server_bits}");
    }
    if send_client_bits {
        _ = write!(response, "; client_max_window_bits={client_bits}");
    }
    let params = DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: server_bits,
        // The client may have been granted 8; our inflater reads that with 9.
        client_max_window_bits: client_bits.max(MIN_ZLIB_WINDOW_BITS),
    };
    Ok((params, response))
}

/// The permessage-deflate parameters of one offer or response, validated for
/// names, repetitions and value syntax (not yet for offer/response rules).
#[derive(Debug, Default)]
struct PmdParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the bare parameter.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_params(params: &[Param<'_>]) -> Result<PmdParams, NegotiationError> {
    const SERVER_NCT: &str = "server_no_context_takeover";
    const CLIENT_NCT: &str = "client_no_context_takeover";
    const SERVER_BITS: &str = "server_max_window_bits";
    const CLIENT_BITS: &str = "client_max_window_bits";

    let mut seen = [false; 4];
    let mut parsed = PmdParams::default();
    for param in params {
        let (index, name) = [SERVER_NCT, CLIENT_NCT, SERVER_BITS, CLIENT_BITS]
            .into_iter()
            .enumerate()
            .find(|(_, known)| param.name.eq_ignore_ascii_case(known))
            .ok_or_else(|| NegotiationError::UnknownParameter(param.name.to_owned()))?;
        if std::mem::replace(&mut seen[index], true) {
            return Err(NegotiationError::DuplicateParameter(name.to_owned()));
        }
        let value = param.value.as_deref();
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err(NegotiationError::InvalidValue(name));
                }
                if index == 0 {
                    parsed.server_no_context_takeover = true;
                } else {
                    parsed.client_no_context_takeover = true;
                }
            }
            2 => {
                let bits = value
                    .and_then(parse_window_bits)
                    .ok_or(NegotiationError::InvalidValue(name))?;
                parsed.server_max_window_bits = Some(bits);
            }
            _ => {
                let bits = match value {
                    None => None,
                    Some(value) => {
                        Some(parse_window_bits(value).ok_or(NegotiationError::InvalidValue(name))?)
                    }
                };
                parsed.client_max_window_bits = Some(bits);
            }
        }
    }
    Ok(parsed)
}

/// A window size as RFC 7692 writes it: a decimal 8..=15 without leading zeros.
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return None;
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WIRE_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// Window sizes from a [`DeflateConfig`], kept within what zlib can do.
fn clamp_window(bits: u8) -> u8 {
    bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// One element of an extension list.
#[derive(Debug)]
struct Extension<'a> {
    name: &'a str,
    params: Vec<Param<'a>>,
}

/// One `name[=value]` parameter of an extension; quoted values are unescaped.
#[derive(Debug)]
struct Param<'a> {
    name: &'a str,
    value: Option<Cow<'a, str>>,
}

/// Parses one `Sec-WebSocket-Extensions` value (RFC 6455 §9.1, with the
/// list rules of RFC 9110 §5.6.1: empty elements are ignored) and appends
/// its extensions to `out`.
fn parse_extensions<'a>(
    value: &'a str,
    out: &mut Vec<Extension<'a>>,
) -> Result<(), NegotiationError> {
    let mut cursor = Cursor {
        text: value,
        pos: 0,
    };
    loop {
        cursor.skip_whitespace();
        match cursor.peek() {
            None => return Ok(()),
            Some(b',') => {
                cursor.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cursor
            .token()
            .ok_or(NegotiationError::Malformed("expected an extension name"))?;
        let mut params = Vec::new();
        let more = loop {
            cursor.skip_whitespace();
            match cursor.peek() {
                None => break false,
                Some(b',') => {
                    cursor.pos += 1;
                    break true;
                }
                Some(b';') => {
                    cursor.pos += 1;
                    cursor.skip_whitespace();
                    let name = cursor
                        .token()
                        .ok_or(NegotiationError::Malformed("expected a parameter name"))?;
                    cursor.skip_whitespace();
                    let value =
                        if cursor.peek() == Some(b'=') {
                            cursor.pos += 1;
                            cursor.skip_whitespace();
                            Some(if cursor.peek() == Some(b'"') {
                                cursor.quoted_string()?
                            } else {
                                Cow::Borrowed(cursor.token().ok_or(NegotiationError::Malformed(
                                    "expected a parameter value",
                                ))?)
                            })
                        } else {
                            None
                        };
                    params.push(Param { name, value });
                }
                Some(_) => {
                    return Err(NegotiationError::Malformed(
                        "unexpected character after an extension or parameter",
                    ));
                }
            }
        };
        out.push(Extension { name, params });
        if !more {
            return Ok(());
        }
    }
}

/// A byte cursor over a header value. It only ever stops on ASCII bytes, so
/// every slice it hands out lies on `char` boundaries.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A non-empty RFC 9110 token, or `None` (consuming nothing).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.text[start..self.pos])
    }

    /// A quoted string starting at the opening `"`, unescaped.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, NegotiationError> {
        const UNTERMINATED: NegotiationError =
            NegotiationError::Malformed("unterminated quoted string");
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            let byte = self.peek().ok_or(UNTERMINATED)?;
            match byte {
                b'"' => {
                    let raw = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(match unescaped {
                        None => Cow::Borrowed(raw),
                        Some(bytes) => Cow::Owned(
                            String::from_utf8(bytes)
                                .map_err(|_| NegotiationError::Malformed("invalid UTF-8"))?,
                        ),
                    });
                }
                b'\\' => {
                    let buffer = unescaped
                        .get_or_insert_with(|| self.text.as_bytes()[start..self.pos].to_vec());
                    self.pos += 1;
                    let escaped = self.peek().ok_or(UNTERMINATED)?;
                    if is_control(escaped) {
                        return Err(NegotiationError::Malformed("control character"));
                    }
                    buffer.push(escaped);
                    self.pos += 1;
                }
                _ if is_control(byte) => {
                    return Err(NegotiationError::Malformed("control character"));
                }
                _ => {
                    if let Some(buffer) = unescaped.as_mut() {
                        buffer.push(byte);
                    }
                    self.pos += 1;
                }
            }
        }
    }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

// ---------------------------------------------------------------------------
// The codec
// ---------------------------------------------------------------------------

/// The negotiated compressor and decompressor of one connection.
///
/// Compression and decompression are independent directions; each holds its
/// zlib stream only while needed (see the module docs on memory).
pub struct Deflate {
    level: Compression,
    threshold: usize,
    /// Window bits of our compressor (9..=15).
    deflate_bits: u8,
    /// Our side resets its context after every message.
    deflate_reset: bool,
    /// Window bits of our inflater (9..=15).
    inflate_bits: u8,
    /// The peer resets its context after every message.
    inflate_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// Sender bytes went into the inflater since the message started or the
    /// inflater was restarted after a final block. Without them the
    /// `00 00 ff ff` tail must not be fed (it would open a stored block).
    fed: bool,
    /// Bytes inflated for the current message, used to prime a restarted
    /// inflater with the window after a final (BFINAL) block.
    message_out: usize,
    /// Final (BFINAL) blocks seen in the current message.
    final_blocks: u8,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("level", &self.level.level())
            .field("threshold", &self.threshold)
            .field("deflate_bits", &self.deflate_bits)
            .field("deflate_reset", &self.deflate_reset)
            .field("inflate_bits", &self.inflate_bits)
            .field("inflate_reset", &self.inflate_reset)
            .field("compressor_allocated", &self.compressor.is_some())
            .field("decompressor_allocated", &self.decompressor.is_some())
            .finish()
    }
}

impl Deflate {
    /// Creates the codec for one side of a connection.
    ///
    /// Our compressor uses our side's window and context rule (the `server_*`
    /// parameters when `is_server`, else the `client_*` ones); the inflater
    /// uses the peer's. Window values are clamped to 9..=15. From `config`
    /// only `compression_level` (clamped to 9) and `threshold` are used.
    /// No zlib state is allocated until the first message.
    #[must_use]
    pub fn new(params: &DeflateParams, is_server: bool, config: &DeflateConfig) -> Self {
        let (ours, theirs) = if is_server {
            (
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
            )
        } else {
            (
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
            )
        };
        Self {
            level: Compression::new(config.compression_level.min(9)),
            threshold: config.threshold,
            deflate_bits: clamp_window(ours.0),
            deflate_reset: ours.1,
            inflate_bits: clamp_window(theirs.0),
            inflate_reset: theirs.1,
            compressor: None,
            decompressor: None,
            fed: false,
            message_out: 0,
            final_blocks: 0,
        }
    }

    /// Whether a message of `len` bytes should be compressed.
    #[must_use]
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.threshold
    }

    /// Whether the compressor currently holds zlib state (it does between
    /// messages only when our side takes its context over).
    #[must_use]
    pub fn compressor_allocated(&self) -> bool {
        self.compressor.is_some()
    }

    /// Whether the decompressor currently holds zlib state (it does between
    /// messages only when the peer takes its context over).
    #[must_use]
    pub fn decompressor_allocated(&self) -> bool {
        self.decompressor.is_some()
    }

    /// Compresses one whole message payload, appending the frame payload
    /// (without the trailing `00 00 ff ff`) to `out`.
    ///
    /// An empty payload yields the single octet `0x00`: an empty stored
    /// block's header, which the receiver completes with the tail it appends
    /// (RFC 7692 §7.2.3.6). It needs no zlib state at all.
    ///
    /// # Panics
    ///
    /// Only if zlib reports a stream error, which it does solely for an
    /// internally inconsistent stream state (a bug, not a property of input).
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        if payload.is_empty() {
            // Every message ends on a sync flush, so the stream is byte
            // aligned here and the LZ77 window is unaffected by an empty block.
            out.extend_from_slice(&[0x00]);
            return;
        }
        let (level, bits) = (self.level, self.deflate_bits);
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));

        let start = out.len();
        let mut input = payload;
        loop {
            let want = input.len().saturating_add(128).min(DEFLATE_STEP);
            let at = out.len();
            out.resize(at + want, 0);
            let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
            let status = compressor.compress(input, &mut out[at..], FlushCompress::Sync);
            let consumed = (compressor.total_in() - in_before) as usize;
            let produced = (compressor.total_out() - out_before) as usize;
            out.truncate(at + produced);
            input = &input[consumed..];
            match status {
                Ok(_) => {}
                // zlib only reports a stream error for an inconsistent stream
                // state, which safe code cannot produce.
                Err(error) => unreachable!("deflate failed on a valid stream: {error}"),
            }
            // The flush is complete once all input is in and zlib left part
            // of the output space unused.
            if input.is_empty() && produced < want {
                break;
            }
        }
        let written = &out[start..];
        debug_assert!(written.ends_with(&SYNC_TAIL), "sync flush without tail");
        if written.ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        }
        if self.deflate_reset {
            // No context takeover: the next message starts from an empty
            // window anyway, so give the ~300 KB back now.
            self.compressor = None;
        }
    }

    /// Inflates one frame's payload of a compressed message into `out`. `fin`
    /// marks the last frame of the message. Fails with
    /// [`InflateError::TooLarge`] once `out` would grow beyond `limit` bytes.
    ///
    /// Pass the same `out` for every frame of a message: `limit` bounds its
    /// total length, and inflation proceeds in bounded steps so that neither
    /// the length nor the capacity of `out` grows much beyond `limit` (at
    /// most one byte past it), however well the input compresses.
    ///
    /// On `fin` the `00 00 ff ff` tail is appended (RFC 7692 §7.2.2); then,
    /// if the peer does not take its context over, the inflater is freed. A
    /// message made of zero compressed bytes is read as empty. A message may
    /// end its DEFLATE stream with a final block (§7.2.3.4): bytes after it
    /// are inflated by a fresh stream primed with the message's output, so
    /// the next messages keep decoding. Each such restart copies up to a
    /// window, so a message may hold at most four final blocks.
    ///
    /// # Errors
    ///
    /// [`InflateError::Corrupt`] for invalid DEFLATE data (including a
    /// back-reference to before the start of the history, and more than
    /// four final blocks in one message), or
    /// [`InflateError::TooLarge`]. Either way the decompressor state is
    /// dropped, the contents of `out` are unspecified and the connection
    /// should be failed (close codes 1007 / 1009 respectively).
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let result = self.decompress_inner(input, fin, out, limit);
        if result.is_err() {
            self.end_message();
            self.decompressor = None;
        }
        result
    }

    fn decompress_inner(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        if !input.is_empty() {
            self.fed = true;
            self.inflate(input, false, out, limit)?;
        }
        if fin {
            if self.fed {
                self.inflate(&SYNC_TAIL, true, out, limit)?;
            }
            self.end_message();
            if self.inflate_reset {
                self.decompressor = None;
            }
        }
        Ok(())
    }

    fn end_message(&mut self) {
        self.fed = false;
        self.message_out = 0;
        self.final_blocks = 0;
    }

    /// Feeds `input` to the inflater in bounded output steps.
    fn inflate(
        &mut self,
        mut input: &[u8],
        is_tail: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let bits = self.inflate_bits;
        // Output space in steps sized from the input (small messages get a
        // small buffer, which they keep alive), doubling up to INFLATE_STEP.
        let mut step = input.len().saturating_mul(4).clamp(256, INFLATE_STEP);
        loop {
            let budget = limit.saturating_sub(out.len());
            // One byte past the budget is enough to know it is exceeded.
            let want = budget.saturating_add(1).min(step);
            step = step.saturating_mul(2).min(INFLATE_STEP);
            grow_within_limit(out, want, limit);
            let at = out.len();
            out.resize(at + want, 0);
            let inflater = self
                .decompressor
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater.decompress(input, &mut out[at..], FlushDecompress::None);
            let consumed = (inflater.total_in() - in_before) as usize;
            let produced = (inflater.total_out() - out_before) as usize;
            out.truncate(at + produced);
            input = &input[consumed..];
            self.message_out += produced;
            if produced > budget {
                return Err(InflateError::TooLarge);
            }
            match status {
                Err(_) => return Err(InflateError::Corrupt),
                Ok(Status::StreamEnd) => {
                    self.final_blocks += 1;
                    if self.final_blocks > MAX_FINAL_BLOCKS {
                        return Err(InflateError::Corrupt);
                    }
                    self.restart_after_final_block(out);
                    if is_tail || input.is_empty() {
                        // Nothing of the sender's left: the rest of our tail
                        // (if any) must not open a block in the new stream.
                        return Ok(());
                    }
                    self.fed = true;
                    continue;
                }
                Ok(Status::Ok | Status::BufError) => {}
            }
            if produced == want {
                // Output space ran out; more may be pending.
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            if consumed == 0 {
                // Space left, input left, no progress: cannot happen with a
                // conforming inflater; refuse rather than spin.
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// The peer ended its DEFLATE stream with a final block. A final block
    /// does not end the LZ77 window of RFC 7692, so start a new stream and
    /// hand it as much of the window as this message still has in `out`.
    fn restart_after_final_block(&mut self, out: &BytesMut) {
        self.fed = false;
        let Some(inflater) = self.decompressor.as_mut() else {
            return;
        };
        inflater.reset(false);
        let window = 1usize << self.inflate_bits;
        let history = self.message_out.min(out.len()).min(window);
        if history > 0 {
            // Priming a raw inflater is always allowed; should it fail, the
            // stream merely starts with an empty window.
            let _ = inflater.set_dictionary(&out[out.len() - history..]);
        }
    }
}

/// Makes room for `want` more bytes in `out`, growing geometrically but never
/// beyond `limit + 1` bytes of capacity (or what is already needed). Unlike
/// `BytesMut::reserve`, whose doubling could allocate up to twice the limit,
/// the new buffer is allocated with an exact capacity.
fn grow_within_limit(out: &mut BytesMut, want: usize, limit: usize) {
    let needed = out.len().saturating_add(want);
    if out.capacity() >= needed {
        return;
    }
    let ceiling = limit.saturating_add(1).max(needed);
    let target = out.capacity().saturating_mul(2).max(needed).min(ceiling);
    let mut grown = BytesMut::with_capacity(target);
    grown.extend_from_slice(out);
    *out = grown;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 64 * 1024 * 1024;

    fn params(
        server_nct: bool,
        client_nct: bool,
        server_bits: u8,
        client_bits: u8,
    ) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }
    }

    fn pair(p: &DeflateParams) -> (Deflate, Deflate) {
        let config = DeflateConfig::default();
        (
            Deflate::new(p, true, &config),
            Deflate::new(p, false, &config),
        )
    }

    fn compress(d: &mut Deflate, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        d.compress(payload, &mut out);
        out.to_vec()
    }

    fn inflate(d: &mut Deflate, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = BytesMut::new();
        d.decompress(payload, true, &mut out, LIMIT)?;
        Ok(out.to_vec())
    }

    /// Text with repeats at distances up to ~20 KB, so that windows matter.
    fn sample(seed: u32, len: usize) -> Vec<u8> {
        let words = [
            "socket", "switch", "board", "frame", "deflate", "window", "message", "context",
        ];
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut text = Vec::with_capacity(len + 16);
        while text.len() < len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            text.extend_from_slice(words[(state % 8) as usize].as_bytes());
            text.extend_from_slice(format!(" {} ", state % 97).as_bytes());
        }
        text.truncate(len);
        text
    }

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    // --- codec -----------------------------------------------------------

    #[test]
    fn round_trips_every_takeover_and_window_combination() {
        let messages: Vec<Vec<u8>> = (0..6)
            .map(|i| sample(i, [10, 300, 5_000, 40_000, 0, 70_000][i as usize]))
            .collect();
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                for server_bits in [9, 12, 15] {
                    for client_bits in [9, 12, 15] {
                        let p = params(server_nct, client_nct, server_bits, client_bits);
                        let (mut server, mut client) = pair(&p);
                        for message in &messages {
                            let wire = compress(&mut server, message);
                            assert_eq!(&inflate(&mut client, &wire).unwrap(), message, "{p:?}");
                            let wire = compress(&mut client, message);
                            assert_eq!(&inflate(&mut server, &wire).unwrap(), message, "{p:?}");
                        }
                        assert_eq!(server.compressor_allocated(), !server_nct);
                        assert_eq!(client.decompressor_allocated(), !server_nct);
                        assert_eq!(client.compressor_allocated(), !client_nct);
                        assert_eq!(server.decompressor_allocated(), !client_nct);
                    }
                }
            }
        }
    }

    #[test]
    fn compressor_honours_its_window() {
        // The second message repeats bytes 5 000 back: within a 15-bit window,
        // beyond a 9-bit one. (zlib resolves matches inside one output buffer
        // without consulting the window, so only history from earlier
        // messages shows the window size.)
        let first = noise(1, 5_000);
        let second = first[..300].to_vec();

        // A 15-bit compressor reaches back and sends a few bytes...
        let mut wide = Deflate::new(
            &params(false, false, 15, 15),
            true,
            &DeflateConfig::default(),
        );
        let (_, mut reader) = pair(&params(false, false, 15, 15));
        let wire = compress(&mut wide, &first);
        assert_eq!(inflate(&mut reader, &wire).unwrap(), first);
        let wire = compress(&mut wide, &second);
        assert!(wire.len() < 50, "{}", wire.len());
        assert_eq!(inflate(&mut reader, &wire).unwrap(), second);

        // ...while a 9-bit compressor cannot and sends the bytes themselves.
        for bits in [9, 12] {
            let (mut narrow, mut reader) = pair(&params(false, false, bits, bits));
            for _ in 0..3 {
                let wire = compress(&mut narrow, &first);
                assert_eq!(inflate(&mut reader, &wire).unwrap(), first);
                let wire = compress(&mut narrow, &second);
                assert!(wire.len() > 300, "{bits}: {}", wire.len());
                assert_eq!(inflate(&mut reader, &wire).unwrap(), second);
            }
        }
    }

    #[test]
    fn many_messages_with_context_takeover_shrink() {
        let (mut server, mut client) = pair(&DeflateParams::default());
        let message = sample(3, 2_000);
        let sizes: Vec<usize> = (0..50)
            .map(|_| {
                let wire = compress(&mut server, &message);
                assert_eq!(inflate(&mut client, &wire).unwrap(), message);
                wire.len()
            })
            .collect();
        assert!(sizes[1] < sizes[0] / 4, "{sizes:?}");
        assert!(server.compressor_allocated() && client.decompressor_allocated());
    }

    #[test]
    fn many_messages_without_context_takeover_are_independent() {
        let p = params(true, true, 15, 15);
        let (mut server, mut client) = pair(&p);
        let message = sample(3, 2_000);
        let first = compress(&mut server, &message);
        for _ in 0..50 {
            let wire = compress(&mut server, &message);
            assert_eq!(wire, first);
            assert!(!server.compressor_allocated());
            // Each message inflates on its own, even by a fresh codec.
            let (_, mut fresh) = pair(&p);
            assert_eq!(inflate(&mut fresh, &wire).unwrap(), message);
            assert_eq!(inflate(&mut client, &wire).unwrap(), message);
            assert!(!client.decompressor_allocated());
        }
    }

    #[test]
    fn codec_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Deflate>();
    }

    #[test]
    fn state_is_allocated_lazily() {
        let (mut server, mut client) = pair(&DeflateParams::default());
        assert!(!server.compressor_allocated() && !server.decompressor_allocated());
        // Empty messages need no zlib state in either direction.
        assert_eq!(compress(&mut server, b""), [0x00]);
        assert!(!server.compressor_allocated());
        assert_eq!(inflate(&mut client, &[]).unwrap(), b"");
        assert!(!client.decompressor_allocated());
        let wire = compress(&mut server, b"hello hello hello");
        assert!(server.compressor_allocated());
        inflate(&mut client, &wire).unwrap();
        assert!(client.decompressor_allocated());
    }

    #[test]
    fn multi_frame_inflate_at_every_split() {
        let message = sample(11, 3_000);
        let (mut server, _) = pair(&DeflateParams::default());
        let wire = compress(&mut server, &message);
        for split in 0..=wire.len() {
            for second in [split, (split + wire.len()) / 2] {
                let (_, mut client) = pair(&DeflateParams::default());
                let mut out = BytesMut::new();
                client
                    .decompress(&wire[..split], false, &mut out, LIMIT)
                    .unwrap();
                client
                    .decompress(&wire[split..second], false, &mut out, LIMIT)
                    .unwrap();
                client
                    .decompress(&wire[second..], true, &mut out, LIMIT)
                    .unwrap();
                assert_eq!(out, message);
            }
        }
    }

    #[test]
    fn empty_messages_interleave_with_context_takeover() {
        let (mut server, mut client) = pair(&DeflateParams::default());
        for message in [&b"abcabcabc"[..], b"", b"abcabcabc", b"", b"", b"xyz"] {
            let wire = compress(&mut server, message);
            if message.is_empty() {
                assert_eq!(wire, [0x00]);
            }
            assert_eq!(inflate(&mut client, &wire).unwrap(), message);
        }
        // An empty final fragment after data (RFC 7692 §7.2.3.6).
        let mut out = BytesMut::new();
        let wire = compress(&mut server, b"fragmented");
        client.decompress(&wire, false, &mut out, LIMIT).unwrap();
        client.decompress(&[], true, &mut out, LIMIT).unwrap();
        assert_eq!(out, &b"fragmented"[..]);
    }

    #[test]
    fn rfc7692_examples() {
        let config = DeflateConfig::default();
        let fresh = || Deflate::new(&DeflateParams::default(), false, &config);

        // §7.2.3.1: a message compressed in one block, whole and fragmented.
        let hello = hex("f2 48 cd c9 c9 07 00");
        assert_eq!(inflate(&mut fresh(), &hello).unwrap(), b"Hello");
        let mut d = fresh();
        let mut out = BytesMut::new();
        d.decompress(&hello[..3], false, &mut out, LIMIT).unwrap();
        d.decompress(&hello[3..], true, &mut out, LIMIT).unwrap();
        assert_eq!(out, &b"Hello"[..]);

        // §7.2.3.2: the second message refers to the first one's window.
        let mut d = fresh();
        assert_eq!(inflate(&mut d, &hello).unwrap(), b"Hello");
        assert_eq!(inflate(&mut d, &hex("f2 00 11 00 00")).unwrap(), b"Hello");

        // §7.2.3.3: a stored (uncompressed) block.
        let stored = hex("00 05 00 fa ff 48 65 6c 6c 6f 00");
        assert_eq!(inflate(&mut fresh(), &stored).unwrap(), b"Hello");

        // §7.2.3.4: a block with BFINAL set; later messages still decode,
        // including ones that refer back past the final block.
        let mut d = fresh();
        let final_block = hex("f3 48 cd c9 c9 07 00 00");
        assert_eq!(inflate(&mut d, &final_block).unwrap(), b"Hello");
        assert_eq!(inflate(&mut d, &hello).unwrap(), b"Hello");
        let mut d = fresh();
        assert_eq!(inflate(&mut d, &final_block).unwrap(), b"Hello");
        assert_eq!(inflate(&mut d, &hex("f2 00 11 00 00")).unwrap(), b"Hello");
        // ...also without the trailing empty-block octet.
        let mut d = fresh();
        assert_eq!(inflate(&mut d, &final_block[..7]).unwrap(), b"Hello");
        assert_eq!(inflate(&mut d, &hello).unwrap(), b"Hello");

        // §7.2.3.5: two blocks in one message.
        let two = hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00");
        assert_eq!(inflate(&mut fresh(), &two).unwrap(), b"Hello");

        // §7.2.3.6: an empty fragment / message.
        assert_eq!(inflate(&mut fresh(), &[0x00]).unwrap(), b"");
    }

    #[test]
    fn a_flood_of_final_blocks_is_refused() {
        // Every final block restarts the inflater and primes it with up to a
        // whole window of the message's output. Two input bytes (an empty
        // fixed-Huffman final block) must not buy a 32 KB copy each, over
        // and over: past a few final blocks the message is refused.
        let (mut server, _) = pair(&DeflateParams::default());
        let mut wire = compress(&mut server, &sample(1, 40_000));
        wire.extend_from_slice(&SYNC_TAIL);
        let mut flood = wire.clone();
        for _ in 0..1_000 {
            flood.extend_from_slice(&hex("03 00"));
        }
        let (_, mut client) = pair(&DeflateParams::default());
        let mut out = BytesMut::new();
        assert_eq!(
            client.decompress(&flood, true, &mut out, LIMIT),
            Err(InflateError::Corrupt)
        );
        // Also when the blocks come a frame at a time.
        let (_, mut client) = pair(&DeflateParams::default());
        let mut out = BytesMut::new();
        client.decompress(&wire, false, &mut out, LIMIT).unwrap();
        let mut result = Ok(());
        for _ in 0..1_000 {
            result = client.decompress(&hex("03 00"), false, &mut out, LIMIT);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(InflateError::Corrupt));

        // A final block or two per message (RFC 7692 §7.2.3.4) still reads,
        // message after message.
        let (_, mut client) = pair(&DeflateParams::default());
        for _ in 0..10 {
            let mut message = hex("f3 48 cd c9 c9 07 00");
            message.extend_from_slice(&hex("03 00 03 00 00"));
            assert_eq!(inflate(&mut client, &message).unwrap(), b"Hello");
        }
    }

    #[test]
    fn compresses_like_rfc7692_examples() {
        let mut d = Deflate::new(&DeflateParams::default(), true, &DeflateConfig::default());
        assert_eq!(compress(&mut d, b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        assert_eq!(compress(&mut d, b"Hello"), hex("f2 00 11 00 00"));
    }

    #[test]
    fn bomb_hits_too_large_within_bounded_memory() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let (mut server, mut client) = pair(&DeflateParams::default());
        let wire = compress(&mut server, &zeros);
        assert!(wire.len() < 20_000, "{}", wire.len());

        let limit = 1024 * 1024;
        let mut out = BytesMut::new();
        assert_eq!(
            client.decompress(&wire, true, &mut out, limit),
            Err(InflateError::TooLarge)
        );
        assert!(out.len() <= limit + 1);
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
        assert!(!client.decompressor_allocated());

        // Also when the bomb arrives in many frames.
        let mut out = BytesMut::new();
        let mut result = Ok(());
        for (i, chunk) in wire.chunks(100).enumerate() {
            let fin = (i + 1) * 100 >= wire.len();
            result = client.decompress(chunk, fin, &mut out, limit);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(InflateError::TooLarge));
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn small_messages_get_small_output_buffers() {
        let (mut server, mut client) = pair(&DeflateParams::default());
        let small = sample(3, 32);
        let wire = compress(&mut server, &small);
        let mut out = BytesMut::new();
        client.decompress(&wire, true, &mut out, LIMIT).unwrap();
        assert_eq!(out, small);
        // The step starts from the input's size, not INFLATE_STEP: a short
        // message does not hold (or zero) 64 KiB.
        assert!(out.capacity() < 4096, "{}", out.capacity());

        // A highly compressible large message still inflates whole, the
        // step doubling from its small start.
        let large = vec![b'a'; 300_000];
        let wire = compress(&mut server, &large);
        let mut out = BytesMut::new();
        client.decompress(&wire, true, &mut out, LIMIT).unwrap();
        assert_eq!(out.len(), large.len());
        assert!(out.iter().all(|&b| b == b'a'));
    }

    #[test]
    fn limit_is_inclusive() {
        let message = sample(5, 1_000);
        let (mut server, _) = pair(&DeflateParams::default());
        let wire = compress(&mut server, &message);
        let (_, mut client) = pair(&DeflateParams::default());
        let mut out = BytesMut::new();
        client.decompress(&wire, true, &mut out, 1_000).unwrap();
        assert_eq!(out, message);

        let (_, mut client) = pair(&DeflateParams::default());
        let mut out = BytesMut::new();
        assert_eq!(
            client.decompress(&wire, true, &mut out, 999),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn corrupt_input_is_rejected() {
        let cases = [
            hex("ff ff ff"),             // reserved block type 11
            hex("00 05 00 00 00 41"),    // stored block with LEN != ~NLEN
            hex("f2 00 11 00 00"),       // back-reference into an empty window
            hex("fd ff ff ff ff ff ff"), // dynamic block with invalid code lengths
        ];
        for case in cases {
            let (_, mut client) = pair(&DeflateParams::default());
            assert_eq!(
                inflate(&mut client, &case),
                Err(InflateError::Corrupt),
                "{case:x?}"
            );
            assert!(!client.decompressor_allocated());
            // The codec is usable again (the connection would be failed anyway).
            assert_eq!(
                inflate(&mut client, &hex("f2 48 cd c9 c9 07 00")).unwrap(),
                b"Hello"
            );
        }
    }

    #[test]
    fn large_incompressible_and_compressible_payloads() {
        let (mut server, mut client) = pair(&DeflateParams::default());
        for message in [
            noise(1, 300_000),
            sample(9, 1_000_000),
            vec![b'a'; 2_000_000],
        ] {
            let wire = compress(&mut server, &message);
            assert_eq!(inflate(&mut client, &wire).unwrap(), message);
        }
    }

    #[test]
    fn level_zero_and_threshold() {
        let config = DeflateConfig {
            compression_level: 0,
            threshold: 100,
            ..DeflateConfig::default()
        };
        let p = DeflateParams::default();
        let mut server = Deflate::new(&p, true, &config);
        let mut client = Deflate::new(&p, false, &config);
        assert!(!server.should_compress(99));
        assert!(server.should_compress(100));
        let message = sample(2, 10_000);
        let wire = compress(&mut server, &message);
        assert!(wire.len() > message.len());
        assert_eq!(inflate(&mut client, &wire).unwrap(), message);
    }

    proptest! {
        #[test]
        fn prop_round_trip_with_random_fragmentation(
            messages in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..2_000),
                    (0u32..1_000, 0usize..20_000).prop_map(|(s, l)| sample(s, l)),
                ],
                1..5,
            ),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            server_nct in any::<bool>(),
            bits in 9u8..=15,
        ) {
            let p = params(server_nct, false, bits, 15);
            let (mut server, mut client) = pair(&p);
            for message in &messages {
                let wire = compress(&mut server, message);
                let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
                points.push(0);
                points.push(wire.len());
                points.sort_unstable();
                let mut out = BytesMut::new();
                let frames = points.len() - 1;
                for (i, window) in points.windows(2).enumerate() {
                    let fin = i + 1 == frames;
                    client.decompress(&wire[window[0]..window[1]], fin, &mut out, LIMIT).unwrap();
                }
                prop_assert_eq!(&out[..], &message[..]);
            }
        }
    }

    // --- negotiation -----------------------------------------------------

    fn accept(offers: &[&str]) -> Option<(DeflateParams, String)> {
        server_accept(offers, &DeflateConfig::default()).unwrap()
    }

    #[test]
    fn client_offers() {
        assert_eq!(
            client_offer(&DeflateConfig::default()),
            "permessage-deflate; client_max_window_bits"
        );
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(8),
            client_max_window_bits: Some(20),
            ..DeflateConfig::default()
        };
        assert_eq!(
            client_offer(&config),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9; client_max_window_bits=15"
        );
    }

    #[test]
    fn server_accepts_autobahn_offers() {
        // 13.1 .. 13.6: (requestNoContextTakeover, requestMaxWindowBits).
        let base = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
        let cases = [
            (
                "",
                "permessage-deflate; client_no_context_takeover",
                false,
                15,
            ),
            (
                "; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                true,
                15,
            ),
            (
                "; server_max_window_bits=9",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
                false,
                9,
            ),
            (
                "; server_max_window_bits=15",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
                false,
                15,
            ),
            (
                "; server_no_context_takeover; server_max_window_bits=9",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9",
                true,
                9,
            ),
            (
                "; server_no_context_takeover; server_max_window_bits=15",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=15",
                true,
                15,
            ),
        ];
        for (extra, response, server_nct, server_bits) in cases {
            let offer = format!("{base}{extra}");
            let (p, r) = accept(&[&offer]).unwrap();
            assert_eq!(r, response, "{offer}");
            assert_eq!(p, params(server_nct, true, server_bits, 15), "{offer}");
            // The Autobahn client would accept that response to its offer.
            let (mut server, mut client) = pair(&p);
            let wire = compress(&mut server, b"autobahn autobahn autobahn");
            assert_eq!(
                inflate(&mut client, &wire).unwrap(),
                b"autobahn autobahn autobahn"
            );
        }
    }

    #[test]
    fn server_takes_first_acceptable_offer() {
        // 13.7 with a window of 9: the first offer wins.
        let offers = "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                      server_no_context_takeover; server_max_window_bits=9, \
                      permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                      server_no_context_takeover, \
                      permessage-deflate; client_no_context_takeover; client_max_window_bits";
        let (p, _) = accept(&[offers]).unwrap();
        assert_eq!(p, params(true, true, 9, 15));
        // With a window of 8 (older Autobahn) the first is declined.
        let offers = offers.replace("=9", "=8");
        let (p, r) = accept(&[&offers]).unwrap();
        assert_eq!(p, params(true, true, 15, 15));
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // Across header lines, skipping other extensions and unacceptable offers.
        let (p, r) = accept(&[
            "x-webkit-deflate-frame; no_context_takeover",
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=10",
        ])
        .unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=10");
        assert_eq!(p, params(false, false, 10, 15));
    }

    #[test]
    fn server_declines_invalid_offers() {
        let declined = [
            "permessage-deflate; foo",
            "permessage-deflate; foo=bar",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=ten",
            "permessage-deflate; server_max_window_bits=\"\"",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"true\"",
            "deflate-frame",
        ];
        for offer in declined {
            assert_eq!(accept(&[offer]), None, "{offer}");
            // A following acceptable offer is still taken.
            let two = format!("{offer}, permessage-deflate");
            assert_eq!(accept(&[&two]).unwrap().1, "permessage-deflate", "{offer}");
        }
        assert_eq!(accept(&[]), None);
        assert_eq!(accept(&[""]), None);
    }

    #[test]
    fn server_rejects_malformed_headers() {
        let malformed = [
            "permessage-deflate;",
            "permessage-deflate; =10",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate x",
            "; server_no_context_takeover",
            "permessage-deflate; a=b c",
            "permessage-deflate; a=\"\u{1}\"",
            "pérmessage-deflate",
        ];
        for header in malformed {
            assert!(
                matches!(
                    server_accept(&[header], &DeflateConfig::default()),
                    Err(NegotiationError::Malformed(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn server_parses_whitespace_quotes_and_case() {
        let (p, r) = accept(&[
            " , Permessage-Deflate ;\tserver_max_window_bits = \"10\" ; CLIENT_MAX_WINDOW_BITS=\"1\\2\" ,",
        ])
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
        );
        assert_eq!(p, params(false, false, 10, 12));
        // Quoted strings may hold separators of other extensions' parameters.
        let (_, r) = accept(&["foo; bar=\"a, b; c\", permessage-deflate"]).unwrap();
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn server_applies_its_config() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(11),
            ..DeflateConfig::default()
        };
        let run = |offer: &str| server_accept(&[offer], &config).unwrap().unwrap();

        let (p, r) = run("permessage-deflate");
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
        assert_eq!(p, params(true, true, 10, 15));

        let (p, r) = run("permessage-deflate; server_max_window_bits=12; client_max_window_bits");
        assert!(
            r.ends_with("; server_max_window_bits=10; client_max_window_bits=11"),
            "{r}"
        );
        assert_eq!(p, params(true, true, 10, 11));

        let (p, r) = run("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9");
        assert!(
            r.ends_with("; server_max_window_bits=9; client_max_window_bits=9"),
            "{r}"
        );
        assert_eq!(p, params(true, true, 9, 9));
    }

    #[test]
    fn server_client_window_rules() {
        // Absent: must not be answered.
        let (p, r) = accept(&["permessage-deflate"]).unwrap();
        assert_eq!(
            (r.as_str(), p.client_max_window_bits),
            ("permessage-deflate", 15)
        );
        // A hint is echoed, so our inflater can use a smaller window...
        let (p, r) = accept(&["permessage-deflate; client_max_window_bits=10"]).unwrap();
        assert_eq!(r, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(p.client_max_window_bits, 10);
        // ...and 8 is inflated with 9.
        let (p, r) = accept(&["permessage-deflate; client_max_window_bits=8"]).unwrap();
        assert_eq!(r, "permessage-deflate; client_max_window_bits=8");
        assert_eq!(p.client_max_window_bits, 9);
        // Config 8 is clamped to what zlib can do.
        let config = DeflateConfig {
            server_max_window_bits: Some(8),
            ..DeflateConfig::default()
        };
        let (p, r) = server_accept(&["permessage-deflate"], &config)
            .unwrap()
            .unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=9");
        assert_eq!(p.server_max_window_bits, 9);
    }

    #[test]
    fn client_accepts_valid_responses() {
        let config = DeflateConfig::default();
        let ok = |response: &str| client_accept(response, &config).unwrap();
        assert_eq!(ok("permessage-deflate"), DeflateParams::default());
        assert_eq!(
            ok("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            params(true, true, 15, 15)
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=10"),
            params(false, false, 10, 15)
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=8"),
            params(false, false, 9, 15)
        );
        assert_eq!(
            ok("permessage-deflate; client_max_window_bits=12"),
            params(false, false, 15, 12)
        );
        assert_eq!(
            ok("permessage-deflate; client_max_window_bits=8"),
            params(false, false, 15, 9)
        );
        assert_eq!(
            ok("Permessage-Deflate;client_max_window_bits=\"11\""),
            params(false, false, 15, 11)
        );

        let config = DeflateConfig {
            client_no_context_takeover: true,
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(11),
            ..DeflateConfig::default()
        };
        let params_of = |response: &str| client_accept(response, &config);
        // Our own limits apply even when the server does not repeat them.
        assert_eq!(
            params_of("permessage-deflate"),
            Ok(params(false, true, 15, 11))
        );
        assert_eq!(
            params_of("permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"),
            Ok(params(false, true, 12, 10))
        );
    }

    #[test]
    fn client_rejects_invalid_responses() {
        let config = DeflateConfig {
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(11),
            ..DeflateConfig::default()
        };
        let cases = [
            ("", NegotiationError::MissingExtension),
            (" , ", NegotiationError::MissingExtension),
            (
                "permessage-deflate, permessage-deflate",
                NegotiationError::DuplicateExtension,
            ),
            (
                "permessage-deflate, x-other",
                NegotiationError::UnexpectedExtension("x-other".into()),
            ),
            (
                "permessage-deflate; foo",
                NegotiationError::UnknownParameter("foo".into()),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                NegotiationError::DuplicateParameter("client_no_context_takeover".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                NegotiationError::InvalidValue("server_max_window_bits"),
            ),
            (
                "permessage-deflate; server_max_window_bits",
                NegotiationError::InvalidValue("server_max_window_bits"),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                NegotiationError::InvalidValue("client_max_window_bits"),
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                NegotiationError::InvalidValue("server_no_context_takeover"),
            ),
            (
                "permessage-deflate; server_max_window_bits=13",
                NegotiationError::ParameterNotOffered("server_max_window_bits"),
            ),
            (
                "permessage-deflate; client_max_window_bits=12",
                NegotiationError::ParameterNotOffered("client_max_window_bits"),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"12",
                NegotiationError::Malformed("unterminated quoted string"),
            ),
        ];
        for (response, error) in cases {
            assert_eq!(client_accept(response, &config), Err(error), "{response:?}");
        }
    }

    #[test]
    fn negotiation_end_to_end() {
        let configs = [
            DeflateConfig::default(),
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                server_max_window_bits: Some(9),
                client_max_window_bits: Some(10),
                ..DeflateConfig::default()
            },
            DeflateConfig {
                server_max_window_bits: Some(12),
                client_max_window_bits: Some(9),
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            },
        ];
        for client_config in &configs {
            for server_config in &configs {
                let offer = client_offer(client_config);
                let (server_params, response) =
                    server_accept(&[&offer], server_config).unwrap().unwrap();
                let client_params = client_accept(&response, client_config).unwrap();
                // The client may reset its own compressor beyond what was agreed.
                let agreed = DeflateParams {
                    client_no_context_takeover: server_params.client_no_context_takeover
                        || client_config.client_no_context_takeover,
                    ..server_params.clone()
                };
                assert_eq!(client_params, agreed, "{offer} -> {response}");

                let mut server = Deflate::new(&server_params, true, server_config);
                let mut client = Deflate::new(&client_params, false, client_config);
                for i in 0..4 {
                    let message = sample(i, 30_000);
                    let wire = compress(&mut client, &message);
                    assert_eq!(inflate(&mut server, &wire).unwrap(), message);
                    let wire = compress(&mut server, &message);
                    assert_eq!(inflate(&mut client, &wire).unwrap(), message);
                }
            }
        }
    }
}

//! Polling payloads: the HTTP bodies of the long-polling transport, each
//! carrying one or more packets.
//!
//! - v4: packets in their text form ([`Packet::encode_text`]) joined by the
//!   record separator `\x1e`; binary messages as `b` and their base64.
//!   Always text (`text/plain; charset=UTF-8`). A text message holding
//!   U+001E cannot be carried (the protocol assumes the separator is never
//!   used in data): it would arrive split in two, as with every Engine.IO v4
//!   implementation.
//! - v3, string form: each packet as `<length>:<packet>`, where the length
//!   counts the packet's UTF-16 code units (JavaScript's `String.length`),
//!   not bytes: `€` is `2:4€`. Binary messages as `b4` and their base64.
//! - v3, binary form (`application/octet-stream`): each packet as a kind
//!   byte (`0` text, `1` binary), its length in bytes as one byte per
//!   decimal digit, `0xFF`, then the packet: text packets as their UTF-8
//!   text form, binary messages as the type byte `4` and the bytes.
//!
//! A v3 server answers in binary form when the client did not ask for
//! base64 (`b64` query parameter) and the batch holds a binary message; in
//! string form otherwise, as Node's engine.io does.

use std::fmt::Write as _;
use std::iter::FusedIterator;

use bytes::Bytes;

use super::packet::{decode_text_packet, decode_v3_binary_packet};
use super::{DecodeError, MessageData, Packet, PacketType, ProtocolVersion, Text};

/// The record separator between packets in a v4 polling payload.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// The content type of a text payload.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
/// The content type of a binary payload (v3 only).
const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// The kind of a polling body, from (or for) its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// Text: the v4 format, or the v3 string format.
    Text,
    /// Binary (`application/octet-stream`): the v3 binary format.
    Binary,
}

impl PayloadKind {
    /// The kind of a body with this `Content-Type` header (`None` when
    /// absent): binary for `application/octet-stream` (any case, any
    /// parameters, as media types compare), text otherwise. Node's
    /// engine.io compares the header with that exact string, so a body
    /// sent as `application/octet-stream; charset=...` is text to it.
    ///
    /// ```
    /// use switchboard_core::engineio::PayloadKind;
    /// assert_eq!(PayloadKind::from_content_type(Some("application/octet-stream")), PayloadKind::Binary);
    /// assert_eq!(PayloadKind::from_content_type(Some("text/plain;charset=UTF-8")), PayloadKind::Text);
    /// assert_eq!(PayloadKind::from_content_type(None), PayloadKind::Text);
    /// ```
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim);
        match media_type {
            Some(media_type) if media_type.eq_ignore_ascii_case(BINARY_CONTENT_TYPE) => {
                PayloadKind::Binary
            }
            _ => PayloadKind::Text,
        }
    }

    /// The `Content-Type` to send a body of this kind with.
    pub const fn content_type(self) -> &'static str {
        match self {
            PayloadKind::Text => TEXT_CONTENT_TYPE,
            PayloadKind::Binary => BINARY_CONTENT_TYPE,
        }
    }
}

/// Bounds on a polling body being decoded.
///
/// ```
/// use switchboard_core::engineio::PayloadLimits;
/// let limits = PayloadLimits { max_bytes: 100_000, ..PayloadLimits::default() };
/// assert_eq!(limits.max_packets, PayloadLimits::default().max_packets);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// The largest body accepted, in bytes (default 1 MB, Node's
    /// `maxHttpBufferSize`, announced to v4 clients as `maxPayload`).
    pub max_bytes: usize,
    /// The most packets accepted in one body (default 100 000). Decoding is
    /// lazy, so this bounds the work done per request rather than memory.
    pub max_packets: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits {
            max_bytes: 1_000_000,
            max_packets: 100_000,
        }
    }
}

/// An encoded polling body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodedPayload {
    /// A text body.
    Text(String),
    /// A binary body (v3 only).
    Binary(Vec<u8>),
}

impl EncodedPayload {
    /// The body's kind.
    pub fn kind(&self) -> PayloadKind {
        match self {
            EncodedPayload::Text(_) => PayloadKind::Text,
            EncodedPayload::Binary(_) => PayloadKind::Binary,
        }
    }

    /// The `Content-Type` to send the body with.
    pub fn content_type(&self) -> &'static str {
        self.kind().content_type()
    }

    /// The body's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            EncodedPayload::Text(text) => text.as_bytes(),
            EncodedPayload::Binary(data) => data,
        }
    }

    /// Gives the body's bytes up.
    pub fn into_bytes(self) -> Bytes {
        match self {
            EncodedPayload::Text(text) => text.into(),
            EncodedPayload::Binary(data) => data.into(),
        }
    }
}

/// Encodes packets into one polling body.
///
/// `supports_binary` matters to v3 only: whether the peer takes binary
/// bodies (a v3 client that did not send the `b64` query parameter). A v3
/// batch is encoded in binary form when `supports_binary` is set and it
/// holds a binary message, in string form otherwise; an empty v3 batch is
/// `0:`. An empty v4 batch is an empty body, which is not a valid payload:
/// send at least one packet.
///
/// ```
/// use switchboard_core::engineio::{encode_payload, EncodedPayload, Packet, ProtocolVersion};
/// let batch = [Packet::text("hello"), Packet::text("€")];
/// assert_eq!(
///     encode_payload(&batch, ProtocolVersion::V3, true),
///     EncodedPayload::Text("6:4hello2:4€".into()),
/// );
/// assert_eq!(
///     encode_payload(&batch, ProtocolVersion::V4, true),
///     EncodedPayload::Text("4hello\x1e4€".into()),
/// );
/// ```
pub fn encode_payload<'a, I>(
    packets: I,
    version: ProtocolVersion,
    supports_binary: bool,
) -> EncodedPayload
where
    I: IntoIterator<Item = &'a Packet>,
    I::IntoIter: Clone,
{
    let packets = packets.into_iter();
    match version {
        ProtocolVersion::V4 => EncodedPayload::Text(encode_v4(packets)),
        ProtocolVersion::V3 => {
            if supports_binary && packets.clone().any(Packet::is_binary) {
                EncodedPayload::Binary(encode_v3_binary(packets))
            } else {
                EncodedPayload::Text(encode_v3_string(packets))
            }
        }
    }
}

/// The v4 format: text forms joined by the record separator.
fn encode_v4<'a>(packets: impl Iterator<Item = &'a Packet>) -> String {
    let mut out = String::new();
    for (i, packet) in packets.enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        packet.write_text(&mut out, ProtocolVersion::V4);
    }
    out
}

/// The v3 string format: `<UTF-16 length>:<text form>` each.
fn encode_v3_string<'a>(packets: impl Iterator<Item = &'a Packet>) -> String {
    let mut out = String::new();
    let mut scratch = String::new();
    for packet in packets {
        scratch.clear();
        packet.write_text(&mut scratch, ProtocolVersion::V3);
        let _ = write!(out, "{}:", utf16_len(&scratch));
        out.push_str(&scratch);
    }
    if out.is_empty() {
        out.push_str("0:");
    }
    out
}

/// The v3 binary format: `<kind><length digits>0xFF<packet>` each.
fn encode_v3_binary<'a>(packets: impl Iterator<Item = &'a Packet>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    for packet in packets {
        match packet {
            Packet::Message(MessageData::Binary(data)) => {
                push_v3_binary_header(&mut out, 1, 1 + data.len());
                out.push(PacketType::Message.as_u8());
                out.extend_from_slice(data);
            }
            _ => {
                scratch.clear();
                packet.write_text(&mut scratch, ProtocolVersion::V3);
                push_v3_binary_header(&mut out, 0, scratch.len());
                out.extend_from_slice(scratch.as_bytes());
            }
        }
    }
    out
}

fn push_v3_binary_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend(len.to_string().bytes().map(|digit| digit - b'0'));
    out.push(0xFF);
}

/// The length of `s` in UTF-16 code units.
fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Starts decoding a polling body of the given kind.
///
/// Checks the body as a whole first (size, emptiness, UTF-8 of a text
/// body, a binary body in v4), then hands out its packets one at a time:
/// the returned [`PayloadDecoder`] yields each packet or the first error,
/// then ends. Packets before an error are valid and may be acted on, as
/// Node's engine.io does; the session should then be closed.
///
/// ```
/// use switchboard_core::engineio::{decode_payload, Packet, PayloadKind, PayloadLimits, ProtocolVersion};
/// let body = "6:4hello2:4€".as_bytes().to_vec();
/// let packets: Vec<Packet> =
///     decode_payload(body, PayloadKind::Text, ProtocolVersion::V3, &PayloadLimits::default())
///         .unwrap()
///         .collect::<Result<_, _>>()
///         .unwrap();
/// assert_eq!(packets, [Packet::text("hello"), Packet::text("€")]);
/// ```
pub fn decode_payload(
    body: impl Into<Bytes>,
    kind: PayloadKind,
    version: ProtocolVersion,
    limits: &PayloadLimits,
) -> Result<PayloadDecoder, DecodeError> {
    let body = body.into();
    if body.len() > limits.max_bytes {
        return Err(DecodeError::PayloadTooLarge {
            size: body.len(),
            limit: limits.max_bytes,
        });
    }
    if body.is_empty() {
        return Err(DecodeError::EmptyPayload);
    }
    let format = match (version, kind) {
        (ProtocolVersion::V4, PayloadKind::Binary) => return Err(DecodeError::BinaryPayloadV4),
        (ProtocolVersion::V4, PayloadKind::Text) => Format::V4,
        (ProtocolVersion::V3, PayloadKind::Text) => Format::V3String,
        (ProtocolVersion::V3, PayloadKind::Binary) => Format::V3Binary,
    };
    if kind == PayloadKind::Text && simdutf8::basic::from_utf8(&body).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok(PayloadDecoder {
        body,
        pos: 0,
        format,
        decoded: 0,
        max_packets: limits.max_packets,
        done: false,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V4,
    V3String,
    V3Binary,
}

/// The most digits accepted in a v3 length prefix (more than any body
/// within a `usize` could need).
const MAX_LENGTH_DIGITS: usize = 20;

/// The packets of a polling body, decoded one at a time (see
/// [`decode_payload`]).
///
/// Yields each packet, or the first error and then nothing. Holds the body
/// (shared, not copied); decoded text messages share its buffer.
#[derive(Debug, Clone)]
pub struct PayloadDecoder {
    /// The whole body; UTF-8 unless the format is `V3Binary`.
    body: Bytes,
    /// Where the next packet starts.
    pos: usize,
    format: Format,
    decoded: usize,
    max_packets: usize,
    /// Set after the last packet or the first error.
    done: bool,
}

impl PayloadDecoder {
    fn next_packet(&mut self) -> Option<Result<Packet, DecodeError>> {
        match self.format {
            Format::V4 => self.next_v4(),
            Format::V3String => self.next_v3_string(),
            Format::V3Binary => self.next_v3_binary(),
        }
    }

    /// The text of `start..end`, which lies on character boundaries of a
    /// UTF-8 body.
    fn text(&self, start: usize, end: usize) -> Text {
        Text::from_validated(self.body.slice(start..end))
    }

    fn next_v4(&mut self) -> Option<Result<Packet, DecodeError>> {
        let start = self.pos;
        let rest = &self.body[start..];
        let end = match rest.iter().position(|&b| b == RECORD_SEPARATOR as u8) {
            Some(i) => {
                self.pos = start + i + 1;
                start + i
            }
            None => {
                self.done = true;
                self.body.len()
            }
        };
        // Splitting at an ASCII byte keeps both sides valid UTF-8.
        Some(decode_text_packet(
            self.text(start, end),
            ProtocolVersion::V4,
        ))
    }

    fn next_v3_string(&mut self) -> Option<Result<Packet, DecodeError>> {
        loop {
            if self.pos == self.body.len() {
                return None;
            }
            let rest = &self.body[self.pos..];
            let Some(colon) = rest
                .iter()
                .take(MAX_LENGTH_DIGITS + 1)
                .position(|&b| b == b':')
            else {
                return Some(Err(unterminated_prefix(rest, |b| b.is_ascii_digit())));
            };
            let Some(units) = parse_decimal(rest[..colon].iter().map(|&b| b.wrapping_sub(b'0')))
            else {
                return Some(Err(DecodeError::InvalidLength));
            };
            let start = self.pos + colon + 1;
            let tail = &self.body[start..];
            // Walk `units` UTF-16 code units over the UTF-8 body, one
            // character (lead byte) at a time: 4-byte characters are two.
            let mut counted = 0;
            let mut len = 0;
            while counted < units && len < tail.len() {
                let (code_units, bytes) = match tail[len] {
                    0x00..=0x7F => (1, 1),
                    0xC0..=0xDF => (1, 2),
                    0xE0..=0xEF => (1, 3),
                    _ => (2, 4),
                };
                counted += code_units;
                len += bytes;
            }
            if len > tail.len() {
                // Unreachable on a body validated as UTF-8.
                return Some(Err(DecodeError::InvalidUtf8));
            }
            if counted < units {
                return Some(Err(DecodeError::Truncated));
            }
            if counted > units {
                // The length ends between the two halves of a surrogate pair.
                return Some(Err(DecodeError::InvalidLength));
            }
            self.pos = start + len;
            // `0:` (an empty batch) holds no packet.
            if len > 0 {
                return Some(decode_text_packet(
                    self.text(start, start + len),
                    ProtocolVersion::V3,
                ));
            }
        }
    }

    fn next_v3_binary(&mut self) -> Option<Result<Packet, DecodeError>> {
        if self.pos == self.body.len() {
            return None;
        }
        let rest = &self.body[self.pos..];
        let is_text = match rest[0] {
            0 => true,
            1 => false,
            _ => return Some(Err(DecodeError::InvalidLength)),
        };
        let Some(end_of_digits) = rest
            .iter()
            .skip(1)
            .take(MAX_LENGTH_DIGITS + 1)
            .position(|&b| b == 0xFF)
        else {
            return Some(Err(unterminated_prefix(&rest[1..], |b| b <= 9)));
        };
        let Some(len) = parse_decimal(rest[1..1 + end_of_digits].iter().copied()) else {
            return Some(Err(DecodeError::InvalidLength));
        };
        let start = self.pos + 1 + end_of_digits + 1;
        let available = self.body.len() - start;
        if len > available {
            return Some(Err(DecodeError::Truncated));
        }
        let end = start + len;
        self.pos = end;
        let packet = self.body.slice(start..end);
        Some(if is_text {
            match Text::try_from_bytes(packet) {
                Ok(text) => decode_text_packet(text, ProtocolVersion::V3),
                Err(_) => Err(DecodeError::InvalidUtf8),
            }
        } else {
            decode_v3_binary_packet(packet)
        })
    }
}

/// The error for a length prefix without its terminator: truncated when
/// the body ends inside an acceptable prefix, invalid otherwise.
fn unterminated_prefix(prefix: &[u8], is_digit: impl Fn(u8) -> bool) -> DecodeError {
    if prefix.len() <= MAX_LENGTH_DIGITS && prefix.iter().all(|&b| is_digit(b)) {
        DecodeError::Truncated
    } else {
        DecodeError::InvalidLength
    }
}

/// The number whose decimal digits (values 0-9) are `digits`: `None` when
/// there are none, one is out of range, or the number overflows.
fn parse_decimal(digits: impl Iterator<Item = u8>) -> Option<usize> {
    let mut value = 0usize;
    let mut any = false;
    for digit in digits {
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(usize::from(digit))?;
        any = true;
    }
    any.then_some(value)
}

impl Iterator for PayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.decoded == self.max_packets {
            // Only an error if another packet follows.
            let more = match self.format {
                Format::V4 => true,
                Format::V3String | Format::V3Binary => self.pos < self.body.len(),
            };
            self.done = true;
            return more.then_some(Err(DecodeError::TooManyPackets {
                limit: self.max_packets,
            }));
        }
        let next = self.next_packet();
        match next {
            Some(Ok(_)) => self.decoded += 1,
            Some(Err(_)) | None => self.done = true,
        }
        next
    }
}

impl FusedIterator for PayloadDecoder {}

#[cfg(test)]
mod tests {
    use super::super::packet::testing::*;
    use super::*;
    use proptest::prelude::*;

    const V3: ProtocolVersion = ProtocolVersion::V3;
    const V4: ProtocolVersion = ProtocolVersion::V4;

    fn decode(
        body: impl Into<Bytes>,
        kind: PayloadKind,
        version: ProtocolVersion,
    ) -> Result<Vec<Packet>, DecodeError> {
        decode_payload(body, kind, version, &PayloadLimits::default())?.collect()
    }

    fn text_body(body: &EncodedPayload) -> &str {
        match body {
            EncodedPayload::Text(text) => text,
            EncodedPayload::Binary(data) => panic!("binary body {data:?}"),
        }
    }

    fn hello_bin(data: &'static [u8]) -> [Packet; 2] {
        [Packet::text("hello"), Packet::binary(data)]
    }

    /// v4 document, "Packet encoding" / "HTTP long-polling".
    #[test]
    fn v4_spec_examples() {
        let packets = [
            Packet::text("hello"),
            Packet::Ping(None),
            Packet::text("world"),
        ];
        let body = encode_payload(&packets, V4, true);
        assert_eq!(text_body(&body), "4hello\x1e2\x1e4world");
        assert_eq!(body.content_type(), "text/plain; charset=UTF-8");
        assert_eq!(
            decode("4hello\x1e2\x1e4world", PayloadKind::Text, V4).unwrap(),
            packets
        );

        let packets = [
            Packet::text("hello"),
            Packet::binary(Bytes::from_static(&[1u8, 2, 3, 4])),
        ];
        // Binary messages are base64 whether or not the peer supports binary.
        for supports_binary in [true, false] {
            let body = encode_payload(&packets, V4, supports_binary);
            assert_eq!(text_body(&body), "4hello\x1ebAQIDBA==");
        }
        assert_eq!(
            decode("4hello\x1ebAQIDBA==", PayloadKind::Text, V4).unwrap(),
            packets
        );
    }

    /// engine.io-parser 4.0.0 changelog, "Encoding changes between v3 and
    /// v4" (outputs of the reference parsers).
    #[test]
    fn v3_v4_changelog_examples() {
        let texts = [Packet::text("hello"), Packet::text("€€€")];
        assert_eq!(
            text_body(&encode_payload(&texts, V3, true)),
            "6:4hello4:4€€€"
        );
        assert_eq!(
            text_body(&encode_payload(&texts, V4, true)),
            "4hello\x1e4€€€"
        );
        assert_eq!(
            decode("6:4hello4:4€€€", PayloadKind::Text, V3).unwrap(),
            texts
        );
        assert_eq!(
            decode("4hello\x1e4€€€", PayloadKind::Text, V4).unwrap(),
            texts
        );

        let mixed = hello_bin(&[1, 2, 3]);
        let v3_binary: &[u8] = &[
            0x00, 0x06, 0xff, 0x34, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x04, 0xff, 0x04, 0x01,
            0x02, 0x03,
        ];
        let body = encode_payload(&mixed, V3, true);
        assert_eq!(body, EncodedPayload::Binary(v3_binary.to_vec()));
        assert_eq!(body.content_type(), "application/octet-stream");
        assert_eq!(decode(v3_binary, PayloadKind::Binary, V3).unwrap(), mixed);
        assert_eq!(
            text_body(&encode_payload(&mixed, V4, true)),
            "4hello\x1ebAQID"
        );
    }

    /// v3 document, "Payload" and "Sample session".
    #[test]
    fn v3_spec_examples() {
        // "Example without binary": characters, not bytes.
        let packets = [Packet::text("hello"), Packet::text("€")];
        assert_eq!(
            text_body(&encode_payload(&packets, V3, true)),
            "6:4hello2:4€"
        );
        assert_eq!(
            decode("6:4hello2:4€", PayloadKind::Text, V3).unwrap(),
            packets
        );

        // "Example with binary (either the client or the transport does not
        // support binary)".
        let packets = [
            Packet::text("€"),
            Packet::binary(Bytes::from_static(&[1u8, 2, 3, 4])),
        ];
        assert_eq!(
            text_body(&encode_payload(&packets, V3, false)),
            "2:4€10:b4AQIDBA=="
        );
        assert_eq!(
            decode("2:4€10:b4AQIDBA==", PayloadKind::Text, V3).unwrap(),
            packets
        );

        // "Example with binary (both the client and the transport support
        // binary)". The document shows `01 04 ff 01 02 03 04` for the binary
        // packet, leaving out its type byte; engine.io-parser 2.x (which
        // prepends the type byte to binary packets, see the changelog
        // example above) writes `01 05 ff 04 01 02 03 04`.
        let binary: &[u8] = &[
            0x00, 0x04, 0xff, 0x34, 0xe2, 0x82, 0xac, 0x01, 0x05, 0xff, 0x04, 0x01, 0x02, 0x03,
            0x04,
        ];
        assert_eq!(
            encode_payload(&packets, V3, true),
            EncodedPayload::Binary(binary.to_vec())
        );
        assert_eq!(decode(binary, PayloadKind::Binary, V3).unwrap(), packets);

        // "Sample session".
        let open = r#"96:0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#;
        let decoded = decode(open, PayloadKind::Text, V3).unwrap();
        assert!(matches!(&decoded[..], [Packet::Open(open)] if open.ping_timeout == 5000));
        assert_eq!(text_body(&encode_payload(&decoded, V3, true)), open);
        assert_eq!(
            decode("4:4hey", PayloadKind::Text, V3).unwrap(),
            [Packet::text("hey")]
        );
        assert_eq!(
            decode("6:4hello6:4world", PayloadKind::Text, V3).unwrap(),
            [Packet::text("hello"), Packet::text("world")]
        );
    }

    /// Outputs of engine.io-parser 2.2.1 (protocol v3), as the Node peers
    /// in tests/interop produce them.
    #[test]
    fn v3_reference_parser_outputs() {
        // Astral characters count as two UTF-16 code units.
        let packets = [Packet::text("😀"), Packet::Ping(Some("probe".into()))];
        assert_eq!(
            text_body(&encode_payload(&packets, V3, false)),
            "3:4😀6:2probe"
        );
        assert_eq!(
            decode("3:4😀6:2probe", PayloadKind::Text, V3).unwrap(),
            packets
        );
        // An empty batch.
        assert_eq!(text_body(&encode_payload(&[], V3, true)), "0:");
        assert_eq!(decode("0:", PayloadKind::Text, V3).unwrap(), []);
        // Empty messages, and a length of ten or more.
        let packets = [
            Packet::text(""),
            Packet::binary(Bytes::new()),
            Packet::text("0123456789"),
        ];
        let binary: &[u8] = &[
            0, 1, 0xff, b'4', 1, 1, 0xff, 4, 0, 1, 1, 0xff, b'4', b'0', b'1', b'2', b'3', b'4',
            b'5', b'6', b'7', b'8', b'9',
        ];
        assert_eq!(
            encode_payload(&packets, V3, true),
            EncodedPayload::Binary(binary.to_vec())
        );
        assert_eq!(decode(binary, PayloadKind::Binary, V3).unwrap(), packets);
        assert_eq!(
            text_body(&encode_payload(&packets, V3, false)),
            "1:42:b411:40123456789"
        );
    }

    #[test]
    fn payload_errors() {
        use DecodeError::*;
        let text = PayloadKind::Text;
        let binary = PayloadKind::Binary;
        let cases: &[(&'static [u8], PayloadKind, ProtocolVersion, DecodeError)] = &[
            (b"", text, V4, EmptyPayload),
            (b"", text, V3, EmptyPayload),
            (b"", binary, V3, EmptyPayload),
            (b"4a", binary, V4, BinaryPayloadV4),
            (b"4\xff", text, V4, InvalidUtf8),
            (b"2:4\xc3", text, V3, InvalidUtf8),
            // v4
            (b"4a\x1e", text, V4, EmptyPacket),
            (b"\x1e4a", text, V4, EmptyPacket),
            (b"4a\x1e9", text, V4, UnknownPacketType('9')),
            (b"b*", text, V4, InvalidBase64),
            // v3 string
            (b"2:4a3", text, V3, Truncated),
            (b"3:4a", text, V3, Truncated),
            (b"12", text, V3, Truncated),
            (b"12a", text, V3, InvalidLength),
            (b"\x00\x01\x0a", binary, V3, InvalidLength),
            (b":4a", text, V3, InvalidLength),
            (b"a:4a", text, V3, InvalidLength),
            (b"-1:4", text, V3, InvalidLength),
            (b"+1:4", text, V3, InvalidLength),
            (b" 1:4", text, V3, InvalidLength),
            (b"1e0:4", text, V3, InvalidLength),
            (b"99999999999999999999:4", text, V3, InvalidLength),
            (b"000000000000000000001:4", text, V3, InvalidLength),
            (b"111111111111111111111111", text, V3, InvalidLength),
            ("1:😀".as_bytes(), text, V3, InvalidLength),
            (b"1:9", text, V3, UnknownPacketType('9')),
            (b"6:b2AQID", text, V3, BinaryNotMessage(PacketType::Ping)),
            // v3 binary
            (b"\x02\x01\xff4", binary, V3, InvalidLength),
            (b"\x00\xff4", binary, V3, InvalidLength),
            (b"\x00\x0a\xff4", binary, V3, InvalidLength),
            (b"\x00\x01", binary, V3, Truncated),
            (b"\x00", binary, V3, Truncated),
            (b"\x00\x02\xff4", binary, V3, Truncated),
            (b"\x00\x00\xff", binary, V3, EmptyPacket),
            (b"\x01\x00\xff", binary, V3, EmptyPacket),
            (b"\x00\x02\xff4\xff", binary, V3, InvalidUtf8),
            (
                b"\x01\x02\xff\x02\x01",
                binary,
                V3,
                BinaryNotMessage(PacketType::Ping),
            ),
            (
                b"\x01\x02\xff\x09\x01",
                binary,
                V3,
                UnknownPacketType('\u{9}'),
            ),
            (
                &[
                    0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0xff,
                ],
                binary,
                V3,
                InvalidLength,
            ),
            (
                &[
                    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                ],
                binary,
                V3,
                InvalidLength,
            ),
        ];
        for (body, kind, version, error) in cases {
            let result = decode(*body, *kind, *version);
            assert_eq!(
                result.as_ref(),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bad_open_in_a_payload() {
        let result = decode("4a\x1e0{}", PayloadKind::Text, V4);
        assert!(
            matches!(result, Err(DecodeError::InvalidOpen(_))),
            "{result:?}"
        );
    }

    #[test]
    fn packets_before_an_error_are_yielded() {
        let limits = PayloadLimits::default();
        let mut packets =
            decode_payload(&b"4a\x1e9\x1e4b"[..], PayloadKind::Text, V4, &limits).unwrap();
        assert_eq!(packets.next(), Some(Ok(Packet::text("a"))));
        assert_eq!(
            packets.next(),
            Some(Err(DecodeError::UnknownPacketType('9')))
        );
        assert_eq!(packets.next(), None);
        assert_eq!(packets.next(), None);
    }

    #[test]
    fn limits() {
        let limits = PayloadLimits {
            max_bytes: 5,
            max_packets: 2,
        };
        let too_large = decode_payload(&b"4hello"[..], PayloadKind::Text, V4, &limits);
        assert_eq!(
            too_large.unwrap_err(),
            DecodeError::PayloadTooLarge { size: 6, limit: 5 }
        );
        let limits = PayloadLimits {
            max_bytes: 100,
            max_packets: 2,
        };

        let two: Result<Vec<_>, _> = decode_payload(&b"2\x1e3"[..], PayloadKind::Text, V4, &limits)
            .unwrap()
            .collect();
        assert_eq!(two.unwrap(), [Packet::Ping(None), Packet::Pong(None)]);
        let three: Result<Vec<_>, _> =
            decode_payload(&b"2\x1e3\x1e6"[..], PayloadKind::Text, V4, &limits)
                .unwrap()
                .collect();
        assert_eq!(three, Err(DecodeError::TooManyPackets { limit: 2 }));

        let two: Result<Vec<_>, _> = decode_payload(&b"1:21:3"[..], PayloadKind::Text, V3, &limits)
            .unwrap()
            .collect();
        assert_eq!(two.unwrap(), [Packet::Ping(None), Packet::Pong(None)]);
        let three: Result<Vec<_>, _> =
            decode_payload(&b"1:21:31:"[..], PayloadKind::Text, V3, &limits)
                .unwrap()
                .collect();
        assert_eq!(three, Err(DecodeError::TooManyPackets { limit: 2 }));
        let three: Result<Vec<_>, _> = decode_payload(
            &b"\x00\x01\xff2\x00\x01\xff3\x00\x01\xff6"[..],
            PayloadKind::Binary,
            V3,
            &limits,
        )
        .unwrap()
        .collect();
        assert_eq!(three, Err(DecodeError::TooManyPackets { limit: 2 }));
    }

    #[test]
    fn decoded_text_shares_the_body() {
        let body = Bytes::from_static(b"4first\x1e4second");
        let limits = PayloadLimits::default();
        let packets: Vec<_> = decode_payload(body.clone(), PayloadKind::Text, V4, &limits)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let Packet::Message(MessageData::Text(second)) = &packets[1] else {
            panic!()
        };
        assert_eq!(second.as_bytes().as_ptr(), body[8..].as_ptr());
    }

    #[test]
    fn content_types() {
        use PayloadKind::*;
        for (header, kind) in [
            (Some("application/octet-stream"), Binary),
            (Some("Application/Octet-Stream; charset=x"), Binary),
            (Some(" application/octet-stream "), Binary),
            (Some("text/plain; charset=UTF-8"), Text),
            (Some("text/html"), Text),
            (Some(""), Text),
            (None, Text),
        ] {
            assert_eq!(PayloadKind::from_content_type(header), kind, "{header:?}");
        }
        assert_eq!(Binary.content_type(), "application/octet-stream");
        let body = EncodedPayload::Binary(vec![1]);
        assert_eq!(body.as_bytes(), [1]);
        assert_eq!(body.into_bytes(), Bytes::from_static(&[1]));
    }

    fn round_trip(
        body: EncodedPayload,
        version: ProtocolVersion,
    ) -> Result<Vec<Packet>, DecodeError> {
        let limits = PayloadLimits {
            max_bytes: usize::MAX,
            max_packets: usize::MAX,
        };
        let kind = body.kind();
        decode_payload(body.into_bytes(), kind, version, &limits)?.collect()
    }

    proptest! {
        #[test]
        fn v4_round_trip(packets in proptest::collection::vec(arb_packet(true), 1..8)) {
            let body = encode_payload(&packets, V4, true);
            prop_assert_eq!(body.kind(), PayloadKind::Text);
            prop_assert_eq!(round_trip(body, V4), Ok(packets));
        }

        #[test]
        fn v3_string_round_trip(packets in proptest::collection::vec(arb_packet(false), 0..8)) {
            let body = encode_payload(&packets, V3, false);
            prop_assert_eq!(body.kind(), PayloadKind::Text);
            prop_assert_eq!(round_trip(body, V3), Ok(packets));
        }

        #[test]
        fn v3_binary_round_trip(packets in proptest::collection::vec(arb_packet(false), 1..8)) {
            // Binary form even without a binary message.
            let body = EncodedPayload::Binary(encode_v3_binary(packets.iter()));
            prop_assert_eq!(round_trip(body, V3), Ok(packets.clone()));
            // And as the encoder chooses.
            let body = encode_payload(&packets, V3, true);
            prop_assert_eq!(body.kind() == PayloadKind::Binary, packets.iter().any(Packet::is_binary));
            prop_assert_eq!(round_trip(body, V3), Ok(packets));
        }

        #[test]
        fn v3_string_length_counts_utf16(text in any::<String>()) {
            let body = encode_payload(&[Packet::text(text.clone())], V3, false);
            let expected = format!("{}:4{text}", 1 + text.encode_utf16().count());
            prop_assert_eq!(text_body(&body), expected.as_str());
        }

        #[test]
        fn any_body_decodes_or_fails(
            body in proptest::collection::vec(any::<u8>(), 0..128),
            version in arb_version(),
            binary in any::<bool>(),
        ) {
            let kind = if binary { PayloadKind::Binary } else { PayloadKind::Text };
            let limits = PayloadLimits { max_bytes: 100, max_packets: 10 };
            if let Ok(packets) = decode_payload(body.clone(), kind, version, &limits) {
                // At most one item past the packet limit (the error).
                prop_assert!(packets.count() <= 11);
            }
        }

        #[test]
        fn wire_like_bodies_decode_or_fail(
            text in "[0-9:b\\x1e4€😀A-Z=]{0,48}",
            binary in proptest::collection::vec(
                prop_oneof![0u8..=10, Just(0xff), Just(b'4'), Just(b'2'), any::<u8>()],
                0..48,
            ),
            version in arb_version(),
        ) {
            if let Ok(packets) = decode_payload(text, PayloadKind::Text, version, &PayloadLimits::default()) {
                let _ = packets.count();
            }
            if let Ok(packets) = decode_payload(binary, PayloadKind::Binary, version, &PayloadLimits::default()) {
                let _ = packets.count();
            }
        }
    }
}

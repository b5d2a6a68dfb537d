//! [`Payload`]: an event's arguments as received, binary included, ready to
//! be sent on unchanged.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use switchboard_core::socketio::{Binary, DEFAULT_NAMESPACE, Packet, PacketKind, RawJson};

/// Arguments as they arrived: JSON values, with each binary attachment
/// still in its place. Serializing a `Payload` (for an emit or an ack)
/// writes the values as arguments and the attachments back as binary, so
/// `socket.emit("echo", &payload)` returns exactly what came in.
///
/// ```
/// use switchboard_async::socketio::Payload;
/// use switchboard_core::socketio::{Binary, Packet, encode_event};
/// let packet = Packet::event("/", "file", &("a.png", Binary::from(vec![1, 2])), None).unwrap();
/// let payload = Payload::from_packet(&packet).unwrap();
/// assert_eq!(payload.values()[0], "a.png");
/// let again = encode_event("/", "file", &payload, None).unwrap();
/// assert_eq!(again.text, r#"51-["file","a.png",{"_placeholder":true,"num":0}]"#);
/// assert_eq!(again.attachments, [vec![1u8, 2]]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    values: Vec<Value>,
    attachments: Vec<Bytes>,
}

impl Payload {
    /// The arguments of an event or ack packet.
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::Packet;
    ///
    /// // An ack answering with two values (`callback("ok", 42)` on the client).
    /// let ack = Packet::ack("/", 7, &("ok", 42)).unwrap();
    /// let payload = Payload::from_packet(&ack)?;
    /// assert_eq!(payload.values(), [json!("ok"), json!(42)]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_packet(
        packet: &switchboard_core::socketio::Packet,
    ) -> Result<Self, serde_json::Error> {
        Ok(Payload {
            values: packet.args()?,
            attachments: packet.attachments.clone(),
        })
    }

    /// Arguments without binary data.
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::encode_event;
    ///
    /// let payload = Payload::from_values(vec![json!("alice"), json!({ "x": 3 })]);
    /// let packet = encode_event("/", "move", &payload, None).unwrap();
    /// assert_eq!(packet.text, r#"2["move","alice",{"x":3}]"#);
    /// ```
    pub fn from_values(values: Vec<Value>) -> Self {
        Payload {
            values,
            attachments: Vec::new(),
        }
    }

    /// The arguments, binary values as their placeholder objects
    /// (`{"_placeholder":true,"num":N}`, see [`Payload::attachments`]).
    ///
    /// ```
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::{Binary, Packet};
    ///
    /// let packet = Packet::event("/", "upload", &("a.png", Binary::from(vec![1, 2])), None).unwrap();
    /// let payload = Payload::from_packet(&packet).unwrap();
    /// assert_eq!(payload.values()[0], "a.png");
    /// assert_eq!(payload.values()[1]["_placeholder"], true); // the binary
    /// assert_eq!(payload.attachments()[0], vec![1u8, 2]);
    /// ```
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The binary attachments, by placeholder number.
    ///
    /// See [`Payload::values`]'s example.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// How many arguments.
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    ///
    /// assert_eq!(Payload::from_values(vec![json!(1), json!("two")]).len(), 2);
    /// assert!(Payload::default().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no arguments.
    ///
    /// See [`Payload::len`]'s example.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Reads the arguments as `T` (a tuple, a `Vec`, or a struct taking
    /// a sequence), as [`Event::args`](super::Event::args) does: binary
    /// values come back as [`Binary`] from their attachments.
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    ///
    /// let answer = Payload::from_values(vec![json!(3), json!("three")]);
    /// let (n, name): (u32, String) = answer.args().unwrap();
    /// assert_eq!((n, name.as_str()), (3, "three"));
    /// assert_eq!(answer.arg::<String>(1).unwrap(), "three");
    /// assert_eq!(answer.arg::<Option<u32>>(2).unwrap(), None); // missing
    /// ```
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        self.as_packet()?.args()
    }

    /// Reads argument `index` as `T`; a missing argument reads as `None`
    /// into an `Option`, an error otherwise (see [`Payload::args`]).
    ///
    /// ```
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::{Binary, Packet};
    ///
    /// let packet = Packet::event("/", "upload", &("a.png", Binary::from(vec![1, 2])), None).unwrap();
    /// let payload = Payload::from_packet(&packet)?;
    /// assert_eq!(payload.arg::<String>(0)?, "a.png");
    /// assert_eq!(payload.arg::<Binary>(1)?.0, vec![1u8, 2]); // from its attachment
    /// assert_eq!(payload.arg::<Option<u32>>(2)?, None); // not sent
    /// assert!(payload.arg::<u32>(0).is_err()); // not a number
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, serde_json::Error> {
        self.as_packet()?.arg(index)
    }

    /// The arguments as an ack packet's, to read them through the packet
    /// decoder's typed readers (which resolve binary placeholders).
    fn as_packet(&self) -> Result<Packet, serde_json::Error> {
        let mut packet = Packet::new(PacketKind::Ack, DEFAULT_NAMESPACE);
        packet.data = Some(RawJson::new(serde_json::to_string(&self.values)?)?);
        packet.attachments = self.attachments.clone();
        Ok(packet)
    }

    /// The arguments after the first `n`.
    ///
    /// A relay whose first argument names the room, forwarding the rest (binary
    /// values included) unchanged:
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::encode_event;
    ///
    /// let received = Payload::from_values(vec![json!("lobby"), json!("hi"), json!(2)]);
    /// let room: String = received.arg(0).unwrap();
    /// let forwarded = encode_event("/", "say", &received.skip(1), None).unwrap();
    /// assert_eq!((room.as_str(), forwarded.text.as_str()), ("lobby", r#"2["say","hi",2]"#));
    /// ```
    pub fn skip(&self, n: usize) -> Payload {
        Payload {
            values: self.values.iter().skip(n).cloned().collect(),
            attachments: self.attachments.clone(),
        }
    }

    /// The arguments with `value` put first.
    ///
    /// A relay that tells the receivers who sent it:
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::Payload;
    /// use switchboard_core::socketio::encode_event;
    ///
    /// let received = Payload::from_values(vec![json!("hi")]);
    /// let relayed = received.prepend(json!("alice"));
    /// let packet = encode_event("/", "chat", &relayed, None).unwrap();
    /// assert_eq!(packet.text, r#"2["chat","alice","hi"]"#);
    /// ```
    pub fn prepend(&self, value: Value) -> Payload {
        let mut values = Vec::with_capacity(self.values.len() + 1);
        values.push(value);
        values.extend(self.values.iter().cloned());
        Payload {
            values,
            attachments: self.attachments.clone(),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.values.len()))?;
        for value in &self.values {
            seq.serialize_element(&WithBinary(value, &self.attachments))?;
        }
        seq.end()
    }
}

/// A value whose placeholder objects serialize as their attachments.
struct WithBinary<'a>(&'a Value, &'a [Bytes]);

/// The attachment `value` stands for: an object with `_placeholder: true`
/// and an integer `num`, whatever else it holds, as the packet decoder
/// (and Node's parser) reads one.
fn placeholder(value: &Value, attachments: &[Bytes]) -> Option<Bytes> {
    let object = value.as_object()?;
    if object.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    let num = usize::try_from(object.get("num")?.as_u64()?).ok()?;
    attachments.get(num).cloned()
}

impl Serialize for WithBinary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let WithBinary(value, attachments) = *self;
        if let Some(bytes) = placeholder(value, attachments) {
            return Binary(bytes).serialize(serializer);
        }
        match value {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&WithBinary(item, attachments))?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, &WithBinary(item, attachments))?;
                }
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_resolve_binary_placeholders() {
        let packet = Packet::event("/", "file", &("a.png", Binary::from(vec![1, 2])), Some(7))
            .expect("an event");
        let payload = Payload::from_packet(&packet).expect("its arguments");
        let (name, data): (String, Binary) = payload.args().expect("typed");
        assert_eq!((name.as_str(), &data.0[..]), ("a.png", &[1u8, 2][..]));
        assert_eq!(payload.arg::<Binary>(1).expect("typed").0, vec![1u8, 2]);
        assert!(payload.arg::<u32>(0).is_err(), "a string is not a number");
        assert!(
            payload.arg::<String>(2).is_err(),
            "missing, and not an Option"
        );
    }

    /// A placeholder is what the packet decoder takes for one (Node's
    /// parser too): `_placeholder: true` and a `num`, whatever else the
    /// object holds. A payload sent on unchanged keeps each such binary,
    /// as a typed read of it finds it.
    #[test]
    fn a_relayed_payload_keeps_every_binary_the_decoder_saw() {
        let mut packet = Packet::new(PacketKind::BinaryEvent, DEFAULT_NAMESPACE);
        packet.data = Some(
            RawJson::new(r#"["file",{"num":0,"_placeholder":true,"name":"a.png"}]"#.to_owned())
                .expect("JSON"),
        );
        packet.attachments = vec![Bytes::from_static(&[1, 2])];
        let payload = Payload::from_packet(&packet).expect("its arguments");
        assert_eq!(payload.arg::<Binary>(0).expect("a binary").0, vec![1u8, 2]);
        let relayed =
            switchboard_core::socketio::encode_event("/", "file", &payload, None).expect("encoded");
        assert_eq!(relayed.attachments, [vec![1u8, 2]], "{}", relayed.text);
    }
}

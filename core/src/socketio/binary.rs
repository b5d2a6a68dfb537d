//! Binary attachments in serde: the [`Binary`] type, and the serializer and
//! deserializer wrappers that swap binary values for numbered placeholders
//! (`{"_placeholder":true,"num":N}`) on the way out and back on the way in.
//!
//! - [`BinSer`] wraps any serializer. A value that serializes as bytes
//!   (`serialize_bytes`: [`Binary`], `serde_bytes`, ...) becomes the next
//!   placeholder, and its bytes are appended to the attachments.
//! - [`BinDe`] wraps any deserializer. A value that deserializes from bytes
//!   (`deserialize_bytes`/`deserialize_byte_buf`) reads a placeholder and is
//!   handed the attachment it points to; everything else is read as is (a
//!   placeholder read into a `serde_json::Value` stays an object).
//! - [`Walk`] walks a payload once and checks that every placeholder points
//!   at one of the attachments.
//! - [`Reading`] puts the attachments of the packet being read where a
//!   [`Binary`] finds them when its placeholder reaches it as a plain map:
//!   serde reads `#[serde(flatten)]` fields, untagged and internally tagged
//!   enums from a buffer of its own, past [`BinDe`].
//!
//! Serde moves bytes as `&[u8]`, which would make every attachment a copy.
//! [`Binary`] avoids it: it leaves a clone of its [`Bytes`] (a reference
//! count) in a per-thread slot right before it passes its slice on, and
//! [`BinSer`] (or [`Binary`]'s visitor, on the way in) takes the clone
//! instead of copying when the slice it is handed is that same memory. The
//! pointer check makes a stale slot harmless: a mismatch falls back to a
//! copy.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, Serializer};

/// Binary data inside an event's arguments: sent as a separate Engine.IO
/// binary message, with a placeholder in the packet's JSON.
///
/// Use it as a field, an argument or an element anywhere in the data given
/// to [`encode_event`](super::encode_event) or read with
/// [`Packet::args`](super::Packet::args). Any value that serializes with
/// `serialize_bytes` (e.g. `serde_bytes::ByteBuf`) is treated the same way;
/// `Binary` additionally moves its bytes without copying them.
///
/// A `Vec<u8>` or `[u8; N]` is not binary data to serde: it is sent as an
/// array of numbers. Wrap it in a `Binary` to send it as an attachment.
///
/// Outside Socket.IO (e.g. with plain `serde_json`), a `Binary` serializes
/// as an array of numbers, and it deserializes from bytes, an array of
/// numbers, or a string's UTF-8 bytes.
///
/// ```
/// use switchboard_core::socketio::Binary;
/// let blob = Binary::from(vec![1u8, 2, 3]);
/// assert_eq!(&blob[..], &[1, 2, 3]);
/// assert_eq!(serde_json::to_string(&blob).unwrap(), "[1,2,3]");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binary(pub Bytes);

impl Binary {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Binary(bytes.into())
    }

    /// Gives the bytes up.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Binary {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({:?})", self.0)
    }
}

impl From<Bytes> for Binary {
    fn from(bytes: Bytes) -> Self {
        Binary(bytes)
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Binary(bytes.into())
    }
}

impl From<&'static [u8]> for Binary {
    fn from(bytes: &'static [u8]) -> Self {
        Binary(Bytes::from_static(bytes))
    }
}

impl From<Binary> for Bytes {
    fn from(binary: Binary) -> Self {
        binary.0
    }
}

thread_local! {
    /// The [`Bytes`] whose slice is being passed through serde right now
    /// (see the module documentation).
    static HANDOFF: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Leaves `bytes` in the hand-off slot until dropped.
struct Handoff;

impl Handoff {
    fn offer(bytes: &Bytes) -> Handoff {
        HANDOFF.with(|slot| *slot.borrow_mut() = Some(bytes.clone()));
        Handoff
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        HANDOFF.with(|slot| slot.borrow_mut().take());
    }
}

/// The bytes behind `slice`: the hand-off's clone when it is the same
/// memory, a copy otherwise.
fn claim(slice: &[u8]) -> Bytes {
    let offered = HANDOFF.with(|slot| {
        let mut slot = slot.borrow_mut();
        match &*slot {
            Some(bytes) if bytes.as_ptr() == slice.as_ptr() && bytes.len() == slice.len() => {
                slot.take()
            }
            _ => None,
        }
    });
    offered.unwrap_or_else(|| Bytes::copy_from_slice(slice))
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let _handoff = Handoff::offer(&self.0);
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> de::Deserialize<'de> for Binary {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if READING.with(|slot| slot.borrow().is_some()) {
            // A packet's values: its placeholder may come as a plain map
            // (serde buffers flattened fields and enums that are not
            // externally tagged), read by `visit_map`.
            deserializer.deserialize_any(BinaryVisitor)
        } else {
            deserializer.deserialize_byte_buf(BinaryVisitor)
        }
    }
}

thread_local! {
    /// The attachments of the packet whose values are being read (see
    /// [`Reading`]).
    static READING: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

/// Gives a [`Binary`] read as a map the attachments its placeholder points
/// into, until dropped.
///
/// Serde reads `#[serde(flatten)]` fields, untagged and internally tagged
/// enums from a buffer of its own, which knows nothing of [`BinDe`] and
/// refuses to read bytes from a map: the placeholder reaches [`Binary`] as
/// a map, and [`Binary`] finds its attachment here.
pub(super) struct Reading {
    previous: Option<Vec<Bytes>>,
}

impl Reading {
    /// Reading the values of a packet with `attachments`.
    pub(super) fn start(attachments: &[Bytes]) -> Reading {
        let previous = READING.with(|slot| slot.replace(Some(attachments.to_vec())));
        Reading { previous }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let previous = self.previous.take();
        READING.with(|slot| *slot.borrow_mut() = previous);
    }
}

struct BinaryVisitor;

impl<'de> Visitor<'de> for BinaryVisitor {
    type Value = Binary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("binary data")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Binary, E> {
        Ok(Binary(claim(v)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Binary, E> {
        Ok(Binary(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
        Ok(Binary(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Binary, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(Binary(out.into()))
    }

    /// A placeholder, while a packet's values are read ([`Reading`]).
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Binary, A::Error> {
        let n = match read_placeholder(map)? {
            MapKind::Placeholder(n) => n,
            MapKind::BadPlaceholder => return Err(de::Error::custom("invalid binary placeholder")),
            MapKind::Plain => return Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        };
        READING
            .with(|slot| {
                let slot = slot.borrow();
                let attachments = slot.as_deref()?;
                attachments.get(usize::try_from(n).ok()?).cloned()
            })
            .map(Binary)
            .ok_or_else(|| {
                de::Error::custom(format_args!("placeholder {n} points past the attachments"))
            })
    }
}

// ---------------------------------------------------------------------------
// Serialization: binary values become placeholders.

/// The attachments collected while serializing, and whether the top-level
/// value was `()`.
#[derive(Default)]
pub(super) struct Collected {
    pub(super) attachments: Vec<Bytes>,
    pub(super) top_unit: bool,
}

/// A placeholder as the official parser writes it.
#[derive(serde::Serialize)]
struct Placeholder {
    #[serde(rename = "_placeholder")]
    placeholder: bool,
    num: usize,
}

/// A serializer that writes binary values as placeholders and collects
/// their bytes (see the module documentation).
pub(super) struct BinSer<'a, S> {
    inner: S,
    collected: &'a RefCell<Collected>,
    top: bool,
}

impl<'a, S> BinSer<'a, S> {
    /// The serializer for a whole value: a top-level `()` is recorded in
    /// [`Collected::top_unit`].
    pub(super) fn top(inner: S, collected: &'a RefCell<Collected>) -> Self {
        BinSer {
            inner,
            collected,
            top: true,
        }
    }
}

/// A value to be serialized through a [`BinSer`].
struct Wrap<'a, 'b, T: ?Sized> {
    value: &'b T,
    collected: &'a RefCell<Collected>,
}

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(BinSer {
            inner: serializer,
            collected: self.collected,
            top: false,
        })
    }
}

/// A compound serializer whose parts go through a [`BinSer`].
pub(super) struct BinCompound<'a, C> {
    inner: C,
    collected: &'a RefCell<Collected>,
}

impl<'a, C> BinCompound<'a, C> {
    fn wrap<'b, T: ?Sized>(&self, value: &'b T) -> Wrap<'a, 'b, T> {
        Wrap {
            value,
            collected: self.collected,
        }
    }
}

impl<'a, S: Serializer> BinSer<'a, S> {
    fn wrap<'b, T: ?Sized>(&self, value: &'b T) -> Wrap<'a, 'b, T> {
        Wrap {
            value,
            collected: self.collected,
        }
    }
}

impl<'a, S: Serializer> Serializer for BinSer<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = BinCompound<'a, S::SerializeSeq>;
    type SerializeTuple = BinCompound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = BinCompound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = BinCompound<'a, S::SerializeTupleVariant>;
    type SerializeMap = BinCompound<'a, S::SerializeMap>;
    type SerializeStruct = BinCompound<'a, S::SerializeStruct>;
    type SerializeStructVariant = BinCompound<'a, S::SerializeStructVariant>;

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        let bytes = claim(v);
        let num = {
            let mut collected = self.collected.borrow_mut();
            collected.attachments.push(bytes);
            collected.attachments.len() - 1
        };
        Placeholder {
            placeholder: true,
            num,
        }
        .serialize(self.inner)
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        if self.top {
            self.collected.borrow_mut().top_unit = true;
        }
        self.inner.serialize_unit()
    }

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.inner.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_str(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let value = self.wrap(value);
        self.inner.serialize_some(&value)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.wrap(value);
        self.inner.serialize_newtype_struct(name, &value)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.wrap(value);
        self.inner
            .serialize_newtype_variant(name, index, variant, &value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let collected = self.collected;
        let inner = self.inner.serialize_seq(len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let collected = self.collected;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let collected = self.collected;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let collected = self.collected;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let collected = self.collected;
        let inner = self.inner.serialize_map(len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let collected = self.collected;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(BinCompound { inner, collected })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let collected = self.collected;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(BinCompound { inner, collected })
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_element(&value)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_element(&value)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_field(&value)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_field(&value)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let key = self.wrap(key);
        self.inner.serialize_key(&key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_value(&value)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_field(key, &value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for BinCompound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let value = self.wrap(value);
        self.inner.serialize_field(key, &value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

// ---------------------------------------------------------------------------
// Placeholders: recognising them, and checking a whole payload.

/// A map key, as far as placeholders care.
enum Key {
    Placeholder,
    Num,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "_placeholder" => Key::Placeholder,
            "num" => Key::Num,
            _ => Key::Other,
        })
    }
}

/// A value, as far as placeholders care.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    True,
    /// A non-negative integer.
    Index(u64),
    Other,
}

/// Reads a value as a [`Scalar`], skipping over arrays and objects.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Scalar, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(if v { Scalar::True } else { Scalar::Other })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::Index))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Index(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Scalar::Other)
    }
}

/// What a map turned out to be.
enum MapKind {
    /// Not a placeholder (`_placeholder` absent or not `true`).
    Plain,
    /// A placeholder with a valid `num`.
    Placeholder(u64),
    /// `_placeholder: true` with a `num` that is missing or not a
    /// non-negative integer.
    BadPlaceholder,
}

fn classify(placeholder: bool, num: Option<Scalar>) -> MapKind {
    match (placeholder, num) {
        (false, _) => MapKind::Plain,
        (true, Some(Scalar::Index(n))) => MapKind::Placeholder(n),
        (true, _) => MapKind::BadPlaceholder,
    }
}

/// Reads a map as far as placeholders care (later duplicate keys win, as
/// with `JSON.parse`).
fn read_placeholder<'de, A: MapAccess<'de>>(mut map: A) -> Result<MapKind, A::Error> {
    let mut placeholder = false;
    let mut num = None;
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Placeholder => placeholder = map.next_value_seed(ScalarSeed)? == Scalar::True,
            Key::Num => num = Some(map.next_value_seed(ScalarSeed)?),
            Key::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(classify(placeholder, num))
}

/// A placeholder that is malformed or points past the attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlaceholderError {
    /// `num` missing or not a non-negative integer.
    Invalid,
    /// `num` is not below the attachment count.
    OutOfRange(u64),
}

/// Walks a value, checking every placeholder in it against `attachments`.
pub(super) struct Walk<'c> {
    pub(super) attachments: usize,
    pub(super) error: &'c mut Option<PlaceholderError>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Scalar;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Scalar, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        ScalarSeed.visit_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        ScalarSeed.visit_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        ScalarSeed.visit_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        ScalarSeed.visit_f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        ScalarSeed.visit_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        ScalarSeed.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq
            .next_element_seed(Walk {
                attachments: self.attachments,
                error: &mut *self.error,
            })?
            .is_some()
        {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        // Later duplicates win, as with JSON.parse.
        let mut placeholder = false;
        let mut num = None;
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value_seed(Walk {
                attachments: self.attachments,
                error: &mut *self.error,
            })?;
            match key {
                Key::Placeholder => placeholder = value == Scalar::True,
                Key::Num => num = Some(value),
                Key::Other => {}
            }
        }
        let error = match classify(placeholder, num) {
            MapKind::Plain => None,
            MapKind::Placeholder(n) if n < self.attachments as u64 => None,
            MapKind::Placeholder(n) => Some(PlaceholderError::OutOfRange(n)),
            MapKind::BadPlaceholder => Some(PlaceholderError::Invalid),
        };
        if let Some(error) = error {
            *self.error = Some(error);
            return Err(de::Error::custom("invalid placeholder"));
        }
        Ok(Scalar::Other)
    }
}

/// Checks every placeholder in the JSON `json` against `attachments`.
///
/// `Err(None)` is a JSON syntax error (the payload was validated before, so
/// this does not happen on decoded packets).
#[cfg(test)]
pub(super) fn check_placeholders(
    json: &str,
    attachments: usize,
) -> Result<(), Option<PlaceholderError>> {
    let mut error = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let result = Walk {
        attachments,
        error: &mut error,
    }
    .deserialize(&mut de)
    .and_then(|_| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(_) => Err(error),
    }
}

// ---------------------------------------------------------------------------
// Deserialization: placeholders become binary values.

/// A deserializer that hands attachments to values read from bytes (see
/// the module documentation).
pub(super) struct BinDe<'de, D> {
    inner: D,
    attachments: &'de [Bytes],
}

impl<'de, D> BinDe<'de, D> {
    /// Wraps `inner`, whose placeholders point into `attachments`.
    pub(super) fn new(inner: D, attachments: &'de [Bytes]) -> Self {
        BinDe { inner, attachments }
    }
}

/// A visitor whose nested values go through a [`BinDe`].
struct BinVisitor<'de, V> {
    inner: V,
    attachments: &'de [Bytes],
}

/// A seed whose value goes through a [`BinDe`].
pub(super) struct BinSeed<'de, S> {
    inner: S,
    attachments: &'de [Bytes],
}

impl<'de, S> BinSeed<'de, S> {
    pub(super) fn new(inner: S, attachments: &'de [Bytes]) -> Self {
        BinSeed { inner, attachments }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for BinSeed<'de, S> {
    type Value = S::Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(BinDe {
            inner: deserializer,
            attachments: self.attachments,
        })
    }
}

/// A sequence whose elements go through a [`BinDe`].
pub(super) struct BinSeq<'de, A> {
    inner: A,
    attachments: &'de [Bytes],
}

impl<'de, A> BinSeq<'de, A> {
    pub(super) fn new(inner: A, attachments: &'de [Bytes]) -> Self {
        BinSeq { inner, attachments }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for BinSeq<'de, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(BinSeed {
            inner: seed,
            attachments: self.attachments,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map whose keys and values go through a [`BinDe`].
struct BinMap<'de, A> {
    inner: A,
    attachments: &'de [Bytes],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for BinMap<'de, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(BinSeed {
            inner: seed,
            attachments: self.attachments,
        })
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(BinSeed {
            inner: seed,
            attachments: self.attachments,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum whose contents go through a [`BinDe`].
struct BinEnum<'de, A> {
    inner: A,
    attachments: &'de [Bytes],
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for BinEnum<'de, A> {
    type Error = A::Error;
    type Variant = BinEnum<'de, A::Variant>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let attachments = self.attachments;
        let (value, variant) = self.inner.variant_seed(BinSeed {
            inner: seed,
            attachments,
        })?;
        Ok((
            value,
            BinEnum {
                inner: variant,
                attachments,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for BinEnum<'de, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(BinSeed {
            inner: seed,
            attachments: self.attachments,
        })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            BinVisitor {
                inner: visitor,
                attachments: self.attachments,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            BinVisitor {
                inner: visitor,
                attachments: self.attachments,
            },
        )
    }
}

/// Visitor methods that pass their value on unchanged.
macro_rules! forward_visits {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for BinVisitor<'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visits! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(BinDe {
            inner: deserializer,
            attachments: self.attachments,
        })
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(BinDe {
            inner: deserializer,
            attachments: self.attachments,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(BinSeq {
            inner: seq,
            attachments: self.attachments,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(BinMap {
            inner: map,
            attachments: self.attachments,
        })
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(BinEnum {
            inner: data,
            attachments: self.attachments,
        })
    }
}

/// The visitor of a value read from bytes: a placeholder map becomes its
/// attachment; anything else is passed on as [`BinVisitor`] would.
struct BytesVisitor<'de, V> {
    inner: V,
    attachments: &'de [Bytes],
}

impl<'de, V: Visitor<'de>> BytesVisitor<'de, V> {
    fn pass(self) -> BinVisitor<'de, V> {
        BinVisitor {
            inner: self.inner,
            attachments: self.attachments,
        }
    }
}

macro_rules! pass_visits {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.pass().$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for BytesVisitor<'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    pass_visits! {
        visit_bool(bool);
        visit_i64(i64);
        visit_i128(i128);
        visit_u64(u64);
        visit_u128(u128);
        visit_f64(f64);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.pass().visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.pass().visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.pass().visit_some(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.pass().visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        match read_placeholder(map)? {
            MapKind::Placeholder(n) => {
                let attachment = usize::try_from(n)
                    .ok()
                    .and_then(|n| self.attachments.get(n))
                    .ok_or_else(|| {
                        de::Error::custom(format_args!(
                            "placeholder {n} points past the attachments"
                        ))
                    })?;
                let _handoff = Handoff::offer(attachment);
                self.inner.visit_borrowed_bytes(attachment)
            }
            MapKind::BadPlaceholder => Err(de::Error::custom("invalid binary placeholder")),
            MapKind::Plain => Err(de::Error::invalid_type(de::Unexpected::Map, &self.inner)),
        }
    }
}

/// Deserializer methods that wrap their visitor in a [`BinVisitor`].
macro_rules! wrap_methods {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* BinVisitor { inner: visitor, attachments: self.attachments })
            }
        )*
    };
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for BinDe<'de, D> {
    type Error = D::Error;

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(BytesVisitor {
            inner: visitor,
            attachments: self.attachments,
        })
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_bytes(visitor)
    }

    wrap_methods! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Serializes `value` through a [`BinSer`] into compact JSON.
    fn to_json<T: Serialize + ?Sized>(value: &T) -> (String, Vec<Bytes>) {
        let collected = RefCell::new(Collected::default());
        let mut out = Vec::new();
        value
            .serialize(BinSer::top(
                &mut serde_json::Serializer::new(&mut out),
                &collected,
            ))
            .unwrap();
        (
            String::from_utf8(out).unwrap(),
            collected.into_inner().attachments,
        )
    }

    fn from_json<'de, T: Deserialize<'de>>(
        json: &'de str,
        attachments: &'de [Bytes],
    ) -> Result<T, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = T::deserialize(BinDe::new(&mut de, attachments))?;
        de.end()?;
        Ok(value)
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Upload {
        name: String,
        file: Binary,
        parts: Vec<Binary>,
        thumb: Option<Binary>,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Shape {
        Blob(Binary),
        Pair(u8, Binary),
        Named { data: Binary },
        Nothing,
    }

    #[test]
    fn binaries_become_numbered_placeholders() {
        let upload = Upload {
            name: "a".into(),
            file: Binary::from(&b"\x01\x02"[..]),
            parts: vec![Binary::from(vec![3]), Binary::from(vec![])],
            thumb: None,
        };
        let (json, attachments) = to_json(&upload);
        assert_eq!(
            json,
            r#"{"name":"a","file":{"_placeholder":true,"num":0},"parts":[{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}],"thumb":null}"#
        );
        assert_eq!(attachments, [&[1u8, 2][..], &[3], &[]]);
        assert_eq!(from_json::<Upload>(&json, &attachments).unwrap(), upload);
    }

    #[test]
    fn enums_and_maps_carry_binaries() {
        for shape in [
            Shape::Blob(Binary::from(vec![9])),
            Shape::Pair(1, Binary::from(vec![8])),
            Shape::Named {
                data: Binary::from(vec![7]),
            },
            Shape::Nothing,
        ] {
            let (json, attachments) = to_json(&shape);
            assert_eq!(attachments.len(), usize::from(shape != Shape::Nothing));
            assert_eq!(from_json::<Shape>(&json, &attachments).unwrap(), shape);
        }
        let mut map = std::collections::BTreeMap::new();
        map.insert("k".to_string(), Binary::from(vec![5, 6]));
        let (json, attachments) = to_json(&map);
        assert_eq!(json, r#"{"k":{"_placeholder":true,"num":0}}"#);
        assert_eq!(
            from_json::<std::collections::BTreeMap<String, Binary>>(&json, &attachments).unwrap(),
            map
        );
    }

    #[test]
    fn binary_moves_without_copying() {
        let data = Bytes::from(vec![1u8; 64]);
        let (_, attachments) = to_json(&(Binary(data.clone()),));
        assert_eq!(attachments[0].as_ptr(), data.as_ptr());
        let json = r#"[{"_placeholder":true,"num":0}]"#;
        let (back,): (Binary,) = from_json(json, &attachments).unwrap();
        assert_eq!(back.as_ptr(), data.as_ptr());
        // Nothing is left behind in the hand-off slot.
        assert!(HANDOFF.with(|slot| slot.borrow().is_none()));
        // A borrowed slice works too.
        let (slice,): (&[u8],) = from_json(json, &attachments).unwrap();
        assert_eq!(slice.as_ptr(), data.as_ptr());
    }

    #[test]
    fn other_byte_types_are_copied() {
        struct Raw(Vec<u8>);
        impl Serialize for Raw {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        let (json, attachments) = to_json(&[Raw(vec![1]), Raw(vec![2])]);
        assert_eq!(
            json,
            r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(attachments, [&[1u8][..], &[2]]);
    }

    #[test]
    fn plain_json_forms() {
        let blob = Binary::from(vec![1, 2]);
        assert_eq!(serde_json::to_string(&blob).unwrap(), "[1,2]");
        assert_eq!(serde_json::from_str::<Binary>("[1,2]").unwrap(), blob);
        assert_eq!(
            serde_json::from_str::<Binary>(r#""ab""#).unwrap(),
            Binary::from(&b"ab"[..])
        );
        // Through the wrapper, arrays of numbers are still read.
        assert_eq!(from_json::<Binary>("[1,2]", &[]).unwrap(), blob);
    }

    #[test]
    fn placeholders_stay_objects_for_dynamic_values() {
        let json = r#"["a",{"_placeholder":true,"num":0}]"#;
        let attachments = [Bytes::from_static(b"x")];
        let value: serde_json::Value = from_json(json, &attachments).unwrap();
        assert_eq!(value[1]["num"], 0);
    }

    #[test]
    fn bad_placeholders_when_reading_bytes() {
        let attachments = [Bytes::from_static(b"x")];
        for json in [
            r#"{"_placeholder":true,"num":1}"#,
            r#"{"_placeholder":true,"num":-1}"#,
            r#"{"_placeholder":true,"num":0.5}"#,
            r#"{"_placeholder":true}"#,
            r#"{"_placeholder":false,"num":0}"#,
            r#"{"num":0}"#,
            "true",
        ] {
            assert!(from_json::<Binary>(json, &attachments).is_err(), "{json}");
        }
        // Key order and extra keys do not matter.
        for json in [
            r#"{"num":0,"_placeholder":true}"#,
            r#"{"_placeholder":true,"num":0,"extra":[1]}"#,
            r#"{"_placeholder":false,"_placeholder":true,"num":0}"#,
        ] {
            assert_eq!(
                from_json::<Binary>(json, &attachments).unwrap(),
                Binary::from(&b"x"[..]),
                "{json}"
            );
        }
    }

    #[test]
    fn placeholder_checks() {
        use PlaceholderError::*;
        let ok = [
            r#"[]"#,
            r#"["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            r#"[{"a":{"b":[{"num":1,"_placeholder":true}]}}]"#,
            r#"[{"_placeholder":false,"num":99}]"#,
            r#"[{"_placeholder":"true","num":99}]"#,
            r#"[{"_placeholder":true,"num":99,"_placeholder":false}]"#,
            r#"[{"placeholder":true}]"#,
        ];
        for json in ok {
            assert_eq!(check_placeholders(json, 2), Ok(()), "{json}");
        }
        let bad = [
            (r#"[{"_placeholder":true,"num":2}]"#, OutOfRange(2)),
            (r#"[{"x":[{"_placeholder":true,"num":7}]}]"#, OutOfRange(7)),
            (r#"[{"_placeholder":true}]"#, Invalid),
            (r#"[{"_placeholder":true,"num":-1}]"#, Invalid),
            (r#"[{"_placeholder":true,"num":1.5}]"#, Invalid),
            (r#"[{"_placeholder":true,"num":"0"}]"#, Invalid),
            (r#"[{"_placeholder":true,"num":null}]"#, Invalid),
            (
                r#"[{"_placeholder":true,"num":18446744073709551616}]"#,
                Invalid,
            ),
        ];
        for (json, error) in bad {
            assert_eq!(check_placeholders(json, 2), Err(Some(error)), "{json}");
        }
        assert_eq!(check_placeholders("[", 2), Err(None));
    }
}

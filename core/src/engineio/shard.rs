//! One endpoint's sessions split among several [`Server`]s, so that an
//! adapter on many threads can lock each part apart instead of the whole
//! session table for every message.
//!
//! Every id a shard hands out names its shard: the first character of a
//! session id is the shard's index in the URL-safe base64 alphabet, and
//! the top byte of a [`ConnId`] or [`PollId`] is the shard's index. So a
//! request (by its `sid` query parameter), a WebSocket message (by its
//! connection) and a held poll (by its id) each go straight to the one
//! [`Server`] that owns the session, and a handshake may go to any. A
//! split endpoint's session ids so carry 114 random bits rather than 120
//! (Node's engine.io: 120), still far beyond guessing.
//!
//! ```
//! use switchboard_core::engineio::{Server, ServerConfig, Shard};
//!
//! let shards: Vec<Server> = (0..4)
//!     .map(|index| Server::with_shard(ServerConfig::default(), Shard::new(index, 4)))
//!     .collect();
//! assert_eq!(shards.len(), 4);
//! assert_eq!(Shard::of_sid("C0abcdefghijklmnopqr", 4), 2);
//! ```
//!
//! [`Server`]: super::Server

use super::server::{ConnId, PollId};
use crate::http::Request;

/// The most shards an endpoint can have: one per character of the URL-safe
/// base64 alphabet a session id starts with.
pub const MAX_SHARDS: usize = 64;

/// The URL-safe base64 alphabet session ids are written in.
pub(crate) const SID_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Where an id's shard index sits in a [`ConnId`] or [`PollId`].
const ID_SHARD_SHIFT: u32 = 56;

/// Which part of a sharded endpoint a [`Server`](super::Server) is: its
/// index among `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u8,
    count: u8,
}

impl Shard {
    /// The one shard of an endpoint that is not split: session ids keep all
    /// 120 random bits.
    pub const SOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`.
    ///
    /// # Panics
    ///
    /// When `count` is 0 or above [`MAX_SHARDS`], or `index` is not below
    /// `count`.
    ///
    /// ```
    /// use switchboard_core::engineio::Shard;
    /// let shard = Shard::new(3, 8);
    /// assert_eq!((shard.index(), shard.count()), (3, 8));
    /// ```
    pub fn new(index: usize, count: usize) -> Shard {
        assert!(
            (1..=MAX_SHARDS).contains(&count) && index < count,
            "shard {index} of {count}: at most {MAX_SHARDS} shards, index below count"
        );
        Shard {
            index: index as u8,
            count: count as u8,
        }
    }

    /// This shard's index.
    pub fn index(self) -> usize {
        usize::from(self.index)
    }

    /// How many shards the endpoint has.
    pub fn count(self) -> usize {
        usize::from(self.count)
    }

    /// This shard's part of an endpoint-wide limit of `total`: the shards'
    /// parts add up to exactly `total` (the first `total % count` shards
    /// hold one more).
    ///
    /// ```
    /// use switchboard_core::engineio::Shard;
    /// let parts: Vec<usize> = (0..4).map(|i| Shard::new(i, 4).share_of(10)).collect();
    /// assert_eq!(parts, [3, 3, 2, 2]);
    /// ```
    pub fn share_of(self, total: usize) -> usize {
        let (count, index) = (self.count(), self.index());
        total / count + usize::from(index < total % count)
    }

    /// The shard of `count` owning session `sid`. An id no shard made
    /// still names one, which answers it as unknown.
    ///
    /// ```
    /// use switchboard_core::engineio::Shard;
    /// assert_eq!(Shard::of_sid("Dxyz", 8), 3);
    /// assert_eq!(Shard::of_sid("Dxyz", 1), 0);
    /// assert_eq!(Shard::of_sid("", 8), 0);
    /// ```
    pub fn of_sid(sid: &str, count: usize) -> usize {
        // The character's place in `SID_ALPHABET`, computed rather than
        // searched: this runs for every send and broadcast recipient.
        let position = match sid.as_bytes().first() {
            Some(&c @ b'A'..=b'Z') => c - b'A',
            Some(&c @ b'a'..=b'z') => c - b'a' + 26,
            Some(&c @ b'0'..=b'9') => c - b'0' + 52,
            Some(b'-') => 62,
            Some(b'_') => 63,
            _ => 0,
        };
        usize::from(position) % count.max(1)
    }

    /// The shard of `count` that must handle `request`: its session's (by
    /// the `sid` query parameter), or `None` for a request without one (a
    /// handshake, a preflight), which any shard can answer.
    ///
    /// ```
    /// use switchboard_core::engineio::Shard;
    /// use switchboard_core::http::Request;
    ///
    /// let head = b"GET /engine.io/?EIO=4&transport=polling&sid=Bxyz HTTP/1.1\r\n\r\n";
    /// let request = Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// assert_eq!(Shard::of_request(&request, 4), Some(1));
    /// ```
    pub fn of_request(request: &Request, count: usize) -> Option<usize> {
        request
            .query_param("sid")
            .map(|sid| Shard::of_sid(&sid, count))
    }

    /// The first id (of connections and polls) this shard hands out, less
    /// one.
    pub(crate) fn id_base(self) -> u64 {
        u64::from(self.index) << ID_SHARD_SHIFT
    }

    /// Marks a fresh session id as this shard's.
    pub(crate) fn stamp_sid(self, sid: &mut String) {
        if self.count > 1 {
            let first = char::from(SID_ALPHABET[self.index()]);
            sid.replace_range(..1, first.encode_utf8(&mut [0; 4]));
        }
    }
}

impl ConnId {
    /// The index of the shard that made this id (0 on an endpoint that is
    /// not split).
    pub fn shard(self) -> usize {
        (self.as_u64() >> ID_SHARD_SHIFT) as usize
    }
}

impl PollId {
    /// The index of the shard that made this id (0 on an endpoint that is
    /// not split).
    pub fn shard(self) -> usize {
        (self.as_u64() >> ID_SHARD_SHIFT) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alphabet_character_names_a_shard_below_the_count() {
        for count in [1, 2, 3, 8, 64] {
            for (index, &c) in SID_ALPHABET.iter().enumerate() {
                let sid = format!("{}rest", char::from(c));
                assert_eq!(Shard::of_sid(&sid, count), index % count);
            }
        }
        // Not in the alphabet: still a shard, which answers "unknown sid".
        assert_eq!(Shard::of_sid("%zz", 8), 0);
        assert_eq!(Shard::of_sid("é", 8), 0);
    }

    #[test]
    fn stamped_sids_route_back_to_their_shard() {
        for count in [2, 5, 64] {
            for index in 0..count {
                let shard = Shard::new(index, count);
                let mut sid = super::super::new_sid();
                shard.stamp_sid(&mut sid);
                assert_eq!(sid.len(), 20);
                assert_eq!(Shard::of_sid(&sid, count), index);
            }
        }
        let mut sid = "Zsomething".to_owned();
        Shard::SOLE.stamp_sid(&mut sid);
        assert_eq!(
            sid, "Zsomething",
            "an endpoint not split keeps the whole id"
        );
    }

    #[test]
    #[should_panic(expected = "at most 64 shards")]
    fn too_many_shards_are_refused() {
        Shard::new(0, 65);
    }
}

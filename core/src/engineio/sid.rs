//! Session ids: unguessable, URL-safe, the shape Node's engine.io uses.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Random bytes in a session id: 120 bits.
const SID_BYTES: usize = 15;

/// A new session id: 15 bytes from the operating system's CSPRNG, as 20
/// characters of URL-safe base64 (`A-Z a-z 0-9 - _`, no padding).
///
/// The id is the session's only credential on the polling transport, so it
/// must be unguessable; it needs no escaping in a query string or a cookie.
///
/// # Panics
///
/// When the operating system's random source fails, which a server cannot
/// recover from.
///
/// ```
/// use switchboard_core::engineio::new_sid;
/// let sid = new_sid();
/// assert_eq!(sid.len(), 20);
/// assert!(sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
/// ```
pub fn new_sid() -> String {
    let mut bytes = [0u8; SID_BYTES];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sids_are_distinct_and_url_safe() {
        let sids: HashSet<String> = (0..1000).map(|_| new_sid()).collect();
        assert_eq!(sids.len(), 1000);
        for sid in &sids {
            assert_eq!(sid.len(), 20);
            let decoded = URL_SAFE_NO_PAD.decode(sid).unwrap();
            assert_eq!(decoded.len(), SID_BYTES);
        }
        // Every character of the alphabet turns up somewhere.
        let chars: HashSet<char> = sids.iter().flat_map(|sid| sid.chars()).collect();
        assert_eq!(chars.len(), 64);
    }
}

//! Applying (and removing) the RFC 6455 client-to-server payload mask.
//!
//! Masking XORs each payload byte with `key[i % 4]`. The fast path works a
//! machine word at a time (the key repeated to 8 bytes) so large payloads never
//! take a per-byte loop; the compiler vectorises the word loop further.

/// XORs `data` in place with the 4-byte `key`, as if the data started at
/// payload offset `offset` (so a payload can be unmasked in pieces as it
/// arrives).
///
/// ```
/// use switchboard_core::ws::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut data = *b"hello world";
/// apply_mask(&mut data, key, 0);
/// // Unmasking in two pieces gives the same result as in one.
/// let (a, b) = data.split_at_mut(5);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 5);
/// assert_eq!(&data, b"hello world");
/// ```
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ key64;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Appends `src` to `buf` unmasked with `key` (as if `src` started at
/// payload offset `offset`): the copy out of the read and the unmasking in
/// one pass over the bytes instead of two.
pub(crate) fn extend_masked(buf: &mut bytes::BytesMut, src: &[u8], key: [u8; 4], offset: usize) {
    let n = src.len();
    buf.reserve(n);
    let key = rotate_key(key, offset);
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let start = buf.len();
    let spare = &mut buf.spare_capacity_mut()[..n];
    let mut dst = spare.chunks_exact_mut(8);
    let mut from = src.chunks_exact(8);
    for (d, s) in (&mut dst).zip(&mut from) {
        let word = u64::from_ne_bytes(s.try_into().expect("chunk of 8")) ^ key64;
        for (d, b) in d.iter_mut().zip(word.to_ne_bytes()) {
            d.write(b);
        }
    }
    for (i, (d, s)) in dst
        .into_remainder()
        .iter_mut()
        .zip(from.remainder())
        .enumerate()
    {
        d.write(s ^ key[i & 3]);
    }
    // SAFETY: the loops above initialised all `n` bytes after `start`.
    unsafe { buf.set_len(start + n) };
}

fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mask_bytewise(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    proptest! {
        #[test]
        fn matches_the_bytewise_definition(mut data in proptest::collection::vec(any::<u8>(), 0..300),
                                          key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut expected = data.clone();
            mask_bytewise(&mut expected, key, offset);
            apply_mask(&mut data, key, offset);
            prop_assert_eq!(data, expected);
        }

        #[test]
        fn split_application_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..300),
                                           key in any::<[u8; 4]>(), split in 0usize..300) {
            let split = split.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            prop_assert_eq!(whole, parts);
        }
    }
}

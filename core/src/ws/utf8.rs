//! Incremental UTF-8 validation that fails as soon as the bytes seen so far
//! cannot be the start of valid UTF-8, even when a code point is split across
//! frames or reads.

/// Validates a stream of byte chunks as one UTF-8 text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The chunk seen so far cannot be completed into valid UTF-8.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Validator {
    /// Feeds the next chunk. Fails as soon as the input is known invalid.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]);
            let take = (need - have).min(data.len());
            let mut joined = [0u8; 4];
            joined[..have].copy_from_slice(&self.pending[..have]);
            joined[have..have + take].copy_from_slice(&data[..take]);
            match simdutf8::compat::from_utf8(&joined[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // Still incomplete: `data` was too short to finish the code point.
                    self.pending = joined;
                    self.pending_len = (have + take) as u8;
                    return Ok(());
                }
            }
            data = &data[take..];
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the text: fails if it stops inside a code point.
    pub(crate) fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, data.len());
            if v.feed(&data[start..cut]).is_err() {
                return false;
            }
            start = cut;
        }
        v.feed(&data[start..]).is_ok() && v.finish().is_ok()
    }

    #[test]
    fn split_code_points_are_accepted() {
        let text = "κόσμε€𝄞".as_bytes();
        for i in 0..text.len() {
            for j in i..text.len() {
                assert!(validate_in_pieces(text, &[i, j]), "cut at {i},{j}");
            }
        }
    }

    #[test]
    fn fails_fast_before_the_message_ends() {
        let mut v = Utf8Validator::default();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        // 0xF4 0x90 starts a code point beyond U+10FFFF: invalid at once.
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_text_fails_at_finish() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xE2, 0x82]).is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    proptest! {
        #[test]
        fn agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64),
                           cuts in proptest::collection::vec(0usize..64, 0..4)) {
            let mut cuts = cuts;
            cuts.sort();
            prop_assert_eq!(validate_in_pieces(&data, &cuts), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn accepts_any_split_of_valid_text(s in ".{0,24}", cuts in proptest::collection::vec(0usize..100, 0..4)) {
            let mut cuts = cuts;
            cuts.sort();
            prop_assert!(validate_in_pieces(s.as_bytes(), &cuts));
        }
    }
}

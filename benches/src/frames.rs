//! Building the frames a client sends (masked), with payloads made of
//! deterministic pseudo-random bytes, independent of every implementation
//! under test.

/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 0x2;

/// A small deterministic PRNG (xorshift64*), so every run sees the same
/// bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A masking key.
    pub fn key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `len` random bytes (a binary payload).
pub fn binary_payload(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    Rng::new(seed).fill(&mut out);
    out
}

/// `len` bytes of JSON-like ASCII text, the typical small chat or RPC
/// message.
pub fn text_payload(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ,:\"{}";
    let mut rng = Rng::new(seed);
    let mut out: Vec<u8> = (0..len)
        .map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize])
        .collect();
    if len >= 2 {
        out[0] = b'{';
        out[len - 1] = b'}';
    }
    out
}

/// XORs `data` with `key` (RFC 6455 section 5.3), byte by byte: only used to
/// build inputs, never measured.
pub fn mask_bytes(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends one frame with FIN set: `opcode`, `payload`, masked with `key`
/// when given (client to server) or unmasked (server to client).
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: Option<[u8; 4]>) {
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    if let Some(key) = key {
        out.extend_from_slice(&key);
        out.extend_from_slice(payload);
        mask_bytes(&mut out[start + 4..], key);
    } else {
        out.extend_from_slice(payload);
    }
}

/// `count` masked client frames back to back, each with its own random key,
/// all carrying `payload`.
pub fn masked_frames(opcode: u8, payload: &[u8], count: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(count * (payload.len() + 14));
    for _ in 0..count {
        push_frame(&mut out, opcode, payload, Some(rng.key()));
    }
    out
}

/// The length of the header of an unmasked frame carrying `len` bytes.
pub fn header_len(len: usize, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_with_switchboard() {
        let payload = text_payload(32, 7);
        assert!(std::str::from_utf8(&payload).is_ok());
        let frames = masked_frames(TEXT, &payload, 3, 1);
        assert_eq!(frames.len(), 3 * (32 + header_len(32, true)));
        let mut conn = switchboard_core::ws::Connection::new(
            switchboard_core::ws::Role::Server,
            switchboard_core::ws::Config::default().into(),
            None,
        );
        conn.receive(&frames);
        for _ in 0..3 {
            match conn.poll_event() {
                Some(switchboard_core::ws::Event::Message(m)) => {
                    assert_eq!(m.payload(), &payload[..])
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

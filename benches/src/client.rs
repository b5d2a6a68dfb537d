//! The load client: one pipelined tokio client with a raw framing of its
//! own, identical for every server. Each connection keeps a fixed window of
//! messages in flight: a writer task sends pre-masked frames whenever the
//! window has room (batching as many as fit into one write), a reader task
//! parses the echoes (checking opcode and length) and reopens the window.
//! Per message the client does no masking and no copying beyond the socket
//! reads, so it stays well below the servers' cost.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

use crate::frames::{self, Rng};

/// The request every client sends (the key of RFC 6455 section 1.3).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What one connection sends: text for small messages, binary for large.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Frame opcode.
    pub opcode: u8,
    /// The payload bytes (unmasked).
    pub data: Arc<[u8]>,
}

impl Payload {
    /// A `size`-byte message: JSON-like text up to 125 bytes, random
    /// binary above.
    pub fn new(size: usize) -> Self {
        if size <= 125 {
            Payload {
                opcode: frames::TEXT,
                data: frames::text_payload(size, 5).into(),
            }
        } else {
            Payload {
                opcode: frames::BINARY,
                data: frames::binary_payload(size, 6).into(),
            }
        }
    }
}

/// Connects, performs the opening handshake, and echoes `payload` once,
/// checking the echo byte for byte. Returns the stream and whatever was
/// read past the echo (nothing, from a correct server).
pub async fn connect(addr: SocketAddr, payload: &Payload, seed: u64) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(REQUEST).await?;
    let mut buf = Vec::with_capacity(256);
    let head_len = loop {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::other("closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 8192 {
            return Err(io::Error::other("handshake response too long"));
        }
    };
    let head = &buf[..head_len];
    if !head.starts_with(b"HTTP/1.1 101") || !head.windows(ACCEPT.len()).any(|w| w == ACCEPT) {
        return Err(io::Error::other(format!(
            "bad handshake response: {}",
            String::from_utf8_lossy(head)
        )));
    }
    if buf.len() > head_len {
        return Err(io::Error::other("unexpected data after the handshake"));
    }
    let mut frame = Vec::new();
    frames::push_frame(
        &mut frame,
        payload.opcode,
        &payload.data,
        Some(Rng::new(seed).key()),
    );
    stream.write_all(&frame).await?;
    let mut expected = Vec::new();
    frames::push_frame(&mut expected, payload.opcode, &payload.data, None);
    let mut echo = vec![0u8; expected.len()];
    stream.read_exact(&mut echo).await?;
    if echo != expected {
        return Err(io::Error::other("the first echo differs from the message"));
    }
    Ok(stream)
}

/// Counters shared by every connection of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Echoes received whole.
    pub messages: AtomicU64,
    /// Connections that failed (bad frame, early close, IO error).
    pub failures: AtomicU64,
}

/// Starts the pipelined load on a connected stream: `window` messages in
/// flight.
pub fn start_load(
    stream: TcpStream,
    payload: &Payload,
    window: usize,
    seed: u64,
    counters: Arc<Counters>,
) {
    let (rd, wr) = stream.into_split();
    let window = window.max(1);
    let permits = Arc::new(Semaphore::new(window));
    // `window` copies of one frame, masked once with this connection's key:
    // a batch of k messages is the first k frames.
    let mut batch = Vec::new();
    let key = Rng::new(seed).key();
    for _ in 0..window {
        frames::push_frame(&mut batch, payload.opcode, &payload.data, Some(key));
    }
    let frame_len = batch.len() / window;
    tokio::spawn(writer(wr, permits.clone(), batch, frame_len, window));
    tokio::spawn(reader(
        rd,
        permits,
        payload.opcode,
        payload.data.len(),
        counters,
    ));
}

async fn writer(
    mut wr: OwnedWriteHalf,
    permits: Arc<Semaphore>,
    batch: Vec<u8>,
    frame_len: usize,
    window: usize,
) {
    loop {
        let Ok(first) = permits.acquire().await else {
            return;
        };
        first.forget();
        let mut k = 1;
        let more = permits.available_permits().min(window - 1);
        if more > 0
            && let Ok(extra) = permits.try_acquire_many(more as u32)
        {
            extra.forget();
            k += more;
        }
        if wr.write_all(&batch[..k * frame_len]).await.is_err() {
            return;
        }
    }
}

async fn reader(
    mut rd: OwnedReadHalf,
    permits: Arc<Semaphore>,
    opcode: u8,
    size: usize,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; 256 << 10];
    // Bytes of `buf` not parsed yet start at `start`; `filled` ends them.
    let (mut start, mut filled) = (0usize, 0usize);
    // Payload bytes of the current frame still to skip.
    let mut skip = 0usize;
    let fail = |counters: &Counters, permits: &Semaphore| {
        counters.failures.fetch_add(1, Ordering::Relaxed);
        permits.close();
    };
    loop {
        // What is left unparsed is at most a partial header: move it to the
        // front so each read gets the whole buffer.
        buf.copy_within(start..filled, 0);
        filled -= start;
        start = 0;
        let n = match rd.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return fail(&counters, &permits),
            Ok(n) => n,
        };
        filled += n;
        let mut done = 0;
        loop {
            if skip > 0 {
                let take = skip.min(filled - start);
                skip -= take;
                start += take;
                if skip > 0 {
                    break;
                }
                done += 1;
                continue;
            }
            let avail = &buf[start..filled];
            if avail.len() < 2 {
                break;
            }
            let (b0, b1) = (avail[0], avail[1]);
            let (len, header) = match b1 & 0x7F {
                126 if avail.len() >= 4 => (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4),
                127 if avail.len() >= 10 => (
                    u64::from_be_bytes(avail[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if b0 != 0x80 | opcode || b1 & 0x80 != 0 || len != size {
                return fail(&counters, &permits);
            }
            start += header;
            skip = len;
            if skip == 0 {
                done += 1;
            }
        }
        if done > 0 {
            counters.messages.fetch_add(done, Ordering::Relaxed);
            permits.add_permits(done as usize);
        }
    }
}

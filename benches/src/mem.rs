//! In-memory transports for the decode benchmark.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The most one read hands over, like the 64 KiB scratch buffer Switchboard's
/// async driver reads a socket into.
pub const READ_CHUNK: usize = 64 << 10;

/// A stream that yields `data` over and over (whole frames back to back, so
/// the repetition is a valid frame stream) in reads of at most
/// [`READ_CHUNK`] bytes, never blocking, and swallows whatever is written.
#[derive(Debug, Clone)]
pub struct LoopStream {
    data: Arc<[u8]>,
    pos: usize,
    /// Bytes written to the stream (e.g. automatic pongs): should stay 0.
    pub written: usize,
}

impl LoopStream {
    /// A stream repeating `data`.
    pub fn new(data: Arc<[u8]>) -> Self {
        assert!(!data.is_empty());
        Self {
            data,
            pos: 0,
            written: 0,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(READ_CHUNK).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.data.len() {
            self.pos = 0;
        }
        n
    }
}

impl io::Read for LoopStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl io::Write for LoopStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for LoopStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Like a socket read: straight into the unfilled (possibly
        // uninitialised) space, without zeroing it first.
        let this = self.get_mut();
        let n = buf
            .remaining()
            .min(READ_CHUNK)
            .min(this.data.len() - this.pos);
        // SAFETY: `n` bytes are written into the unfilled part before they
        // are marked initialised and filled.
        unsafe {
            let dst = buf.unfilled_mut();
            std::ptr::copy_nonoverlapping(
                this.data[this.pos..].as_ptr(),
                dst.as_mut_ptr().cast::<u8>(),
                n,
            );
            buf.assume_init(n);
        }
        buf.advance(n);
        this.pos += n;
        if this.pos == this.data.len() {
            this.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for LoopStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Polls a future that never waits (it only touches a [`LoopStream`]) to
/// completion without an executor.
pub fn now_or_never<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory read never waits"),
    }
}

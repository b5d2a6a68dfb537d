//! Reading into a per-thread scratch buffer, so connections waiting for data
//! hold no read buffer of their own.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::AsyncRead;

const SCRATCH_SIZE: usize = 64 << 10;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// Polls one read from `io` and hands the bytes (empty at end of stream) to
/// `sink`.
pub(crate) fn poll_read_with<S, T>(
    io: &mut S,
    cx: &mut Context<'_>,
    sink: impl FnOnce(&[u8]) -> T,
) -> Poll<io::Result<T>>
where
    S: AsyncRead + Unpin,
{
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        match Pin::new(io).poll_read(cx, &mut scratch) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(sink(&scratch[..n]))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}

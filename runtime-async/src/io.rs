//! Reading into a per-thread scratch buffer, so connections waiting for data
//! hold no read buffer of their own.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::AsyncRead;

const SCRATCH_SIZE: usize = 64 << 10;

/// Scratch buffers kept per thread: one for every read in progress at once
/// on the thread, at most this many (a read nested in another is rare).
const MAX_SPARE: usize = 2;

thread_local! {
    static SCRATCH: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Polls one read from `io` and hands the bytes (empty at end of stream) to
/// `sink`.
///
/// The buffer is taken out of the thread's spares for the read, so a read
/// made meanwhile on the same thread (by `io` itself, such as a stream
/// carried in another stream's messages, or by `sink`) gets a buffer of its
/// own rather than finding this one in use.
pub(crate) fn poll_read_with<S, T>(
    io: &mut S,
    cx: &mut Context<'_>,
    sink: impl FnOnce(&[u8]) -> T,
) -> Poll<io::Result<T>>
where
    S: AsyncRead + Unpin,
{
    let mut scratch = SCRATCH
        .try_with(|spares| spares.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0; SCRATCH_SIZE].into_boxed_slice());
    let read = match Pin::new(io).poll_read(cx, &mut scratch) {
        Poll::Ready(Ok(n)) => Poll::Ready(Ok(sink(&scratch[..n]))),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    };
    let _ = SCRATCH.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < MAX_SPARE {
            spares.push(scratch);
        }
    });
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::io::Cursor;
    use std::task::Waker;

    /// A stream whose reads go through another stream read the same way, as
    /// a WebSocket carried inside another WebSocket's messages would.
    struct Nested(Cursor<Vec<u8>>);

    impl AsyncRead for Nested {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            poll_read_with(&mut self.0, cx, |data| {
                buf[..data.len()].copy_from_slice(data);
                data.len()
            })
        }
    }

    #[test]
    fn a_stream_read_through_the_scratch_buffer_can_itself_be_read_through_it() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut outer = Nested(Cursor::new(b"inner bytes".to_vec()));
        let read = poll_read_with(&mut outer, &mut cx, <[u8]>::to_vec);
        assert!(matches!(read, Poll::Ready(Ok(ref bytes)) if bytes == b"inner bytes"));
    }

    #[test]
    fn a_sink_may_read_another_stream_on_the_same_thread() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Cursor::new(b"first".to_vec());
        let mut second = Cursor::new(b"second".to_vec());
        let read = poll_read_with(&mut first, &mut Context::from_waker(Waker::noop()), |a| {
            let b = poll_read_with(&mut second, &mut cx, <[u8]>::to_vec);
            (a.to_vec(), b)
        });
        let Poll::Ready(Ok((a, Poll::Ready(Ok(b))))) = read else {
            panic!("both reads ready");
        };
        // The outer bytes were not overwritten by the inner read.
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&b"first"[..], &b"second"[..])
        );
    }

    #[test]
    fn the_scratch_buffer_is_reused_after_a_nested_read() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut outer = Nested(Cursor::new(b"x".to_vec()));
        let _ = poll_read_with(&mut outer, &mut cx, |_| ());
        let mut plain = Cursor::new(b"y".to_vec());
        let read = poll_read_with(&mut plain, &mut cx, <[u8]>::to_vec);
        assert!(matches!(read, Poll::Ready(Ok(ref bytes)) if bytes == b"y"));
    }
}

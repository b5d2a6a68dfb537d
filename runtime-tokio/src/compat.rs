//! [`TokioIo`]: tokio's IO traits seen as the `futures` IO traits the
//! shared async driver is written against.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A tokio IO object seen through the `futures` IO traits, like
/// `tokio_util::compat::Compat` but forwarding vectored writes (which
/// `Compat` turns into one write per slice), so a frame header and its
/// payload go out in one `writev`.
///
/// It is what [`Tokio`](crate::Tokio)'s streams are, and how any other
/// tokio stream reaches `switchboard_async`'s functions: a TLS stream
/// (tokio-rustls) for a `wss://` client, say. Here a client handshake over
/// an in-memory pipe, with the server on its other end:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use switchboard_core::ws::handshake::WsUrl;
/// use switchboard_tokio::{Tokio, TokioIo, ws};
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (client_end, server_end) = tokio::io::duplex(64 << 10);
/// tokio::spawn(async move {
///     if let Ok(socket) = ws::accept(server_end, ws::Config::default()).await {
///         ws::echo(socket).await;
///     }
/// });
///
/// let url = WsUrl::parse("wss://example.com/chat")?; // Host and path of the request
/// let config = Arc::new(ws::Config::default());
/// let mut client =
///     switchboard_async::ws::client_handshake(Tokio, TokioIo(client_end), &url, config, &[])
///         .await?;
/// client.send(ws::Message::text("hi")).await?;
/// let echo = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
/// assert_eq!(echo.expect("open")?, ws::Message::text("hi"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TokioIo<T>(pub T);

impl<T> TokioIo<T> {
    /// The wrapped tokio IO object (also the public field `.0`).
    ///
    /// ```
    /// use futures_util::AsyncWriteExt; // the futures traits, on `TokioIo`
    /// use switchboard_tokio::TokioIo;
    /// use tokio::io::AsyncReadExt; // tokio's, on the stream itself
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let (end, mut other_end) = tokio::io::duplex(64);
    /// let mut io = TokioIo(end);
    /// io.write_all(b"ping").await?;
    /// let _end: tokio::io::DuplexStream = io.into_inner();
    /// let mut buf = [0; 4];
    /// other_end.read_exact(&mut buf).await?;
    /// assert_eq!(&buf, b"ping");
    /// # Ok(()) }
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: tokio::io::AsyncRead + Unpin> futures_io::AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> futures_io::AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::AsyncWriteExt;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A tokio writer that takes whole vectored writes, recording each.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl tokio::io::AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let write: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            let n = write.len();
            self.0.push(write);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_vectored_write_is_one_write() {
        let mut io = TokioIo(Writes::default());
        let bufs = [io::IoSlice::new(b"head"), io::IoSlice::new(b"payload")];
        assert_eq!(io.write_vectored(&bufs).await.expect("written"), 11);
        assert_eq!(io.0.0, [b"headpayload".to_vec()]);
    }

    #[tokio::test]
    async fn a_close_flushes_what_the_stream_buffers() {
        let (end, mut other_end) = tokio::io::duplex(64);
        let mut io = TokioIo(tokio::io::BufWriter::new(end));
        io.write_all(b"last words").await.expect("written");
        io.close().await.expect("closed");
        let mut received = Vec::new();
        let read = other_end.read_to_end(&mut received);
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
        read.expect("the end in time").expect("read");
        assert_eq!(received, b"last words");
    }
}

//! The TCP stream the smol driver reads and writes: `async-io`'s
//! `Async<std::net::TcpStream>` with one system call saved per wait.
//!
//! `async-io` finds out that a socket is drained by reading it once more
//! and getting `EWOULDBLOCK`, then re-arms its one-shot `epoll` interest.
//! A stream read returning fewer bytes than asked for has already drained
//! the kernel's receive queue, so [`TcpStream`] goes straight to waiting
//! after one (as tokio does): the re-armed interest reports data that
//! arrived meanwhile, so nothing is missed.

use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

/// A TCP connection on smol's reactor (`async-io`), as the smol runtime's
/// servers accept and its clients connect. Converts from
/// [`async_net::TcpStream`].
#[derive(Debug)]
pub struct TcpStream {
    io: Arc<Async<std::net::TcpStream>>,
    /// The last read returned less than it asked for: wait for readiness
    /// before reading again.
    drained: bool,
}

impl TcpStream {
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }
}

impl From<async_net::TcpStream> for TcpStream {
    fn from(stream: async_net::TcpStream) -> Self {
        Self {
            io: stream.into(),
            drained: false,
        }
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.drained {
                ready!(self.io.poll_readable(cx))?;
                self.drained = false;
            }
            match self.io.get_ref().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Ok(n) => {
                    self.drained = n > 0 && n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use smol::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn after_a_short_read_waits_then_reads_what_arrives() {
        smol::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = async_net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let mut server = TcpStream::from(listener.accept().await.unwrap().0);
            let mut buf = [0; 64];

            client.write_all(b"hello").await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 5);
            assert!(server.drained, "a short read drains the socket");

            // Arrives while the reader waits.
            let writer = smol::spawn(async move {
                async_io::Timer::after(Duration::from_millis(50)).await;
                client.write_all(b"world").await.unwrap();
                client
            });
            assert_eq!(server.read(&mut buf).await.unwrap(), 5);
            assert_eq!(&buf[..5], b"world");
            let mut client = writer.await;

            // Arrived before the next read began.
            client.write_all(b"again").await.unwrap();
            async_io::Timer::after(Duration::from_millis(50)).await;
            assert_eq!(server.read(&mut buf).await.unwrap(), 5);
            assert_eq!(&buf[..5], b"again");

            // A full read leaves the next one to try the socket first.
            client.write_all(&[7; 64]).await.unwrap();
            async_io::Timer::after(Duration::from_millis(50)).await;
            assert_eq!(server.read(&mut buf).await.unwrap(), 64);
            assert!(!server.drained);

            drop(client);
            assert_eq!(server.read(&mut buf).await.unwrap(), 0, "end of stream");
        });
    }
}

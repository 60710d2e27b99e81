//! The emulator's own listener: each accepted connection carries a handle
//! that a request can use to kill it (a connection-reset fault), and the
//! client's address (the rate limit is per client IP).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What a request knows of its connection (`ConnectInfo<Conn>`).
#[derive(Debug, Clone)]
pub struct Conn {
    pub remote: SocketAddr,
    pub control: Arc<ConnControl>,
}

/// Lets a request kill its connection.
#[derive(Debug, Default)]
pub struct ConnControl {
    killed: AtomicBool,
}

impl ConnControl {
    /// From now on every write fails and the socket is reset (`SO_LINGER`
    /// 0): a response not yet written never reaches the client.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// A TCP listener whose connections can be killed.
pub struct EmuListener(pub TcpListener);

impl Listener for EmuListener {
    type Io = ConnIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (ConnIo, Conn) {
        loop {
            match self.0.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let control = Arc::new(ConnControl::default());
                    return (
                        ConnIo {
                            stream,
                            control: control.clone(),
                        },
                        Conn { remote, control },
                    );
                }
                // Out of file descriptors and the like: wait, as axum does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn {
            remote: self.0.local_addr()?,
            control: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, EmuListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, EmuListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A connection's socket, failing every write once killed.
pub struct ConnIo {
    stream: TcpStream,
    control: Arc<ConnControl>,
}

impl ConnIo {
    fn reset(&self) -> io::Error {
        let _ = self.stream.set_zero_linger();
        io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by the emulator (fault)")
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.control.is_killed() {
            return Poll::Ready(Err(self.reset()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.control.is_killed() {
            return Poll::Ready(Err(self.reset()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.is_killed() {
            return Poll::Ready(Err(self.reset()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

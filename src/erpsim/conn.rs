//! Connections that a handler can kill. `reset_before` and `drop_after` must look to the
//! client like a network failure — a reset with no HTTP answer — not like a status code, or
//! the ambiguous case tallyman has to survive would never be exercised. axum gives handlers no
//! socket, so every accepted stream is wrapped: a handler flags its connection, and the
//! wrapper then sets SO_LINGER 0 and fails the first write of the answer, so hyper drops the
//! socket and the kernel sends RST without a byte of the response.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The per-connection switch a handler reaches through `ConnectInfo<Conn>`.
#[derive(Debug, Clone, Default)]
pub struct Conn(Arc<AtomicBool>);

impl Conn {
    /// The connection is reset instead of answering the current request.
    pub fn abort(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_aborted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct SimListener(pub TcpListener);

pub struct SimStream {
    tcp: TcpStream,
    conn: Conn,
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (SimStream, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (
                        SimStream {
                            tcp,
                            conn: Conn::default(),
                        },
                        addr,
                    );
                }
                // Out of descriptors or a connection that died in the backlog: wait a little
                // rather than spin, as axum's own listener does.
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, SimListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.io().conn.clone()
    }
}

impl SimStream {
    /// Once aborted, every operation fails; the first also arms the reset for the close.
    fn check(&self) -> io::Result<()> {
        if !self.conn.is_aborted() {
            return Ok(());
        }
        let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "erp-sim: connection reset by fault",
        ))
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.check()?;
        Pin::new(&mut me.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.check()?;
        Pin::new(&mut me.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.check()?;
        Pin::new(&mut me.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.check()?;
        Pin::new(&mut me.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.check()?;
        Pin::new(&mut me.tcp).poll_shutdown(cx)
    }
}

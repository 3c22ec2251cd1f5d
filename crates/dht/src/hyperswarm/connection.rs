//! The connections a swarm hands out, and the rule that keeps one connection per peer.

use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::hyperdht::Connection;
use crate::protomux::FrameTransport;
use crate::secret_stream::SecretStreamError;

/// How long a connection may exist before keep-alives alone have made it "established" (hyperdht's
/// `connectionKeepAlive`, 5 s: after that much silence both ends have sent a keep-alive message).
pub const ESTABLISHED_AFTER: Duration = crate::hyperdht::dht::CONNECTION_KEEP_ALIVE;

/// The tie-break of `_handleServerConnection` when a peer we already have a connection with (or are
/// connecting to) connects to us: true to keep the new (incoming) connection and drop the existing one.
///
/// The new one wins when the existing one is established (bytes went both ways: the peer must have lost it
/// and be reconnecting); otherwise the connection whose initiator is the peer with the larger public key wins,
/// on both sides, so two peers dialling each other at once keep the same one.
pub fn keep_new_connection(
    local_public_key: &[u8; 32],
    remote_public_key: &[u8; 32],
    new_is_initiator: bool,
    existing_established: bool,
) -> bool {
    let expected_initiator = local_public_key > remote_public_key;
    existing_established || expected_initiator == new_is_initiator
}

/// Plaintext bytes moved through a [`SwarmConnection`], shared with the swarm.
#[derive(Debug, Default)]
pub struct Traffic {
    pub(crate) read: AtomicU64,
    pub(crate) written: AtomicU64,
}

impl Traffic {
    /// `rawBytesRead > 0 && rawBytesWritten > 0` in the JS, approximated by the application's traffic, or an
    /// age past [`ESTABLISHED_AFTER`] (when keep-alives have been exchanged).
    pub fn established(&self, opened: Instant, now: Instant) -> bool {
        now.saturating_duration_since(opened) >= ESTABLISHED_AFTER
            || (self.read.load(Ordering::Relaxed) > 0 && self.written.load(Ordering::Relaxed) > 0)
    }
}

/// A connection from a [`super::Hyperswarm`]: the end-to-end encrypted [`Connection`] (a secret-stream over
/// UDX) to one peer, with the swarm watching it.
///
/// Read and write it as a byte stream ([`AsyncRead`]/[`AsyncWrite`]), by messages
/// ([`SwarmConnection::send_message`]/[`SwarmConnection::recv_message`]) or run protomux over it (it is a
/// [`FrameTransport`]); the stream's own getters are reachable through `Deref`. Dropping it tells the swarm the
/// connection is gone (so it may reconnect); the swarm may also close it (a duplicate connection to the same
/// peer, [`super::Hyperswarm::destroy`]), after which reads and writes fail.
pub struct SwarmConnection {
    stream: Connection,
    traffic: Arc<Traffic>,
    _dropped: oneshot::Sender<()>,
}

impl std::fmt::Debug for SwarmConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmConnection")
            .field(
                "remote_public_key",
                &hex::encode(self.stream.remote_public_key()),
            )
            .field("is_initiator", &self.stream.is_initiator())
            .finish_non_exhaustive()
    }
}

impl SwarmConnection {
    pub(crate) fn new(
        stream: Connection,
        traffic: Arc<Traffic>,
        dropped: oneshot::Sender<()>,
    ) -> Self {
        Self {
            stream,
            traffic,
            _dropped: dropped,
        }
    }

    /// The peer's public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        *self.stream.remote_public_key()
    }

    /// True when we opened it (we are the client).
    pub fn is_initiator(&self) -> bool {
        self.stream.is_initiator()
    }

    /// Sends one message (message boundaries kept).
    pub async fn send_message(&mut self, message: &[u8]) -> Result<(), SecretStreamError> {
        self.stream.send_message(message).await?;
        self.traffic
            .written
            .fetch_add(message.len() as u64 + 1, Ordering::Relaxed);
        Ok(())
    }

    /// Receives one message; `None` when the peer ended the stream.
    pub async fn recv_message(&mut self) -> Result<Option<Vec<u8>>, SecretStreamError> {
        let m = self.stream.recv_message().await?;
        if let Some(m) = &m {
            self.traffic
                .read
                .fetch_add(m.len() as u64 + 1, Ordering::Relaxed);
        }
        Ok(m)
    }

    /// Aborts the connection now (the UDX stream is destroyed).
    pub fn destroy(&self) {
        self.stream.get_ref().destroy();
    }

    /// The bare [`Connection`] and a guard standing for it in the swarm: the swarm counts the connection as
    /// open until the stream closes or the guard is dropped. (The swarm no longer sees the traffic then, so
    /// for its duplicate tie-break the connection counts as established only by age.)
    pub fn into_parts(self) -> (Connection, ConnectionGuard) {
        (
            self.stream,
            ConnectionGuard {
                _dropped: self._dropped,
            },
        )
    }
}

/// Keeps a connection taken out of a [`SwarmConnection`] ([`SwarmConnection::into_parts`]) registered in its
/// swarm; drop it when done with the connection.
#[derive(Debug)]
pub struct ConnectionGuard {
    _dropped: oneshot::Sender<()>,
}

impl Deref for SwarmConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.stream
    }
}

impl AsyncRead for SwarmConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.traffic.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for SwarmConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.traffic.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl FrameTransport for SwarmConnection {
    fn poll_recv_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        let r = FrameTransport::poll_recv_frame(&mut self.stream, cx);
        if let Poll::Ready(Ok(Some(f))) = &r {
            self.traffic
                .read
                .fetch_add(f.len() as u64 + 1, Ordering::Relaxed);
        }
        r
    }

    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        FrameTransport::send_frame(&mut self.stream, frame)?;
        self.traffic
            .written
            .fetch_add(frame.len() as u64 + 1, Ordering::Relaxed);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        FrameTransport::poll_flush(&mut self.stream, cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        FrameTransport::poll_shutdown(&mut self.stream, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_keep_the_connection_the_larger_key_initiated() {
        let small = [1u8; 32];
        let large = [2u8; 32];
        // Simultaneous dials, nothing exchanged yet. On the large-key side the incoming connection was
        // initiated by the small key: drop it, keep our own outgoing one.
        assert!(!keep_new_connection(&large, &small, false, false));
        // On the small-key side the incoming connection was initiated by the large key: keep it, drop ours.
        assert!(keep_new_connection(&small, &large, false, false));
        // An established existing connection always yields to a new one (the peer is reconnecting).
        assert!(keep_new_connection(&large, &small, false, true));
        assert!(keep_new_connection(&small, &large, false, true));
        // A new connection we initiated (the rule is symmetric in the initiator flag).
        assert!(keep_new_connection(&large, &small, true, false));
        assert!(!keep_new_connection(&small, &large, true, false));
    }

    #[test]
    fn traffic_counts_as_established_both_ways_or_by_age() {
        let t0 = Instant::now();
        let t = Traffic::default();
        assert!(!t.established(t0, t0));
        t.read.store(5, Ordering::Relaxed);
        assert!(!t.established(t0, t0));
        t.written.store(1, Ordering::Relaxed);
        assert!(t.established(t0, t0));
        let idle = Traffic::default();
        assert!(idle.established(t0, t0 + ESTABLISHED_AFTER));
    }
}

//! Piping one local connection (TCP or Unix socket) and one HyperDHT connection both ways, as the JS
//! `connPiper` of `hyper-cmd-lib-net` does: bytes flow both ways, the end of one side's input ends the other
//! side's output (half-close), and an error on either side tears both down.
//!
//! With compression (`--compress`), every chunk read from the local side (at most [`CHUNK`] bytes, a Node
//! `data` event's size) is sent as one secret-stream message holding one gzip member, and every message
//! received is gunzipped and written out. That is the wire format of the JS `hypertele-server --compress`,
//! which both Rust bins speak. (The JS *client* of hypertele 1.1.4 has the two directions swapped — it
//! gunzips what the local application writes and gzips what the server sends — so it cannot talk to any
//! server with `--compress`, the JS one included.)

use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use holepunch::hyperdht::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read from the local side at once with `--compress` (a Node `data` event's size, so the most one
/// compressed message carries), and the largest piece a gunzipped message is written out in.
pub const CHUNK: usize = 64 * 1024;
/// Bytes read from the local side at once without compression (the secret stream cuts them into messages),
/// and the most read from the peer at once: a read takes every buffered message that fits whole, decrypted
/// straight into the buffer, so large buffers mean fewer, larger local writes.
const PLAIN_CHUNK: usize = 256 * 1024;

/// A local connection that splits into owned halves (no lock between the two directions).
pub trait Local {
    /// The reading half.
    type Read: AsyncRead + Unpin;
    /// The writing half.
    type Write: AsyncWrite + Unpin;
    /// Splits the connection.
    fn into_halves(self) -> (Self::Read, Self::Write);
}

impl Local for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Local for tokio::net::UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Why a pipe stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The local connection failed.
    #[error("local connection: {0}")]
    Local(std::io::Error),
    /// The peer connection failed.
    #[error("peer connection: {0}")]
    Peer(std::io::Error),
    /// The peer sent a message that is not gzip data.
    #[error("peer sent a message that is not gzip data: {0}")]
    Gunzip(std::io::Error),
}

/// Live connection counts, as the JS `--debug` prints them (`locCnt`, `remCnt`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Open local connections.
    pub local: AtomicI64,
    /// Open peer connections.
    pub remote: AtomicI64,
}

impl Stats {
    /// The JS line: `connection stats { locCnt: N, remCnt: N }`.
    pub fn line(&self) -> String {
        format!(
            "connection stats {{ locCnt: {}, remCnt: {} }}",
            self.local.load(Ordering::Relaxed),
            self.remote.load(Ordering::Relaxed)
        )
    }
}

/// Counts a pipe as open while alive.
struct Open(Arc<Stats>);

impl Open {
    fn new(stats: Arc<Stats>) -> Self {
        stats.local.fetch_add(1, Ordering::Relaxed);
        stats.remote.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.local.fetch_sub(1, Ordering::Relaxed);
        self.0.remote.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One gzip member holding `data` (level 6, zlib's and Node's default).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Gunzips one message (one or more gzip members, as Node's `gunzip` accepts), handing the output to
/// `sink` in pieces of at most [`CHUNK`] bytes so that a small message cannot make a huge buffer. Empty
/// messages (keep-alives, when not filtered) carry nothing.
pub fn gunzip_chunks(
    message: &[u8],
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if message.is_empty() {
        return Ok(());
    }
    let mut dec = MultiGzDecoder::new(message);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = dec.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink(buf.get(..n).unwrap_or_default())?;
    }
}

/// Gunzips a whole message into one buffer (see [`gunzip_chunks`]).
pub fn gunzip(message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    gunzip_chunks(message, |c| {
        out.extend_from_slice(c);
        Ok(())
    })?;
    Ok(out)
}

/// Pipes `local` and `conn` both ways until both directions ended (each side's end is passed on as a
/// half-close) or one fails. Both connections are closed when this returns: gracefully after a clean end
/// (written data is still delivered), at once after an error (the peer's stream is destroyed).
pub async fn pipe<L: Local>(
    local: L,
    conn: Connection,
    compress: bool,
    stats: Arc<Stats>,
) -> Result<(), PipeError> {
    let _open = Open::new(stats);
    let control = conn.get_ref().control();
    let (mut local_rd, mut local_wr) = local.into_halves();
    let (mut peer_rd, mut peer_wr) = conn.split();

    let up = async {
        let mut buf = vec![0u8; if compress { CHUNK } else { PLAIN_CHUNK }];
        loop {
            let n = local_rd.read(&mut buf).await.map_err(PipeError::Local)?;
            let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
                break;
            };
            if compress {
                peer_wr
                    .send_message(&gzip(data))
                    .await
                    .map_err(|e| PipeError::Peer(e.into()))?;
            } else {
                peer_wr.write_all(data).await.map_err(PipeError::Peer)?;
            }
        }
        peer_wr.shutdown().await.map_err(PipeError::Peer)
    };
    let down = async {
        if compress {
            while let Some(message) = peer_rd
                .recv_message()
                .await
                .map_err(|e| PipeError::Peer(e.into()))?
            {
                let mut pieces = Vec::new();
                gunzip_chunks(&message, |c| {
                    pieces.push(c.to_vec());
                    Ok(())
                })
                .map_err(PipeError::Gunzip)?;
                for piece in pieces {
                    local_wr.write_all(&piece).await.map_err(PipeError::Local)?;
                }
            }
        } else {
            let mut buf = vec![0u8; PLAIN_CHUNK];
            loop {
                let n = peer_rd.read(&mut buf).await.map_err(PipeError::Peer)?;
                let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
                    break;
                };
                local_wr.write_all(data).await.map_err(PipeError::Local)?;
            }
        }
        local_wr.shutdown().await.map_err(PipeError::Local)
    };
    let result = tokio::try_join!(up, down).map(|_| ());
    if result.is_err() {
        // As the JS connPiper's destroy: the peer learns of the failure at once (its stream is reset)
        // instead of seeing a clean end.
        control.destroy();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gzip_round_trip() -> std::io::Result<()> {
        for data in [&b""[..], b"hello", &[0u8; 200_000]] {
            let z = gzip(data);
            assert_eq!(z.get(..2), Some(&[0x1f, 0x8b][..]));
            assert_eq!(gunzip(&z)?, data);
        }
        // Several members in one message, as Node's gunzip reads them.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(gunzip(&two)?, b"abcd");
        assert_eq!(gunzip(b"")?, b"");
        Ok(())
    }

    /// A gzip member Node made: `zlib.gzipSync('hello from node')`.
    #[test]
    fn node_vector() -> std::io::Result<()> {
        let z =
            hex::decode("1f8b0800000000000003cb48cdc9c957482bcacf55c8cb4f490500d31e180a0f000000")
                .unwrap_or_default();
        assert_eq!(gunzip(&z)?, b"hello from node");
        Ok(())
    }

    #[test]
    fn output_comes_in_bounded_pieces() -> std::io::Result<()> {
        let z = gzip(&vec![1u8; 5 * CHUNK + 3]);
        let mut sizes = Vec::new();
        gunzip_chunks(&z, |c| {
            sizes.push(c.len());
            Ok(())
        })?;
        assert!(sizes.iter().all(|&n| n <= CHUNK));
        assert_eq!(sizes.iter().sum::<usize>(), 5 * CHUNK + 3);
        Ok(())
    }

    #[test]
    fn not_gzip_is_an_error() {
        assert!(gunzip(b"hello world\n").is_err());
        let z = gzip(b"some text to compress");
        for cut in 1..z.len() {
            assert!(gunzip(&z[..cut]).is_err(), "truncated at {cut}");
        }
    }

    proptest! {
        #[test]
        fn gunzip_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = gunzip(&bytes);
        }

        #[test]
        fn mutated_gzip_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), pos in any::<usize>(), byte in any::<u8>()) {
            let mut z = gzip(&data);
            let i = pos % z.len();
            if let Some(b) = z.get_mut(i) {
                *b ^= byte | 1;
            }
            let _ = gunzip(&z);
        }
    }
}

//! The secret stream over a transport that lends its buffers ([`InPlaceOps`]): every combination of in-place and
//! ordinary ends carries the same bytes, frames wrapping around the transport's ring, reads into buffers smaller
//! than a message, empty messages, frames too large to wait for, a transport that ends mid-frame, and damaged
//! bytes, which fail as on the ordinary path.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use holepunch_streams::noise::{HandshakeResult, Keypair};
use holepunch_streams::secret_stream::{
    encode_id_header, Encryptor, InPlaceOps, Received, SecretStream, SendRoom,
};
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const LIMIT: Duration = Duration::from_secs(20);

/// One direction of an in-memory transport: a bounded byte queue (a `VecDeque`, which wraps around like a ring).
#[derive(Default)]
struct Queue {
    data: VecDeque<u8>,
    ended: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// One end of an in-memory transport with a byte-stream API and an [`InPlaceOps`] that lends its queues.
struct End {
    rx: Arc<Mutex<Queue>>,
    tx: Arc<Mutex<Queue>>,
    /// How many bytes a queue holds at most.
    cap: usize,
}

fn pair(cap: usize) -> (End, End) {
    let (x, y) = (Arc::default(), Arc::default());
    (
        End {
            rx: Arc::clone(&x),
            tx: Arc::clone(&y),
            cap,
        },
        End { rx: y, tx: x, cap },
    )
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut q = lock(&self.rx);
        if q.data.is_empty() {
            if q.ended {
                return Poll::Ready(Ok(()));
            }
            q.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.remaining().min(q.data.len());
        for b in q.data.drain(..n) {
            buf.put_slice(&[b]);
        }
        if let Some(w) = q.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut q = lock(&self.tx);
        let room = self.cap.saturating_sub(q.data.len());
        if room == 0 {
            q.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        q.data.extend(&data[..n]);
        if let Some(w) = q.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut q = lock(&self.tx);
        q.ended = true;
        if let Some(w) = q.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// The room at the end of a queue.
struct Room<'a> {
    q: &'a mut Queue,
    cap: usize,
}

impl SendRoom for Room<'_> {
    fn capacity(&self) -> usize {
        self.cap.saturating_sub(self.q.data.len())
    }

    fn reserve(&mut self, n: usize) -> Option<(&mut [u8], &mut [u8])> {
        if n == 0 || n > self.capacity() {
            return None;
        }
        // Stale bytes, as in a ring: the secret stream must overwrite them all.
        let len = self.q.data.len();
        self.q.data.resize(len + n, 0xa5);
        let (a, b) = self.q.data.as_mut_slices();
        if b.len() >= n {
            let at = b.len() - n;
            Some((&mut b[at..], &mut []))
        } else {
            let from_a = n - b.len();
            let at = a.len() - from_a;
            Some((&mut a[at..], b))
        }
    }
}

fn poll_write_in_place(
    end: &mut End,
    cx: &mut Context<'_>,
    min: usize,
    fill: &mut dyn FnMut(&mut dyn SendRoom),
) -> Poll<io::Result<()>> {
    let mut q = lock(&end.tx);
    if q.ended {
        return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
    }
    if end.cap.saturating_sub(q.data.len()) < min.max(1) {
        q.writer = Some(cx.waker().clone());
        return Poll::Pending;
    }
    fill(&mut Room {
        q: &mut q,
        cap: end.cap,
    });
    if let Some(w) = q.reader.take() {
        w.wake();
    }
    Poll::Ready(Ok(()))
}

fn poll_read_in_place(
    end: &mut End,
    cx: &mut Context<'_>,
    take: &mut dyn FnMut(Received<'_>) -> Option<usize>,
) -> Poll<io::Result<()>> {
    let mut q = lock(&end.rx);
    if q.data.is_empty() && !q.ended {
        q.reader = Some(cx.waker().clone());
        return Poll::Pending;
    }
    let ended = q.ended;
    let (first, second) = q.data.as_slices();
    match take(Received {
        first,
        second,
        ended,
        window: end.cap,
    }) {
        Some(n) => {
            assert!(n <= q.data.len(), "took {n} of {} bytes", q.data.len());
            q.data.drain(..n);
            if let Some(w) = q.writer.take() {
                w.wake();
            }
            Poll::Ready(Ok(()))
        }
        None => {
            assert!(!ended, "waits after the end");
            q.reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

const OPS: InPlaceOps<End> = InPlaceOps {
    poll_write: poll_write_in_place,
    poll_read: poll_read_in_place,
};

fn results() -> (HandshakeResult, HandshakeResult) {
    let (a, b) = (
        Keypair::from_seed(&[1; 32]).public_key,
        Keypair::from_seed(&[2; 32]).public_key,
    );
    let hs = |is_initiator, tx, rx, (public_key, remote_public_key)| HandshakeResult {
        is_initiator,
        public_key,
        remote_public_key,
        tx,
        rx,
        hash: [9; 64],
    };
    (
        hs(true, [1; 32], [2; 32], (a, b)),
        hs(false, [2; 32], [1; 32], (b, a)),
    )
}

/// A connected pair of secret streams over an in-memory transport of `cap` bytes a direction, each lending
/// the transport's buffers or not.
fn streams(
    cap: usize,
    a_in_place: bool,
    b_in_place: bool,
) -> (SecretStream<End>, SecretStream<End>) {
    let (x, y) = pair(cap);
    let (ra, rb) = results();
    let mut a = SecretStream::from_handshake(x, true, ra);
    let mut b = SecretStream::from_handshake(y, false, rb);
    if a_in_place {
        a.set_in_place(OPS);
    }
    if b_in_place {
        b.set_in_place(OPS);
    }
    (a, b)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

/// Sends `data` from `a` to `b` in writes of the given sizes (cycled) and reads it with buffers of the given
/// sizes (cycled), with empty messages among the writes; returns what `b` read.
async fn transfer(
    a: &mut SecretStream<End>,
    b: &mut SecretStream<End>,
    data: &[u8],
    writes: &[usize],
    reads: &[usize],
) -> Vec<u8> {
    let send = async {
        let mut at = 0;
        let mut i = 0;
        while at < data.len() {
            let n = writes[i % writes.len()].clamp(1, data.len() - at);
            a.write_all(&data[at..at + n]).await.expect("write");
            if i % 7 == 3 {
                // An empty message (as a keep-alive): the byte stream never sees it.
                a.send_message(&[]).await.expect("empty message");
            }
            at += n;
            i += 1;
        }
        a.shutdown().await.expect("shutdown");
    };
    let recv = async {
        let mut got = Vec::with_capacity(data.len());
        let mut i = 0;
        loop {
            let mut buf = vec![0; reads[i % reads.len()].max(1)];
            let n = b.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            i += 1;
        }
        got
    };
    let ((), got) = tokio::time::timeout(LIMIT, async { tokio::join!(send, recv) })
        .await
        .expect("transfer in time");
    got
}

#[tokio::test]
async fn every_combination_of_in_place_ends_carries_the_same_bytes() {
    let data = pattern(3 << 20, 7);
    let writes = [65_536, 1, 70_000, 12_345, 200_000, 17, 65_535];
    let reads = [262_144, 65_536, 100, 300_000, 65_553, 1];
    for (a_in_place, b_in_place) in [(true, true), (true, false), (false, true), (false, false)] {
        // A small transport makes the writer wait for room and the queues wrap many times.
        let (mut a, mut b) = streams(200_000, a_in_place, b_in_place);
        let got = transfer(&mut a, &mut b, &data, &writes, &reads).await;
        assert!(
            got == data,
            "writer in place {a_in_place}, reader in place {b_in_place}: {} of {} bytes, or different",
            got.len(),
            data.len()
        );
    }
}

#[tokio::test]
async fn the_message_api_and_reads_mix_on_an_in_place_stream() {
    let (mut a, mut b) = streams(1 << 20, true, true);
    a.write_all(b"bytes first").await.expect("write");
    a.send_message(b"a message").await.expect("message");
    a.write_all(b"then bytes").await.expect("write");
    a.flush().await.expect("flush");
    let mut buf = [0u8; 11];
    b.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"bytes first");
    assert_eq!(
        b.recv_message().await.expect("message").as_deref(),
        Some(&b"a message"[..])
    );
    // Read one byte at a time: every message is larger than the room, and staged.
    let mut rest = Vec::new();
    for _ in 0..10 {
        let mut one = [0u8; 1];
        b.read_exact(&mut one).await.expect("read a byte");
        rest.push(one[0]);
    }
    assert_eq!(rest, b"then bytes");
}

#[tokio::test]
async fn a_frame_larger_than_half_the_window_goes_the_ordinary_way() {
    // A 100 KB message over a transport of 120 KB: the reader cannot wait for it in place.
    let data = pattern(300_000, 3);
    let (mut a, mut b) = streams(120_000, false, true);
    let send = async {
        // Through the message API: one frame per message, whatever its size.
        for chunk in data.chunks(100_000) {
            a.send_message(chunk).await.expect("message");
        }
        a.shutdown().await.expect("shutdown");
    };
    let recv = async {
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        got
    };
    let ((), got) = tokio::time::timeout(LIMIT, async { tokio::join!(send, recv) })
        .await
        .expect("in time");
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
}

/// The bytes a peer sends: our header frame, then `messages` as frames.
fn peer_bytes(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![56, 0, 0];
    let mut peer = Encryptor::new(&[2; 32]);
    out.extend_from_slice(&encode_id_header(&[9; 64], false, peer.header()));
    for m in messages {
        peer.encrypt_frame(m, &mut out).expect("frame");
    }
    out
}

/// A reader lending the transport's buffers, fed `input` and then the end.
fn reader_of(input: &[u8]) -> SecretStream<End> {
    let (x, y) = pair(1 << 20);
    {
        let mut q = lock(&x.tx);
        q.data.extend(input);
        q.ended = true;
    }
    let (ra, _) = results();
    let mut s = SecretStream::from_handshake(y, true, ra);
    drop(x);
    s.set_in_place(OPS);
    s
}

#[tokio::test]
async fn a_transport_that_ends_mid_frame_is_truncated() {
    let mut input = peer_bytes(&[b"whole", b"cut short"]);
    input.truncate(input.len() - 5);
    let mut s = reader_of(&input);
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await.expect("the whole message");
    assert_eq!(&buf, b"whole");
    let err = s.read(&mut [0u8; 64]).await.expect_err("truncated");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
}

#[tokio::test]
async fn a_damaged_frame_fails_authentication() {
    let mut input = peer_bytes(&[b"fine", b"tampered with"]);
    let last = input.len() - 20;
    input[last] ^= 1;
    let mut s = reader_of(&input);
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.expect("the genuine message");
    let err = s.read(&mut [0u8; 64]).await.expect_err("damaged");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(s.read(&mut [0u8; 64]).await.is_err(), "destroyed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Arbitrary bytes after a genuine header and message: the in-place reader ends in an error or a clean
    /// end, never a panic, and hands out what the ordinary reader hands out.
    #[test]
    fn arbitrary_bytes_read_in_place_as_on_the_ordinary_path(tail in proptest::collection::vec(any::<u8>(), 0..400), read in 1usize..64) {
        let mut input = peer_bytes(&[b"genuine"]);
        input.extend_from_slice(&tail);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let outcome = |in_place: bool| rt.block_on(async {
            let mut s = reader_of(&input);
            if !in_place {
                s = {
                    let (x, y) = pair(1 << 20);
                    lock(&x.tx).data.extend(&input);
                    lock(&x.tx).ended = true;
                    SecretStream::from_handshake(y, true, results().0)
                };
            }
            let mut got = Vec::new();
            let mut buf = vec![0; read];
            let end = loop {
                match s.read(&mut buf).await {
                    Ok(0) => break None,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break Some(e.kind()),
                }
            };
            (got, end)
        });
        prop_assert_eq!(outcome(true), outcome(false));
    }
}

//! Feeds arbitrary bytes to the secret-stream frame parser, header check and decryptor, and to a whole
//! `SecretStream` (handshake phase, or data phase after a genuine header and message, reading through its own
//! buffer or, with `InPlaceOps`, decrypting straight out of a transport's ring that wraps at an arbitrary point).
#![no_main]

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use holepunch::noise::{HandshakeResult, Keypair};
use holepunch::secret_stream::{
    decode_id_header, encode_id_header, split_frame, Decryptor, Encryptor, InPlaceOps, Received,
    SecretStream, SendRoom, UnorderedBox,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A transport holding its input in a ring (a `VecDeque`), lent to the secret stream's in-place reads and read
/// as bytes otherwise; it swallows writes.
struct Ring(VecDeque<u8>);

impl Ring {
    /// `input` in a ring whose storage wraps `rotate` bytes in.
    fn new(input: &[u8], rotate: usize) -> Self {
        let mut q = VecDeque::with_capacity(input.len() + 1);
        let rotate = rotate % (q.capacity() + 1);
        q.extend(std::iter::repeat_n(0, rotate));
        q.drain(..rotate);
        q.extend(input);
        Ring(q)
    }
}

impl AsyncRead for Ring {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.0.len());
        let bytes: Vec<u8> = self.0.drain(..n).collect();
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Ring {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn ring_write(
    _: &mut Ring,
    _: &mut Context<'_>,
    _: usize,
    _: &mut dyn FnMut(&mut dyn SendRoom),
) -> Poll<io::Result<()>> {
    Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
}

fn ring_read(
    ring: &mut Ring,
    _: &mut Context<'_>,
    take: &mut dyn FnMut(Received<'_>) -> Option<usize>,
) -> Poll<io::Result<()>> {
    let (first, second) = ring.0.as_slices();
    let len = ring.0.len();
    match take(Received {
        first,
        second,
        ended: true,
        window: 1 << 20,
    }) {
        Some(n) => {
            assert!(n <= len, "took more than was there");
            ring.0.drain(..n);
            Poll::Ready(Ok(()))
        }
        None => panic!("waited for bytes after the end"),
    }
}

const RING: InPlaceOps<Ring> = InPlaceOps {
    poll_write: ring_write,
    poll_read: ring_read,
};

/// In-memory I/O never waits, so polling to completion terminates; give up if it would wait.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

fn transport(input: Vec<u8>) -> tokio::io::Join<std::io::Cursor<Vec<u8>>, tokio::io::Sink> {
    tokio::io::join(std::io::Cursor::new(input), tokio::io::sink())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // sans-IO decoders
    let _ = UnorderedBox::new(&[3; 64], selector & 2 == 0).open(rest);
    let mut cursor = rest;
    let mut dec = Decryptor::new(&[2; 32], &[7; 24]);
    while let Some((body, tail)) = split_frame(cursor) {
        let _ = decode_id_header(body, &[3; 64], selector & 1 == 0);
        let _ = dec.decrypt(body);
        // Straight into a caller's buffer, of the right size or one byte off.
        let mut out = vec![0; body.len().saturating_sub(17) + usize::from(selector & 4 != 0)];
        let _ = dec.decrypt_into(body, &mut out);
        let _ = dec.decrypt_in_place(&mut body.to_vec());
        cursor = tail;
    }

    let a = Keypair::from_seed(&[1; 32]);
    let b = Keypair::from_seed(&[2; 32]);
    match selector % 4 {
        0 => {
            let _ = block_on(SecretStream::accept(transport(rest.to_vec()), &a));
        }
        1 => {
            let _ = block_on(SecretStream::connect(transport(rest.to_vec()), &a));
        }
        sel => {
            let result = HandshakeResult {
                is_initiator: true,
                public_key: a.public_key,
                remote_public_key: b.public_key,
                tx: [1; 32],
                rx: [2; 32],
                hash: [3; 64],
            };
            let mut input = vec![56, 0, 0];
            let mut peer = Encryptor::new(&[2; 32]);
            input.extend_from_slice(&encode_id_header(&[3; 64], false, peer.header()));
            if peer.encrypt_frame(b"genuine", &mut input).is_err() {
                return;
            }
            input.extend_from_slice(rest);
            if sel == 3 {
                // Decrypted in place, into reads of 1 to 64 bytes (messages larger than that are staged).
                let read = usize::from(selector >> 2) + 1;
                let mut s =
                    SecretStream::from_handshake(Ring::new(&input, rest.len()), true, result);
                s.set_in_place(RING);
                let _ = block_on(async {
                    let mut buf = vec![0; read];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    let _ = s.recv_message().await;
                });
                return;
            }
            let mut s = SecretStream::from_handshake(transport(input), true, result);
            let _ = block_on(async {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                let _ = s.recv_message().await;
            });
        }
    }
});

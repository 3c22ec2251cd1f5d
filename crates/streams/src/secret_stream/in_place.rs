//! Frames encrypted straight into the transport's send buffer and decrypted straight out of its receive buffer.
//!
//! Over a plain byte stream, a [`SecretStream`](super::SecretStream) encrypts each frame into a buffer of its
//! own and writes it to the transport, which copies it into its send buffer; it reads the transport into a
//! buffer of its own and decrypts from there. A transport that keeps bytes in buffers of its own (a UDX stream's
//! send and receive rings) can lend them instead, through [`InPlaceOps`]: each frame is then encrypted from the
//! application's bytes into the transport's send buffer (the packets' payload is sent from there), and decrypted
//! from the transport's receive buffer into the application's buffer. The frames on the wire are the same.
//!
//! Reading decrypts every frame that is complete and fits the caller's buffer whole; a frame larger than the
//! room left is decrypted into the stream's own buffer and handed out from there. Frames that cannot complete in
//! the transport's buffer (larger than half its receive window), a stream that ended, and anything that fails
//! to decode go through the ordinary read path, which reports errors as without this.

use std::io;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::{frame_size, Decryptor, Encryptor, Result, ABYTES};

/// Room at the end of a transport's send buffer, lent by [`InPlaceOps::poll_write`].
pub trait SendRoom {
    /// How many bytes the buffer takes now.
    fn capacity(&self) -> usize;
    /// Appends `n` bytes (at most [`SendRoom::capacity`]) and returns them, as up to two slices (the second
    /// non-empty when they wrap around the end of a ring), for the caller to fill entirely: they go out as they
    /// are. `None` when `n` is 0 or too large.
    fn reserve(&mut self, n: usize) -> Option<(&mut [u8], &mut [u8])>;
}

/// The received bytes a transport holds unread, lent by [`InPlaceOps::poll_read`].
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The bytes, in order: `first`, then `second` (non-empty when they wrap around the end of a ring).
    pub first: &'a [u8],
    /// See `first`.
    pub second: &'a [u8],
    /// No more bytes will arrive.
    pub ended: bool,
    /// How many bytes the transport buffers unread at most: waiting for more is pointless beyond that.
    pub window: usize,
}

/// The two operations of a transport that lends its buffers to a secret stream (see the module documentation),
/// as plain functions of the transport.
pub struct InPlaceOps<IO> {
    /// Once the send buffer has room for at least the given number of bytes (at least 1), calls the callback
    /// with it and returns `Ready(Ok(()))`; else registers the waker and returns `Pending`. Fails as
    /// `poll_write` would (a closed or shut down transport).
    #[allow(clippy::type_complexity)]
    pub poll_write: fn(
        &mut IO,
        &mut Context<'_>,
        usize,
        &mut dyn FnMut(&mut dyn SendRoom),
    ) -> Poll<io::Result<()>>,
    /// Calls the callback with the received bytes not yet read (not while none are buffered and more may
    /// come); it returns how many to consume, or `None` to wait for more (then `Pending`, woken when more
    /// arrive; never `None` once [`Received::ended`]). A failed transport with nothing buffered returns its
    /// error.
    #[allow(clippy::type_complexity)]
    pub poll_read: fn(
        &mut IO,
        &mut Context<'_>,
        &mut dyn FnMut(Received<'_>) -> Option<usize>,
    ) -> Poll<io::Result<()>>,
}

impl<IO> Clone for InPlaceOps<IO> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<IO> Copy for InPlaceOps<IO> {}

impl<IO> std::fmt::Debug for InPlaceOps<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlaceOps").finish_non_exhaustive()
    }
}

/// Encrypts `message` as one frame into `room`. Where the room wraps around the end of the transport's ring,
/// the frame is encrypted into `scratch` and copied into the two pieces. Returns false (and reserves nothing)
/// when the room is too small.
pub(super) fn write_frame(
    encrypt: &mut Encryptor,
    scratch: &mut Vec<u8>,
    message: &[u8],
    room: &mut dyn SendRoom,
) -> Result<bool> {
    let size = frame_size(message.len());
    let Some((first, second)) = room.reserve(size) else {
        return Ok(false);
    };
    let sealed = if second.is_empty() {
        encrypt.encrypt_frame_into(message, first)
    } else {
        scratch.clear();
        scratch.resize(size, 0);
        encrypt.encrypt_frame_into(message, scratch).map(|()| {
            let (a, b) = scratch.split_at(first.len());
            first.copy_from_slice(a);
            second.copy_from_slice(b);
        })
    };
    if sealed.is_err() {
        // The space goes out regardless: zeros, which the peer rejects, rather than stale bytes.
        first.fill(0);
        second.fill(0);
    }
    sealed.map(|()| true)
}

/// What [`read_frames`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Frames were taken (the caller's buffer may still be unfilled: empty messages).
    Took,
    /// The next frame was larger than the caller's room: it was decrypted into the stream's buffer, whose
    /// first `n` bytes now hold its plaintext.
    Staged(usize),
    /// The next frame is not complete yet: wait for more bytes.
    Wait,
    /// Leave the next frame to the ordinary read path.
    Fallback,
}

/// Decrypts the complete frames at the start of `rx` into `buf`, as many as fit whole, straight from the
/// transport's buffer; with nothing taken yet, a frame too large for `buf` is decrypted into `stage` instead.
/// Returns how many bytes of `rx` were taken (whole frames), and what comes next.
pub(super) fn read_frames(
    rx: Received<'_>,
    decrypt: &mut Decryptor,
    scratch: &mut Vec<u8>,
    stage: &mut Vec<u8>,
    buf: &mut ReadBuf<'_>,
) -> (usize, Then) {
    let total = rx.first.len() + rx.second.len();
    let byte = |i: usize| match rx.first.get(i) {
        Some(b) => *b,
        None => rx.second.get(i - rx.first.len()).copied().unwrap_or(0),
    };
    let mut at = 0usize;
    loop {
        let stop = |then| (at, if at > 0 { Then::Took } else { then });
        let avail = total - at;
        if avail < 3 {
            return stop(if rx.ended { Then::Fallback } else { Then::Wait });
        }
        let len = usize::from(byte(at))
            | usize::from(byte(at + 1)) << 8
            | usize::from(byte(at + 2)) << 16;
        if len < ABYTES {
            return stop(Then::Fallback);
        }
        let frame = 3 + len;
        if avail < frame {
            let wait = !rx.ended && frame <= rx.window / 2;
            return stop(if wait { Then::Wait } else { Then::Fallback });
        }
        let message = len - ABYTES;
        let staged = message > buf.remaining();
        if staged && at > 0 {
            return (at, Then::Took);
        }
        let (start, end) = (at + 3, at + frame);
        let split = rx.first.len();
        let body: &[u8] = if end <= split {
            rx.first.get(start..end).unwrap_or(&[])
        } else if start >= split {
            rx.second.get(start - split..end - split).unwrap_or(&[])
        } else {
            // The frame wraps around the end of the ring: gather it first (one frame in a ring's worth).
            scratch.clear();
            scratch.extend_from_slice(rx.first.get(start..).unwrap_or(&[]));
            scratch.extend_from_slice(rx.second.get(..end - split).unwrap_or(&[]));
            scratch.as_slice()
        };
        if staged {
            if stage.len() < message {
                stage.resize(message, 0);
            }
            let out = stage.get_mut(..message).unwrap_or(&mut []);
            return match decrypt.decrypt_into(body, out) {
                Ok(()) => (frame, Then::Staged(message)),
                Err(_) => (0, Then::Fallback),
            };
        }
        if decrypt
            .decrypt_into(body, buf.initialize_unfilled_to(message))
            .is_err()
        {
            return stop(Then::Fallback);
        }
        buf.advance(message);
        at += frame;
        if buf.remaining() == 0 {
            return (at, Then::Took);
        }
    }
}

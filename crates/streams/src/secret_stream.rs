//! `@hyperswarm/secret-stream` (6.x): an encrypted, authenticated duplex stream over any reliable byte stream
//! (TCP, a UDX stream), wire-compatible with the JavaScript module.
//!
//! The wire, as the JS lays it out:
//!
//! 1. Noise handshake messages (XX by default; see [`crate::noise`]) with an empty prologue and empty
//!    payloads, each prefixed with its length as a little-endian `uint24`.
//! 2. As soon as a side completes the handshake it sends one header frame: `uint24(56)`, then the 32-byte
//!    stream id (`BLAKE2b-256(key = handshake hash, NS_INITIATOR or NS_RESPONDER)`, see [`stream_id`]) of the
//!    sender's role, then the 24-byte libsodium `crypto_secretstream_xchacha20poly1305` header of the sender's
//!    push stream keyed with its `tx` key. The first frame a side receives after its handshake must be the
//!    peer's header with the id of the peer's role.
//! 3. Then every message is `uint24(len + 17)` followed by one secretstream ciphertext (encrypted tag byte,
//!    ciphertext, 16-byte MAC) with tag `MESSAGE`. Frames carry at most `2^24 - 1` bytes. libsodium's
//!    secretstream rekeys itself when its 32-bit counter wraps; nothing else rekeys.
//! 4. Keep-alive: an empty message (17-byte ciphertext) every `keep_alive` of write silence. Receivers with
//!    keep-alive (or zero-byte filtering) on drop empty messages; the byte-stream API never sees them.
//! 5. End: closing the write side half-closes the raw stream (`end()` in JS); no secretstream `FINAL` tag is
//!    sent.
//!
//! 6. Unordered messages (`send`/`trySend`, for UDX datagrams next to the stream) are secretbox envelopes
//!    under keys derived from the handshake hash: see [`UnorderedBox`].
//!
//! [`SecretStream`] implements tokio's [`AsyncRead`] + [`AsyncWrite`] over the plaintext (each write becomes
//! one message of at most [`MAX_WRITE_CHUNK`] bytes) and a message-level API ([`SecretStream::send_message`],
//! [`SecretStream::recv_message`]) that keeps message boundaries, for protomux; [`SecretStream::split`]
//! gives halves with both APIs for separate tasks. The frame codec ([`split_frame`], [`Encryptor`],
//! [`Decryptor`], [`encode_id_header`], [`decode_id_header`]) is usable on its own, sans-IO.
//!
//! `recv_message` and `poll_recv_message` are cancel-safe (all state lives in the stream); a cancelled
//! `send_message` has already queued its message, which goes out with the next write, flush or read.

use std::future::{poll_fn, Future};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use blake2::digest::{consts::U32, Digest, Mac};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::noise::{Handshake, HandshakeResult, Keypair, NoiseError, Pattern, MAX_MESSAGE_LEN};

/// Bytes secretstream adds to every message (encrypted tag byte + 16-byte MAC).
pub const ABYTES: usize = 17;
/// Length of a secretstream header.
pub const HEADER_BYTES: usize = 24;
/// Length of the header frame's body: stream id + secretstream header.
pub const ID_HEADER_BYTES: usize = 32 + HEADER_BYTES;
/// Largest frame body a `uint24` length allows.
pub const MAX_FRAME_LEN: usize = 0xff_ffff;
/// Largest plaintext message (`MAX_ATOMIC_WRITE` in the JS minus the overhead).
pub const MAX_MESSAGE: usize = MAX_FRAME_LEN - ABYTES;
/// Largest plaintext one [`AsyncWrite::poll_write`] turns into one message.
pub const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// Encrypted bytes buffered by the writer before `poll_write` waits for the transport.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// With [`InPlaceOps`], a write waits for room for a frame of at least this much of its bytes (or all of them):
/// smaller frames would only add overhead.
const IN_PLACE_MIN_MESSAGE: usize = 16 * 1024;
/// Initial size of the read buffer: small, so idle connections stay cheap.
const READ_BUFFER_MIN: usize = 16 * 1024;
/// The read buffer doubles up to this while reads keep filling it (bulk transfers); a frame larger than
/// this grows it to the frame's size.
const READ_BUFFER_BULK: usize = 256 * 1024;

/// Why a secret stream failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretStreamError {
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The Noise handshake failed (bad message, failed authentication, invalid key...).
    #[error("noise handshake failed: {0}")]
    Handshake(#[from] NoiseError),
    /// The handshake completed with a peer whose static key is not the one expected.
    #[error("remote public key mismatch: expected {expected}, got {actual}")]
    RemoteKeyMismatch {
        /// The key the caller asked for (hex).
        expected: String,
        /// The key the peer proved it holds (hex).
        actual: String,
    },
    /// The transport ended before the handshake completed.
    #[error("connection closed during the handshake")]
    HandshakeEof,
    /// A frame longer than the current stage allows (a Noise message during the handshake, the header
    /// size before the header).
    #[error("frame of {len} bytes is too large (max {max})")]
    FrameTooLarge {
        /// Announced frame length.
        len: usize,
        /// The limit at this stage.
        max: usize,
    },
    /// The first frame after the handshake was not a valid header (wrong size or wrong stream id).
    #[error("invalid header message received")]
    InvalidHeader,
    /// A data frame shorter than the secretstream overhead.
    #[error("invalid message received ({0} bytes)")]
    InvalidMessage(usize),
    /// A data frame failed authentication.
    #[error("message authentication failed")]
    Decrypt,
    /// secretstream refused to encrypt (cannot happen for messages within [`MAX_MESSAGE`]).
    #[error("message encryption failed")]
    Encrypt,
    /// Nothing was received for longer than the configured timeout.
    #[error("stream timed out")]
    TimedOut,
    /// A message larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is too large for an atomic write (max {MAX_MESSAGE})")]
    MessageTooLarge(usize),
    /// The transport ended in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// The unordered-message counter came back to its random start (`udp send nonce exchausted` in JS).
    #[error("unordered send nonce exhausted")]
    NonceExhausted,
    /// An earlier error already destroyed the stream.
    #[error("stream destroyed: {0}")]
    Destroyed(String),
}

impl From<SecretStreamError> for io::Error {
    fn from(e: SecretStreamError) -> Self {
        match e {
            SecretStreamError::Io(e) => e,
            SecretStreamError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, e),
            SecretStreamError::Truncated | SecretStreamError::HandshakeEof => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e)
            }
            SecretStreamError::MessageTooLarge(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

type Result<T, E = SecretStreamError> = std::result::Result<T, E>;

fn blake2b_256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake2::Blake2b::<U32>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn keyed_blake2b_256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // The key is a 64-byte handshake hash; BLAKE2b takes keys up to 64 bytes, so this cannot fail, but an
    // over-long key falls back to hashing it first rather than panicking.
    match blake2::Blake2bMac::<U32>::new_from_slice(key) {
        Ok(mut mac) => {
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().into()
        }
        Err(_) => keyed_blake2b_256(&blake2b_256(&[key]), parts),
    }
}

/// hypercore-crypto's `namespace(name, count)[index]`: `BLAKE2b-256(BLAKE2b-256(name) || index)`.
fn namespace(name: &str, index: u8) -> [u8; 32] {
    let ns = blake2b_256(&[name.as_bytes()]);
    blake2b_256(&[&ns, &[index]])
}

const NS_NAME: &str = "hyperswarm/secret-stream";

/// The stream id of one side: `BLAKE2b-256(key = handshake_hash, NS_INITIATOR or NS_RESPONDER)`, as
/// `NoiseSecretStream.id(handshakeHash, isInitiator)`.
pub fn stream_id(handshake_hash: &[u8], is_initiator: bool) -> [u8; 32] {
    let ns = namespace(NS_NAME, if is_initiator { 0 } else { 1 });
    keyed_blake2b_256(handshake_hash, &[&ns])
}

/// The key of one side's unordered (`send`/`trySend`) channel: `BLAKE2b-256(key = handshake_hash,
/// NS_<role> || NS_SEND)`, as secret-stream's `_setupSecretSend` derives it.
pub fn send_key(handshake_hash: &[u8], is_initiator: bool) -> [u8; 32] {
    let role = namespace(NS_NAME, if is_initiator { 0 } else { 1 });
    let send = namespace(NS_NAME, 2);
    keyed_blake2b_256(handshake_hash, &[&role, &send])
}

/// Reads the `uint24` little-endian frame length at the start of `buf`, if three bytes are there.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    match buf {
        [a, b, c, ..] => Some(usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16),
        _ => None,
    }
}

/// Splits one complete frame off the front of `buf`: `Some((body, rest))`, or `None` if more bytes are needed.
pub fn split_frame(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = frame_len(buf)?;
    let body = buf.get(3..3 + len)?;
    let rest = buf.get(3 + len..)?;
    Some((body, rest))
}

#[cfg(test)]
fn push_uint24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8]);
}

/// Builds the header frame body: our stream id followed by our secretstream header.
pub fn encode_id_header(
    handshake_hash: &[u8],
    is_initiator: bool,
    header: &[u8; HEADER_BYTES],
) -> [u8; ID_HEADER_BYTES] {
    let mut out = [0u8; ID_HEADER_BYTES];
    out[..32].copy_from_slice(&stream_id(handshake_hash, is_initiator));
    out[32..].copy_from_slice(header);
    out
}

/// Checks a received header frame body against the id the peer (of role `!is_initiator`) must send, and
/// returns its secretstream header.
pub fn decode_id_header(
    body: &[u8],
    handshake_hash: &[u8],
    is_initiator: bool,
) -> Result<[u8; HEADER_BYTES]> {
    if body.len() != ID_HEADER_BYTES {
        return Err(SecretStreamError::InvalidHeader);
    }
    let (id, header) = body.split_at(32);
    if id != stream_id(handshake_hash, !is_initiator) {
        return Err(SecretStreamError::InvalidHeader);
    }
    header
        .try_into()
        .map_err(|_| SecretStreamError::InvalidHeader)
}

/// Secretstream tag of an ordinary message (`crypto_secretstream_xchacha20poly1305_TAG_MESSAGE`).
const TAG_MESSAGE: u8 = 0;
/// Tag bit that makes both ends rekey after the message (`TAG_REKEY`; `TAG_FINAL` has it too).
const TAG_REKEY: u8 = 2;
/// Bytes of the first keystream block the MAC covers in place of the bare tag byte.
const TAG_BLOCK: usize = 64;
/// Length of the Poly1305 MAC ending every message.
const MAC_BYTES: usize = 16;

/// The state of libsodium's `crypto_secretstream_xchacha20poly1305`, shared by both directions.
///
/// A message under nonce `counter (uint32 LE) || inonce` and subkey `k` (HChaCha20 of the key and the first
/// 16 header bytes) is sealed as: ChaCha20 block 0 gives the Poly1305 key; the 64-byte block `tag || 0*63` is
/// XORed with keystream block 1 (its first byte is the encrypted tag sent on the wire); the message is XORed
/// with the keystream from block 2; the MAC covers that 64-byte block, the ciphertext, `len % 16` zero bytes
/// (libsodium's padding quirk), then `uint64 LE` of the associated data length (0 here) and of `64 + len`.
/// Afterwards `inonce ^= mac[..8]`, the counter is incremented, and the state rekeys when the counter wraps to
/// 0 or the tag has the `REKEY` bit.
///
/// Unlike the `crypto_secretstream` crate this works on the frame layout directly (tag byte, then message,
/// then MAC), so neither end moves the message by one byte to make room for the tag.
struct SodiumStream {
    key: chacha20::Key,
    inonce: [u8; 8],
    counter: u32,
    /// The same primitives from the system's libcrypto, when it has them (faster where OpenSSL has
    /// AVX-512 code); `None`: the RustCrypto code below.
    #[cfg(holepunch_openssl)]
    ossl: Option<ossl::Ossl>,
}

#[cfg(holepunch_openssl)]
mod ossl;

mod in_place;
use in_place::Then;
pub use in_place::{InPlaceOps, Received, SendRoom};

/// The MAC's input after the ciphertext: `len % 16` zero bytes, then `uint64 LE` of the associated data
/// length (0) and of `64 + len`. Returns the buffer and how many of its bytes to use.
#[cfg(holepunch_openssl)]
fn mac_tail(len: usize) -> ([u8; 32], usize) {
    let mut tail = [0u8; 32];
    let at = len % 16 + 8;
    if let Some(t) = tail.get_mut(at..at + 8) {
        t.copy_from_slice(&((TAG_BLOCK + len) as u64).to_le_bytes());
    }
    (tail, at + 8)
}

impl SodiumStream {
    fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        let (hnonce, inonce) = header.split_at(16);
        let mut state = Self {
            key: chacha20::hchacha::<chacha20::cipher::consts::U10>(
                &chacha20::Key::from(*key),
                chacha20::cipher::generic_array::GenericArray::from_slice(hnonce),
            ),
            inonce: [0; 8],
            counter: 1,
            #[cfg(holepunch_openssl)]
            ossl: ossl::Ossl::new(),
        };
        state.inonce.copy_from_slice(inonce);
        state
    }

    /// The libcrypto primitives positioned after keystream block 1: returns them, the one-time Poly1305 key
    /// (block 0), and `tag_block` XORed with block 1.
    #[cfg(holepunch_openssl)]
    fn ossl_cipher(
        &mut self,
        tag_block: &mut [u8; TAG_BLOCK],
    ) -> Option<(&mut ossl::Ossl, [u8; 32])> {
        let key: [u8; 32] = self.key.into();
        let nonce: [u8; 12] = self.nonce().into();
        let o = self.ossl.as_mut()?;
        let mut block0 = [0u8; 64];
        if !(o.start(&key, &nonce) && o.apply(&mut block0) && o.apply(tag_block)) {
            return None;
        }
        let mut mac_key = [0u8; 32];
        mac_key.copy_from_slice(block0.get(..32)?);
        Some((o, mac_key))
    }

    /// [`Self::seal_into`] with the libcrypto primitives; `None` if they are missing or failed (then nothing
    /// changed but `out`, which the caller overwrites).
    #[cfg(holepunch_openssl)]
    fn seal_into_ossl(
        &mut self,
        tag: u8,
        message: &[u8],
        out: &mut [u8],
    ) -> Option<[u8; MAC_BYTES]> {
        let mut tag_block = [0u8; TAG_BLOCK];
        tag_block[0] = tag;
        let (o, mac_key) = self.ossl_cipher(&mut tag_block)?;
        let (first, body) = out.split_at_mut(1.min(out.len()));
        *first.first_mut()? = tag_block[0];
        if !o.apply_b2b(message, body) {
            return None;
        }
        let (tail, tail_len) = mac_tail(body.len());
        let mac = o.mac(&mac_key, &[&tag_block, body, tail.get(..tail_len)?])?;
        self.advance(&mac, tag);
        Some(mac)
    }

    /// Authenticates a sealed message with the libcrypto primitives and leaves their keystream positioned at
    /// its ciphertext. `Some(Some((tag, mac)))`: genuine; `Some(None)`: not genuine; `None`: the primitives are
    /// missing or failed. Changes nothing in the stream's state.
    #[cfg(holepunch_openssl)]
    fn verify_ossl(&mut self, sealed: &[u8]) -> Option<Option<(u8, [u8; MAC_BYTES])>> {
        use subtle::ConstantTimeEq;
        if sealed.len() < ABYTES {
            return Some(None);
        }
        let (head, mac) = sealed.split_at(sealed.len() - MAC_BYTES);
        let (first, body) = head.split_at(1);
        let mut tag_block = [0u8; TAG_BLOCK];
        tag_block[0] = first[0];
        let (o, mac_key) = self.ossl_cipher(&mut tag_block)?;
        let tag = tag_block[0];
        tag_block[0] = first[0];
        let (tail, tail_len) = mac_tail(body.len());
        let expected = o.mac(&mac_key, &[&tag_block, body, tail.get(..tail_len)?])?;
        if !bool::from(expected.ct_eq(mac)) {
            return Some(None);
        }
        Some(Some((tag, expected)))
    }

    fn nonce(&self) -> chacha20::Nonce {
        let mut nonce = chacha20::Nonce::default();
        let (counter, inonce) = nonce.split_at_mut(4);
        counter.copy_from_slice(&self.counter.to_le_bytes());
        inonce.copy_from_slice(&self.inonce);
        nonce
    }

    /// The cipher positioned at keystream block 1 and the one-time Poly1305 key (block 0).
    fn cipher(&self) -> (chacha20::ChaCha20, poly1305::Key) {
        use chacha20::cipher::{KeyIvInit, StreamCipher};
        let mut cipher = chacha20::ChaCha20::new(&self.key, &self.nonce());
        let mut block0 = [0u8; 64];
        cipher.apply_keystream(&mut block0);
        let mut mac_key = poly1305::Key::default();
        mac_key.copy_from_slice(block0.get(..32).unwrap_or(&[0; 32]));
        (cipher, mac_key)
    }

    fn mac(
        mac_key: &poly1305::Key,
        tag_block: &[u8; TAG_BLOCK],
        ciphertext: &[u8],
    ) -> [u8; MAC_BYTES] {
        use poly1305::universal_hash::{KeyInit, UniversalHash};
        let mut mac = poly1305::Poly1305::new(mac_key);
        mac.update_padded(tag_block);
        let whole = ciphertext.len() - ciphertext.len() % 16;
        let (blocks, rest) = ciphertext.split_at(whole);
        mac.update_padded(blocks);
        // The rest of the ciphertext, `len % 16` zero bytes, then the two lengths, with no padding between.
        let mut tail = [0u8; 3 * 16];
        let lengths_at = 2 * rest.len();
        if let Some(t) = tail.get_mut(..rest.len()) {
            t.copy_from_slice(rest);
        }
        if let Some(t) = tail.get_mut(lengths_at + 8..lengths_at + 16) {
            t.copy_from_slice(&((TAG_BLOCK + ciphertext.len()) as u64).to_le_bytes());
        }
        mac.compute_unpadded(tail.get(..lengths_at + 16).unwrap_or(&[]))
            .into()
    }

    /// After a message: fold the MAC into the nonce, count, and rekey when due.
    fn advance(&mut self, mac: &[u8; MAC_BYTES], tag: u8) {
        for (n, m) in self.inonce.iter_mut().zip(mac) {
            *n ^= m;
        }
        self.counter = self.counter.wrapping_add(1);
        if tag & TAG_REKEY != 0 || self.counter == 0 {
            use chacha20::cipher::{KeyIvInit, StreamCipher};
            let mut cipher = chacha20::ChaCha20::new(&self.key, &self.nonce());
            let mut next = [0u8; 40];
            let (k, n) = next.split_at_mut(32);
            k.copy_from_slice(&self.key);
            n.copy_from_slice(&self.inonce);
            cipher.apply_keystream(&mut next);
            let (k, n) = next.split_at(32);
            self.key.copy_from_slice(k);
            self.inonce.copy_from_slice(n);
            self.counter = 1;
        }
    }

    /// Seals `message` into `out` (`1 + message.len()` bytes): the encrypted tag byte, then the ciphertext,
    /// encrypted straight from `message` (no separate copy pass). Returns the MAC to append.
    fn seal_into(&mut self, tag: u8, message: &[u8], out: &mut [u8]) -> [u8; MAC_BYTES] {
        #[cfg(holepunch_openssl)]
        if let Some(mac) = self.seal_into_ossl(tag, message, out) {
            return mac;
        }
        self.seal_into_rust(tag, message, out)
    }

    /// [`Self::seal_into`] with the RustCrypto primitives.
    fn seal_into_rust(&mut self, tag: u8, message: &[u8], out: &mut [u8]) -> [u8; MAC_BYTES] {
        use chacha20::cipher::StreamCipher;
        let (mut cipher, mac_key) = self.cipher();
        let mut tag_block = [0u8; TAG_BLOCK];
        tag_block[0] = tag;
        cipher.apply_keystream(&mut tag_block);
        let (first, body) = out.split_at_mut(1.min(out.len()));
        if let Some(b) = first.first_mut() {
            *b = tag_block[0];
        }
        // The lengths match by construction (callers size `out` from `message`); were they not, the
        // cipher refuses and the frame fails authentication at the peer rather than leaking anything.
        let _ = cipher.apply_keystream_b2b(message, body);
        let mac = Self::mac(&mac_key, &tag_block, body);
        self.advance(&mac, tag);
        mac
    }

    /// Authenticates a sealed message (`sealed` is the encrypted tag byte, the ciphertext and the MAC) and
    /// returns the tag, with the cipher positioned at the ciphertext's keystream. Changes nothing.
    fn verify(&self, sealed: &[u8]) -> Option<(u8, [u8; MAC_BYTES], chacha20::ChaCha20)> {
        use chacha20::cipher::StreamCipher;
        use subtle::ConstantTimeEq;
        if sealed.len() < ABYTES {
            return None;
        }
        let (head, mac) = sealed.split_at(sealed.len() - MAC_BYTES);
        let (first, body) = head.split_at(1);
        let (mut cipher, mac_key) = self.cipher();
        let mut tag_block = [0u8; TAG_BLOCK];
        tag_block[0] = first[0];
        cipher.apply_keystream(&mut tag_block);
        let tag = tag_block[0];
        tag_block[0] = first[0];
        let expected = Self::mac(&mac_key, &tag_block, body);
        if !bool::from(expected.ct_eq(mac)) {
            return None;
        }
        Some((tag, expected, cipher))
    }

    /// Opens a message in place: `buf` is the encrypted tag byte, the ciphertext and the MAC. On success the
    /// ciphertext bytes (`buf[1..len - 16]`) hold the plaintext and the tag is returned; on failure nothing
    /// changes, the state included.
    fn open(&mut self, buf: &mut [u8]) -> Option<u8> {
        #[cfg(holepunch_openssl)]
        if let Some(verified) = self.verify_ossl(buf) {
            let (tag, mac) = verified?;
            let end = buf.len() - MAC_BYTES;
            // ChaCha20 of libcrypto does not fail on a context it set up; were it to, the frame is rejected.
            if !self.ossl.as_mut()?.apply(buf.get_mut(1..end)?) {
                return None;
            }
            self.advance(&mac, tag);
            return Some(tag);
        }
        self.open_rust(buf)
    }

    /// [`Self::open`] with the RustCrypto primitives.
    fn open_rust(&mut self, buf: &mut [u8]) -> Option<u8> {
        use chacha20::cipher::StreamCipher;
        let (tag, mac, mut cipher) = self.verify(buf)?;
        let end = buf.len() - MAC_BYTES;
        cipher.apply_keystream(buf.get_mut(1..end).unwrap_or(&mut []));
        self.advance(&mac, tag);
        Some(tag)
    }

    /// Opens a message into `out`, which must be exactly its plaintext's size (`sealed.len() - 17`): the
    /// ciphertext is decrypted straight into `out`, `sealed` is left as it is. On failure nothing changes.
    fn open_into(&mut self, sealed: &[u8], out: &mut [u8]) -> Option<u8> {
        use chacha20::cipher::StreamCipher;
        if sealed.len() != out.len() + ABYTES {
            return None;
        }
        #[cfg(holepunch_openssl)]
        if let Some(verified) = self.verify_ossl(sealed) {
            let (tag, mac) = verified?;
            let body = sealed.get(1..sealed.len() - MAC_BYTES)?;
            if !self.ossl.as_mut()?.apply_b2b(body, out) {
                return None;
            }
            self.advance(&mac, tag);
            return Some(tag);
        }
        let (tag, mac, mut cipher) = self.verify(sealed)?;
        let body = sealed.get(1..sealed.len() - MAC_BYTES).unwrap_or(&[]);
        cipher.apply_keystream_b2b(body, out).ok()?;
        self.advance(&mac, tag);
        Some(tag)
    }
}

/// The sending half of the secretstream: turns plaintext messages into frames.
pub struct Encryptor {
    stream: SodiumStream,
    header: [u8; HEADER_BYTES],
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor").finish_non_exhaustive()
    }
}

impl Encryptor {
    /// A push stream keyed with `tx` and a random header.
    pub fn new(tx: &[u8; 32]) -> Self {
        let mut header = [0u8; HEADER_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut header);
        Self::with_header_for_testing(tx, header)
    }

    /// A push stream with a chosen header (tests and vectors only: headers must be random).
    #[doc(hidden)]
    pub fn with_header_for_testing(tx: &[u8; 32], header: [u8; HEADER_BYTES]) -> Self {
        Self {
            stream: SodiumStream::new(tx, &header),
            header,
        }
    }

    /// The header to send to the peer.
    pub fn header(&self) -> &[u8; HEADER_BYTES] {
        &self.header
    }

    /// Appends the frame of `message` (`uint24` length + ciphertext) to `out`.
    pub fn encrypt_frame(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + frame_size(message.len()), 0);
        self.encrypt_frame_into(message, out.get_mut(start..).unwrap_or(&mut []))
    }

    /// Writes the frame of `message` (`uint24` length + ciphertext) into `frame`, which must be exactly
    /// [`frame_size`]`(message.len())` bytes. The message is encrypted straight from `message` into its place
    /// in `frame`: no separate copy.
    pub fn encrypt_frame_into(&mut self, message: &[u8], frame: &mut [u8]) -> Result<()> {
        if message.len() > MAX_MESSAGE {
            return Err(SecretStreamError::MessageTooLarge(message.len()));
        }
        if frame.len() != frame_size(message.len()) {
            return Err(SecretStreamError::Encrypt);
        }
        let body_len = message.len() + ABYTES;
        let (len, rest) = frame.split_at_mut(3);
        len.copy_from_slice(&(body_len as u32).to_le_bytes()[..3]);
        let (sealed, mac_out) = rest.split_at_mut(1 + message.len());
        let mac = self.stream.seal_into(TAG_MESSAGE, message, sealed);
        mac_out.copy_from_slice(&mac);
        Ok(())
    }
}

/// Size of the frame of a `message_len`-byte message: `uint24` length, encrypted tag byte, ciphertext, MAC.
pub fn frame_size(message_len: usize) -> usize {
    3 + ABYTES + message_len
}

/// The receiving half of the secretstream: authenticates and decrypts frame bodies.
pub struct Decryptor {
    stream: SodiumStream,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor").finish_non_exhaustive()
    }
}

impl Decryptor {
    /// A pull stream keyed with `rx`, started from the peer's header.
    pub fn new(rx: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        Self {
            stream: SodiumStream::new(rx, header),
        }
    }

    /// Decrypts one frame body in place; returns where in `body` the plaintext now is (it is not moved:
    /// it sits after the one-byte tag, `1..body.len() - 16`).
    ///
    /// A failure leaves the decryptor where it was, so the frame is simply rejected; the stream built on
    /// it destroys itself on any failure anyway.
    pub fn decrypt_in_place(&mut self, body: &mut [u8]) -> Result<Range<usize>> {
        if body.len() < ABYTES {
            return Err(SecretStreamError::InvalidMessage(body.len()));
        }
        self.stream.open(body).ok_or(SecretStreamError::Decrypt)?;
        Ok(1..body.len() - MAC_BYTES)
    }

    /// Decrypts one frame body into `out`, which must be exactly the plaintext's size (`body.len() - 17`),
    /// leaving `body` as it is (the ciphertext is decrypted straight into `out`, no copy pass). A failure
    /// leaves the decryptor where it was.
    pub fn decrypt_into(&mut self, body: &[u8], out: &mut [u8]) -> Result<()> {
        if body.len() < ABYTES {
            return Err(SecretStreamError::InvalidMessage(body.len()));
        }
        self.stream
            .open_into(body, out)
            .map(|_| ())
            .ok_or(SecretStreamError::Decrypt)
    }

    /// Decrypts one frame body into a new vector.
    pub fn decrypt(&mut self, body: &[u8]) -> Result<Vec<u8>> {
        if body.len() < ABYTES {
            return Err(SecretStreamError::InvalidMessage(body.len()));
        }
        let mut out = vec![0; body.len() - ABYTES];
        self.decrypt_into(body, &mut out)?;
        Ok(out)
    }
}

/// secret-stream's unordered messages (`send`/`trySend` and the `message` event, carried by UDX datagrams
/// next to the stream), sans-IO.
///
/// Each side seals with [`send_key`] of its own role and opens with the peer's. An envelope is an 8-byte
/// counter followed by NaCl `crypto_secretbox_easy` (16-byte MAC, then the ciphertext) under the nonce
/// `counter || 16 zero bytes`. The counter starts at a random value and is incremented (little-endian, as
/// `sodium_increment`) before each message; coming back to the start is an error.
pub struct UnorderedBox {
    seal: crypto_secretbox::XSalsa20Poly1305,
    open: crypto_secretbox::XSalsa20Poly1305,
    counter: [u8; 8],
    initial: [u8; 8],
}

impl std::fmt::Debug for UnorderedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnorderedBox").finish_non_exhaustive()
    }
}

/// Bytes an unordered envelope adds: counter + MAC.
pub const UNORDERED_OVERHEAD: usize = 8 + 16;

impl UnorderedBox {
    /// The box of one side of a handshake, with a random starting counter.
    pub fn new(handshake_hash: &[u8], is_initiator: bool) -> Self {
        let mut initial = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut initial);
        Self::with_counter(handshake_hash, is_initiator, initial, initial)
    }

    /// A box with a chosen counter and start (tests and vectors only).
    #[doc(hidden)]
    pub fn with_counter(
        handshake_hash: &[u8],
        is_initiator: bool,
        counter: [u8; 8],
        initial: [u8; 8],
    ) -> Self {
        use crypto_secretbox::KeyInit;
        let cipher = |key: [u8; 32]| crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        Self {
            seal: cipher(send_key(handshake_hash, is_initiator)),
            open: cipher(send_key(handshake_hash, !is_initiator)),
            counter,
            initial,
        }
    }

    /// Seals one message into an envelope.
    pub fn seal(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        use crypto_secretbox::AeadInPlace;
        let next = u64::from_le_bytes(self.counter)
            .wrapping_add(1)
            .to_le_bytes();
        if next == self.initial {
            return Err(SecretStreamError::NonceExhausted);
        }
        self.counter = next;
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&self.counter);
        let mut body = message.to_vec();
        let tag = self
            .seal
            .encrypt_in_place_detached(&nonce.into(), &[], &mut body)
            .map_err(|_| SecretStreamError::MessageTooLarge(message.len()))?;
        let mut out = Vec::with_capacity(UNORDERED_OVERHEAD + message.len());
        out.extend_from_slice(&self.counter);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a peer's envelope; `None` for anything malformed or unauthentic (the JS drops those silently).
    pub fn open(&self, envelope: &[u8]) -> Option<Vec<u8>> {
        use crypto_secretbox::AeadInPlace;
        if envelope.len() < UNORDERED_OVERHEAD {
            return None;
        }
        let (counter, rest) = envelope.split_at(8);
        let (tag, ciphertext) = rest.split_at(16);
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(counter);
        let mut body = ciphertext.to_vec();
        let tag: [u8; 16] = tag.try_into().ok()?;
        self.open
            .decrypt_in_place_detached(&nonce.into(), &[], &mut body, &tag.into())
            .ok()?;
        Some(body)
    }
}

/// Options for [`SecretStream`], mirroring the JS constructor options.
#[derive(Debug, Clone, Default)]
pub struct SecretStreamOptions {
    /// Handshake pattern (`opts.pattern`), XX unless set.
    pub pattern: Pattern,
    /// The peer's static key: required for an IK initiator; with XX, the handshake fails with
    /// [`SecretStreamError::RemoteKeyMismatch`] if the peer turns out to hold another key.
    pub remote_public_key: Option<[u8; 32]>,
    /// Send an empty message after this much write silence (`opts.keepAlive`); also turns on zero-byte
    /// message filtering.
    pub keep_alive: Option<Duration>,
    /// Fail with [`SecretStreamError::TimedOut`] when nothing arrives for this long (`setTimeout`).
    pub timeout: Option<Duration>,
    /// Drop empty messages in [`SecretStream::recv_message`] (`opts.filterZeroByteMessages`).
    pub filter_zero_byte_messages: bool,
}

/// The raw transport with its frame buffers and receive timeout.
struct Framed<IO> {
    io: IO,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    eof: bool,
    /// Frames to write are `wbuf[wpos..wend]`. Bytes of `wbuf` past `wend` are left from earlier frames:
    /// the buffer's length only grows, so frames are encrypted into it without zeroing it first.
    wbuf: Vec<u8>,
    wpos: usize,
    wend: usize,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Framed<IO> {
    fn new(io: IO, timeout: Option<Duration>) -> Self {
        let mut f = Self {
            io,
            rbuf: vec![0; READ_BUFFER_MIN],
            rstart: 0,
            rend: 0,
            eof: false,
            wbuf: Vec::new(),
            wpos: 0,
            wend: 0,
            timeout: None,
            timer: None,
        };
        f.set_timeout(timeout);
        f
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
        self.timer = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    }

    /// The next frame if it is complete in `rbuf` (not consumed: see [`Framed::consume`]): `Ok(body)`, or
    /// `Err(bytes)` with how many bytes the next frame needs in all.
    fn buffered_frame(&self, max_len: usize) -> Result<std::result::Result<Range<usize>, usize>> {
        let avail = self.rbuf.get(self.rstart..self.rend).unwrap_or(&[]);
        Ok(match frame_len(avail) {
            Some(len) if len > max_len => {
                return Err(SecretStreamError::FrameTooLarge { len, max: max_len })
            }
            Some(len) if avail.len() >= 3 + len => Ok(self.rstart + 3..self.rstart + 3 + len),
            Some(len) => Err(3 + len),
            None => Err(3),
        })
    }

    /// Drops the buffered bytes before `end` (the end of a frame [`Framed::buffered_frame`] returned).
    fn consume(&mut self, end: usize) {
        self.rstart = end.clamp(self.rstart, self.rend);
    }

    /// The next complete frame body, as a range of `rbuf` valid until the next call; `None` at a clean end.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        max_len: usize,
    ) -> Poll<Result<Option<Range<usize>>>> {
        loop {
            let needed = match self.buffered_frame(max_len)? {
                Ok(body) => {
                    self.consume(body.end);
                    return Poll::Ready(Ok(Some(body)));
                }
                Err(needed) => needed,
            };
            let avail = self.rbuf.get(self.rstart..self.rend).unwrap_or(&[]);
            if self.eof {
                return Poll::Ready(if avail.is_empty() {
                    Ok(None)
                } else {
                    Err(SecretStreamError::Truncated)
                });
            }
            // Make room for the whole frame after the unread bytes.
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
            }
            if self.rbuf.len() - self.rstart < needed || self.rend == self.rbuf.len() {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            let mut want = needed;
            if self.rbuf.len() - self.rend < self.rbuf.len() / 2 {
                // reads keep filling the buffer: grow it for fewer, larger reads
                want = want.max((self.rbuf.len() * 2).min(READ_BUFFER_BULK));
            }
            if self.rbuf.len() < want {
                self.rbuf.resize(want, 0);
            }
            let mut rb = ReadBuf::new(self.rbuf.get_mut(self.rend..).unwrap_or(&mut []));
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        self.eof = true;
                    }
                    self.rend += n;
                    if let (Some(timer), Some(t)) = (self.timer.as_mut(), self.timeout) {
                        timer.as_mut().reset(Instant::now() + t);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    if let Some(timer) = self.timer.as_mut() {
                        if timer.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(SecretStreamError::TimedOut));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Bytes arrived: the receive timeout starts over.
    fn received(&mut self) {
        if let (Some(timer), Some(t)) = (self.timer.as_mut(), self.timeout) {
            timer.as_mut().reset(Instant::now() + t);
        }
    }

    /// Whether the receive timeout expired (else its waker is registered).
    fn poll_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    fn pending_write(&self) -> usize {
        self.wend - self.wpos
    }

    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wend {
            let chunk = self.wbuf.get(self.wpos..self.wend).unwrap_or(&[]);
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, chunk))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wpos = 0;
        self.wend = 0;
        Poll::Ready(Ok(()))
    }

    /// Room for `n` more bytes of frames at the end of the write buffer, counted as pending.
    fn reserve_frame(&mut self, n: usize) -> &mut [u8] {
        let start = self.wend;
        if self.wbuf.len() < start + n {
            self.wbuf.resize(start + n, 0);
        }
        self.wend = start + n;
        self.wbuf.get_mut(start..start + n).unwrap_or(&mut [])
    }

    fn queue_frame(&mut self, body: &[u8]) {
        let frame = self.reserve_frame(3 + body.len());
        let (len, rest) = frame.split_at_mut(3.min(frame.len()));
        len.copy_from_slice(&(body.len() as u32).to_le_bytes()[..len.len()]);
        rest.copy_from_slice(body);
    }

    /// Encrypts `message` as one frame at the end of the write buffer.
    fn queue_message(&mut self, encrypt: &mut Encryptor, message: &[u8]) -> Result<()> {
        if message.len() > MAX_MESSAGE {
            return Err(SecretStreamError::MessageTooLarge(message.len()));
        }
        let frame = self.reserve_frame(frame_size(message.len()));
        encrypt.encrypt_frame_into(message, frame)
    }

    async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_drain(cx)).await?;
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)).await
    }
}

/// An encrypted `@hyperswarm/secret-stream` over `IO`.
///
/// Reading and writing carry plaintext. Written bytes are buffered as encrypted frames and go out as the
/// transport accepts them; call `flush` (or [`SecretStream::send_message`], which flushes) to push out the
/// tail. Keep-alive and the receive timeout run on the read side: they need a pending read (or
/// `recv_message`), as any live connection has. Reads and writes can run in different tasks through
/// [`tokio::io::split`]. Any protocol error destroys the stream: later calls fail with
/// [`SecretStreamError::Destroyed`].
pub struct SecretStream<IO> {
    framed: Framed<IO>,
    is_initiator: bool,
    public_key: [u8; 32],
    remote_public_key: [u8; 32],
    handshake_hash: [u8; 64],
    rx: [u8; 32],
    encrypt: Encryptor,
    decrypt: Option<Decryptor>,
    /// Plaintext of the current message, not yet handed out, as a range of `framed.rbuf`.
    plain: Range<usize>,
    keep_alive: Option<Duration>,
    keep_alive_timer: Option<Pin<Box<Sleep>>>,
    filter_zero_byte_messages: bool,
    write_closed: bool,
    /// The waker of a write or flush blocked on the transport, woken whenever the read side touches the
    /// transport's write direction (which replaces the transport's registered write waker).
    write_waker: Option<Waker>,
    destroyed: Option<String>,
    /// The transport's buffers, when it lends them ([`SecretStream::set_in_place`]).
    in_place: Option<InPlaceOps<IO>>,
    /// Where a frame is gathered when it wraps around the end of the transport's ring.
    scratch: Vec<u8>,
}

impl<IO> std::fmt::Debug for SecretStream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStream")
            .field("is_initiator", &self.is_initiator)
            .field("public_key", &hex::encode(self.public_key))
            .field("remote_public_key", &hex::encode(self.remote_public_key))
            .field("destroyed", &self.destroyed)
            .finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> SecretStream<IO> {
    /// Runs the XX handshake as initiator over `io` and sends our header.
    pub async fn connect(io: IO, keypair: &Keypair) -> Result<Self> {
        Self::connect_with(io, keypair, SecretStreamOptions::default()).await
    }

    /// Runs the XX handshake as responder over `io` and sends our header.
    pub async fn accept(io: IO, keypair: &Keypair) -> Result<Self> {
        Self::accept_with(io, keypair, SecretStreamOptions::default()).await
    }

    /// [`SecretStream::connect`] with options (pattern, expected remote key, keep-alive, timeout).
    pub async fn connect_with(
        io: IO,
        keypair: &Keypair,
        options: SecretStreamOptions,
    ) -> Result<Self> {
        Self::handshake(io, true, keypair, options).await
    }

    /// [`SecretStream::accept`] with options.
    pub async fn accept_with(
        io: IO,
        keypair: &Keypair,
        options: SecretStreamOptions,
    ) -> Result<Self> {
        Self::handshake(io, false, keypair, options).await
    }

    async fn handshake(
        io: IO,
        is_initiator: bool,
        keypair: &Keypair,
        options: SecretStreamOptions,
    ) -> Result<Self> {
        let mut framed = Framed::new(io, options.timeout);
        let mut hs = Handshake::new(
            options.pattern,
            is_initiator,
            keypair,
            &[],
            options.remote_public_key.as_ref(),
        )?;
        while !hs.is_complete() {
            if hs.is_my_turn() {
                let msg = hs.send(&[])?;
                framed.queue_frame(&msg);
                if !hs.is_complete() {
                    framed.flush().await?;
                }
            } else {
                let body = poll_fn(|cx| framed.poll_frame(cx, MAX_MESSAGE_LEN))
                    .await?
                    .ok_or(SecretStreamError::HandshakeEof)?;
                hs.recv(framed.rbuf.get(body).unwrap_or(&[]))?;
            }
        }
        let result = hs
            .result()
            .cloned()
            .ok_or(SecretStreamError::Handshake(NoiseError::OutOfOrder))?;
        if let Some(expected) = options.remote_public_key {
            if expected != result.remote_public_key {
                return Err(SecretStreamError::RemoteKeyMismatch {
                    expected: hex::encode(expected),
                    actual: hex::encode(result.remote_public_key),
                });
            }
        }
        let mut stream = Self::from_framed(framed, is_initiator, result, &options);
        stream.framed.flush().await?;
        Ok(stream)
    }

    /// Wraps a transport whose handshake was already done elsewhere (hyperdht's IK handshake), as the JS
    /// `opts.handshake`. Our header is queued and goes out on the first poll.
    pub fn from_handshake(io: IO, is_initiator: bool, handshake: HandshakeResult) -> Self {
        Self::from_handshake_with(io, is_initiator, handshake, SecretStreamOptions::default())
    }

    /// [`SecretStream::from_handshake`] with options (keep-alive, timeout, filtering; pattern and remote key
    /// are ignored).
    pub fn from_handshake_with(
        io: IO,
        is_initiator: bool,
        handshake: HandshakeResult,
        options: SecretStreamOptions,
    ) -> Self {
        let framed = Framed::new(io, options.timeout);
        Self::from_framed(framed, is_initiator, handshake, &options)
    }

    fn from_framed(
        mut framed: Framed<IO>,
        is_initiator: bool,
        result: HandshakeResult,
        options: &SecretStreamOptions,
    ) -> Self {
        let encrypt = Encryptor::new(&result.tx);
        framed.queue_frame(&encode_id_header(
            &result.hash,
            is_initiator,
            encrypt.header(),
        ));
        let mut s = Self {
            framed,
            is_initiator,
            public_key: result.public_key,
            remote_public_key: result.remote_public_key,
            handshake_hash: result.hash,
            rx: result.rx,
            encrypt,
            decrypt: None,
            plain: 0..0,
            keep_alive: None,
            keep_alive_timer: None,
            filter_zero_byte_messages: options.filter_zero_byte_messages,
            write_closed: false,
            write_waker: None,
            destroyed: None,
            in_place: None,
            scratch: Vec::new(),
        };
        s.set_keep_alive(options.keep_alive);
        s
    }

    /// Encrypts frames straight into the transport's send buffer and decrypts them straight out of its receive
    /// buffer, through `ops` (see [`InPlaceOps`]), instead of through buffers of the stream's own: the bytes on
    /// the wire are the same, one copy fewer each way.
    pub fn set_in_place(&mut self, ops: InPlaceOps<IO>) {
        self.in_place = Some(ops);
    }

    /// Whether we initiated the handshake.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// Our static public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The peer's static public key, authenticated by the handshake.
    pub fn remote_public_key(&self) -> &[u8; 32] {
        &self.remote_public_key
    }

    /// The 64-byte Noise handshake hash.
    pub fn handshake_hash(&self) -> &[u8; 64] {
        &self.handshake_hash
    }

    /// Changes the keep-alive interval (`setKeepAlive`); `Some` also turns on zero-byte filtering.
    pub fn set_keep_alive(&mut self, keep_alive: Option<Duration>) {
        self.keep_alive = keep_alive.filter(|d| !d.is_zero());
        if self.keep_alive.is_some() {
            self.filter_zero_byte_messages = true;
        }
        self.keep_alive_timer = self.keep_alive.map(|d| Box::pin(tokio::time::sleep(d)));
    }

    /// Changes the receive timeout (`setTimeout`).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.framed.set_timeout(timeout.filter(|d| !d.is_zero()));
    }

    /// A fresh box for this stream's unordered messages (JS `send`/`trySend`), for a transport that carries
    /// datagrams next to the stream (UDX).
    pub fn unordered_box(&self) -> UnorderedBox {
        UnorderedBox::new(&self.handshake_hash, self.is_initiator)
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.framed.io
    }

    fn destroy(&mut self, e: SecretStreamError) -> SecretStreamError {
        if self.destroyed.is_none() {
            self.destroyed = Some(e.to_string());
        }
        e
    }

    fn check_destroyed(&self) -> Result<()> {
        match &self.destroyed {
            Some(msg) => Err(SecretStreamError::Destroyed(msg.clone())),
            None => Ok(()),
        }
    }

    /// Encrypts `message` into the write buffer without waiting; it goes out on the next poll or flush.
    pub fn queue_message(&mut self, message: &[u8]) -> Result<()> {
        self.check_destroyed()?;
        if self.write_closed {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
        }
        self.framed.queue_message(&mut self.encrypt, message)?;
        if let (Some(timer), Some(d)) = (self.keep_alive_timer.as_mut(), self.keep_alive) {
            timer.as_mut().reset(Instant::now() + d);
        }
        Ok(())
    }

    /// Sends one message (its boundaries are kept) and flushes it to the transport.
    pub async fn send_message(&mut self, message: &[u8]) -> Result<()> {
        self.queue_message(message)?;
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Receives the next whole message; `None` when the peer ended the stream.
    pub async fn recv_message(&mut self) -> Result<Option<Vec<u8>>> {
        poll_fn(|cx| self.poll_recv_message(cx)).await
    }

    /// Poll form of [`SecretStream::recv_message`]. If bytes of a message were already partly read through
    /// [`AsyncRead`], the rest of that message comes first.
    pub fn poll_recv_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Vec<u8>>>> {
        self.check_destroyed()?;
        self.poll_background(cx);
        loop {
            if !self.plain.is_empty() {
                let range = std::mem::replace(&mut self.plain, 0..0);
                return Poll::Ready(Ok(Some(
                    self.framed.rbuf.get(range).unwrap_or(&[]).to_vec(),
                )));
            }
            let sealed = match ready!(self.poll_next_sealed(cx)) {
                Ok(Some(range)) => range,
                Ok(None) => return Poll::Ready(Ok(None)),
                Err(e) => return Poll::Ready(Err(self.destroy(e))),
            };
            if sealed.len() == ABYTES && self.filter_zero_byte_messages {
                if let Err(e) = self.decrypt_in_place(sealed) {
                    return Poll::Ready(Err(self.destroy(e)));
                }
                continue;
            }
            let mut message = vec![0; sealed.len().saturating_sub(ABYTES)];
            return Poll::Ready(match self.decrypt_into(sealed, &mut message) {
                Ok(()) => Ok(Some(message)),
                Err(e) => Err(self.destroy(e)),
            });
        }
    }

    /// Read-side housekeeping: the keep-alive timer and pending output (our header, keep-alives, bytes a
    /// cancelled flush left behind). Only the read side polls the timer. Draining registers the reader's
    /// waker with the transport in place of a blocked writer's, so that writer is woken to re-register.
    fn poll_background(&mut self, cx: &mut Context<'_>) {
        if !self.write_closed {
            if let (Some(timer), Some(d)) = (self.keep_alive_timer.as_mut(), self.keep_alive) {
                if timer.as_mut().poll(cx).is_ready() {
                    timer.as_mut().reset(Instant::now() + d);
                    // An empty message cannot exceed the size limit.
                    let _ = self.framed.queue_message(&mut self.encrypt, &[]);
                }
            }
        }
        if self.framed.pending_write() > 0 {
            if let Poll::Ready(Err(e)) = self.framed.poll_drain(cx) {
                self.destroy(e.into());
            }
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }

    /// Next sealed message (a frame body: encrypted tag byte, ciphertext, MAC) as a range of the read buffer;
    /// handles the header frame.
    fn poll_next_sealed(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Range<usize>>>> {
        loop {
            let max = if self.decrypt.is_some() {
                MAX_FRAME_LEN
            } else {
                ID_HEADER_BYTES
            };
            let frame = ready!(self.framed.poll_frame(cx, max)).map_err(|e| match e {
                SecretStreamError::FrameTooLarge { .. } if self.decrypt.is_none() => {
                    SecretStreamError::InvalidHeader
                }
                e => e,
            });
            let Some(body) = frame? else {
                return Poll::Ready(Ok(None));
            };
            if self.decrypt.is_some() {
                return Poll::Ready(Ok(Some(body)));
            }
            let bytes = self.framed.rbuf.get(body).unwrap_or(&[]);
            let header = decode_id_header(bytes, &self.handshake_hash, self.is_initiator)?;
            self.decrypt = Some(Decryptor::new(&self.rx, &header));
        }
    }

    /// Decrypts the sealed message at `sealed` in the read buffer in place; returns where its plaintext is.
    fn decrypt_in_place(&mut self, sealed: Range<usize>) -> Result<Range<usize>> {
        let d = self.decrypt.as_mut().ok_or(SecretStreamError::Decrypt)?;
        let bytes = self.framed.rbuf.get_mut(sealed.clone()).unwrap_or(&mut []);
        let plain = d.decrypt_in_place(bytes)?;
        Ok(sealed.start + plain.start..sealed.start + plain.end)
    }

    /// Decrypts the sealed message at `sealed` in the read buffer into `out` (exactly its plaintext's size).
    fn decrypt_into(&mut self, sealed: Range<usize>, out: &mut [u8]) -> Result<()> {
        let d = self.decrypt.as_mut().ok_or(SecretStreamError::Decrypt)?;
        d.decrypt_into(self.framed.rbuf.get(sealed).unwrap_or(&[]), out)
    }

    /// Fills `buf` with the plaintext of as many messages as are already buffered and fit whole (no I/O),
    /// decrypting each straight into `buf`. Stops at the first that does not fit or does not open (that one
    /// is left in place: the next read meets it again and reports its error).
    fn read_buffered_messages(&mut self, buf: &mut ReadBuf<'_>) {
        while self.decrypt.is_some() && buf.remaining() > 0 {
            let Ok(Ok(sealed)) = self.framed.buffered_frame(MAX_FRAME_LEN) else {
                return;
            };
            let len = sealed.len().saturating_sub(ABYTES);
            if sealed.len() < ABYTES || len > buf.remaining() {
                return;
            }
            let end = sealed.end;
            if self
                .decrypt_into(sealed, buf.initialize_unfilled_to(len))
                .is_err()
            {
                return;
            }
            buf.advance(len);
            self.framed.consume(end);
        }
    }

    /// The read path with [`InPlaceOps`]: decrypts the frames complete in the transport's buffer straight into
    /// `buf` (returns with `buf` filled), or stages one too large for `buf` as the current plaintext. Returns
    /// with nothing done where the ordinary path must go on: the stream's own buffer holds bytes, no header
    /// arrived yet, the transport ended, or a frame it cannot take in place (see [`in_place`]).
    fn poll_read_in_place(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(ops) = self.in_place else {
            return Poll::Ready(Ok(()));
        };
        let start = buf.filled().len();
        loop {
            let idle = self.plain.is_empty() && self.framed.rstart == self.framed.rend;
            if !idle || self.framed.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let Some(decrypt) = self.decrypt.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let Framed { io, rbuf, .. } = &mut self.framed;
            let scratch = &mut self.scratch;
            let mut then = Then::Fallback;
            let polled = (ops.poll_read)(io, cx, &mut |rx| {
                let (n, t) = in_place::read_frames(rx, decrypt, scratch, rbuf, buf);
                then = t;
                (t != Then::Wait).then_some(n)
            });
            match polled {
                Poll::Pending => {
                    if self.framed.poll_timed_out(cx) {
                        return Poll::Ready(Err(self.destroy(SecretStreamError::TimedOut).into()));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.destroy(e.into()).into())),
                Poll::Ready(Ok(())) => {}
            }
            match then {
                Then::Took => {
                    self.framed.received();
                    if buf.filled().len() > start {
                        return Poll::Ready(Ok(()));
                    }
                    // Only empty messages (keep-alives): look again.
                }
                Then::Staged(n) => {
                    self.framed.received();
                    self.framed.rstart = 0;
                    self.framed.rend = 0;
                    self.plain = 0..n;
                    return Poll::Ready(Ok(()));
                }
                Then::Wait | Then::Fallback => return Poll::Ready(Ok(())),
            }
        }
    }

    /// The write path with [`InPlaceOps`]: once what the stream buffered went out, encrypts one frame of up to
    /// [`MAX_WRITE_CHUNK`] bytes of `buf` straight into the transport's send buffer. `Ok(None)`: the transport
    /// offered less room than it promised; the caller writes through the stream's own buffer instead.
    fn poll_write_in_place(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<Option<usize>>> {
        let Some(ops) = self.in_place else {
            return Poll::Ready(Ok(None));
        };
        if self.write_closed {
            return Poll::Ready(Err(self
                .destroy(io::Error::from(io::ErrorKind::BrokenPipe).into())
                .into()));
        }
        if self.framed.pending_write() > 0 {
            // Frames queued earlier (our header, keep-alives, messages) go first.
            let drained = self.framed.poll_drain(cx);
            self.note_write(cx, drained.is_pending());
            ready!(drained).map_err(|e| io::Error::from(self.destroy(e.into())))?;
        }
        let want = buf.len().min(MAX_WRITE_CHUNK);
        let min = frame_size(want.min(IN_PLACE_MIN_MESSAGE));
        let (encrypt, scratch) = (&mut self.encrypt, &mut self.scratch);
        let mut wrote = Ok(0);
        let polled = (ops.poll_write)(&mut self.framed.io, cx, min, &mut |room| {
            let n = want.min(room.capacity().saturating_sub(frame_size(0)));
            let message = buf.get(..n).unwrap_or(&[]);
            wrote = in_place::write_frame(encrypt, scratch, message, room).map(|done| {
                if done {
                    n
                } else {
                    0
                }
            });
        });
        match polled {
            Poll::Pending => {
                self.note_write(cx, true);
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(self.destroy(e.into()).into())),
            Poll::Ready(Ok(())) => self.note_write(cx, false),
        }
        let n = wrote.map_err(|e| io::Error::from(self.destroy(e)))?;
        if n == 0 {
            return Poll::Ready(Ok(None));
        }
        if let (Some(timer), Some(d)) = (self.keep_alive_timer.as_mut(), self.keep_alive) {
            timer.as_mut().reset(Instant::now() + d);
        }
        Poll::Ready(Ok(Some(n)))
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let r = self.poll_flush_once(cx);
        self.note_write(cx, r.is_pending());
        r
    }

    fn note_write(&mut self, cx: &Context<'_>, blocked: bool) {
        self.write_waker = blocked.then(|| cx.waker().clone());
    }

    fn poll_flush_once(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.check_destroyed()?;
        ready!(self.framed.poll_drain(cx)).map_err(|e| self.destroy(e.into()))?;
        ready!(Pin::new(&mut self.framed.io).poll_flush(cx)).map_err(|e| self.destroy(e.into()))?;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for SecretStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_destroyed()?;
        this.poll_background(cx);
        if this.in_place.is_some() {
            let before = buf.filled().len();
            ready!(this.poll_read_in_place(cx, buf))?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
        while this.plain.is_empty() {
            let sealed = match ready!(this.poll_next_sealed(cx)) {
                Ok(Some(range)) => range,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(this.destroy(e).into())),
            };
            let len = sealed.len().saturating_sub(ABYTES);
            if len > 0 && len <= buf.remaining() {
                // The whole message fits: decrypt it straight into the caller's buffer, then take along
                // whatever else is already buffered.
                if let Err(e) = this.decrypt_into(sealed, buf.initialize_unfilled_to(len)) {
                    return Poll::Ready(Err(this.destroy(e).into()));
                }
                buf.advance(len);
                this.read_buffered_messages(buf);
                return Poll::Ready(Ok(()));
            }
            match this.decrypt_in_place(sealed) {
                Ok(plain) => this.plain = plain,
                Err(e) => return Poll::Ready(Err(this.destroy(e).into())),
            }
        }
        let n = this.plain.len().min(buf.remaining());
        let start = this.plain.start;
        buf.put_slice(this.framed.rbuf.get(start..start + n).unwrap_or(&[]));
        this.plain.start += n;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SecretStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_destroyed()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.in_place.is_some() {
            if let Some(n) = ready!(this.poll_write_in_place(cx, buf))? {
                return Poll::Ready(Ok(n));
            }
        }
        if this.framed.pending_write() >= WRITE_HIGH_WATER {
            let drained = this.framed.poll_drain(cx);
            this.note_write(cx, drained.is_pending());
            ready!(drained).map_err(|e| io::Error::from(this.destroy(e.into())))?;
        }
        let n = buf.len().min(MAX_WRITE_CHUNK);
        this.queue_message(buf.get(..n).unwrap_or(&[]))?;
        // Start sending right away; a full transport is fine, the bytes are buffered until the next write or
        // flush.
        if let Poll::Ready(Err(e)) = this.framed.poll_drain(cx) {
            this.destroy(e.into());
        }
        this.note_write(cx, false);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx).map_err(Into::into)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_inner(cx))?;
        this.write_closed = true;
        this.keep_alive_timer = None;
        let r = Pin::new(&mut this.framed.io).poll_shutdown(cx);
        this.note_write(cx, r.is_pending());
        r
    }
}

/// Splits a [`SecretStream`] into a reading and a writing half usable from different tasks, keeping the
/// message API on both (unlike [`tokio::io::split`], which only carries bytes).
impl<IO: AsyncRead + AsyncWrite + Unpin> SecretStream<IO> {
    /// The two halves share the stream behind a mutex held only for the duration of each poll.
    pub fn split(self) -> (SecretStreamReader<IO>, SecretStreamWriter<IO>) {
        let shared = Arc::new(Mutex::new(self));
        (
            SecretStreamReader {
                shared: Arc::clone(&shared),
            },
            SecretStreamWriter { shared },
        )
    }
}

fn lock<IO>(m: &Mutex<SecretStream<IO>>) -> MutexGuard<'_, SecretStream<IO>> {
    // A panic while holding the lock cannot leave the stream half-updated in a way that matters more than
    // the panic itself; keep going rather than propagate the poison.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reading half of [`SecretStream::split`].
pub struct SecretStreamReader<IO> {
    shared: Arc<Mutex<SecretStream<IO>>>,
}

/// The writing half of [`SecretStream::split`].
pub struct SecretStreamWriter<IO> {
    shared: Arc<Mutex<SecretStream<IO>>>,
}

impl<IO> std::fmt::Debug for SecretStreamReader<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStreamReader").finish_non_exhaustive()
    }
}

impl<IO> std::fmt::Debug for SecretStreamWriter<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStreamWriter").finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> SecretStreamReader<IO> {
    /// See [`SecretStream::recv_message`].
    pub async fn recv_message(&mut self) -> Result<Option<Vec<u8>>> {
        poll_fn(|cx| self.poll_recv_message(cx)).await
    }

    /// See [`SecretStream::poll_recv_message`].
    pub fn poll_recv_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Vec<u8>>>> {
        lock(&self.shared).poll_recv_message(cx)
    }

    /// The peer's static public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        *lock(&self.shared).remote_public_key()
    }

    /// The handshake hash.
    pub fn handshake_hash(&self) -> [u8; 64] {
        *lock(&self.shared).handshake_hash()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> SecretStreamWriter<IO> {
    /// See [`SecretStream::send_message`].
    pub async fn send_message(&mut self, message: &[u8]) -> Result<()> {
        lock(&self.shared).queue_message(message)?;
        poll_fn(|cx| lock(&self.shared).poll_flush_inner(cx)).await
    }

    /// See [`SecretStream::queue_message`].
    pub fn queue_message(&mut self, message: &[u8]) -> Result<()> {
        lock(&self.shared).queue_message(message)
    }

    /// The peer's static public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        *lock(&self.shared).remote_public_key()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for SecretStreamReader<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        Pin::new(&mut *s).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SecretStreamWriter<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared);
        Pin::new(&mut *s).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        Pin::new(&mut *s).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        Pin::new(&mut *s).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn frame_split() {
        assert_eq!(split_frame(&[2, 0]), None);
        assert_eq!(split_frame(&[2, 0, 0, 9]), None);
        assert_eq!(
            split_frame(&[2, 0, 0, 9, 8, 7]),
            Some((&[9u8, 8][..], &[7u8][..]))
        );
        assert_eq!(frame_len(&[0xff, 0xff, 0xff]), Some(MAX_FRAME_LEN));
    }

    #[test]
    fn encrypt_decrypt_roundtrip_and_tamper() -> Result<()> {
        let key = [7u8; 32];
        let mut enc = Encryptor::new(&key);
        let mut dec = Decryptor::new(&key, enc.header());
        let mut wire = Vec::new();
        for msg in [&b""[..], b"hello", &[0xaa; 1000]] {
            enc.encrypt_frame(msg, &mut wire)?;
        }
        let mut rest = &wire[..];
        for msg in [&b""[..], b"hello", &[0xaa; 1000]] {
            let (body, r) = split_frame(rest).ok_or(SecretStreamError::Truncated)?;
            assert_eq!(body.len(), msg.len() + ABYTES);
            assert_eq!(dec.decrypt(body)?, msg);
            rest = r;
        }
        // a flipped bit anywhere fails, and a short body is refused
        let mut enc = Encryptor::new(&key);
        let mut wire = Vec::new();
        enc.encrypt_frame(b"tamper me", &mut wire)?;
        for i in 3..wire.len() {
            let mut dec = Decryptor::new(&key, enc.header());
            let mut body = wire[3..].to_vec();
            body[i - 3] ^= 1;
            assert!(matches!(
                dec.decrypt(&body),
                Err(SecretStreamError::Decrypt)
            ));
        }
        let mut dec = Decryptor::new(&key, enc.header());
        assert!(matches!(
            dec.decrypt(&[0; 16]),
            Err(SecretStreamError::InvalidMessage(16))
        ));
        Ok(())
    }

    /// Frames of the `crypto_secretstream` crate (the previous implementation) for the same key, header, tags
    /// and messages: ours seals byte for byte the same and opens theirs, across rekeys (`Final` is left out:
    /// libsodium rekeys after it, the crate does not, and nothing follows it on a secret-stream anyway).
    fn oracle_push(key: [u8; 32], header: [u8; 24], msgs: &[(u8, Vec<u8>)]) -> Vec<Vec<u8>> {
        use crypto_secretstream::{Key, PushStream, Tag};
        struct Fixed([u8; 24]);
        impl rand::RngCore for Fixed {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.copy_from_slice(&self.0[..dest.len()]);
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
                self.fill_bytes(dest);
                Ok(())
            }
        }
        impl rand::CryptoRng for Fixed {}
        let (h, mut push) = PushStream::init(Fixed(header), &Key::from(key));
        assert_eq!(h.as_ref(), &header[..]);
        msgs.iter()
            .map(|(tag, m)| {
                let tag = match tag {
                    0 => Tag::Message,
                    1 => Tag::Push,
                    _ => Tag::Rekey,
                };
                let mut buf = m.clone();
                push.push(&mut buf, &[], tag).expect("push");
                buf
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn sodium_stream_matches_crypto_secretstream(
            key in proptest::array::uniform32(proptest::num::u8::ANY),
            header in proptest::collection::vec(proptest::num::u8::ANY, 24),
            msgs in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
                1..12,
            ),
        ) {
            let header: [u8; 24] = header.try_into().expect("24 bytes");
            let theirs = oracle_push(key, header, &msgs);
            let mut seal = SodiumStream::new(&key, &header);
            let mut open = SodiumStream::new(&key, &header);
            for (i, ((tag, m), want)) in msgs.iter().zip(&theirs).enumerate() {
                let mut buf = vec![0xa5u8; 1 + m.len()];
                let mac = seal.seal_into(*tag, m, &mut buf);
                buf.extend_from_slice(&mac);
                proptest::prop_assert_eq!(&buf, want);
                // Both ways of opening, alternately, on one stream state.
                if i % 2 == 0 {
                    let mut got = want.clone();
                    proptest::prop_assert_eq!(open.open(&mut got), Some(*tag));
                    proptest::prop_assert_eq!(&got[1..got.len() - 16], &m[..]);
                } else {
                    let mut got = vec![0x5au8; m.len()];
                    proptest::prop_assert_eq!(open.open_into(want, &mut got), Some(*tag));
                    proptest::prop_assert_eq!(&got, m);
                }
            }
        }
    }

    #[test]
    fn open_failure_changes_nothing() {
        let mut seal = SodiumStream::new(&[5; 32], &[6; 24]);
        let mut open = SodiumStream::new(&[5; 32], &[6; 24]);
        let mut frame = vec![0; 4];
        let mac = seal.seal_into(TAG_MESSAGE, &[1, 2, 3], &mut frame);
        frame.extend_from_slice(&mac);
        let mut bad = frame.clone();
        bad[2] ^= 0x80;
        let before = bad.clone();
        assert_eq!(open.open(&mut bad), None);
        assert_eq!(bad, before);
        let mut out = [7u8; 3];
        assert_eq!(open.open_into(&bad, &mut out), None);
        assert_eq!(out, [7; 3]);
        // A wrong output size is refused before anything is touched.
        assert_eq!(open.open_into(&frame, &mut [0; 2]), None);
        assert_eq!(open.open(&mut frame[..16]), None);
        assert_eq!(open.open(&mut frame), Some(TAG_MESSAGE));
        assert_eq!(&frame[1..4], &[1, 2, 3]);
    }

    #[test]
    fn id_header_checks_role_and_length() -> Result<()> {
        let hash = [3u8; 64];
        let body = encode_id_header(&hash, true, &[9; 24]);
        assert_eq!(decode_id_header(&body, &hash, false)?, [9; 24]);
        assert!(decode_id_header(&body, &hash, true).is_err());
        assert!(decode_id_header(&body[..55], &hash, false).is_err());
        Ok(())
    }

    async fn pair(
        opts_a: SecretStreamOptions,
        opts_b: SecretStreamOptions,
    ) -> Result<(
        Result<SecretStream<tokio::io::DuplexStream>>,
        Result<SecretStream<tokio::io::DuplexStream>>,
    )> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let ka = Keypair::from_seed(&[1; 32]);
        let kb = Keypair::from_seed(&[2; 32]);
        Ok(tokio::join!(
            SecretStream::connect_with(a, &ka, opts_a),
            SecretStream::accept_with(b, &kb, opts_b)
        ))
    }

    #[tokio::test]
    async fn in_memory_roundtrip() -> anyhow::Result<()> {
        let (a, b) = pair(Default::default(), Default::default()).await?;
        let (mut a, mut b) = (a?, b?);
        assert_eq!(a.remote_public_key(), b.public_key());
        assert_eq!(b.remote_public_key(), a.public_key());
        assert_eq!(a.handshake_hash(), b.handshake_hash());
        a.send_message(b"first").await?;
        a.send_message(b"").await?;
        assert_eq!(b.recv_message().await?, Some(b"first".to_vec()));
        assert_eq!(b.recv_message().await?, Some(Vec::new()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let (wr, rd) = tokio::join!(
            async {
                a.write_all(&data).await?;
                a.shutdown().await
            },
            async {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.map(|_| got)
            }
        );
        wr?;
        assert_eq!(rd?, data);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_split_across_tasks() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ka = Keypair::from_seed(&[1; 32]);
        let kb = Keypair::from_seed(&[2; 32]);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let s = SecretStream::accept(tcp, &kb).await?;
            // echo everything back, reading and writing in two tasks
            let (mut rd, mut wr) = tokio::io::split(s);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
            let reader = tokio::spawn(async move {
                let mut buf = vec![0u8; 100_000];
                loop {
                    let n = rd.read(&mut buf).await?;
                    if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                        return anyhow::Ok(());
                    }
                }
            });
            while let Some(chunk) = rx.recv().await {
                wr.write_all(&chunk).await?;
                wr.flush().await?;
            }
            wr.shutdown().await?;
            reader.await??;
            anyhow::Ok(())
        });
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let s = SecretStream::connect(tcp, &ka).await?;
        let (mut rd, mut wr) = tokio::io::split(s);
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = tokio::spawn(async move {
            wr.write_all(&data).await?;
            wr.shutdown().await?;
            anyhow::Ok(())
        });
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut got)).await??;
        writer.await??;
        server.await??;
        assert!(got == expect, "echo differs");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn message_halves_across_tasks() -> anyhow::Result<()> {
        let (a, b) = pair(Default::default(), Default::default()).await?;
        let (mut ar, mut aw) = a?.split();
        let (mut br, mut bw) = b?.split();
        assert_eq!(
            ar.remote_public_key(),
            Keypair::from_seed(&[2; 32]).public_key
        );
        const N: u32 = 500;
        let msg = |i: u32| -> Vec<u8> { (0..(i % 3000)).map(|j| (i ^ j) as u8).collect() };
        let send_a = tokio::spawn(async move {
            for i in 0..N {
                aw.send_message(&msg(i)).await?;
            }
            anyhow::Ok(aw)
        });
        let send_b = tokio::spawn(async move {
            for i in 0..N {
                bw.send_message(&msg(i + 1)).await?;
            }
            anyhow::Ok(bw)
        });
        let recv_b = tokio::spawn(async move {
            for i in 0..N {
                let got = br.recv_message().await?;
                anyhow::ensure!(got == Some(msg(i)), "b: message {i} differs");
            }
            anyhow::Ok(())
        });
        for i in 0..N {
            assert_eq!(ar.recv_message().await?, Some(msg(i + 1)), "a: message {i}");
        }
        recv_b.await??;
        let mut aw = send_a.await??;
        send_b.await??;
        aw.shutdown().await?;
        Ok(())
    }

    #[tokio::test]
    async fn expected_key_mismatch() -> anyhow::Result<()> {
        let wrong = Keypair::from_seed(&[9; 32]).public_key;
        let (a, _b) = pair(
            SecretStreamOptions {
                remote_public_key: Some(wrong),
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
        assert!(matches!(
            a,
            Err(SecretStreamError::RemoteKeyMismatch { .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn ik_over_stream() -> anyhow::Result<()> {
        let kb = Keypair::from_seed(&[2; 32]);
        let (a, b) = pair(
            SecretStreamOptions {
                pattern: Pattern::IK,
                remote_public_key: Some(kb.public_key),
                ..Default::default()
            },
            SecretStreamOptions {
                pattern: Pattern::IK,
                ..Default::default()
            },
        )
        .await?;
        let (mut a, mut b) = (a?, b?);
        b.send_message(b"ik works").await?;
        assert_eq!(a.recv_message().await?, Some(b"ik works".to_vec()));
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_and_keepalive() -> anyhow::Result<()> {
        let (a, b) = pair(
            SecretStreamOptions {
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
        let (mut a, b) = (a?, b?);
        // silent peer: the timeout fires
        let err = a.recv_message().await.err();
        assert!(matches!(err, Some(SecretStreamError::TimedOut)), "{err:?}");
        drop(b);

        // a peer with keep-alive below our timeout keeps us alive, and its empty messages are invisible
        let (a, b) = pair(
            SecretStreamOptions {
                timeout: Some(Duration::from_secs(5)),
                keep_alive: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            SecretStreamOptions {
                keep_alive: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        )
        .await?;
        let (mut a, mut b) = (a?, b?);
        let reader = async {
            let mut buf = [0u8; 4];
            a.read_exact(&mut buf).await.map(|_| buf)
        };
        let writer = async {
            // b's pending read drives its keep-alive for 20 s, then it writes
            let _ = tokio::time::timeout(Duration::from_secs(20), b.recv_message()).await;
            b.write_all(b"late").await?;
            b.flush().await
        };
        let (got, wrote) = tokio::join!(reader, writer);
        wrote?;
        assert_eq!(&got?, b"late");
        Ok(())
    }

    /// Answers a stream's XX handshake by hand on the raw side of a duplex (message 1 in, 2 out, 3 in), so a
    /// test can then write whatever frames it likes.
    async fn respond_xx(
        raw: &mut tokio::io::DuplexStream,
        hs: &mut Handshake,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 3 + 32];
        raw.read_exact(&mut buf).await?;
        hs.recv(&buf[3..])?;
        let m2 = hs.send(&[])?;
        let mut out = Vec::new();
        push_uint24(&mut out, m2.len());
        out.extend_from_slice(&m2);
        raw.write_all(&out).await?;
        let mut m3 = vec![0u8; 3 + 64];
        raw.read_exact(&mut m3).await?;
        hs.recv(&m3[3..])?;
        Ok(())
    }

    #[tokio::test]
    async fn garbage_after_handshake_is_an_error() -> anyhow::Result<()> {
        let (a, mut raw) = tokio::io::duplex(64 * 1024);
        let kb = Keypair::from_seed(&[2; 32]);
        // Complete a handshake by hand on the raw side, then send a bad header.
        let mut hs = Handshake::new(Pattern::XX, false, &kb, &[], None)?;
        let ka = Keypair::from_seed(&[1; 32]);
        let client = tokio::spawn(async move {
            let mut s = SecretStream::connect(a, &ka).await?;
            s.recv_message().await
        });
        respond_xx(&mut raw, &mut hs).await?;
        let mut bad = Vec::new();
        push_uint24(&mut bad, ID_HEADER_BYTES);
        bad.extend_from_slice(&[0u8; ID_HEADER_BYTES]);
        raw.write_all(&bad).await?;
        let res = client.await?;
        assert!(
            matches!(res, Err(SecretStreamError::InvalidHeader)),
            "{res:?}"
        );
        Ok(())
    }

    /// A byte read takes every buffered message that fits whole (decrypted straight into the caller's
    /// buffer) and stops before one that fails to open, which the next read reports; a message larger than
    /// the buffer comes in pieces.
    #[tokio::test]
    async fn reads_take_whole_buffered_messages_and_stop_at_a_bad_one() -> anyhow::Result<()> {
        let (a, mut raw) = tokio::io::duplex(256 * 1024);
        let kb = Keypair::from_seed(&[2; 32]);
        let mut hs = Handshake::new(Pattern::XX, false, &kb, &[], None)?;
        let ka = Keypair::from_seed(&[1; 32]);
        let (four_done, four_reads) = tokio::sync::oneshot::channel();
        let client = tokio::spawn(async move {
            let mut s = SecretStream::connect(a, &ka).await?;
            let mut reads = Vec::new();
            let mut buf = vec![0u8; 1000];
            for _ in 0..4 {
                let n = s.read(&mut buf).await?;
                reads.push(buf[..n].to_vec());
            }
            let _ = four_done.send(());
            let mut small = [0u8; 700];
            let n = s.read(&mut small).await?;
            reads.push(small[..n].to_vec());
            let last = s.read(&mut buf).await;
            anyhow::Ok((reads, last))
        });
        respond_xx(&mut raw, &mut hs).await?;
        let result = hs.result().cloned().ok_or(NoiseError::OutOfOrder)?;
        let mut enc = Encryptor::new(&result.tx);
        let mut wire = Vec::new();
        let header = encode_id_header(&result.hash, false, enc.header());
        push_uint24(&mut wire, header.len());
        wire.extend_from_slice(&header);
        let big: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        // Read 1: "one", an empty message and "two" (the next, 1500 bytes, does not fit 1000 whole).
        // Reads 2 and 3: 1000 + 500 bytes of the big one. Read 4: "three". Read 5: "four" then stop before
        // the tampered frame. Read 6: the error.
        for m in [&b"one"[..], b"", b"two", &big, b"three"] {
            enc.encrypt_frame(m, &mut wire)?;
        }
        raw.write_all(&wire).await?;
        raw.flush().await?;
        // The rest goes out once the client has made its first four reads, and arrives in one piece.
        four_reads.await?;
        let mut rest = Vec::new();
        enc.encrypt_frame(b"four", &mut rest)?;
        let at = rest.len();
        enc.encrypt_frame(b"tampered", &mut rest)?;
        if let Some(b) = rest.get_mut(at + 5) {
            *b ^= 1;
        }
        raw.write_all(&rest).await?;
        let (reads, last) = client.await??;
        let expected: Vec<Vec<u8>> = vec![
            b"onetwo".to_vec(),
            big[..1000].to_vec(),
            big[1000..].to_vec(),
            b"three".to_vec(),
            b"four".to_vec(),
        ];
        assert_eq!(reads, expected);
        let err = last.expect_err("the tampered frame fails");
        assert!(err.to_string().contains("authentication"), "{err}");
        Ok(())
    }
}

//! ChaCha20 and Poly1305 of the secretstream from the system's OpenSSL (3.x) libcrypto, when it has them.
//!
//! OpenSSL picks its fastest code for the CPU at run time (AVX-512 ChaCha20 and Poly1305 where the CPU has
//! them), about three times the throughput of the RustCrypto AVX2 backends on such a CPU. The construction is
//! the same as in [`super::SodiumStream`] (HChaCha20 subkey, IETF ChaCha20 with a 32-bit block counter, the
//! libsodium secretstream MAC layout); only the primitives come from libcrypto. Tests compare every path with
//! the RustCrypto one byte for byte.
//!
//! Two contexts live as long as the stream: a ChaCha20 cipher context, re-keyed per message, and a Poly1305
//! MAC context, re-keyed per message with the one-time key. Nothing is allocated per message.

use std::ffi::c_int;
use std::ptr;

use openssl_sys as ffi;

/// A ChaCha20 keystream and a Poly1305 MAC from libcrypto. Owns its two contexts.
pub(super) struct Ossl {
    cipher: *mut ffi::EVP_CIPHER_CTX,
    mac: *mut ffi::EVP_MAC_CTX,
}

// SAFETY: the contexts belong to this value alone (never shared, freed once in `drop`); libcrypto contexts may
// be used from any thread as long as one thread at a time uses them, which `&mut self` guarantees.
unsafe impl Send for Ossl {}
// SAFETY: no method takes `&self` to reach the contexts; shared references can do nothing with them.
unsafe impl Sync for Ossl {}

impl std::fmt::Debug for Ossl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ossl").finish_non_exhaustive()
    }
}

impl Drop for Ossl {
    fn drop(&mut self) {
        // SAFETY: both pointers came from the matching `_new` functions and are freed only here.
        unsafe {
            ffi::EVP_CIPHER_CTX_free(self.cipher);
            ffi::EVP_MAC_CTX_free(self.mac);
        }
    }
}

impl Ossl {
    /// The two contexts, or `None` when this libcrypto has no ChaCha20 or no Poly1305 (the caller then uses
    /// the RustCrypto code). `HOLEPUNCH_NO_OPENSSL=1` in the environment forces `None` (for comparisons).
    pub(super) fn new() -> Option<Self> {
        if std::env::var_os("HOLEPUNCH_NO_OPENSSL").is_some_and(|v| v != "0") {
            return None;
        }
        ffi::init();
        // SAFETY: plain libcrypto calls; every returned pointer is checked, and owned by `Ossl` (freed in
        // `drop`) once both contexts exist. `EVP_chacha20` returns a static cipher description.
        unsafe {
            let cipher = ffi::EVP_CIPHER_CTX_new();
            if cipher.is_null() {
                return None;
            }
            let mac_alg = ffi::EVP_MAC_fetch(ptr::null_mut(), c"POLY1305".as_ptr(), ptr::null());
            let mac = if mac_alg.is_null() {
                ptr::null_mut()
            } else {
                // The context holds its own reference to the algorithm.
                let mac = ffi::EVP_MAC_CTX_new(mac_alg);
                ffi::EVP_MAC_free(mac_alg);
                mac
            };
            let this = Self { cipher, mac };
            if this.mac.is_null() {
                ffi::EVP_CIPHER_CTX_free(this.cipher);
                std::mem::forget(this);
                return None;
            }
            let ok = ffi::EVP_EncryptInit_ex(
                this.cipher,
                ffi::EVP_chacha20(),
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
            );
            (ok == 1).then_some(this)
        }
    }

    /// Starts the keystream of `key` and the 12-byte IETF `nonce` at block 0.
    pub(super) fn start(&mut self, key: &[u8; 32], nonce: &[u8; 12]) -> bool {
        // OpenSSL's ChaCha20 IV: the 32-bit little-endian block counter, then the 96-bit nonce.
        let mut iv = [0u8; 16];
        if let Some(n) = iv.get_mut(4..) {
            n.copy_from_slice(nonce);
        }
        // SAFETY: the context was initialised with EVP_chacha20 (32-byte key, 16-byte IV), and both buffers
        // are that long.
        unsafe {
            ffi::EVP_EncryptInit_ex(
                self.cipher,
                ptr::null(),
                ptr::null_mut(),
                key.as_ptr(),
                iv.as_ptr(),
            ) == 1
        }
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`.
    pub(super) fn apply(&mut self, buf: &mut [u8]) -> bool {
        let mut done = 0;
        // libcrypto takes an int length: long buffers go in pieces (the keystream simply continues).
        for chunk in buf.chunks_mut(1 << 30) {
            let mut out_len: c_int = 0;
            let len = chunk.len() as c_int;
            // SAFETY: in and out are the same `len` bytes, which ChaCha20 (a stream cipher, block size 1)
            // supports; it writes exactly `len` bytes.
            let ok = unsafe {
                ffi::EVP_EncryptUpdate(
                    self.cipher,
                    chunk.as_mut_ptr(),
                    &mut out_len,
                    chunk.as_ptr(),
                    len,
                )
            };
            if ok != 1 || out_len != len {
                return false;
            }
            done += chunk.len();
        }
        done == buf.len()
    }

    /// Writes `input` XOR the next `input.len()` keystream bytes to `out` (same length).
    pub(super) fn apply_b2b(&mut self, input: &[u8], out: &mut [u8]) -> bool {
        if input.len() != out.len() {
            return false;
        }
        for (i, o) in input.chunks(1 << 30).zip(out.chunks_mut(1 << 30)) {
            let mut out_len: c_int = 0;
            let len = i.len() as c_int;
            // SAFETY: `o` has room for the `len` bytes a stream cipher writes for `len` input bytes; the two
            // slices do not overlap (one is shared, one exclusive).
            let ok = unsafe {
                ffi::EVP_EncryptUpdate(self.cipher, o.as_mut_ptr(), &mut out_len, i.as_ptr(), len)
            };
            if ok != 1 || out_len != len {
                return false;
            }
        }
        true
    }

    /// Poly1305 under the one-time `key` of the concatenation of `parts`.
    pub(super) fn mac(&mut self, key: &[u8; 32], parts: &[&[u8]]) -> Option<[u8; 16]> {
        let mut tag = [0u8; 16];
        let mut tag_len: usize = 0;
        // SAFETY: the MAC context is a POLY1305 context; the key is the 32 bytes Poly1305 takes; every update
        // reads exactly its slice; `final` writes at most the 16 bytes of `tag`.
        unsafe {
            if ffi::EVP_MAC_init(self.mac, key.as_ptr(), key.len(), ptr::null()) != 1 {
                return None;
            }
            for part in parts {
                if !part.is_empty() && ffi::EVP_MAC_update(self.mac, part.as_ptr(), part.len()) != 1
                {
                    return None;
                }
            }
            if ffi::EVP_MAC_final(self.mac, tag.as_mut_ptr(), &mut tag_len, tag.len()) != 1 {
                return None;
            }
        }
        (tag_len == tag.len()).then_some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SodiumStream, ABYTES, HEADER_BYTES, MAC_BYTES, TAG_MESSAGE, TAG_REKEY};
    use super::Ossl;

    /// A stream on libcrypto and one on RustCrypto, same key and header.
    fn pair(seed: u8) -> (SodiumStream, SodiumStream) {
        let key = [seed; 32];
        let mut header = [0u8; HEADER_BYTES];
        for (i, b) in header.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        let fast = SodiumStream::new(&key, &header);
        let mut slow = SodiumStream::new(&key, &header);
        slow.ossl = None;
        (fast, slow)
    }

    fn sizes() -> Vec<usize> {
        let mut v: Vec<usize> = (0..=200).collect();
        v.extend([
            255,
            256,
            257,
            1023,
            1024,
            1100,
            4095,
            4096,
            8191,
            16 * 1024 + 7,
            65535,
            65536,
            65553,
        ]);
        v
    }

    fn message(len: usize, salt: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(7) ^ salt) as u8).collect()
    }

    #[test]
    fn libcrypto_has_the_primitives() {
        // The build links libcrypto for this backend: it must be usable, not silently skipped.
        assert!(
            Ossl::new().is_some(),
            "libcrypto has no ChaCha20 or no Poly1305"
        );
    }

    #[test]
    fn seal_is_byte_identical_to_rustcrypto() {
        let (mut fast, mut slow) = pair(3);
        assert!(fast.ossl.is_some());
        for (n, len) in sizes().into_iter().enumerate() {
            // Every 17th message rekeys, so both the rekeying and the next key are compared too.
            let tag = if n % 17 == 16 { TAG_REKEY } else { TAG_MESSAGE };
            let msg = message(len, n);
            let (mut a, mut b) = (vec![0u8; len + 1], vec![0u8; len + 1]);
            let mac_a = fast.seal_into(tag, &msg, &mut a);
            let mac_b = slow.seal_into_rust(tag, &msg, &mut b);
            assert_eq!(a, b, "ciphertext of a {len}-byte message");
            assert_eq!(mac_a, mac_b, "MAC of a {len}-byte message");
        }
        assert_eq!(fast.counter, slow.counter);
        assert_eq!(fast.inonce, slow.inonce);
    }

    #[test]
    fn open_in_place_and_into_match_rustcrypto_and_reject_tampering() {
        let (mut sender, mut sender_ref) = pair(9);
        sender_ref.ossl = None;
        let (mut fast_in_place, _) = pair(9);
        let (mut fast_into, mut slow) = pair(9);
        for (n, len) in sizes().into_iter().enumerate() {
            let tag = if n % 13 == 12 { TAG_REKEY } else { TAG_MESSAGE };
            let msg = message(len, n);
            let mut sealed = vec![0u8; len + ABYTES];
            let mac = sender.seal_into(tag, &msg, &mut sealed[..len + 1]);
            sealed[len + 1..].copy_from_slice(&mac);

            // A flipped bit anywhere is refused, and the refusal changes no state.
            let mut bad = sealed.clone();
            let at = (n * 5) % bad.len();
            bad[at] ^= 0x10;
            assert_eq!(fast_in_place.open(&mut bad.clone()), None);
            let mut out = vec![0u8; len];
            assert_eq!(fast_into.open_into(&bad, &mut out), None);

            let mut reference = sealed.clone();
            assert_eq!(slow.open_rust(&mut reference), Some(tag));
            let mut in_place = sealed.clone();
            assert_eq!(
                fast_in_place.open(&mut in_place),
                Some(tag),
                "{len}-byte message in place"
            );
            assert_eq!(&in_place[1..len + 1], &msg[..]);
            assert_eq!(in_place, reference);
            assert_eq!(
                fast_into.open_into(&sealed, &mut out),
                Some(tag),
                "{len}-byte message into"
            );
            assert_eq!(out, msg);
            assert_eq!(sealed.len() - MAC_BYTES, len + 1);
        }
    }
}

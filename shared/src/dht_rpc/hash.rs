//! Minimal private BLAKE2b helpers (libsodium's `crypto_generichash` with a 32-byte output), kept local to
//! the DHT modules so they do not depend on the crate-wide crypto module.

use blake2::digest::consts::U32;
use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2b, Blake2bMac};

/// `crypto_generichash(out32, concat(parts))`.
pub(crate) fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `crypto_generichash(out32, data, key)`: keyed BLAKE2b (the key may be 16..=64 bytes; ours are 32).
pub(crate) fn blake2b256_keyed(data: &[u8], key: &[u8; 32]) -> [u8; 32] {
    // A 32-byte key is always accepted by BLAKE2b (keys up to 64 bytes are valid).
    let mut h = match <Blake2bMac<U32> as KeyInit>::new_from_slice(key) {
        Ok(h) => h,
        Err(_) => unreachable!("a 32-byte key is valid for BLAKE2b"),
    };
    Mac::update(&mut h, data);
    h.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_matches_libsodium() {
        // crypto_generichash(32 bytes, "") from libsodium
        assert_eq!(
            hex::encode(blake2b256(&[])),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }
}

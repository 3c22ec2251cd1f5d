//! The DHT modules' names for BLAKE2b (libsodium's `crypto_generichash` with a 32-byte output), kept as thin
//! wrappers over [`crate::crypto`] so the callers read as the JS does.

use crate::crypto;

/// `crypto_generichash(out32, concat(parts))`.
pub(crate) fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    crypto::hash(parts)
}

/// `crypto_generichash(out32, data, key)`: keyed BLAKE2b (the key may be 16..=64 bytes; ours are 32).
pub(crate) fn blake2b256_keyed(data: &[u8], key: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A 32-byte output with a 32-byte key is always accepted (outputs and keys up to 64 bytes are valid).
    if crypto::blake2b_into(&mut out, key, &[data]).is_err() {
        unreachable!("32-byte BLAKE2b with a 32-byte key");
    }
    out
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

    #[test]
    fn keyed_matches_the_mac_construction() {
        use blake2::digest::consts::U32;
        use blake2::digest::{KeyInit, Mac};
        let key = [7u8; 32];
        for len in [0usize, 1, 127, 128, 129, 300] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut mac = <blake2::Blake2bMac<U32> as KeyInit>::new_from_slice(&key).expect("key");
            Mac::update(&mut mac, &data);
            let expected: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(blake2b256_keyed(&data, &key), expected, "{len} bytes");
        }
    }
}

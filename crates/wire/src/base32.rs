//! RFC 4648 base32 as the JavaScript `hi-base32` package (0.5) does it, and the way `hyperbeam` 3 turns its
//! passphrases into key pairs with it.
//!
//! [`encode`] writes uppercase with `=` padding. [`decode`] mirrors `base32.decode.asBytes`: the input must
//! consist of `A-Z`, `2-7` and `=` only, every `=` is dropped wherever it is, the unused low bits of the last
//! character are ignored, and a trailing 1, 3 or 6 characters that cannot make a whole byte are ignored.
//!
//! Hyperbeam shows a 32-byte seed as lowercase base32 without padding (52 characters) and reads a passphrase
//! by uppercasing it (Unicode uppercasing, as JS `toUpperCase`) and decoding; the seed then gives the key pair
//! through `crypto_sign_seed_keypair`, so both ends of a beam hold the same key pair.

use crate::crypto::{random_bytes, KeyPair, SEED_LEN};

/// The RFC 4648 base32 alphabet.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base32Error {
    /// A character other than `A-Z`, `2-7` and `=` (`Invalid base32 characters`).
    #[error("invalid base32 characters")]
    InvalidCharacters,
    /// A hyperbeam passphrase that does not decode to a 32-byte seed.
    #[error("passphrase decodes to {0} bytes, a key seed is 32")]
    SeedLength(usize),
}

fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// The 5-bit groups of `bytes`, most significant bits first, the last one filled up with zero bits:
/// `ceil(8 * len / 5)` values below 32. The bit packing of RFC 4648 base32 and of z-base-32 ([`crate::z32`]),
/// which differ only in alphabet, padding and how they treat trailing characters.
pub(crate) fn to_quintets(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes.chunks(5).flat_map(|chunk| {
        let mut block = [0u8; 8];
        // `chunk` holds 1..=5 bytes: right-aligned in the 64-bit block, they fill its low 40 bits.
        block[8 - 5..8 - 5 + chunk.len()].copy_from_slice(chunk);
        let acc = u64::from_be_bytes(block);
        let quintets = (chunk.len() * 8).div_ceil(5);
        (0..quintets).map(move |i| ((acc >> (35 - 5 * i)) & 0x1f) as u8)
    })
}

/// The inverse of [`to_quintets`]: packs 5-bit values (each below 32) eight at a time into five bytes, a short
/// last group read as if filled up with zero values, and keeps the first `out_len` bytes (at most what the
/// groups make).
pub(crate) fn from_quintets(values: &[u8], out_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(out_len + 5);
    for group in values.chunks(8) {
        let mut acc: u64 = 0;
        for i in 0..8 {
            acc = (acc << 5) | u64::from(group.get(i).copied().unwrap_or(0));
        }
        out.extend_from_slice(&acc.to_be_bytes()[3..]);
    }
    out.truncate(out_len);
    out
}

/// Encodes bytes as uppercase base32 padded with `=` to a multiple of 8 characters.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    out.extend(to_quintets(bytes).map(|v| char::from(ALPHABET[usize::from(v)])));
    while out.len() % 8 != 0 {
        out.push('=');
    }
    out
}

/// Decodes base32 as `hi-base32`'s `decode.asBytes` does (see the module docs).
pub fn decode(s: &str) -> Result<Vec<u8>, Base32Error> {
    let mut values = Vec::with_capacity(s.len());
    for c in s.bytes() {
        match (c, value(c)) {
            (_, Some(v)) => values.push(v),
            (b'=', None) => {}
            _ => return Err(Base32Error::InvalidCharacters),
        }
    }
    // Bytes produced by the trailing `len % 8` characters: 1, 3 and 6 leftover characters make none.
    const TAIL_BYTES: [usize; 8] = [0, 0, 1, 0, 2, 3, 0, 4];
    let out_len = values.len() / 8 * 5 + TAIL_BYTES[values.len() % 8];
    Ok(from_quintets(&values, out_len))
}

/// Hyperbeam's `toBase32`: lowercase base32 without padding.
pub fn hyperbeam_encode(bytes: &[u8]) -> String {
    let mut s = encode(bytes);
    s.retain(|c| c != '=');
    s.make_ascii_lowercase();
    s
}

/// Hyperbeam's `fromBase32`: the passphrase uppercased, then decoded.
pub fn hyperbeam_decode(passphrase: &str) -> Result<Vec<u8>, Base32Error> {
    decode(&passphrase.to_uppercase())
}

/// The key pair both ends of a hyperbeam derive from its passphrase: `DHT.keyPair(fromBase32(passphrase))`.
pub fn hyperbeam_key_pair(passphrase: &str) -> Result<KeyPair, Base32Error> {
    let seed = hyperbeam_decode(passphrase)?;
    let seed = <[u8; SEED_LEN]>::try_from(seed.as_slice())
        .map_err(|_| Base32Error::SeedLength(seed.len()))?;
    Ok(KeyPair::from_seed(&seed))
}

/// A new random hyperbeam passphrase (52 characters), as `new Hyperbeam()` makes when given no key.
pub fn hyperbeam_random_passphrase() -> String {
    hyperbeam_encode(&random_bytes(SEED_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc), Ok(plain.as_bytes().to_vec()));
        }
    }

    #[test]
    fn hyperbeam_passphrases() {
        let p = hyperbeam_random_passphrase();
        assert_eq!(p.len(), 52);
        assert!(hyperbeam_key_pair(&p).is_ok());
        assert_eq!(hyperbeam_key_pair("abc"), Err(Base32Error::SeedLength(0)));
        assert_eq!(hyperbeam_key_pair("abcd"), Err(Base32Error::SeedLength(2)));
        assert_eq!(
            hyperbeam_key_pair("ab1"),
            Err(Base32Error::InvalidCharacters)
        );
    }
}

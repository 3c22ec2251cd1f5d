//! z-base-32, as the JavaScript `z32` package encodes and decodes it (the alphabet of Hypercore and HyperDHT
//! ids, see [`crate::id_encoding`]).
//!
//! Encoding pads the last quintet with zero bits. Decoding mirrors the JS decoder exactly: it is
//! case-sensitive (lowercase only), ignores the unused low bits of the last character, and gives
//! `[0, 1, 1, 2, 2, 3, 4, 4][len % 8]` bytes for the trailing `len % 8` characters (a missing final quintet
//! counts as zero).

use crate::base32::{from_quintets, to_quintets};

/// The z-base-32 alphabet.
pub const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Why a string is not z-base-32.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Z32Error {
    /// A character outside the alphabet.
    #[error("invalid character in base32 input: {character:?} at byte {position}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the input.
        position: usize,
    },
}

/// Alphabet byte to value, `0xff` for bytes outside the alphabet.
const REVERSE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The value of an alphabet byte, or `None`.
fn quintet(c: u8) -> Option<u8> {
    match REVERSE[usize::from(c)] {
        0xff => None,
        v => Some(v),
    }
}

/// Encodes bytes as z-base-32, `ceil(8 * len / 5)` characters.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    out.extend(to_quintets(bytes).map(|v| char::from(ALPHABET[usize::from(v)])));
    out
}

/// Decodes z-base-32 as the JS `z32.decode` does.
pub fn decode(s: &str) -> Result<Vec<u8>, Z32Error> {
    let mut values = Vec::with_capacity(s.len());
    for (position, character) in s.char_indices() {
        let v =
            u8::try_from(character)
                .ok()
                .and_then(quintet)
                .ok_or(Z32Error::InvalidCharacter {
                    character,
                    position,
                })?;
        values.push(v);
    }
    // Bytes produced by the trailing `len % 8` characters.
    const TAIL_BYTES: [usize; 8] = [0, 1, 1, 2, 2, 3, 4, 4];
    let out_len = values.len() / 8 * 5 + TAIL_BYTES[values.len() % 8];
    Ok(from_quintets(&values, out_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode(&data);
            assert_eq!(s.len(), (len * 8).div_ceil(5));
            assert_eq!(decode(&s), Ok(data));
        }
    }

    #[test]
    fn rejects_foreign_characters() {
        assert_eq!(
            decode("ybnV"),
            Err(Z32Error::InvalidCharacter {
                character: 'V',
                position: 3
            })
        );
        assert!(decode("ybn0").is_err());
        assert!(decode("ybné").is_err());
        assert!(decode("YBND").is_err());
    }
}

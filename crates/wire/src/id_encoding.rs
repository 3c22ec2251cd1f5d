//! Hypercore ids as the JavaScript `hypercore-id-encoding` package reads and writes them: a 32-byte key shown
//! as 52 characters of z-base-32 ([`crate::z32`]), read back from z-base-32, from 64 hex digits, or from a
//! `pear://<id>/...` link.

use crate::z32::{self, Z32Error};

/// Bytes in a key.
pub const KEY_LEN: usize = 32;

/// Why an id could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 52 z-base-32 characters, 64 hex digits or 32 bytes (`Invalid Hypercore key`).
    #[error("invalid Hypercore key")]
    InvalidKey,
    /// A key to encode was not 32 bytes (`Key must be 32-bytes long`).
    #[error("key must be 32 bytes long, got {0}")]
    KeyLength(usize),
    /// A 52-character id with a character outside the z-base-32 alphabet.
    #[error(transparent)]
    Z32(#[from] Z32Error),
}

/// `encode(key)`: the 52-character z-base-32 form.
pub fn encode(key: &[u8; KEY_LEN]) -> String {
    z32::encode(key)
}

/// `encode(key)` for a key of unchecked length.
pub fn encode_bytes(key: &[u8]) -> Result<String, IdError> {
    <&[u8; KEY_LEN]>::try_from(key)
        .map(encode)
        .map_err(|_| IdError::KeyLength(key.len()))
}

/// `decode(id)` for a string: an optional `pear://` prefix (with anything from the first `/` after it cut
/// off), then 52 z-base-32 characters or 64 hex digits (either case).
///
/// One deliberate difference: Node's hex parser reads a non-ASCII character by the low byte of its UTF-16
/// unit (`'ı'`, U+0131, reads as `'1'`), so JS also takes 64-character strings with such look-alikes as hex
/// ids. Only ASCII hex digits are taken here.
pub fn decode(id: &str) -> Result<[u8; KEY_LEN], IdError> {
    let id = match id.strip_prefix("pear://") {
        Some(rest) => rest.split('/').next().unwrap_or_default(),
        None => id,
    };
    // JS measures the string in UTF-16 code units; so does this, so that non-ASCII input fails the same way.
    match id.encode_utf16().count() {
        52 => {
            let bytes = z32::decode(id)?;
            <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| IdError::InvalidKey)
        }
        64 if id.len() == 64 => {
            let mut key = [0u8; KEY_LEN];
            hex::decode_to_slice(id, &mut key).map_err(|_| IdError::InvalidKey)?;
            Ok(key)
        }
        _ => Err(IdError::InvalidKey),
    }
}

/// `decode(buffer)`: a buffer is accepted as the key when it is 32 bytes.
pub fn decode_bytes(id: &[u8]) -> Result<[u8; KEY_LEN], IdError> {
    <[u8; KEY_LEN]>::try_from(id).map_err(|_| IdError::InvalidKey)
}

/// `normalize(id)`: the canonical z-base-32 form of any accepted id.
pub fn normalize(id: &str) -> Result<String, IdError> {
    decode(id).map(|key| encode(&key))
}

/// `isValid(id)`.
pub fn is_valid(id: &str) -> bool {
    decode(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_agree() {
        let key = [0xab; KEY_LEN];
        let z = encode(&key);
        assert_eq!(z.len(), 52);
        assert_eq!(decode(&z), Ok(key));
        assert_eq!(decode(&hex::encode(key)), Ok(key));
        assert_eq!(decode(&hex::encode_upper(key)), Ok(key));
        assert_eq!(decode(&format!("pear://{z}/some/path")), Ok(key));
        assert_eq!(decode_bytes(&key), Ok(key));
        assert_eq!(normalize(&hex::encode(key)), Ok(z));
    }

    #[test]
    fn bad_ids() {
        assert_eq!(decode(""), Err(IdError::InvalidKey));
        assert_eq!(decode("pear://"), Err(IdError::InvalidKey));
        assert_eq!(decode(&"g".repeat(64)), Err(IdError::InvalidKey));
        assert!(matches!(decode(&"0".repeat(52)), Err(IdError::Z32(_))));
        assert_eq!(decode_bytes(&[0; 31]), Err(IdError::InvalidKey));
        assert_eq!(encode_bytes(&[0; 33]), Err(IdError::KeyLength(33)));
        assert!(!is_valid("nope"));
    }
}

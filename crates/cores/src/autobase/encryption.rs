//! The block encryption of an encrypted base (JS autobase 7.28.1 `lib/encryption.js`, a base opened with
//! `encryptionKey`).
//!
//! Which core is encrypted how:
//! - **Writer cores** (manifest version 1, as corestore makes them): hypercore's default encryption
//!   ([`crate::hypercore::encryption`]) with the base's encryption key, the block key derived from the writer
//!   core's key (`DefaultEncryption.deriveKeys(encryptionKey, key)`): [`writer_encryption`].
//! - **The system core and the views** of version-1 manifests (the default): the same default layout, with
//!   the block key `hash(NS_VIEW_BLOCK_KEY || bootstrap || encryptionKey || name)` (`getCompatBlockKey`) used
//!   directly (`{ block: true }`; the blinding key is its hash): [`view_encryption`]. The key follows the
//!   view's name, not its core, so a view moved to another core (an indexer change) keeps reading the blocks
//!   copied from the old one.
//! - **The `_encryption` view** is not encrypted. It holds `@autobase/encryption-descriptor` records (the
//!   entropy of each key id); JS appends to it only when a fork (`lib/fork.js`) rotates the key, so on a
//!   base without forks it stays empty and key id 0 stands for `GENESIS_ENTROPY`.
//! - **Version-2 cores** (a base with `manifestVersion` 2, or a fork): the type-1 layout of [`encrypt_v2`]:
//!   the 8-byte header is `1, hash[1..4], uint32le(id)` where `hash` is BLAKE2b-128 of the plaintext keyed
//!   with `hash(NS_HASH_KEY || blockKey)`, the body is XSalsa20 under the nonce `uint64le(index) || header
//!   || 0^8` with the block key `hash(NS_VIEW_BLOCK_KEY || bootstrap || encryptionKey || entropy || key)`
//!   ([`v2_block_key`]) where `key` is the core's key (views: the view's name when the manifest's
//!   `legacyBlocks` says the block predates the move; writers: the manifest data's namespace when it has
//!   one). Type 0 is a plaintext block behind its header. Implemented as functions with vectors; the base
//!   itself creates version-1 cores only.

use super::keys::{entropy_namespaces, ns_encryption, ns_hash_key, ns_view_block_key};
use crate::crypto::{blake2b_into, hash};
use crate::hypercore::encryption::BlockEncryption;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;

/// Bytes of header an encrypted block carries, in every layout.
pub const PADDING: usize = 8;

/// `getCompatBlockKey(bootstrap, encryptionKey, name)`: the block key of the system core (`_system`) and of
/// view `name` on version-1 manifests.
pub fn view_block_key(bootstrap: &[u8; 32], encryption_key: &[u8; 32], name: &str) -> [u8; 32] {
    hash(&[
        &ns_view_block_key(),
        bootstrap,
        encryption_key,
        name.as_bytes(),
    ])
}

/// The encryption of the system core (`name` `_system`) or of view `name` (version-1 manifests).
pub fn view_encryption(
    bootstrap: &[u8; 32],
    encryption_key: &[u8; 32],
    name: &str,
) -> BlockEncryption {
    // with `block` the core key is not used
    BlockEncryption::new(
        &view_block_key(bootstrap, encryption_key, name),
        &[0; 32],
        false,
        true,
    )
}

/// The encryption of the writer core `key` (version-1 manifests).
pub fn writer_encryption(encryption_key: &[u8; 32], key: &[u8; 32]) -> BlockEncryption {
    BlockEncryption::new(encryption_key, key, false, false)
}

/// `getBlockKey(bootstrap, encryptionKey, entropy, key)`: a version-2 core's block key for one key id.
pub fn v2_block_key(
    bootstrap: &[u8; 32],
    encryption_key: &[u8; 32],
    entropy: &[u8; 32],
    key: &[u8],
) -> [u8; 32] {
    hash(&[
        &ns_view_block_key(),
        bootstrap,
        encryption_key,
        entropy,
        key,
    ])
}

/// `hash(NS_HASH_KEY || blockKey)`: the key of the plaintext hash in a type-1 header.
pub fn v2_hash_key(block_key: &[u8; 32]) -> [u8; 32] {
    hash(&[&ns_hash_key(), block_key])
}

/// `EncryptionView.namespace(entropy)`.
pub fn encryption_namespace(entropy: &[u8; 32]) -> [u8; 32] {
    hash(&[&ns_encryption(), entropy])
}

/// The entropy of key id 0 (`SystemView.GENESIS_ENTROPY`).
pub fn genesis_entropy() -> [u8; 32] {
    entropy_namespaces().0
}

fn nonce(index: u64, header: &[u8; PADDING]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&index.to_le_bytes());
    n[8..16].copy_from_slice(header);
    n
}

/// Encrypts block `index` of a version-2 core in the type-1 layout under key id `id`.
pub fn encrypt_v2(
    index: u64,
    plaintext: &[u8],
    id: u32,
    block_key: &[u8; 32],
    hash_key: &[u8; 32],
) -> Vec<u8> {
    let mut digest = [0u8; 16];
    // a 16-byte output and a 32-byte key are always accepted
    let _ = blake2b_into(&mut digest, hash_key, &[plaintext]);
    let mut header = [0u8; PADDING];
    header.copy_from_slice(&digest[..PADDING]);
    header[0] = 1;
    header[4..].copy_from_slice(&id.to_le_bytes());
    let mut out = Vec::with_capacity(PADDING + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    let mut cipher = XSalsa20::new(block_key.into(), (&nonce(index, &header)).into());
    cipher.apply_keystream(&mut out[PADDING..]);
    out
}

/// What the header of a stored version-2 block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Header {
    /// Type 0: the body is the plaintext.
    Plain,
    /// Type 1: encrypted under key id `id`.
    Encrypted {
        /// The key id (the encryption view's length when it was written).
        id: u32,
    },
}

/// Why a stored version-2 block could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// Shorter than the header.
    #[error("encrypted block of {0} bytes is shorter than its {PADDING}-byte header")]
    Short(usize),
    /// A type other than 0 and 1 (JS: `Unrecognised encryption type`).
    #[error("unrecognised encryption type {0}")]
    UnknownType(u8),
}

/// Reads the header of a stored version-2 block.
pub fn v2_header(stored: &[u8]) -> Result<V2Header, V2Error> {
    let header = stored.get(..PADDING).ok_or(V2Error::Short(stored.len()))?;
    match header[0] {
        0 => Ok(V2Header::Plain),
        1 => {
            let mut id = [0u8; 4];
            id.copy_from_slice(&header[4..8]);
            Ok(V2Header::Encrypted {
                id: u32::from_le_bytes(id),
            })
        }
        t => Err(V2Error::UnknownType(t)),
    }
}

/// Decrypts stored block `index` of a version-2 core; `block_key` gives the block key of a key id (`None`
/// for a plaintext block). The plaintext hash in the header is not checked (JS does not check it either: a
/// wrong key gives garbage, which the block's decoder refuses).
pub fn decrypt_v2(
    index: u64,
    stored: &[u8],
    block_key: impl FnOnce(u32) -> [u8; 32],
) -> Result<Vec<u8>, V2Error> {
    let header = v2_header(stored)?;
    let mut out = stored[PADDING..].to_vec();
    if let V2Header::Encrypted { id } = header {
        let mut h = [0u8; PADDING];
        h.copy_from_slice(&stored[..PADDING]);
        let mut cipher = XSalsa20::new((&block_key(id)).into(), (&nonce(index, &h)).into());
        cipher.apply_keystream(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_round_trip_and_hostile_headers() {
        let k = [7; 32];
        let hk = v2_hash_key(&k);
        let s = encrypt_v2(3, b"abc", 9, &k, &hk);
        assert_eq!(v2_header(&s), Ok(V2Header::Encrypted { id: 9 }));
        assert_eq!(decrypt_v2(3, &s, |_| k), Ok(b"abc".to_vec()));
        assert_eq!(decrypt_v2(3, &s[..5], |_| k), Err(V2Error::Short(5)));
        let mut bad = s.clone();
        bad[0] = 2;
        assert_eq!(decrypt_v2(3, &bad, |_| k), Err(V2Error::UnknownType(2)));
        let mut plain = vec![0u8; 8];
        plain.extend_from_slice(b"xy");
        assert_eq!(decrypt_v2(0, &plain, |_| k), Ok(b"xy".to_vec()));
    }
}

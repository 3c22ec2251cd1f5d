//! Hypercore's default block encryption (`lib/default-encryption.js`), compatible with JS cores opened with an
//! `encryptionKey`.
//!
//! Each stored block is an 8-byte header followed by the XSalsa20 ciphertext of the plaintext:
//! - the header is `uint64le(fork)` XORed with the XSalsa20 keystream of the *blinding key* under the nonce
//!   `uint64le(index) || 0^16`, where `fork` is the fork of the core's head when the block is appended (JS
//!   `state.encryptionFork`; 0 on a core with unsigned writes, whose truncations stay local);
//! - the block is encrypted with the *block key* under the nonce `uint64le(index) || header || 0^8`.
//!
//! The Merkle tree hashes the stored (encrypted, padded) block. Keys: unless the encryption key is used as the
//! block key directly (`block: true`), the block key is BLAKE2b-256 of the encryption key keyed with the core key
//! (compat cores) or of `DEFAULT_ENCRYPTION || coreKey || encryptionKey` (manifest cores); the blinding key is
//! BLAKE2b-256 of the block key.

use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;
use zeroize::Zeroize;

use super::caps;
use crate::crypto::{blake2b_into, hash};

/// Bytes of header each encrypted block carries (`DefaultEncryption.PADDING`).
pub const PADDING: usize = 8;

/// Why a stored block could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("encrypted block of {0} bytes is shorter than its {PADDING}-byte header")]
pub struct ShortBlock(pub usize);

/// The keys of a core's block encryption. Wiped on drop.
#[derive(Clone)]
pub struct BlockEncryption {
    /// The encryption key as given (kept to derive the keys again when the core turns out to be a manifest
    /// core: a replica opened by key learns its manifest from the first proof).
    encryption_key: [u8; 32],
    /// `block: true`: the encryption key is the block key.
    block: bool,
    /// The derivation used (`compat`).
    compat: bool,
    block_key: [u8; 32],
    blinding_key: [u8; 32],
}

impl std::fmt::Debug for BlockEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockEncryption(<keys hidden>)")
    }
}

impl Drop for BlockEncryption {
    fn drop(&mut self) {
        self.encryption_key.zeroize();
        self.block_key.zeroize();
        self.blinding_key.zeroize();
    }
}

fn xsalsa(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) {
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    cipher.apply_keystream(buf);
}

impl BlockEncryption {
    /// `DefaultEncryption.deriveKeys(encryptionKey, coreKey, { block, compat })`.
    pub fn new(encryption_key: &[u8; 32], core_key: &[u8; 32], compat: bool, block: bool) -> Self {
        let mut block_key = [0u8; 32];
        if block {
            block_key = *encryption_key;
        } else if compat {
            // A 32-byte key and output are always accepted.
            let _ = blake2b_into(&mut block_key, core_key, &[encryption_key]);
        } else {
            block_key = hash(&[&caps::default_encryption(), core_key, encryption_key]);
        }
        let blinding_key = hash(&[&block_key]);
        Self {
            encryption_key: *encryption_key,
            block,
            compat,
            block_key,
            blinding_key,
        }
    }

    /// The same encryption key for a core whose compat-ness is now known to be `compat` (JS
    /// `DefaultEncryption._reload` when `core.compat` changed): the keys derived again if it differs.
    pub fn for_compat(&self, core_key: &[u8; 32], compat: bool) -> Self {
        if compat == self.compat {
            return self.clone();
        }
        Self::new(&self.encryption_key, core_key, compat, self.block)
    }

    /// Encrypts block `index` written on `fork`: returns header || ciphertext.
    pub fn encrypt(&self, index: u64, fork: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(PADDING + plaintext.len());
        let mut header = fork.to_le_bytes();
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        xsalsa(&self.blinding_key, &nonce, &mut header);
        nonce[8..16].copy_from_slice(&header);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        if let Some(body) = out.get_mut(PADDING..) {
            xsalsa(&self.block_key, &nonce, body);
        }
        out
    }

    /// Decrypts stored block `index` (header || ciphertext) into the plaintext.
    pub fn decrypt(&self, index: u64, stored: &[u8]) -> Result<Vec<u8>, ShortBlock> {
        let (header, body) = stored
            .split_at_checked(PADDING)
            .ok_or(ShortBlock(stored.len()))?;
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        nonce[8..16].copy_from_slice(header);
        let mut out = body.to_vec();
        xsalsa(&self.block_key, &nonce, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = BlockEncryption::new(&[1; 32], &[2; 32], true, false);
        let c = e.encrypt(5, 3, b"hello");
        assert_eq!(c.len(), 13);
        assert_ne!(&c[8..], b"hello");
        assert_eq!(e.decrypt(5, &c), Ok(b"hello".to_vec()));
        assert_eq!(e.decrypt(5, &c[..7]), Err(ShortBlock(7)));
    }
}

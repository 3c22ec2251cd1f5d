//! Hypercore's namespaced constants and the bytes a writer signs (`lib/caps.js`, `lib/verifier.js`).
//!
//! `crypto.namespace('hypercore', 6)` gives, in order: `TREE`, `REPLICATE_INITIATOR`, `REPLICATE_RESPONDER`,
//! `MANIFEST`, `DEFAULT_NAMESPACE`, `DEFAULT_ENCRYPTION`.
//!
//! What a single Ed25519 writer signs depends on how the core's key was made:
//! - **compat** (JS's default when a core is created from a key pair without a manifest: the key *is* the
//!   public key): `TREE || treeHash || uint64le(length) || uint64le(fork)` (80 bytes), and the signature is
//!   the bare 64 bytes;
//! - **manifest** (`compat: false`, the key is the manifest hash): `TREE || manifestHash || treeHash ||
//!   uint64le(length) || uint64le(fork)` (112 bytes), and the signature travels wrapped in a
//!   [`MultiSignature`](super::messages::MultiSignature) with one input.

use crate::compact_encoding::{Encode, Writer};
use crate::crypto::{hash, namespace};

use super::messages::Manifest;

fn ns(i: usize) -> [u8; 32] {
    let all = namespace(b"hypercore", &[0, 1, 2, 3, 4, 5]);
    all.get(i).copied().unwrap_or([0; 32])
}

/// `caps.TREE`: the prefix of every signed tree.
pub fn tree() -> [u8; 32] {
    ns(0)
}

/// `REPLICATE_INITIATOR`.
pub fn replicate_initiator() -> [u8; 32] {
    ns(1)
}

/// `REPLICATE_RESPONDER`.
pub fn replicate_responder() -> [u8; 32] {
    ns(2)
}

/// `caps.MANIFEST`: the prefix of the manifest hash.
pub fn manifest() -> [u8; 32] {
    ns(3)
}

/// `caps.DEFAULT_NAMESPACE`: a default signer's namespace.
pub fn default_namespace() -> [u8; 32] {
    ns(4)
}

/// `caps.DEFAULT_ENCRYPTION`.
pub fn default_encryption() -> [u8; 32] {
    ns(5)
}

/// `treeSignableCompat(hash, length, fork)` (with the `TREE` header): what a compat core signs.
pub fn tree_signable_compat(tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(&tree());
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// `treeSignable(manifestHash, treeHash, length, fork)`: what a version 1+ manifest signer signs.
pub fn tree_signable(
    manifest_hash: &[u8; 32],
    tree_hash: &[u8; 32],
    length: u64,
    fork: u64,
) -> [u8; 112] {
    let mut out = [0u8; 112];
    out[..32].copy_from_slice(&tree());
    out[32..64].copy_from_slice(manifest_hash);
    out[64..96].copy_from_slice(tree_hash);
    out[96..104].copy_from_slice(&length.to_le_bytes());
    out[104..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// `Verifier.manifestHash(manifest)`: BLAKE2b-256 of `MANIFEST || encode(manifest)`; the key of a
/// non-compat core.
pub fn manifest_hash(m: &Manifest) -> [u8; 32] {
    let mut w = Writer::new();
    w.fixed32(&manifest());
    m.encode(&mut w);
    hash(&[w.as_slice()])
}

/// `caps.replicate(isInitiator, key, handshakeHash)`: the capability proving knowledge of `key` on a
/// replication stream. Fails only for a handshake hash longer than a BLAKE2b key (64 bytes).
pub fn replicate(
    is_initiator: bool,
    key: &[u8; 32],
    handshake_hash: &[u8],
) -> Result<[u8; 32], crate::crypto::CryptoError> {
    let prefix = if is_initiator {
        replicate_initiator()
    } else {
        replicate_responder()
    };
    let mut out = [0u8; 32];
    crate::crypto::blake2b_into(&mut out, handshake_hash, &[&prefix, key])?;
    Ok(out)
}

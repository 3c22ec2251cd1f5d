//! The primitives of the JavaScript `hypercore-crypto` package (and of the sodium calls HyperDHT makes
//! directly): Ed25519 key pairs and detached signatures as libsodium makes them, BLAKE2b generic hashing,
//! discovery keys, namespaces and the hypercore Merkle tree hashes.
//!
//! Key material has the layout the JS code holds: a 32-byte public key and a 64-byte secret key that is the
//! 32-byte seed followed by the public key (`crypto_sign_seed_keypair`).

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use zeroize::Zeroize;

/// Bytes in an Ed25519 public key (`crypto_sign_PUBLICKEYBYTES`).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes in an Ed25519 secret key as libsodium holds it: seed then public key (`crypto_sign_SECRETKEYBYTES`).
pub const SECRET_KEY_LEN: usize = 64;
/// Bytes in an Ed25519 seed (`crypto_sign_SEEDBYTES`).
pub const SEED_LEN: usize = 32;
/// Bytes in a detached Ed25519 signature (`crypto_sign_BYTES`).
pub const SIGNATURE_LEN: usize = 64;
/// Largest BLAKE2b output and key (`crypto_generichash_BYTES_MAX`, `crypto_generichash_KEYBYTES_MAX`).
pub const BLAKE2B_MAX_LEN: usize = 64;

/// The message hypercore-crypto hashes, keyed with a core's public key, to get its discovery key.
const HYPERCORE: &[u8] = b"hypercore";

/// Domain-separation prefixes of the hypercore Merkle tree hashes.
const LEAF_TYPE: u8 = 0;
const PARENT_TYPE: u8 = 1;
const ROOT_TYPE: u8 = 2;

/// Why a hash could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// BLAKE2b output lengths run from 1 to 64 bytes.
    #[error("BLAKE2b output length must be 1..=64 bytes, got {0}")]
    OutputLength(usize),
    /// BLAKE2b keys are at most 64 bytes.
    #[error("BLAKE2b key must be at most 64 bytes, got {0}")]
    KeyLength(usize),
}

/// An Ed25519 key pair in libsodium's layout. `Debug` prints the public key only; the secret key is wiped
/// when the pair is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The public key.
    pub public: [u8; PUBLIC_KEY_LEN],
    /// The secret key: the 32-byte seed followed by the public key.
    pub secret: [u8; SECRET_KEY_LEN],
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex::encode(self.public))
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl KeyPair {
    /// The key pair `crypto_sign_seed_keypair` derives from `seed` (`hypercore-crypto`'s `keyPair(seed)`,
    /// HyperDHT's `DHT.keyPair(seed)`).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        Self {
            public: signing.verifying_key().to_bytes(),
            secret: signing.to_keypair_bytes(),
        }
    }

    /// A fresh random key pair (`keyPair()` without a seed).
    pub fn generate() -> Self {
        let mut seed = [0u8; SEED_LEN];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let pair = Self::from_seed(&seed);
        seed.zeroize();
        pair
    }

    /// The pair held in a 64-byte libsodium secret key (seed then public key), with the public key taken from
    /// its second half as `crypto_sign_ed25519_sk_to_pk` does.
    pub fn from_secret_key(secret: &[u8; SECRET_KEY_LEN]) -> Self {
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(&secret[SEED_LEN..]);
        Self {
            public,
            secret: *secret,
        }
    }

    /// The 32-byte seed (the first half of the secret key).
    pub fn seed(&self) -> [u8; SEED_LEN] {
        let mut seed = [0u8; SEED_LEN];
        seed.copy_from_slice(&self.secret[..SEED_LEN]);
        seed
    }

    /// `validateKeyPair`: true when the public key is the one stored in the secret key.
    pub fn is_valid(&self) -> bool {
        self.secret[SEED_LEN..] == self.public
    }

    /// Signs `message` (`sign(message, secretKey)`).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        sign(message, &self.secret)
    }
}

/// `crypto_sign_detached` with a libsodium secret key. The signature is made with the key derived from the
/// seed half; for keys made by libsodium or [`KeyPair`] the public half always matches it.
pub fn sign(message: &[u8], secret_key: &[u8; SECRET_KEY_LEN]) -> [u8; SIGNATURE_LEN] {
    let mut seed = [0u8; SEED_LEN];
    seed.copy_from_slice(&secret_key[..SEED_LEN]);
    let signature = SigningKey::from_bytes(&seed).sign(message).to_bytes();
    seed.zeroize();
    signature
}

/// `crypto_sign_verify_detached` as hypercore-crypto calls it: false for a signature or key of the wrong
/// length, and with libsodium's strictness (canonical `S`, canonical public key encoding, no small-order
/// public key or `R`).
pub fn verify(message: &[u8], signature: &[u8], public_key: &[u8]) -> bool {
    let Ok(signature) = <[u8; SIGNATURE_LEN]>::try_from(signature) else {
        return false;
    };
    let Ok(public_key) = <[u8; PUBLIC_KEY_LEN]>::try_from(public_key) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&public_key) else {
        return false;
    };
    // libsodium refuses public keys whose y coordinate is not reduced mod p; decompression here accepts them.
    if !is_canonical(&key) {
        return false;
    }
    key.verify_strict(message, &Signature::from_bytes(&signature))
        .is_ok()
}

/// True when the key's bytes are the canonical encoding of its point (they re-encode to themselves).
fn is_canonical(key: &VerifyingKey) -> bool {
    key.to_edwards().compress().to_bytes() == key.to_bytes()
}

/// BLAKE2b over the concatenation of `parts` (`crypto_generichash_batch`), with an `out_len`-byte output and
/// an optional key (empty means unkeyed, as in libsodium).
pub fn blake2b(out_len: usize, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; out_len];
    blake2b_into(&mut out, key, parts)?;
    Ok(out)
}

/// [`blake2b`] writing into `out`, whose length is the output length.
pub fn blake2b_into(out: &mut [u8], key: &[u8], parts: &[&[u8]]) -> Result<(), CryptoError> {
    if out.is_empty() || out.len() > BLAKE2B_MAX_LEN {
        return Err(CryptoError::OutputLength(out.len()));
    }
    if key.len() > BLAKE2B_MAX_LEN {
        return Err(CryptoError::KeyLength(key.len()));
    }
    // blake2b_simd picks the AVX2 or SSE4.1 compression at run time: 54 us per 64 KiB block against 65 us for
    // the portable `blake2` crate (examples/blake2b_bench.rs, release). Keys are padded as RFC 7693 3.3 says.
    let mut state = blake2b_simd::Params::new()
        .hash_length(out.len())
        .key(key)
        .to_state();
    for part in parts {
        state.update(part);
    }
    let full = state.finalize();
    out.copy_from_slice(full.as_bytes());
    Ok(())
}

/// 32-byte BLAKE2b of the concatenation of `parts`, keyed with `key` (empty for none).
fn blake2b_256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A 32-byte output with a key of at most 32 bytes (every caller) is always accepted.
    if blake2b_into(&mut out, key, parts).is_err() {
        unreachable!("32-byte BLAKE2b with a key of at most 64 bytes");
    }
    out
}

/// `hash(data)` / `hash([...parts])`: the 32-byte unkeyed BLAKE2b of the concatenated parts (also HyperDHT's
/// `hash`, which makes DHT targets from public keys).
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    blake2b_256(&[], parts)
}

/// `discoveryKey(publicKey)`: BLAKE2b-256 of `"hypercore"` keyed with the public key.
pub fn discovery_key(public_key: &[u8; 32]) -> [u8; 32] {
    blake2b_256(public_key, &[HYPERCORE])
}

/// `namespace(name, ids)`: for each id byte, BLAKE2b-256 of `hash(name) || id`. (JS `namespace(name, n)`
/// with a count is `ids = 0..n`.)
pub fn namespace(name: &[u8], ids: &[u8]) -> Vec<[u8; 32]> {
    let ns = hash(&[name]);
    ids.iter().map(|id| hash(&[&ns, &[*id]])).collect()
}

/// `randomBytes(n)`: `n` bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A node of a hypercore Merkle tree, as `parent` and `tree` take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    /// The node's index in flat-tree order.
    pub index: u64,
    /// Bytes of data under the node.
    pub size: u64,
    /// The node's hash.
    pub hash: [u8; 32],
}

/// `data(block)`: the leaf hash, BLAKE2b-256 of `0x00 || uint64le(len) || block`.
pub fn data_hash(data: &[u8]) -> [u8; 32] {
    hash(&[&[LEAF_TYPE], &(data.len() as u64).to_le_bytes(), data])
}

/// Bytes of blocks from which [`data_hashes`] splits its work across threads.
const PARALLEL_HASH_MIN: usize = 512 * 1024;

/// [`data_hash`] of every block, in order, with the same outputs, faster: blake2b_simd compresses up to four
/// blocks at once with vector instructions (AVX2: 4 lanes, SSE4.1: 2), and a batch of at least 512 KiB is
/// also split across two threads when the machine has two cores (the hypercore append path hashes a few MiB
/// at a time).
pub fn data_hashes(blocks: &[&[u8]]) -> Vec<[u8; 32]> {
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    if total < PARALLEL_HASH_MIN || blocks.len() < 2 || hash_threads() < 2 {
        return data_hashes_simd(blocks);
    }
    // Two halves of about equal bytes: the first hashed on a scoped thread, the second here.
    let mut acc = 0;
    let split = blocks
        .iter()
        .position(|b| {
            acc += b.len();
            acc * 2 >= total
        })
        .map_or(blocks.len() / 2, |i| i + 1)
        .clamp(1, blocks.len() - 1);
    let (first, second) = blocks.split_at(split);
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new().spawn_scoped(scope, || data_hashes_simd(first));
        let tail = data_hashes_simd(second);
        let mut out = match worker.map(|h| h.join()) {
            Ok(Ok(head)) => head,
            // No thread to be had (or it died): hash the first half here too.
            _ => data_hashes_simd(first),
        };
        out.extend(tail);
        out
    })
}

/// Threads [`data_hashes`] may use: the available parallelism, looked up once, at most 2.
fn hash_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(2)
    })
}

/// [`data_hashes`] on the current thread: one BLAKE2b state per block, prefixed with the leaf type and the
/// length, then all updated together (`update_many` runs the states through the multi-lane compression).
fn data_hashes_simd(blocks: &[&[u8]]) -> Vec<[u8; 32]> {
    let params = {
        let mut p = blake2b_simd::Params::new();
        p.hash_length(32);
        p
    };
    let mut states: Vec<blake2b_simd::State> = blocks
        .iter()
        .map(|b| {
            let mut st = params.to_state();
            st.update(&[LEAF_TYPE]);
            st.update(&(b.len() as u64).to_le_bytes());
            st
        })
        .collect();
    blake2b_simd::many::update_many(states.iter_mut().zip(blocks.iter().copied()));
    states
        .iter_mut()
        .map(|st| {
            let mut out = [0u8; 32];
            out.copy_from_slice(st.finalize().as_bytes());
            out
        })
        .collect()
}

/// `parent(a, b)`: BLAKE2b-256 of `0x01 || uint64le(a.size + b.size) || left.hash || right.hash`, where the
/// left node is the one with the smaller index.
pub fn parent_hash(a: &TreeNode, b: &TreeNode) -> [u8; 32] {
    let (left, right) = if a.index > b.index { (b, a) } else { (a, b) };
    let size = left.size.wrapping_add(right.size);
    hash(&[&[PARENT_TYPE], &size.to_le_bytes(), &left.hash, &right.hash])
}

/// `tree(roots)`: BLAKE2b-256 of `0x02` then, for each root, `hash || uint64le(index) || uint64le(size)`.
pub fn tree_hash(roots: &[TreeNode]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(1 + roots.len() * 48);
    buf.push(ROOT_TYPE);
    for r in roots {
        buf.extend_from_slice(&r.hash);
        buf.extend_from_slice(&r.index.to_le_bytes());
        buf.extend_from_slice(&r.size.to_le_bytes());
    }
    hash(&[&buf])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7693_abc() {
        // RFC 7693 appendix A: BLAKE2b-512("abc").
        let out = blake2b(64, &[], &[b"abc"]).expect("hash");
        assert_eq!(
            hex::encode(out),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
    }

    #[test]
    fn parts_concatenate() {
        let whole = blake2b(
            32,
            b"0123456789abcdef",
            &[b"hello world, this is a longer message"],
        );
        let parts = blake2b(
            32,
            b"0123456789abcdef",
            &[b"hello ", b"", b"world, this is a ", b"longer message"],
        );
        assert_eq!(whole, parts);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(blake2b(0, &[], &[]), Err(CryptoError::OutputLength(0)));
        assert_eq!(blake2b(65, &[], &[]), Err(CryptoError::OutputLength(65)));
        assert_eq!(blake2b(32, &[0; 65], &[]), Err(CryptoError::KeyLength(65)));
    }

    #[test]
    fn debug_hides_the_secret() {
        let kp = KeyPair::from_seed(&[7; 32]);
        let shown = format!("{kp:?}");
        assert!(shown.contains(&hex::encode(kp.public)));
        assert!(!shown.contains(&hex::encode(&kp.secret[..32])));
    }

    #[test]
    fn non_canonical_public_keys_are_refused() {
        // y = p + k for small k: the encodings libsodium's ge25519_is_canonical refuses. Decompression accepts
        // those that are on the curve; verify() must not.
        let mut refused = 0;
        for k in 0u8..19 {
            let mut bytes = [0xff; 32];
            bytes[0] = 0xed + k; // p = 2^255 - 19 is ed ff .. ff 7f little-endian, so this is p + k
            bytes[31] = 0x7f;
            if let Ok(key) = VerifyingKey::from_bytes(&bytes) {
                assert!(!is_canonical(&key), "y = p + {k}");
                assert!(!verify(b"m", &[0; 64], &bytes));
                refused += 1;
            }
        }
        assert!(refused > 0, "no non-canonical encoding decompressed");
        let kp = KeyPair::from_seed(&[1; 32]);
        let key = VerifyingKey::from_bytes(&kp.public).expect("key");
        assert!(is_canonical(&key));
    }

    #[test]
    fn sign_verify_and_validate() {
        let kp = KeyPair::generate();
        assert!(kp.is_valid());
        assert_eq!(KeyPair::from_seed(&kp.seed()), kp);
        assert_eq!(KeyPair::from_secret_key(&kp.secret), kp);
        let sig = kp.sign(b"hello");
        assert!(verify(b"hello", &sig, &kp.public));
        assert!(!verify(b"hellp", &sig, &kp.public));
        assert!(!verify(b"hello", &sig[..63], &kp.public));
        assert!(!verify(b"hello", &sig, &kp.public[..31]));
        let mut other = kp.clone();
        other.public[0] ^= 1;
        assert!(!other.is_valid());
    }

    /// The leaf hash as the portable `blake2` crate computes it (the implementation before blake2b_simd).
    fn reference_leaf(data: &[u8]) -> [u8; 32] {
        use blake2::digest::{consts::U32, Digest};
        let mut h = blake2::Blake2b::<U32>::new();
        h.update([LEAF_TYPE]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
        h.finalize().into()
    }

    fn random_blocks(lens: &[usize]) -> Vec<Vec<u8>> {
        lens.iter().map(|n| random_bytes(*n)).collect()
    }

    fn check_leaves(blocks: &[Vec<u8>]) {
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let many = data_hashes(&refs);
        assert_eq!(many.len(), blocks.len());
        for (b, h) in blocks.iter().zip(&many) {
            let expected = reference_leaf(b);
            assert_eq!(*h, expected, "block of {} bytes", b.len());
            assert_eq!(data_hash(b), expected, "block of {} bytes", b.len());
        }
    }

    #[test]
    fn leaf_hashes_match_the_reference_at_block_boundaries() {
        // Around BLAKE2b's 128-byte block (the 9-byte prefix shifts it), hypercore's 64 KiB blocks and more.
        let lens = [
            0, 1, 2, 118, 119, 120, 127, 128, 129, 246, 247, 248, 255, 256, 257, 1000, 4096,
            65_535, 65_536, 65_537,
        ];
        for n in 1..=lens.len() {
            check_leaves(&random_blocks(&lens[..n]));
        }
        check_leaves(&[]);
    }

    #[test]
    fn leaf_hashes_match_the_reference_across_threads() {
        // Over PARALLEL_HASH_MIN: split across two threads, with uneven sizes so the halves differ in count.
        let mut lens = vec![65_536; 9];
        lens.extend([1, 0, 300_000, 129, 65_537, 7]);
        let blocks = random_blocks(&lens);
        assert!(blocks.iter().map(Vec::len).sum::<usize>() >= PARALLEL_HASH_MIN);
        check_leaves(&blocks);
        // One huge block and a tiny one: the split still leaves each side one.
        check_leaves(&random_blocks(&[PARALLEL_HASH_MIN * 2, 3]));
        check_leaves(&random_blocks(&[3, PARALLEL_HASH_MIN * 2]));
    }

    proptest::proptest! {
        #[test]
        fn leaf_hashes_match_the_reference(lens in proptest::collection::vec(0usize..70_000, 0..24)) {
            check_leaves(&random_blocks(&lens));
        }
    }
}

//! The Noise handshake as the JavaScript `noise-handshake` (4.x) + `noise-curve-ed` (2.x) packages run it.
//!
//! Facts this module reproduces, byte for byte:
//!
//! - Protocol name `Noise_<XX|IK>_Ed25519_ChaChaPoly_BLAKE2b`. It is shorter than `HASHLEN` (64), so it is
//!   zero-padded into the initial handshake hash, as the Noise spec says.
//! - Hash BLAKE2b-512 (`HASHLEN` 64), HKDF over HMAC-BLAKE2b (block 128); derived cipher keys are the first 32
//!   bytes of each 64-byte HKDF output, including the two keys of the final split.
//! - Cipher ChaCha20-Poly1305 (IETF), nonce = 4 zero bytes + 64-bit little-endian counter.
//! - DH over Ed25519 keys: public keys are ordinary 32-byte Ed25519 public keys (compressed Edwards points),
//!   secret keys the 64-byte libsodium `seed || public key`. The DH scalar is derived from the seed exactly as
//!   Ed25519 signing does (`SHA-512(seed)[..32]`, clamped), and the output is the compressed Edwards point
//!   `scalar * remote`, as `crypto_scalarmult_ed25519_noclamp`. Remote points that libsodium rejects
//!   (non-canonical encodings, small order, outside the prime-order subgroup, identity result) fail the DH.
//! - Patterns XX (`-> e`, `<- e, ee, s, es`, `-> s, se`) and IK (`<- s` pre-shared, `-> e, es, s, ss`,
//!   `<- e, ee, se`), an optional prologue, a payload in every message, messages of at most 65535 bytes.
//! - After the last message: `tx`/`rx` from the split (the initiator sends with the first key) and the
//!   64-byte handshake hash.
//!
//! The state machine itself is [`snow`]'s: a [`snow::resolvers::CryptoResolver`] swaps in the Ed25519 DH
//! above, and the parameters carry the JS protocol name, which is what gets hashed.

use ed25519_dalek::SigningKey;
use snow::params::{
    BaseChoice, CipherChoice, DHChoice, HandshakeChoice, HandshakeModifierList, HandshakePattern,
    HashChoice, NoiseParams,
};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// Length of an Ed25519 public key, of a DH output and of a seed.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a libsodium Ed25519 secret key (`seed || public key`).
pub const SECRET_KEY_LEN: usize = 64;
/// Length of the handshake hash (BLAKE2b-512).
pub const HASH_LEN: usize = 64;
/// Length of the transport keys from the final split.
pub const KEY_LEN: usize = 32;
/// Largest Noise message, as both `noise-handshake` and the Noise spec allow.
pub const MAX_MESSAGE_LEN: usize = 65535;
/// Bytes a Noise AEAD adds to what it encrypts.
pub const MAC_LEN: usize = 16;

/// Why a handshake step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// The message is shorter than its pattern requires, or longer than [`MAX_MESSAGE_LEN`].
    #[error("malformed noise handshake message")]
    Malformed,
    /// Authentication of an encrypted part of a message failed (wrong keys, tampering, or a wrong expected
    /// remote public key in IK).
    #[error("noise handshake decryption failed (tampered message or unexpected remote key)")]
    Decrypt,
    /// A public key received or given is not a usable Ed25519 point.
    #[error("invalid Ed25519 public key in noise handshake")]
    InvalidPublicKey,
    /// IK was started as initiator without the responder's static key.
    #[error("the remote static public key is required for this pattern")]
    MissingRemoteKey,
    /// `send`/`recv` called out of turn or after completion.
    #[error("noise handshake message out of order")]
    OutOfOrder,
    /// The payload does not fit in one Noise message.
    #[error("noise payload too large")]
    PayloadTooLarge,
    /// Any other failure reported by the Noise engine.
    #[error("noise handshake failed: {0}")]
    Other(String),
}

/// An Ed25519 key pair in libsodium's layout, as `crypto_sign_keypair`/`crypto_sign_seed_keypair` return it.
#[derive(Clone, PartialEq, Eq)]
pub struct Keypair {
    /// The 32-byte Ed25519 public key.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// The 64-byte libsodium secret key: 32-byte seed followed by the public key.
    pub secret_key: [u8; SECRET_KEY_LEN],
}

impl From<&crate::crypto::KeyPair> for Keypair {
    /// The Noise key pair of a signing key pair (Ed25519 is the DH function here).
    fn from(kp: &crate::crypto::KeyPair) -> Self {
        Keypair {
            public_key: kp.public,
            secret_key: kp.secret,
        }
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// The key pair `crypto_sign_seed_keypair(seed)` gives.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let public_key = SigningKey::from_bytes(seed).verifying_key().to_bytes();
        let mut secret_key = [0u8; SECRET_KEY_LEN];
        secret_key[..32].copy_from_slice(seed);
        secret_key[32..].copy_from_slice(&public_key);
        Self {
            public_key,
            secret_key,
        }
    }

    /// A fresh random key pair.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(&seed)
    }

    /// The 32-byte seed (first half of the secret key).
    pub fn seed(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&self.secret_key[..32]);
        seed
    }
}

/// `noise-curve-ed`'s DH: `clamp(SHA-512(seed)[..32]) * remote`, encoded as a compressed Edwards point.
///
/// Fails where libsodium's `crypto_scalarmult_ed25519_noclamp` fails: the remote key is not a canonical
/// encoding of a point, has small order, is outside the prime-order subgroup, or the result is the identity.
pub fn ed25519_dh(
    seed: &[u8; 32],
    remote_public_key: &[u8],
) -> Result<[u8; PUBLIC_KEY_LEN], NoiseError> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::traits::IsIdentity;
    let bytes: [u8; 32] = remote_public_key
        .try_into()
        .map_err(|_| NoiseError::InvalidPublicKey)?;
    let compressed = CompressedEdwardsY(bytes);
    let point = compressed
        .decompress()
        .ok_or(NoiseError::InvalidPublicKey)?;
    if point.compress() != compressed || point.is_small_order() || !point.is_torsion_free() {
        return Err(NoiseError::InvalidPublicKey);
    }
    let scalar_bytes = SigningKey::from_bytes(seed).to_scalar_bytes();
    let shared = point.mul_clamped(scalar_bytes).compress();
    if shared.is_identity() {
        return Err(NoiseError::InvalidPublicKey);
    }
    Ok(shared.0)
}

/// The handshake patterns `@hyperswarm/secret-stream` and `hyperdht` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Mutual authentication with both static keys sent (secret-stream's default).
    #[default]
    XX,
    /// The initiator knows the responder's static key beforehand (hyperdht's peer handshake).
    IK,
}

impl Pattern {
    /// The protocol name noise-handshake hashes, e.g. `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Pattern::XX => "Noise_XX_Ed25519_ChaChaPoly_BLAKE2b",
            Pattern::IK => "Noise_IK_Ed25519_ChaChaPoly_BLAKE2b",
        }
    }

    fn params(self) -> NoiseParams {
        let pattern = match self {
            Pattern::XX => HandshakePattern::XX,
            Pattern::IK => HandshakePattern::IK,
        };
        // snow has no Ed25519 DH choice; the resolver below maps the `Curve25519` slot to Ed25519, and the
        // name (the only thing hashed) is the JS one.
        NoiseParams::new(
            self.protocol_name().to_owned(),
            BaseChoice::Noise,
            HandshakeChoice {
                pattern,
                modifiers: HandshakeModifierList { list: Vec::new() },
            },
            DHChoice::Curve25519,
            CipherChoice::ChaChaPoly,
            HashChoice::Blake2b,
        )
    }
}

/// Everything the finished handshake yields, in the shape secret-stream's `opts.handshake` takes.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeResult {
    /// Whether this side started the handshake.
    pub is_initiator: bool,
    /// Our static public key.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// The peer's static public key.
    pub remote_public_key: [u8; PUBLIC_KEY_LEN],
    /// Key for what we send.
    pub tx: [u8; KEY_LEN],
    /// Key for what we receive.
    pub rx: [u8; KEY_LEN],
    /// The final handshake hash.
    pub hash: [u8; HASH_LEN],
}

impl std::fmt::Debug for HandshakeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeResult")
            .field("is_initiator", &self.is_initiator)
            .field("public_key", &hex::encode(self.public_key))
            .field("remote_public_key", &hex::encode(self.remote_public_key))
            .field("hash", &hex::encode(self.hash))
            .finish_non_exhaustive()
    }
}

/// A Noise handshake in progress (either role, XX or IK).
///
/// Sans-IO: [`Handshake::send`] returns the bytes of the next message, [`Handshake::recv`] takes the peer's
/// message and returns its payload. When [`Handshake::is_complete`], [`Handshake::result`] gives the keys.
pub struct Handshake {
    state: snow::HandshakeState,
    pattern: Pattern,
    is_initiator: bool,
    public_key: [u8; PUBLIC_KEY_LEN],
    result: Option<HandshakeResult>,
    failed: bool,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("pattern", &self.pattern)
            .field("is_initiator", &self.is_initiator)
            .field("complete", &self.result.is_some())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake. `remote_public_key` is required for an IK initiator and ignored otherwise
    /// (as `noise-handshake` ignores it for XX).
    pub fn new(
        pattern: Pattern,
        is_initiator: bool,
        keypair: &Keypair,
        prologue: &[u8],
        remote_public_key: Option<&[u8; PUBLIC_KEY_LEN]>,
    ) -> Result<Self, NoiseError> {
        Self::build(
            pattern,
            is_initiator,
            keypair,
            prologue,
            remote_public_key,
            None,
        )
    }

    /// Like [`Handshake::new`] with a fixed ephemeral key (from its seed), for reproducible test vectors
    /// only: reusing an ephemeral key destroys the handshake's security.
    #[doc(hidden)]
    pub fn with_fixed_ephemeral_for_testing(
        pattern: Pattern,
        is_initiator: bool,
        keypair: &Keypair,
        prologue: &[u8],
        remote_public_key: Option<&[u8; PUBLIC_KEY_LEN]>,
        ephemeral_seed: &[u8; 32],
    ) -> Result<Self, NoiseError> {
        Self::build(
            pattern,
            is_initiator,
            keypair,
            prologue,
            remote_public_key,
            Some(ephemeral_seed),
        )
    }

    fn build(
        pattern: Pattern,
        is_initiator: bool,
        keypair: &Keypair,
        prologue: &[u8],
        remote_public_key: Option<&[u8; PUBLIC_KEY_LEN]>,
        ephemeral_seed: Option<&[u8; 32]>,
    ) -> Result<Self, NoiseError> {
        let resolver: BoxedCryptoResolver = Box::new(FallbackResolver::new(
            Box::new(Ed25519Resolver),
            Box::new(DefaultResolver),
        ));
        let seed = keypair.seed();
        let mut builder = snow::Builder::with_resolver(pattern.params(), resolver)
            .local_private_key(&seed)
            .prologue(prologue);
        let needs_remote = pattern == Pattern::IK && is_initiator;
        if needs_remote {
            let rs = remote_public_key.ok_or(NoiseError::MissingRemoteKey)?;
            builder = builder.remote_public_key(rs);
        }
        if let Some(e) = ephemeral_seed {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let state = if is_initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(map_snow_error)?;
        Ok(Self {
            state,
            pattern,
            is_initiator,
            public_key: keypair.public_key,
            result: None,
            failed: false,
        })
    }

    /// The pattern in use.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// Whether this side is the initiator.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// True once the last message was sent or received.
    pub fn is_complete(&self) -> bool {
        self.result.is_some()
    }

    /// True when the next step is [`Handshake::send`].
    pub fn is_my_turn(&self) -> bool {
        !self.failed && self.result.is_none() && self.state.is_my_turn()
    }

    /// The peer's static key, as soon as it is known (before completion for an IK responder).
    pub fn remote_public_key(&self) -> Option<[u8; PUBLIC_KEY_LEN]> {
        self.state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
    }

    /// The keys and hash, once complete.
    pub fn result(&self) -> Option<&HandshakeResult> {
        self.result.as_ref()
    }

    /// Writes the next handshake message carrying `payload`.
    pub fn send(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfOrder);
        }
        if payload.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::PayloadTooLarge);
        }
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = match self.state.write_message(payload, &mut out) {
            Ok(n) => n,
            Err(e) => {
                self.failed = true;
                return Err(match e {
                    snow::Error::Input => NoiseError::PayloadTooLarge,
                    e => map_snow_error(e),
                });
            }
        };
        out.truncate(n);
        self.finish_if_done()?;
        Ok(out)
    }

    /// Reads the peer's handshake message and returns its payload. Any failure is final.
    pub fn recv(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.failed || self.result.is_some() || self.state.is_my_turn() {
            return Err(NoiseError::OutOfOrder);
        }
        if message.len() > MAX_MESSAGE_LEN {
            self.failed = true;
            return Err(NoiseError::Malformed);
        }
        let mut payload = vec![0u8; message.len()];
        let n = match self.state.read_message(message, &mut payload) {
            Ok(n) => n,
            Err(e) => {
                self.failed = true;
                return Err(map_snow_error(e));
            }
        };
        payload.truncate(n);
        self.finish_if_done()?;
        Ok(payload)
    }

    fn finish_if_done(&mut self) -> Result<(), NoiseError> {
        if !self.state.is_handshake_finished() {
            return Ok(());
        }
        let (k1, k2) = self.state.dangerously_get_raw_split();
        let remote_public_key = self
            .remote_public_key()
            .ok_or_else(|| NoiseError::Other("no remote static key after handshake".into()))?;
        let hash: [u8; HASH_LEN] = self
            .state
            .get_handshake_hash()
            .try_into()
            .map_err(|_| NoiseError::Other("unexpected handshake hash length".into()))?;
        let (tx, rx) = if self.is_initiator {
            (k1, k2)
        } else {
            (k2, k1)
        };
        self.result = Some(HandshakeResult {
            is_initiator: self.is_initiator,
            public_key: self.public_key,
            remote_public_key,
            tx,
            rx,
            hash,
        });
        Ok(())
    }
}

fn map_snow_error(e: snow::Error) -> NoiseError {
    match e {
        snow::Error::Input => NoiseError::Malformed,
        snow::Error::Decrypt => NoiseError::Decrypt,
        snow::Error::Dh => NoiseError::InvalidPublicKey,
        snow::Error::Prereq(_) => NoiseError::MissingRemoteKey,
        snow::Error::State(_) => NoiseError::OutOfOrder,
        e => NoiseError::Other(e.to_string()),
    }
}

/// Resolves snow's DH slot to [`Ed25519Dh`]; everything else falls back to snow's default resolver.
struct Ed25519Resolver;

impl CryptoResolver for Ed25519Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(Ed25519Dh::default())),
            DHChoice::Ed448 => None,
        }
    }

    fn resolve_hash(&self, _choice: &HashChoice) -> Option<Box<dyn Hash>> {
        None
    }

    fn resolve_cipher(&self, _choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

/// noise-curve-ed as a snow DH: the private key is the 32-byte Ed25519 seed.
#[derive(Default)]
struct Ed25519Dh {
    seed: [u8; 32],
    public: [u8; 32],
}

impl Dh for Ed25519Dh {
    fn name(&self) -> &'static str {
        "Ed25519"
    }

    fn pub_len(&self) -> usize {
        PUBLIC_KEY_LEN
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let mut seed = [0u8; 32];
        let n = privkey.len().min(32);
        seed[..n].copy_from_slice(&privkey[..n]);
        self.public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        self.seed = seed;
    }

    fn generate(&mut self, rng: &mut dyn Random) {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        self.set(&seed);
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.seed
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow hands over its whole MAXDHLEN-sized key buffer; the key is its first 32 bytes.
        let remote = pubkey.get(..PUBLIC_KEY_LEN).ok_or(snow::Error::Dh)?;
        let shared = ed25519_dh(&self.seed, remote).map_err(|_| snow::Error::Dh)?;
        let dst = out.get_mut(..PUBLIC_KEY_LEN).ok_or(snow::Error::Dh)?;
        dst.copy_from_slice(&shared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        pattern: Pattern,
        a: &Keypair,
        b: &Keypair,
        ik_key: Option<&[u8; 32]>,
    ) -> Result<(HandshakeResult, HandshakeResult), NoiseError> {
        let mut i = Handshake::new(pattern, true, a, b"prologue", ik_key)?;
        let mut r = Handshake::new(pattern, false, b, b"prologue", None)?;
        let mut from_i = true;
        let mut n = 0;
        while !(i.is_complete() && r.is_complete()) {
            let (s, d) = if from_i {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let msg = s.send(format!("payload {n}").as_bytes())?;
            let payload = d.recv(&msg)?;
            assert_eq!(payload, format!("payload {n}").as_bytes());
            from_i = !from_i;
            n += 1;
        }
        Ok((
            i.result().cloned().ok_or(NoiseError::OutOfOrder)?,
            r.result().cloned().ok_or(NoiseError::OutOfOrder)?,
        ))
    }

    #[test]
    fn xx_and_ik_agree() -> Result<(), NoiseError> {
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        for (pattern, key) in [(Pattern::XX, None), (Pattern::IK, Some(&b.public_key))] {
            let (ri, rr) = run(pattern, &a, &b, key)?;
            assert_eq!(ri.tx, rr.rx);
            assert_eq!(ri.rx, rr.tx);
            assert_ne!(ri.tx, ri.rx);
            assert_eq!(ri.hash, rr.hash);
            assert_eq!(ri.remote_public_key, b.public_key);
            assert_eq!(rr.remote_public_key, a.public_key);
        }
        Ok(())
    }

    #[test]
    fn ik_with_wrong_remote_key_fails() {
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let wrong = Keypair::from_seed(&[3; 32]);
        assert_eq!(
            run(Pattern::IK, &a, &b, Some(&wrong.public_key)).err(),
            Some(NoiseError::Decrypt)
        );
    }

    #[test]
    fn dh_is_symmetric_and_rejects_bad_points() -> Result<(), NoiseError> {
        let a = Keypair::from_seed(&[5; 32]);
        let b = Keypair::from_seed(&[6; 32]);
        assert_eq!(
            ed25519_dh(&a.seed(), &b.public_key)?,
            ed25519_dh(&b.seed(), &a.public_key)?
        );
        // identity, a small-order point, a non-canonical y, a short key
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(ed25519_dh(&a.seed(), &identity).is_err());
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        assert!(ed25519_dh(&a.seed(), &minus_one).is_err());
        let mut non_canonical = [0xffu8; 32];
        non_canonical[31] = 0x7f;
        assert!(ed25519_dh(&a.seed(), &non_canonical).is_err());
        assert!(ed25519_dh(&a.seed(), &[9; 31]).is_err());
        Ok(())
    }

    #[test]
    fn out_of_turn_is_an_error() -> Result<(), NoiseError> {
        let a = Keypair::from_seed(&[1; 32]);
        let mut r = Handshake::new(Pattern::XX, false, &a, &[], None)?;
        assert_eq!(r.send(&[]).err(), Some(NoiseError::OutOfOrder));
        let mut i = Handshake::new(Pattern::XX, true, &a, &[], None)?;
        assert_eq!(i.recv(&[0; 32]).err(), Some(NoiseError::OutOfOrder));
        assert_eq!(
            Handshake::new(Pattern::IK, true, &a, &[], None).err(),
            Some(NoiseError::MissingRemoteKey)
        );
        Ok(())
    }
}

//! Signing and signature checks of a core's tree heads (`lib/verifier.js`), for the two single-writer forms
//! hypercore 11 makes: compat cores (key = public key) and manifest cores (key = manifest hash).

use crate::compact_encoding::{Decode, Encode};
use crate::crypto::{verify, KeyPair};

use super::caps;
use super::messages::{Manifest, MultiSignature, MultisigInput};

/// Why a core's key and manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The manifest does not hash to the key.
    #[error("manifest does not match the core key")]
    ManifestMismatch,
    /// A manifest feature this implementation does not verify (patches, prologues, quorum 0).
    #[error("unsupported manifest: {0}")]
    Unsupported(&'static str),
    /// The key pair is not one of the manifest's signers.
    #[error("key pair is not a signer of this core")]
    NotASigner,
}

/// How a core's tree heads are signed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// The key is the Ed25519 public key; signatures are bare over [`caps::tree_signable_compat`].
    Compat {
        /// The public key (and core key).
        public_key: [u8; 32],
    },
    /// The key is the manifest hash; signatures are [`MultiSignature`]s over [`caps::tree_signable`].
    Manifest {
        /// The manifest hash (and core key).
        hash: [u8; 32],
        /// The manifest.
        manifest: Manifest,
    },
}

impl Verifier {
    /// The verifier for a core `key`, given its manifest when known. Without a manifest the key must be a
    /// compat (public) key.
    pub fn new(key: &[u8; 32], manifest: Option<&Manifest>) -> Result<Self, VerifierError> {
        let Some(m) = manifest else {
            return Ok(Self::Compat { public_key: *key });
        };
        if m.signers.len() == 1 && m.signers.first().is_some_and(|s| &s.public_key == key) {
            return Ok(Self::Compat { public_key: *key });
        }
        if caps::manifest_hash(m) != *key {
            return Err(VerifierError::ManifestMismatch);
        }
        if m.allow_patch {
            return Err(VerifierError::Unsupported("patches"));
        }
        if m.prologue.is_some() {
            return Err(VerifierError::Unsupported("prologue"));
        }
        if m.quorum == 0 || m.quorum > m.signers.len() as u64 {
            return Err(VerifierError::Unsupported("quorum"));
        }
        Ok(Self::Manifest {
            hash: *key,
            manifest: m.clone(),
        })
    }

    /// The bytes a signer signs for a tree head.
    pub fn signable(&self, tree_hash: &[u8; 32], length: u64, fork: u64) -> Vec<u8> {
        match self {
            Self::Compat { .. } => caps::tree_signable_compat(tree_hash, length, fork).to_vec(),
            Self::Manifest { hash, .. } => {
                caps::tree_signable(hash, tree_hash, length, fork).to_vec()
            }
        }
    }

    /// Signs a tree head with `key_pair`, in the form this core carries signatures.
    pub fn sign(
        &self,
        key_pair: &KeyPair,
        tree_hash: &[u8; 32],
        length: u64,
        fork: u64,
    ) -> Result<Vec<u8>, VerifierError> {
        let msg = self.signable(tree_hash, length, fork);
        match self {
            Self::Compat { public_key } => {
                if *public_key != key_pair.public {
                    return Err(VerifierError::NotASigner);
                }
                Ok(key_pair.sign(&msg).to_vec())
            }
            Self::Manifest { manifest, .. } => {
                let signer = manifest
                    .signers
                    .iter()
                    .position(|s| s.public_key == key_pair.public)
                    .ok_or(VerifierError::NotASigner)?;
                let signature = key_pair.sign(&msg);
                if manifest.signers.len() == 1 && manifest.version == 0 {
                    return Ok(signature.to_vec());
                }
                Ok(MultiSignature {
                    proofs: vec![MultisigInput {
                        signer: signer as u64,
                        signature,
                        patch: 0,
                    }],
                    patch: Vec::new(),
                }
                .to_bytes())
            }
        }
    }

    /// True when `signature` signs the tree head.
    pub fn verify(&self, tree_hash: &[u8; 32], length: u64, fork: u64, signature: &[u8]) -> bool {
        let msg = self.signable(tree_hash, length, fork);
        match self {
            Self::Compat { public_key } => verify(&msg, signature, public_key),
            Self::Manifest { manifest, .. } => {
                let Ok(multi) = MultiSignature::from_bytes(signature) else {
                    return false;
                };
                let quorum = manifest.quorum as usize;
                if quorum == 0 || multi.proofs.len() < quorum {
                    return false;
                }
                let mut tried = vec![false; manifest.signers.len()];
                for input in multi.proofs.iter().take(quorum) {
                    let Ok(i) = usize::try_from(input.signer) else {
                        return false;
                    };
                    let (Some(signer), Some(seen)) = (manifest.signers.get(i), tried.get_mut(i))
                    else {
                        return false;
                    };
                    if *seen || input.patch != 0 {
                        return false;
                    }
                    *seen = true;
                    if !verify(&msg, &input.signature, &signer.public_key) {
                        return false;
                    }
                }
                true
            }
        }
    }
}

//! Signing and signature checks of a core's tree heads (`lib/verifier.js`): compat cores (key = public key)
//! and manifest cores (key = manifest hash) of manifest versions 1 to 3, with several signers and a quorum
//! (multi-signatures with patches, see [`multisig`](super::multisig)), `allowPatch` and a prologue (the first
//! `prologue.length` blocks are trusted by their tree hash instead of a signature), as autobase makes them.

use std::collections::HashMap;

use crate::compact_encoding::Encode;
use crate::crypto::{tree_hash, verify, KeyPair, TreeNode};

use super::caps;
use super::messages::{Manifest, MultiSignature, MultisigInput};
use super::multisig::{self, PartialSignature};
use super::tree::{self, Batch};

/// Why a core's key and manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The manifest does not hash to the key.
    #[error("manifest does not match the core key")]
    ManifestMismatch,
    /// A manifest no signature could ever satisfy (a quorum above the number of signers, or 0 without a
    /// prologue).
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
        // JS refuses to create these (`createManifest`); one received could never verify anything.
        if m.quorum > m.signers.len() as u64 {
            return Err(VerifierError::Unsupported(
                "quorum above the number of signers",
            ));
        }
        if m.quorum == 0 && m.prologue.is_none() {
            return Err(VerifierError::Unsupported("quorum 0 without a prologue"));
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
                // As JS `Verifier.sign`: a core of several signers keeps its signer's bare signature (a
                // partial one, see `Hypercore::partial_signature`); a single signer's is a multi-signature.
                if manifest.signers.len() != 1 {
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

    /// True when `signature` signs the tree head with hash `tree_hash`. A signature with patches needs the
    /// tree's roots: use [`Verifier::verify_roots`] (this refuses them); so does a prologue.
    pub fn verify(&self, tree_hash: &[u8; 32], length: u64, fork: u64, signature: &[u8]) -> bool {
        match self {
            Self::Compat { public_key } => verify(
                &caps::tree_signable_compat(tree_hash, length, fork),
                signature,
                public_key,
            ),
            Self::Manifest { .. } => {
                if self.prologue_covers(length) {
                    return false;
                }
                self.verify_multi(None, tree_hash, length, fork, signature)
            }
        }
    }

    /// The manifest's prologue, if any.
    pub fn prologue(&self) -> Option<super::messages::Prologue> {
        match self {
            Self::Compat { .. } => None,
            Self::Manifest { manifest, .. } => manifest.prologue,
        }
    }

    /// True when a head of `length` is checked against the prologue rather than a signature.
    pub fn prologue_covers(&self, length: u64) -> bool {
        self.prologue().is_some_and(|p| length <= p.length)
    }

    /// True when one signer's [`sign`](Self::sign) makes a signature that verifies on its own (compat cores
    /// and manifests of one signer with quorum 1); with several signers it is a partial signature.
    pub fn signs_alone(&self) -> bool {
        match self {
            Self::Compat { .. } => true,
            Self::Manifest { manifest, .. } => manifest.signers.len() == 1 && manifest.quorum == 1,
        }
    }

    /// Signatures needed (1 for compat cores).
    pub fn quorum(&self) -> u64 {
        match self {
            Self::Compat { .. } => 1,
            Self::Manifest { manifest, .. } => manifest.quorum,
        }
    }

    /// The index of `public_key` among the signers.
    pub fn signer_index(&self, public_key: &[u8; 32]) -> Option<u64> {
        match self {
            Self::Compat { public_key: pk } => (pk == public_key).then_some(0),
            Self::Manifest { manifest, .. } => manifest
                .signers
                .iter()
                .position(|s| &s.public_key == public_key)
                .map(|i| i as u64),
        }
    }

    /// `verifier.verify(batch, signature)`: true when the tree of `roots` (at `length`, `fork`) is signed by
    /// `signature` (a quorum of signers, patches applied), or, for a head within the prologue, when it is the
    /// prologue's tree (no signature needed).
    pub fn verify_roots(
        &self,
        roots: &[TreeNode],
        length: u64,
        fork: u64,
        signature: Option<&[u8]>,
    ) -> bool {
        if let Some(p) = self.prologue() {
            if length <= p.length {
                return length == p.length && tree_hash(roots) == p.hash;
            }
        }
        let Some(signature) = signature else {
            return false;
        };
        let hash = tree_hash(roots);
        match self {
            Self::Compat { .. } => self.verify(&hash, length, fork, signature),
            Self::Manifest { .. } => self.verify_multi(Some(roots), &hash, length, fork, signature),
        }
    }

    /// `_verifyMulti`: the first `quorum` inputs must be distinct signers each signing the tree (grown by its
    /// patch when the manifest allows patches).
    fn verify_multi(
        &self,
        roots: Option<&[TreeNode]>,
        hash: &[u8; 32],
        length: u64,
        fork: u64,
        signature: &[u8],
    ) -> bool {
        let Self::Manifest {
            hash: manifest_hash,
            manifest,
        } = self
        else {
            return false;
        };
        let Ok(multi) = multisig::inflate(signature) else {
            return false;
        };
        let Ok(quorum) = usize::try_from(manifest.quorum) else {
            return false;
        };
        if quorum == 0 || multi.proofs.len() < quorum {
            return false;
        }
        let patch: Option<HashMap<u64, TreeNode>> = (manifest.allow_patch
            && !multi.patch.is_empty())
        .then(|| multi.patch.iter().map(|n| (n.index, *n)).collect());
        let mut tried = vec![false; manifest.signers.len()];
        for input in multi.proofs.iter().take(quorum) {
            let msg = if input.patch != 0 && manifest.allow_patch {
                let Some(roots) = roots else {
                    return false;
                };
                let Some(upgrade) = patch
                    .as_ref()
                    .and_then(|p| multisig::generate_upgrade(p, length, input.patch))
                else {
                    return false;
                };
                let mut grown = Batch::from_roots(roots, length, fork);
                if tree::apply_upgrade(&mut grown, fork, &upgrade).is_err() {
                    return false;
                }
                caps::tree_signable(manifest_hash, &grown.hash(), grown.length, fork)
            } else {
                caps::tree_signable(manifest_hash, hash, length, fork)
            };
            let Ok(i) = usize::try_from(input.signer) else {
                return false;
            };
            let (Some(signer), Some(seen)) = (manifest.signers.get(i), tried.get_mut(i)) else {
                return false;
            };
            if *seen {
                return false;
            }
            *seen = true;
            if !verify(&msg, &input.signature, &signer.public_key) {
                return false;
            }
        }
        true
    }

    /// `verifier.assemble(inputs)`: a multi-signature from partial signatures.
    pub fn assemble(&self, inputs: &[PartialSignature]) -> Vec<u8> {
        multisig::assemble(inputs)
    }
}

//! Multi-signatures of version 1+ manifests (`lib/multisig.js`): each signer signs the tree at its own length;
//! a signer that signed a longer tree than the one being signed hands in a *patch*, the upgrade nodes proving
//! the shorter tree is a prefix of the one it signed. [`assemble`] packs a quorum of such partial signatures
//! into the [`MultiSignature`] a core carries, deduplicating the patch nodes, byte for byte as JS does.
//!
//! Verification lives in [`Verifier`](super::Verifier); [`generate_upgrade`] rebuilds a signer's upgrade proof
//! from the patch nodes there (`generateUpgrade` in `lib/verifier.js`).

use std::collections::HashMap;

use crate::compact_encoding::{Decode, DecodeError, Encode};
use crate::crypto::TreeNode;
use crate::flat_tree::TreeIterator;

use super::messages::{DataUpgrade, MultiSignature, MultisigInput};

/// One signer's contribution to a multi-signature (`partialSignature` in JS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialSignature {
    /// Index of the signer in the manifest.
    pub signer: u64,
    /// The signer's Ed25519 signature of the tree at `length + patch`.
    pub signature: [u8; 64],
    /// How many blocks past the signed length the signer's tree is (0: it signed exactly that length).
    pub patch: u64,
    /// The upgrade nodes from the signed length to the signer's length (None without a patch).
    pub nodes: Option<Vec<TreeNode>>,
}

/// `multisig.assemble(inputs)`: the multi-signature of a version 1+ manifest core from partial signatures, in
/// order (the first `quorum` of them are checked). Patch nodes shared by several signers are sent once.
pub fn assemble(inputs: &[PartialSignature]) -> Vec<u8> {
    let mut patch: Vec<TreeNode> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut proofs = Vec::with_capacity(inputs.len());
    for u in inputs {
        for node in u.nodes.iter().flatten() {
            if seen.insert(node.index) {
                patch.push(*node);
            }
        }
        proofs.push(MultisigInput {
            signer: u.signer,
            signature: u.signature,
            patch: u.patch,
        });
    }
    MultiSignature { proofs, patch }.to_bytes()
}

/// `multisig.inflate(bytes)`: decodes a version 1+ multi-signature (untrusted bytes).
pub fn inflate(bytes: &[u8]) -> Result<MultiSignature, DecodeError> {
    MultiSignature::from_bytes(bytes)
}

/// `multisig.signableLength(lengths, quorum)`: the longest length at least `quorum` of the signers (whose
/// signed lengths are `lengths`) have signed; 0 when fewer than `quorum` signers are given.
pub fn signable_length(lengths: &[u64], quorum: u64) -> u64 {
    let quorum = quorum.max(1);
    let Ok(q) = usize::try_from(quorum) else {
        return 0;
    };
    if q > lengths.len() {
        return 0;
    }
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.get(q - 1).copied().unwrap_or(0)
}

/// Longest walk in [`generate_upgrade`] (a tree of 2^53 leaves has 54 levels).
const MAX_STEPS: usize = 1024;

/// `generateUpgrade(patch, start, length)`: the upgrade proof from `start` to `start + length` a signer's patch
/// stands for, its nodes taken from `patch` by index. None when a node is missing from the patch or the
/// lengths are out of range (the signature then does not verify).
pub fn generate_upgrade(
    patch: &HashMap<u64, TreeNode>,
    start: u64,
    length: u64,
) -> Option<DataUpgrade> {
    let end = start.checked_add(length)?;
    if end > 1 << 53 {
        return None;
    }
    let from = start * 2;
    let to = end * 2;
    let mut nodes: Option<Vec<TreeNode>> = None;
    let mut ite = TreeIterator::new(0);
    let mut steps = 0;
    while ite.full_root(to) {
        steps += 1;
        if steps > MAX_STEPS {
            return None;
        }
        'tree: {
            if ite.index + ite.factor / 2 < from {
                break 'tree;
            }
            if nodes.is_none() && from >= 2 && ite.contains(from - 2) {
                let list = nodes.insert(Vec::new());
                let root = ite.index;
                let target = from - 2;
                ite.seek(target);
                let mut inner = 0;
                while ite.index != root {
                    inner += 1;
                    if inner > MAX_STEPS {
                        return None;
                    }
                    ite.sibling();
                    if ite.index > target {
                        list.push(*patch.get(&ite.index)?);
                    }
                    ite.parent();
                }
                break 'tree;
            }
            nodes
                .get_or_insert_with(Vec::new)
                .push(*patch.get(&ite.index)?);
        }
        ite.next_tree();
    }
    Some(DataUpgrade {
        start,
        length,
        nodes: nodes.unwrap_or_default(),
        additional_nodes: Vec::new(),
        signature: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signable_length_is_the_quorum_th_longest() {
        assert_eq!(signable_length(&[5, 9, 7], 2), 7);
        assert_eq!(signable_length(&[5, 9, 7], 1), 9);
        assert_eq!(signable_length(&[5, 9, 7], 0), 9);
        assert_eq!(signable_length(&[5, 9, 7], 3), 5);
        assert_eq!(signable_length(&[5, 9, 7], 4), 0);
        assert_eq!(signable_length(&[], u64::MAX), 0);
    }

    #[test]
    fn assemble_dedups_patch_nodes_and_keeps_order() {
        let n = |index| TreeNode {
            index,
            size: index,
            hash: [index as u8; 32],
        };
        let a = PartialSignature {
            signer: 2,
            signature: [1; 64],
            patch: 3,
            nodes: Some(vec![n(10), n(13)]),
        };
        let b = PartialSignature {
            signer: 0,
            signature: [2; 64],
            patch: 0,
            nodes: None,
        };
        let c = PartialSignature {
            signer: 1,
            signature: [3; 64],
            patch: 5,
            nodes: Some(vec![n(10), n(17)]),
        };
        let sig = inflate(&assemble(&[a, b, c])).expect("decodes");
        assert_eq!(
            sig.proofs
                .iter()
                .map(|p| (p.signer, p.patch))
                .collect::<Vec<_>>(),
            vec![(2, 3), (0, 0), (1, 5)]
        );
        assert_eq!(
            sig.patch.iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![10, 13, 17]
        );
    }

    #[test]
    fn generate_upgrade_refuses_missing_nodes_and_huge_lengths() {
        let empty = HashMap::new();
        assert!(generate_upgrade(&empty, 4, 4).is_none());
        assert!(generate_upgrade(&empty, u64::MAX, 2).is_none());
        assert!(generate_upgrade(&empty, 1 << 52, 1 << 52).is_none());
        let up = generate_upgrade(&empty, 4, 0).expect("nothing to prove");
        assert!(up.nodes.is_empty());
    }
}

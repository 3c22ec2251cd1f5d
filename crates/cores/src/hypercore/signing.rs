//! What autobase needs of a core's signatures: the signed length (`core.signedLength`), a signer's partial
//! signature (`multisig.partialSignature`), installing an assembled multi-signature on the head, and
//! `core.info()`.

use super::js_storage;
use super::messages::{Request, RequestUpgrade};
use super::multisig::{self, PartialSignature};
use super::storage::{Head, Record};
use super::tree::Batch;
use super::tree::{NodeSource, TreeState};
use super::{AppendOutcome, Backend, Hypercore, HypercoreError, Result, Verifier};

/// How many of the latest heads of the log are kept while it is replayed, to find the signed length of a core
/// whose newest heads carry partial signatures only.
pub(super) const RECENT_HEADS: usize = 256;

/// True when every head a core stores is fully signed: a reader's heads were all verified before they were
/// stored, and a lone signer signs in full; only a signer of several keeps heads with its partial signature.
pub(super) fn heads_all_signed(
    verifier: &Verifier,
    key_pair: Option<&crate::crypto::KeyPair>,
) -> bool {
    key_pair.is_none() || verifier.signs_alone()
}

/// The length of the newest of `heads` (oldest first, all on the current fork) whose signature verifies.
/// 0 when none does (or only longer ago than [`RECENT_HEADS`] heads).
pub(super) fn signed_length_of<'a>(
    verifier: &Verifier,
    nodes: &impl NodeSource,
    heads: impl DoubleEndedIterator<Item = &'a Head>,
) -> u64 {
    let mut fork = None;
    for h in heads.rev() {
        if h.length == 0 {
            return 0;
        }
        if *fork.get_or_insert(h.fork) != h.fork {
            return 0;
        }
        let Ok(state) = TreeState::at(nodes, h.length, h.fork) else {
            continue;
        };
        if verifier.verify_roots(&state.roots, h.length, h.fork, h.signature.as_deref()) {
            return h.length;
        }
    }
    0
}

/// True when the head we just signed ourselves is signed in full: a lone signer's signature, or a head the
/// prologue proves (a signer of several makes a partial signature only; an unsigned head has none).
pub(super) fn head_is_signed(verifier: &Verifier, tree: &TreeState) -> bool {
    (tree.signature.is_some() && verifier.signs_alone())
        || (verifier.prologue_covers(tree.length)
            && verifier.verify_roots(&tree.roots, tree.length, tree.fork, None))
}

/// `core.info()`: a core's lengths and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreInfo {
    /// The core's key.
    pub key: [u8; 32],
    /// Its discovery key.
    pub discovery_key: [u8; 32],
    /// Number of blocks.
    pub length: u64,
    /// Length of the latest head whose signature verifies.
    pub signed_length: u64,
    /// Blocks stored from 0 without a gap.
    pub contiguous_length: u64,
    /// Bytes in all blocks (without encryption padding).
    pub byte_length: u64,
    /// Fork id.
    pub fork: u64,
    /// Encryption padding per block (0, or 16 on an encrypted core).
    pub padding: u64,
    /// Blocks stored locally.
    pub stored_blocks: u64,
}

impl Hypercore {
    /// `core.signedLength`: the length of the latest head whose signature verifies under the core's manifest
    /// (a quorum of its signers, or the prologue). A core of several signers that appends with its own key
    /// pair holds only a partial signature of its new head: its signed length stays where the last assembled
    /// multi-signature (see [`set_signature`](Self::set_signature)) or received proof left it.
    pub fn signed_length(&self) -> u64 {
        self.lock().signed_length
    }

    /// The signature of the tree at [`signed_length`](Self::signed_length), when known (see
    /// [`set_signed_length`](Self::set_signed_length)).
    pub fn signed_signature(&self) -> Option<Vec<u8>> {
        self.lock().signed_signature.clone()
    }

    /// `core.signable(length, fork)`: the bytes a signer of this core signs for the tree at `length` (at most
    /// the core's length) with fork id `fork`.
    pub fn signable(&self, length: u64, fork: u64) -> Result<Vec<u8>> {
        let hash = self.tree_hash_at(length)?;
        Ok(self.lock().verifier.signable(&hash, length, fork))
    }

    /// `core.treeHash(length)`: the tree hash at `length` (at most the core's length), from the stored roots.
    pub fn tree_hash_at(&self, length: u64) -> Result<[u8; 32]> {
        let g = self.lock();
        if length > g.tree.length {
            return Err(super::tree::ProofError::OutOfRange("length").into());
        }
        Ok(TreeState::at(&g.nodes(), length, g.tree.fork)?.hash())
    }

    /// `core.contiguousLength`: how many blocks from 0 are stored without a gap.
    pub fn contiguous_length(&self) -> u64 {
        let g = self.lock();
        let mut next = 0;
        for (i, _) in g.blocks.range(0, g.tree.length) {
            if i != next {
                break;
            }
            next += 1;
        }
        next
    }

    /// `core.info()`.
    pub fn info(&self) -> CoreInfo {
        let contiguous_length = self.contiguous_length();
        let g = self.lock();
        CoreInfo {
            key: g.key,
            discovery_key: crate::crypto::discovery_key(&g.key),
            length: g.tree.length,
            signed_length: g.signed_length,
            contiguous_length,
            byte_length: g.tree.byte_length - g.tree.length * g.padding(),
            fork: g.tree.fork,
            padding: g.padding(),
            stored_blocks: g.blocks.len(),
        }
    }

    /// `multisig.partialSignature(core, signer, from, to, signature)`: signer number `signer`'s contribution
    /// to a multi-signature of the tree at `from`, given its `signature` of the tree at `to` (default: this
    /// core's length and head signature; a multi-signature's first signature is taken). When `to > from` the
    /// upgrade nodes from `from` to `to` are the patch. None when `from` is past the core's length.
    pub fn partial_signature(
        &self,
        signer: u64,
        from: u64,
        to: Option<u64>,
        signature: Option<&[u8]>,
    ) -> Result<Option<PartialSignature>> {
        let (length, head_sig) = {
            let g = self.lock();
            (g.tree.length, g.tree.signature.clone())
        };
        if from > length {
            return Ok(None);
        }
        let to = to.unwrap_or(length);
        let nodes = if to <= from {
            None
        } else {
            let data = self.proof(&Request {
                upgrade: Some(RequestUpgrade {
                    start: from,
                    length: to - from,
                }),
                ..Request::default()
            })?;
            Some(data.upgrade.map(|u| u.nodes).unwrap_or_default())
        };
        let raw = match signature {
            Some(s) => s.to_vec(),
            None => head_sig.ok_or(super::tree::ProofError::MissingSignature)?,
        };
        let signature: [u8; 64] = match <[u8; 64]>::try_from(raw.as_slice()) {
            Ok(s) => s,
            Err(_) => multisig::inflate(&raw)?
                .proofs
                .first()
                .map(|p| p.signature)
                .ok_or(super::tree::ProofError::MissingSignature)?,
        };
        Ok(Some(PartialSignature {
            signer,
            signature,
            patch: if nodes.is_some() { to - from } else { 0 },
            nodes,
        }))
    }

    /// This core's signer's partial signature of the tree the core would have with `blocks` appended, without
    /// appending them: what each signer of a multi-signer core hands in before the blocks are appended with
    /// [`append_signed`](Self::append_signed), so no peer ever sees a head without a quorum signature.
    pub fn pending_partial_signature(&self, blocks: &[&[u8]]) -> Result<PartialSignature> {
        let g = self.lock();
        let kp = g.key_pair.as_ref().ok_or(HypercoreError::NotWritable)?;
        let signer = g
            .verifier
            .signer_index(&kp.public)
            .ok_or(super::VerifierError::NotASigner)?;
        let encrypted = g.encrypt_appended(blocks)?;
        let stored: Vec<&[u8]> = match &encrypted {
            Some(list) => list.iter().map(Vec::as_slice).collect(),
            None => blocks.to_vec(),
        };
        let mut batch = Batch::new(&g.tree);
        batch.append_all(&stored);
        let msg = g.verifier.signable(&batch.hash(), batch.length, batch.fork);
        Ok(PartialSignature {
            signer,
            signature: kp.sign(&msg),
            patch: 0,
            nodes: None,
        })
    }

    /// Appends `blocks` with `signature` (say, a quorum's multi-signature assembled from
    /// [`pending_partial_signature`](Self::pending_partial_signature)s) as the new head's signature instead of
    /// signing: refused, with nothing written, unless it verifies. Needs no key pair.
    pub fn append_signed(&self, blocks: &[&[u8]], signature: Vec<u8>) -> Result<AppendOutcome> {
        let log = self.log_lock();
        let g = self.lock();
        self.append_locked(log, g, blocks, Some(signature), false)
    }

    /// Takes `signature` (an assembled multi-signature, say) as the signature of the tree at `length` (at most
    /// the core's length; fork id 0, as autobase's indexers sign) after checking it verifies: the signed length
    /// becomes `length` if that is more (JS `core.commit(batch, { length, signature })` on autobase's views).
    /// Refused, with nothing changed, when it does not verify. Kept in memory only (with the signature, which
    /// a core with unsigned writes serves its peers, see [`Hypercore::replicated_head`]): a reopen recomputes
    /// the signed length from the stored heads, and autobase commits it again from what it keeps.
    pub fn set_signed_length(&self, length: u64, signature: &[u8]) -> Result<()> {
        let mut g = self.lock();
        if length > g.tree.length {
            return Err(super::tree::ProofError::OutOfRange("length").into());
        }
        let state = TreeState::at(&g.nodes(), length, 0)?;
        if !g
            .verifier
            .verify_roots(&state.roots, length, 0, Some(signature))
        {
            return Err(super::tree::ProofError::InvalidSignature { length, fork: 0 }.into());
        }
        if length > g.signed_length || (length == g.signed_length && g.signed_signature.is_none()) {
            g.signed_length = length;
            g.signed_signature = Some(signature.to_vec());
        }
        Ok(())
    }

    /// Installs `signature` (an assembled multi-signature, say) as the signature of the current head, after
    /// checking it verifies; the signed length becomes the length. Durable as appends are.
    pub fn set_signature(&self, signature: Vec<u8>) -> Result<()> {
        let mut log = self.log_lock();
        let g = self.lock();
        let tree = g.tree.clone();
        if !g
            .verifier
            .verify_roots(&tree.roots, tree.length, tree.fork, Some(&signature))
        {
            return Err(super::tree::ProofError::InvalidSignature {
                length: tree.length,
                fork: tree.fork,
            }
            .into());
        }
        drop(g);
        let head = Head {
            fork: tree.fork,
            length: tree.length,
            signature: Some(signature.clone()),
        };
        match &mut *log {
            Backend::Native(l) => {
                l.append(&Record {
                    head: Some(head),
                    ..Record::default()
                })?;
            }
            Backend::Js(js) => js.write(&js_storage::Change {
                entries: vec![js_storage::OplogEntry {
                    tree_nodes: Some(Vec::new()),
                    tree_upgrade: Some(js_storage::TreeUpgrade {
                        fork: tree.fork,
                        ancestors: tree.length,
                        length: tree.length,
                        signature: signature.clone(),
                    }),
                    ..js_storage::OplogEntry::default()
                }],
                root_hash: Some(tree.hash()),
                ..js_storage::Change::default()
            })?,
        }
        let mut g = self.lock();
        g.tree.signature = Some(signature.clone());
        g.signed_length = tree.length;
        g.signed_signature = Some(signature);
        drop(g);
        self.changed();
        Ok(())
    }
}

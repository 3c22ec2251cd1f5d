//! Hypercore's Merkle tree (`lib/merkle-tree.js`): append batches, byte offsets and seeks, the proofs the
//! replicator sends (block, hash, seek and upgrade proofs in [`Data`] form) and their verification.
//!
//! Everything here is synchronous and storage-agnostic: tree nodes come from a [`NodeSource`], and a verified
//! proof comes back as a [`Batch`] whose new nodes the caller stores (or drops).

use std::collections::{BTreeMap, HashMap};

use crate::crypto::{data_hash, data_hashes, parent_hash, tree_hash, TreeNode};
use crate::flat_tree::{self, TreeIterator};

use super::messages::{Data, DataBlock, DataHash, DataSeek, DataUpgrade};
use super::messages::{RequestBlock, RequestSeek, RequestUpgrade};

/// Largest leaf index accepted from a peer: JS numbers are exact up to 2^53, so no honest peer goes beyond.
const MAX_INDEX: u64 = 1 << 53;
/// Longest path walked in the tree (a tree of 2^53 leaves is 54 levels deep).
const MAX_STEPS: usize = 1024;

/// Why a proof could not be made or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof's nodes are not the ones the tree walk needs next.
    #[error("expected tree node {expected}, got {got:?}")]
    UnexpectedNode {
        /// The index the walk needed.
        expected: u64,
        /// The index the proof had (None: it ran out).
        got: Option<u64>,
    },
    /// A proof's hash chain does not end in a node we trust.
    #[error("invalid checksum at tree node {0}")]
    InvalidChecksum(u64),
    /// The upgrade carried no signature.
    #[error("upgrade has no signature")]
    MissingSignature,
    /// The signature does not sign the proven tree (bad signature, wrong length or wrong fork).
    #[error("invalid signature for length {length}, fork {fork}")]
    InvalidSignature {
        /// Length the proof claimed.
        length: u64,
        /// Fork the proof claimed.
        fork: u64,
    },
    /// The proof is for another fork than ours.
    #[error("proof is for fork {got}, we are on fork {ours}")]
    ForkMismatch {
        /// Our fork.
        ours: u64,
        /// The proof's fork.
        got: u64,
    },
    /// A proof that neither upgrades nor connects to what we have.
    #[error("proof conflicts with the local tree")]
    Conflict,
    /// A tree node needed to build or check the proof is not stored.
    #[error("tree node {0} is not available")]
    MissingNode(u64),
    /// Indices or lengths outside what a tree can hold.
    #[error("out of range: {0}")]
    OutOfRange(&'static str),
    /// A request that cannot be answered.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The proof carries no block, hash, seek or upgrade.
    #[error("empty proof")]
    Empty,
}

/// Where tree nodes are read from.
pub trait NodeSource {
    /// The node at flat-tree `index`, if stored.
    fn node(&self, index: u64) -> Option<TreeNode>;
}

impl NodeSource for HashMap<u64, TreeNode> {
    fn node(&self, index: u64) -> Option<TreeNode> {
        self.get(&index).copied()
    }
}

impl NodeSource for BTreeMap<u64, TreeNode> {
    fn node(&self, index: u64) -> Option<TreeNode> {
        self.get(&index).copied()
    }
}

fn get(src: &impl NodeSource, index: u64) -> Result<TreeNode, ProofError> {
    src.node(index).ok_or(ProofError::MissingNode(index))
}

/// A signed (or being signed) state of the tree: its roots, length, byte length and fork.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeState {
    /// Fork id (bumped by every truncation).
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// Bytes in all blocks.
    pub byte_length: u64,
    /// Roots of the full subtrees, left to right.
    pub roots: Vec<TreeNode>,
    /// Signature over this state, in the form the core's verifier uses.
    pub signature: Option<Vec<u8>>,
}

impl TreeState {
    /// `crypto.tree(roots)`: the hash a signature covers.
    pub fn hash(&self) -> [u8; 32] {
        tree_hash(&self.roots)
    }

    /// The state at `length` with the roots read from `src`.
    pub fn at(src: &impl NodeSource, length: u64, fork: u64) -> Result<Self, ProofError> {
        let indexes = roots_of(length)?;
        let roots = indexes
            .into_iter()
            .map(|i| get(src, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            fork,
            length,
            byte_length: roots.iter().map(|r| r.size).sum(),
            roots,
            signature: None,
        })
    }
}

fn roots_of(length: u64) -> Result<Vec<u64>, ProofError> {
    if length > MAX_INDEX {
        return Err(ProofError::OutOfRange("length"));
    }
    flat_tree::full_roots(2 * length).ok_or(ProofError::OutOfRange("length"))
}

/// `blockNode`: the leaf for a block.
pub fn block_node(index: u64, value: &[u8]) -> TreeNode {
    TreeNode {
        index,
        size: value.len() as u64,
        hash: data_hash(value),
    }
}

fn parent_node(index: u64, a: &TreeNode, b: &TreeNode) -> TreeNode {
    TreeNode {
        index,
        size: a.size.wrapping_add(b.size),
        hash: parent_hash(a, b),
    }
}

/// Changes to the tree on top of a [`TreeState`]: appended blocks, or what a verified proof adds. Holds every
/// new node (leaves and parents) to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Fork of the resulting tree.
    pub fork: u64,
    /// Length of the resulting tree.
    pub length: u64,
    /// Byte length of the resulting tree.
    pub byte_length: u64,
    /// Roots of the resulting tree.
    pub roots: Vec<TreeNode>,
    /// Signature carried by a proof's upgrade.
    pub signature: Option<Vec<u8>>,
    /// New nodes (to store).
    pub nodes: Vec<TreeNode>,
    /// True when the roots changed (the batch must be signed).
    pub upgraded: bool,
}

impl Batch {
    /// A batch on top of `state`.
    pub fn new(state: &TreeState) -> Self {
        Self {
            fork: state.fork,
            length: state.length,
            byte_length: state.byte_length,
            roots: state.roots.clone(),
            signature: state.signature.clone(),
            nodes: Vec::new(),
            upgraded: false,
        }
    }

    /// Appends one block.
    pub fn append(&mut self, value: &[u8]) {
        let head = self.length * 2;
        let mut ite = TreeIterator::new(head);
        self.append_root(block_node(head, value), &mut ite);
    }

    /// Appends blocks in order, as [`append`](Self::append) one by one would, with their leaf hashes computed
    /// together ([`data_hashes`]: several per pass, on two threads for a large batch).
    pub fn append_all(&mut self, values: &[&[u8]]) {
        for (value, hash) in values.iter().zip(data_hashes(values)) {
            let head = self.length * 2;
            let mut ite = TreeIterator::new(head);
            let leaf = TreeNode {
                index: head,
                size: value.len() as u64,
                hash,
            };
            self.append_root(leaf, &mut ite);
        }
    }

    /// The tree hash of the batch's roots.
    pub fn hash(&self) -> [u8; 32] {
        tree_hash(&self.roots)
    }

    /// The resulting state (with `signature`).
    pub fn state(&self, signature: Option<Vec<u8>>) -> TreeState {
        TreeState {
            fork: self.fork,
            length: self.length,
            byte_length: self.byte_length,
            roots: self.roots.clone(),
            signature,
        }
    }

    fn append_root(&mut self, node: TreeNode, ite: &mut TreeIterator) {
        self.upgraded = true;
        self.length = self.length.wrapping_add(ite.factor / 2);
        self.byte_length = self.byte_length.wrapping_add(node.size);
        self.roots.push(node);
        self.nodes.push(node);
        while let [.., b, a] = self.roots[..] {
            if ite.sibling() != b.index {
                ite.sibling();
                break;
            }
            let parent = parent_node(ite.parent(), &a, &b);
            self.nodes.push(parent);
            self.roots.pop();
            self.roots.pop();
            self.roots.push(parent);
        }
    }
}

/// Hands out proof nodes in the order the tree walk asks for them (`NodeQueue`).
struct NodeQueue<'a> {
    nodes: &'a [TreeNode],
    i: usize,
    extra: Option<TreeNode>,
}

impl<'a> NodeQueue<'a> {
    fn new(nodes: &'a [TreeNode], extra: Option<TreeNode>) -> Self {
        Self { nodes, i: 0, extra }
    }

    fn len(&self) -> usize {
        self.nodes.len() - self.i + usize::from(self.extra.is_some())
    }

    fn shift(&mut self, index: u64) -> Result<TreeNode, ProofError> {
        if let Some(extra) = self.extra {
            if extra.index == index {
                self.extra = None;
                return Ok(extra);
            }
        }
        let Some(node) = self.nodes.get(self.i) else {
            return Err(ProofError::UnexpectedNode {
                expected: index,
                got: None,
            });
        };
        if node.index != index {
            return Err(ProofError::UnexpectedNode {
                expected: index,
                got: Some(node.index),
            });
        }
        self.i += 1;
        Ok(*node)
    }
}

fn check_nodes(nodes: &[TreeNode]) -> Result<(), ProofError> {
    if nodes.len() > 128 {
        return Err(ProofError::OutOfRange("too many proof nodes"));
    }
    if nodes.iter().any(|n| n.index > 4 * MAX_INDEX) {
        return Err(ProofError::OutOfRange("node index"));
    }
    Ok(())
}

fn checked_parent(ite: &mut TreeIterator) -> Result<u64, ProofError> {
    if ite.factor > 8 * MAX_INDEX {
        return Err(ProofError::OutOfRange("tree depth"));
    }
    Ok(ite.parent())
}

/// `verifyTree`: hashes the block/hash and seek paths of a proof up to the subtree root they prove, pushing
/// every node on the way onto `nodes`. None when the proof has neither.
/// A block or hash to prove: its tree index, the block's bytes (None for a hash) and the proof nodes.
type Untrusted<'a> = (u64, Option<&'a [u8]>, &'a [TreeNode]);

fn verify_tree(proof: &Data, nodes: &mut Vec<TreeNode>) -> Result<Option<TreeNode>, ProofError> {
    let untrusted: Option<Untrusted<'_>> = match (&proof.block, &proof.hash) {
        (Some(b), _) => {
            if b.index >= MAX_INDEX {
                return Err(ProofError::OutOfRange("block index"));
            }
            Some((2 * b.index, Some(&b.value), &b.nodes))
        }
        (None, Some(h)) => {
            if h.index > 4 * MAX_INDEX {
                return Err(ProofError::OutOfRange("hash index"));
            }
            Some((h.index, None, &h.nodes))
        }
        (None, None) => None,
    };
    let seek_nodes = proof.seek.as_ref().map(|s| &s.nodes[..]).unwrap_or(&[]);
    if untrusted.is_none() && seek_nodes.is_empty() {
        return Ok(None);
    }
    check_nodes(seek_nodes)?;

    let mut root = None;
    if let Some(first) = seek_nodes.first() {
        let mut ite = TreeIterator::new(first.index);
        let mut q = NodeQueue::new(seek_nodes, None);
        let mut r = q.shift(ite.index)?;
        nodes.push(r);
        while q.len() > 0 {
            let node = q.shift(ite.sibling())?;
            r = parent_node(checked_parent(&mut ite)?, &r, &node);
            nodes.push(node);
            nodes.push(r);
        }
        root = Some(r);
    }

    let Some((index, value, proof_nodes)) = untrusted else {
        return Ok(root);
    };
    check_nodes(proof_nodes)?;
    let mut ite = TreeIterator::new(index);
    let mut q = NodeQueue::new(proof_nodes, root);
    let mut r = match value {
        Some(v) => block_node(ite.index, v),
        None => q.shift(ite.index)?,
    };
    nodes.push(r);
    while q.len() > 0 {
        let node = q.shift(ite.sibling())?;
        r = parent_node(checked_parent(&mut ite)?, &r, &node);
        nodes.push(node);
        nodes.push(r);
    }
    Ok(Some(r))
}

/// `verifyUpgrade`: grows `batch` to the proven length from the upgrade's nodes. Returns true when the
/// block/seek subtree root was used as one of the upgrade nodes (so it is proven by the signature).
fn verify_upgrade(
    fork: u64,
    upgrade: &DataUpgrade,
    block_root: Option<TreeNode>,
    batch: &mut Batch,
) -> Result<bool, ProofError> {
    check_nodes(&upgrade.nodes)?;
    check_nodes(&upgrade.additional_nodes)?;
    let end = upgrade
        .start
        .checked_add(upgrade.length)
        .filter(|e| *e <= MAX_INDEX)
        .ok_or(ProofError::OutOfRange("upgrade length"))?;
    let to = 2 * end;

    let mut q = NodeQueue::new(&upgrade.nodes, block_root);
    let mut grow = !batch.roots.is_empty();
    let mut i = 0;
    let mut ite = TreeIterator::new(0);
    let mut steps = 0;

    while ite.full_root(to) {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(ProofError::OutOfRange("upgrade walk"));
        }
        'body: {
            if batch.roots.get(i).is_some_and(|r| r.index == ite.index) {
                i += 1;
                break 'body;
            }
            if grow {
                grow = false;
                let root = ite.index;
                if i < batch.roots.len() {
                    let last = batch.roots.last().map(|r| r.index).unwrap_or(0);
                    ite.seek(last);
                    let mut inner = 0;
                    while ite.index != root {
                        inner += 1;
                        if inner > MAX_STEPS {
                            return Err(ProofError::OutOfRange("upgrade walk"));
                        }
                        let sib = ite.sibling();
                        let node = q.shift(sib)?;
                        batch.append_root(node, &mut ite);
                    }
                    break 'body;
                }
            }
            let node = q.shift(ite.index)?;
            batch.append_root(node, &mut ite);
        }
        ite.next_tree();
    }

    let Some(last) = batch.roots.last() else {
        return Err(ProofError::InvalidRequest("upgrade to an empty tree"));
    };
    ite.seek(last.index);
    let extra = &upgrade.additional_nodes;
    let mut i = 0;
    while let Some(node) = extra.get(i) {
        if node.index != ite.sibling() {
            break;
        }
        batch.append_root(*node, &mut ite);
        i += 1;
    }
    while let Some(node) = extra.get(i) {
        i += 1;
        let mut guard = 0;
        while node.index != ite.index {
            guard += 1;
            if ite.factor == 2 || guard > MAX_STEPS {
                return Err(ProofError::UnexpectedNode {
                    expected: ite.index,
                    got: Some(node.index),
                });
            }
            ite.left_child();
        }
        batch.append_root(*node, &mut ite);
        ite.sibling();
    }

    batch.signature.clone_from(&upgrade.signature);
    batch.fork = fork;
    Ok(q.extra.is_none())
}

/// Grows `batch` by the upgrade proof `upgrade` (`batch.clone().verifyUpgrade(proof)` in JS, as the multisig
/// verifier does for a signer's patch): the batch's roots must be where the upgrade starts. The upgrade's
/// signature is not checked.
pub fn apply_upgrade(
    batch: &mut Batch,
    fork: u64,
    upgrade: &DataUpgrade,
) -> Result<(), ProofError> {
    verify_upgrade(fork, upgrade, None, batch).map(|_| ())
}

impl Batch {
    /// A batch at `length` and `fork` made of `roots` (the roots of a tree of that length), with no nodes.
    pub fn from_roots(roots: &[TreeNode], length: u64, fork: u64) -> Self {
        Self {
            fork,
            length,
            byte_length: roots.iter().fold(0u64, |a, r| a.saturating_add(r.size)),
            roots: roots.to_vec(),
            signature: None,
            nodes: Vec::new(),
            upgraded: false,
        }
    }
}

/// `MerkleTree.verify`: checks a proof's hashes against `state` and the nodes in `src`, returning the batch of
/// new nodes. An upgrade's signature is *not* checked here (the caller's verifier does that on
/// `batch.hash()`); a proof without upgrade must end in a node already stored.
pub fn verify(state: &TreeState, src: &impl NodeSource, proof: &Data) -> Result<Batch, ProofError> {
    if proof.block.is_none()
        && proof.hash.is_none()
        && proof.seek.is_none()
        && proof.upgrade.is_none()
    {
        return Err(ProofError::Empty);
    }
    let mut batch = Batch::new(state);
    let mut unverified = verify_tree(proof, &mut batch.nodes)?;
    if let Some(upgrade) = &proof.upgrade {
        if verify_upgrade(proof.fork, upgrade, unverified, &mut batch)? {
            unverified = None;
        }
    }
    if let Some(node) = unverified {
        let trusted = get(src, node.index).map_err(|_| ProofError::InvalidChecksum(node.index))?;
        if trusted.hash != node.hash || trusted.size != node.size {
            return Err(ProofError::InvalidChecksum(node.index));
        }
    }
    Ok(batch)
}

/// `getByteOffset`: the byte offset of the first leaf under `index`.
pub fn byte_offset(
    state: &TreeState,
    src: &impl NodeSource,
    index: u64,
) -> Result<u64, ProofError> {
    if index == 2 * state.length {
        return Ok(state.byte_length);
    }
    let index = flat_tree::left_span(index);
    let mut head = 0u64;
    let mut offset = 0u64;
    for root in &state.roots {
        head = head.wrapping_add(2 * (root.index.wrapping_sub(head) + 1));
        if index >= head {
            offset += root.size;
            continue;
        }
        let mut ite = TreeIterator::new(root.index);
        let mut steps = 0;
        while ite.index != index {
            steps += 1;
            if steps > MAX_STEPS || ite.factor == 2 {
                return Err(ProofError::OutOfRange("byte offset"));
            }
            if index < ite.index {
                ite.left_child();
            } else {
                offset += get(src, ite.left_child())?.size;
                ite.sibling();
            }
        }
        return Ok(offset);
    }
    Err(ProofError::OutOfRange("byte offset"))
}

fn unpadded(node: &TreeNode, padding: u64, leaves: u64) -> u64 {
    node.size.wrapping_sub(padding.wrapping_mul(leaves))
}

/// `seekTrustedTree`: the node under `root` where byte `bytes` (relative to `root`) falls.
fn seek_trusted_tree(
    src: &impl NodeSource,
    root: u64,
    mut bytes: u64,
    padding: u64,
) -> Result<u64, ProofError> {
    if bytes == 0 {
        return Ok(root);
    }
    let mut ite = TreeIterator::new(root);
    let mut steps = 0;
    while ite.index & 1 == 1 {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(ProofError::OutOfRange("seek"));
        }
        match src.node(ite.left_child()) {
            Some(l) => {
                let size = unpadded(&l, padding, ite.count_leaves());
                if size == bytes {
                    return Ok(ite.index);
                }
                if size > bytes {
                    continue;
                }
                bytes -= size;
                ite.sibling();
            }
            None => {
                ite.parent();
                return Ok(ite.index);
            }
        }
    }
    Ok(ite.index)
}

fn seek_untrusted_tree(
    state: &TreeState,
    src: &impl NodeSource,
    root: u64,
    bytes: u64,
    padding: u64,
) -> Result<u64, ProofError> {
    let pad = padding.wrapping_mul(flat_tree::left_span(root) / 2);
    let offset = byte_offset(state, src, root)?.wrapping_sub(pad);
    if offset > bytes {
        return Err(ProofError::InvalidRequest("invalid seek"));
    }
    if offset == bytes {
        return Ok(root);
    }
    let bytes = bytes - offset;
    let node = get(src, root)?;
    if unpadded(&node, padding, flat_tree::count_leaves(root)) <= bytes {
        return Err(ProofError::InvalidRequest("invalid seek"));
    }
    seek_trusted_tree(src, root, bytes, padding)
}

fn seek_from_head(
    src: &impl NodeSource,
    head: u64,
    mut bytes: u64,
    padding: u64,
) -> Result<u64, ProofError> {
    let roots = flat_tree::full_roots(head).ok_or(ProofError::OutOfRange("head"))?;
    for root in roots {
        let node = get(src, root)?;
        let size = unpadded(&node, padding, flat_tree::count_leaves(root));
        if bytes == size {
            return Ok(root);
        }
        if bytes > size {
            bytes -= size;
            continue;
        }
        return seek_trusted_tree(src, root, bytes, padding);
    }
    Ok(head)
}

/// `ByteSeeker` on a tree whose nodes are all stored: the block holding byte `bytes` and the offset within
/// it. `bytes == byte_length` gives `(length, 0)`; beyond it, None.
pub fn seek(
    state: &TreeState,
    src: &impl NodeSource,
    bytes: u64,
    padding: u64,
) -> Result<Option<(u64, u64)>, ProofError> {
    if bytes == 0 {
        return Ok(Some((0, 0)));
    }
    let mut bytes = bytes;
    for root in &state.roots {
        let size = unpadded(root, padding, flat_tree::count_leaves(root.index));
        if bytes == size {
            return Ok(Some(((flat_tree::right_span(root.index) + 2) / 2, 0)));
        }
        if bytes > size {
            bytes -= size;
            continue;
        }
        let mut ite = TreeIterator::new(root.index);
        let mut steps = 0;
        while ite.index & 1 == 1 {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(ProofError::OutOfRange("seek"));
            }
            let l = get(src, ite.left_child())?;
            let size = unpadded(&l, padding, ite.count_leaves());
            if size == bytes {
                return Ok(Some(((ite.right_span() + 2) / 2, 0)));
            }
            if size > bytes {
                continue;
            }
            bytes -= size;
            ite.sibling();
        }
        return Ok(Some((ite.index / 2, bytes)));
    }
    Ok(None)
}

/// Node indexes a proof will carry, gathered before they are read (`TreeProof.pending`).
#[derive(Debug, Default)]
struct Pending {
    node: Option<Vec<u64>>,
    seek: Option<Vec<u64>>,
    upgrade: Option<Vec<u64>>,
    additional: Option<Vec<u64>>,
}

#[derive(Debug, Clone, Copy)]
struct Indexed {
    value: bool,
    index: u64,
    nodes: u64,
    last_index: u64,
}

fn seek_proof(seek_root: u64, root: u64, p: &mut Pending) -> Result<(), ProofError> {
    let mut ite = TreeIterator::new(seek_root);
    let mut out = vec![ite.index];
    let mut steps = 0;
    while ite.index != root {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(ProofError::InvalidRequest("seek proof"));
        }
        ite.sibling();
        out.push(ite.index);
        ite.parent();
    }
    p.seek = Some(out);
    Ok(())
}

fn block_and_seek_proof(
    node: Option<Indexed>,
    seek: bool,
    seek_root: u64,
    root: u64,
    p: &mut Pending,
) -> Result<(), ProofError> {
    let Some(node) = node else {
        return seek_proof(seek_root, root, p);
    };
    let mut ite = TreeIterator::new(node.index);
    let mut out = Vec::new();
    if !node.value {
        out.push(ite.index);
    }
    let mut steps = 0;
    while ite.index != root {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(ProofError::InvalidRequest("block proof"));
        }
        ite.sibling();
        if seek && ite.contains(seek_root) && ite.index != seek_root {
            seek_proof(seek_root, ite.index, p)?;
        } else {
            out.push(ite.index);
        }
        ite.parent();
    }
    p.node = Some(out);
    Ok(())
}

fn upgrade_proof(
    node: Option<Indexed>,
    seek: bool,
    from: u64,
    to: u64,
    sub_tree: u64,
    p: &mut Pending,
) -> Result<(), ProofError> {
    if from == 0 {
        p.upgrade = Some(Vec::new());
    }
    let mut ite = TreeIterator::new(0);
    while ite.full_root(to) {
        'body: {
            if ite.index + ite.factor / 2 < from {
                break 'body;
            }
            if p.upgrade.is_none() && ite.contains(from - 2) {
                let mut out = Vec::new();
                let root = ite.index;
                let target = from - 2;
                ite.seek(target);
                let mut steps = 0;
                while ite.index != root {
                    steps += 1;
                    if steps > MAX_STEPS {
                        return Err(ProofError::InvalidRequest("upgrade proof"));
                    }
                    ite.sibling();
                    if ite.index > target {
                        if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
                            block_and_seek_proof(node, seek, sub_tree, ite.index, p)?;
                        } else {
                            out.push(ite.index);
                        }
                    }
                    ite.parent();
                }
                p.upgrade = Some(out);
                break 'body;
            }
            if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
                p.upgrade.get_or_insert_with(Vec::new);
                block_and_seek_proof(node, seek, sub_tree, ite.index, p)?;
                break 'body;
            }
            p.upgrade.get_or_insert_with(Vec::new).push(ite.index);
        }
        ite.next_tree();
    }
    Ok(())
}

fn additional_upgrade_proof(from: u64, to: u64, p: &mut Pending) -> Result<(), ProofError> {
    let mut out: Option<Vec<u64>> = if from == 0 { Some(Vec::new()) } else { None };
    let mut ite = TreeIterator::new(0);
    while ite.full_root(to) {
        'body: {
            if ite.index + ite.factor / 2 < from {
                break 'body;
            }
            if out.is_none() && ite.contains(from - 2) {
                let mut list = Vec::new();
                let root = ite.index;
                let target = from - 2;
                ite.seek(target);
                let mut steps = 0;
                while ite.index != root {
                    steps += 1;
                    if steps > MAX_STEPS {
                        return Err(ProofError::InvalidRequest("additional upgrade proof"));
                    }
                    ite.sibling();
                    if ite.index > target {
                        list.push(ite.index);
                    }
                    ite.parent();
                }
                out = Some(list);
                break 'body;
            }
            out.get_or_insert_with(Vec::new).push(ite.index);
        }
        ite.next_tree();
    }
    p.additional = out;
    Ok(())
}

fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64, ProofError> {
    if nodes > 64 {
        return Err(ProofError::InvalidRequest("nodes out of bounds"));
    }
    let mut ite = TreeIterator::new(index);
    for _ in 0..nodes {
        ite.parent();
        if ite.contains(head) {
            return Err(ProofError::InvalidRequest("nodes out of bounds"));
        }
    }
    Ok(ite.index)
}

/// What a peer asked a proof of (the proof parts of a [`super::messages::Request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProofRequest {
    /// Block and its proof.
    pub block: Option<RequestBlock>,
    /// Node hash and its proof.
    pub hash: Option<RequestBlock>,
    /// Seek.
    pub seek: Option<RequestSeek>,
    /// Upgrade.
    pub upgrade: Option<RequestUpgrade>,
}

/// `generateProof`: the proof answering `req` from a tree at `state` whose nodes are in `src`. The block's value
/// is left empty for the caller to fill; `request` is 0.
pub fn proof(
    state: &TreeState,
    src: &impl NodeSource,
    req: &ProofRequest,
) -> Result<Data, ProofError> {
    let head = 2 * state.length;
    let (from, to) = match req.upgrade {
        Some(u) => {
            let from = u
                .start
                .checked_mul(2)
                .ok_or(ProofError::InvalidRequest("upgrade"))?;
            let to = u
                .length
                .checked_mul(2)
                .and_then(|l| l.checked_add(from))
                .ok_or(ProofError::InvalidRequest("upgrade"))?;
            (from, to)
        }
        None => (0, head),
    };
    let node = match (req.block, req.hash) {
        (Some(b), _) => Some(Indexed {
            value: true,
            index: b
                .index
                .checked_mul(2)
                .ok_or(ProofError::InvalidRequest("block index"))?,
            nodes: b.nodes,
            last_index: b.index,
        }),
        (None, Some(h)) => Some(Indexed {
            value: false,
            index: h.index,
            nodes: h.nodes,
            last_index: flat_tree::right_span(h.index) / 2,
        }),
        (None, None) => None,
    };

    let mut data = Data {
        fork: state.fork,
        ..Data::default()
    };
    if head == 0 {
        return Ok(data);
    }
    if from >= to || to > head {
        return Err(ProofError::InvalidRequest("invalid upgrade"));
    }
    if let Some(n) = node {
        if n.last_index >= state.length {
            return Err(ProofError::InvalidRequest("block out of range"));
        }
    }
    if req.seek.is_some() && req.upgrade.is_some() && node.is_some_and(|n| n.index >= from) {
        return Err(ProofError::InvalidRequest(
            "cannot both do a seek and block/hash request when upgrading",
        ));
    }

    let mut sub_tree = head;
    let mut p = Pending::default();
    let seek = req.seek.is_some();

    match (node, req.upgrade) {
        (Some(n), u) if u.is_none_or(|u| n.last_index < u.start) => {
            sub_tree = nodes_to_root(n.index, n.nodes, to)?;
            let seek_root = match req.seek {
                Some(s) => seek_untrusted_tree(state, src, sub_tree, s.bytes, s.padding)?,
                None => head,
            };
            block_and_seek_proof(node, seek, seek_root, sub_tree, &mut p)?;
        }
        (_, Some(_)) if node.is_some() || seek => {
            sub_tree = match (req.seek, node) {
                (Some(s), _) => seek_from_head(src, to, s.bytes, s.padding)?,
                (None, Some(n)) => n.index,
                (None, None) => head,
            };
        }
        _ => {}
    }

    if req.upgrade.is_some() {
        upgrade_proof(node, seek, from, to, sub_tree, &mut p)?;
        if head > to {
            additional_upgrade_proof(to, head, &mut p)?;
        }
    }

    let read = |list: &Option<Vec<u64>>| -> Result<Option<Vec<TreeNode>>, ProofError> {
        list.as_ref()
            .map(|l| l.iter().map(|i| get(src, *i)).collect())
            .transpose()
    };

    if let Some(b) = req.block {
        let nodes = read(&p.node)?.ok_or(ProofError::InvalidRequest("invalid block request"))?;
        data.block = Some(DataBlock {
            index: b.index,
            value: Vec::new(),
            nodes,
        });
    } else if let Some(h) = req.hash {
        let nodes = read(&p.node)?.ok_or(ProofError::InvalidRequest("invalid hash request"))?;
        data.hash = Some(DataHash {
            index: h.index,
            nodes,
        });
    }
    if let (Some(s), Some(nodes)) = (req.seek, read(&p.seek)?) {
        data.seek = Some(DataSeek {
            bytes: s.bytes,
            nodes,
        });
    }
    if let Some(u) = req.upgrade {
        data.upgrade = Some(DataUpgrade {
            start: u.start,
            length: u.length,
            nodes: read(&p.upgrade)?.unwrap_or_default(),
            additional_nodes: read(&p.additional)?.unwrap_or_default(),
            signature: state.signature.clone(),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: u64) -> (TreeState, BTreeMap<u64, TreeNode>) {
        let mut batch = Batch::new(&TreeState::default());
        for i in 0..n {
            batch.append(format!("block {i}").as_bytes());
        }
        let nodes = batch.nodes.iter().map(|n| (n.index, *n)).collect();
        (batch.state(None), nodes)
    }

    #[test]
    fn append_all_is_append_one_by_one() {
        let values: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![i as u8; (i as usize * 4099) % 70_000])
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let mut start = 0;
        // Several batches on top of each other, of uneven sizes (the big ones hash on two threads).
        let mut one = Batch::new(&TreeState::default());
        let mut all = Batch::new(&TreeState::default());
        for n in [0usize, 1, 2, 5, 64, 100, 128] {
            for v in &refs[start..start + n] {
                one.append(v);
            }
            all.append_all(&refs[start..start + n]);
            start += n;
            assert_eq!(one, all);
        }
    }

    #[test]
    fn append_matches_roots() {
        let (state, nodes) = build(5);
        assert_eq!(state.length, 5);
        let idx: Vec<u64> = state.roots.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![3, 8]);
        assert_eq!(TreeState::at(&nodes, 5, 0), Ok(state.clone()));
        assert_eq!(byte_offset(&state, &nodes, 2 * 3), Ok(3 * 7));
    }

    #[test]
    fn every_block_and_upgrade_proof_verifies() {
        for len in 1..20u64 {
            let (state, nodes) = build(len);
            for index in 0..len {
                for start in 0..len {
                    let req = ProofRequest {
                        block: Some(RequestBlock { index, nodes: 0 }),
                        upgrade: Some(RequestUpgrade {
                            start,
                            length: len - start,
                        }),
                        ..ProofRequest::default()
                    };
                    let mut data = proof(&state, &nodes, &req).expect("proof");
                    if let Some(b) = data.block.as_mut() {
                        b.value = format!("block {index}").into_bytes();
                    }
                    // The verifier starts from the tree at `start`.
                    let base = TreeState::at(&nodes, start, 0).expect("base");
                    let batch = verify(&base, &nodes, &data).expect("verify");
                    assert_eq!(batch.length, len);
                    assert_eq!(batch.hash(), state.hash());
                    if let Some(b) = data.block.as_mut() {
                        b.value.push(0);
                    }
                    // A changed block either breaks the chain to a trusted node or changes the tree hash
                    // (which the signature check then rejects).
                    if let Ok(b) = verify(&base, &nodes, &data) {
                        assert_ne!(b.hash(), state.hash());
                    }
                }
            }
        }
    }
}

//! The write path: a port of JS hyperbee's `Batch` (`_put`, `_del`, split, rebalance, `indexChanges`,
//! `toBlocks`) over an arena of in-memory tree nodes, so that the same operations produce the same blocks.
//!
//! Tree nodes are loaded from blocks on demand. Child pointers are shared records ([`ChildRec`]): a pending
//! block's index refers to the same records as the parent nodes, so when a later write of the batch moves a node
//! into a newer block, or frees it, the older pending block drops it when the batch is turned into blocks (as
//! `toBlocks` does in the JS).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::MutexGuard;

use super::messages::{Header, Level, Node, YoloIndex};
use super::{
    check_shape, Cas, Entry, Hyperbee, HyperbeeError, Result, MAX_CHILDREN, MAX_DEPTH, MIN_KEYS,
};

type NodeId = usize;
type ChildId = usize;

#[derive(Debug, Clone, Copy)]
struct ChildRec {
    seq: u64,
    offset: u64,
    node: Option<NodeId>,
}

#[derive(Debug, Default)]
struct TreeNode {
    keys: Vec<u64>,
    children: Vec<ChildId>,
    changed: bool,
}

#[derive(Debug)]
struct Pending {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    index: Vec<Option<ChildId>>,
}

/// A batch of writes (JS `bee.batch()`): each put/del updates the in-memory tree; [`flush`](Batch::flush)
/// appends one block per write. Dropping a batch without flushing discards it.
#[derive(Debug)]
pub struct Batch<'a> {
    bee: &'a Hyperbee,
    nodes: Vec<TreeNode>,
    childs: Vec<ChildRec>,
    pending: Vec<Pending>,
    root: Option<NodeId>,
    keys: HashMap<u64, Vec<u8>>,
    guard: Option<MutexGuard<'a, ()>>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(bee: &'a Hyperbee) -> Self {
        Self {
            bee,
            nodes: Vec::new(),
            childs: Vec::new(),
            pending: Vec::new(),
            root: None,
            keys: HashMap::new(),
            guard: None,
        }
    }

    /// Number of writes waiting for [`flush`](Self::flush).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no write is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn next_seq(&self) -> u64 {
        self.bee.core.length() + self.pending.len() as u64
    }

    fn new_node(&mut self, changed: bool) -> NodeId {
        self.nodes.push(TreeNode {
            changed,
            ..TreeNode::default()
        });
        self.nodes.len() - 1
    }

    fn new_child(&mut self, seq: u64, offset: u64, node: Option<NodeId>) -> ChildId {
        self.childs.push(ChildRec { seq, offset, node });
        self.childs.len() - 1
    }

    fn load_node(&mut self, seq: u64, offset: u64) -> Result<NodeId> {
        let block = self.bee.block(seq)?;
        let level: &Level = block.level(offset)?;
        check_shape(level, seq, offset)?;
        let keys = level.keys.clone();
        let children: Vec<ChildId> = level
            .children
            .iter()
            .map(|&(s, o)| self.new_child(s, o, None))
            .collect();
        self.nodes.push(TreeNode {
            keys,
            children,
            changed: false,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Takes the write lock (first write of the batch) and appends the header to an empty core.
    fn ensure_header(&mut self) -> Result<()> {
        if self.guard.is_none() {
            let guard = self
                .bee
                .write_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.guard = Some(guard);
            // Whatever was loaded before the lock may be stale.
            if self.pending.is_empty() {
                self.nodes.clear();
                self.childs.clear();
                self.keys.clear();
            }
        }
        if self.bee.core.length() == 0 {
            let header = Header::hyperbee(self.bee.metadata.clone()).encode();
            self.bee.core.append(&[&header])?;
        }
        Ok(())
    }

    fn get_root(&mut self) -> Result<Option<NodeId>> {
        if !self.pending.is_empty() {
            return Ok(self.root);
        }
        let version = self.bee.core.length();
        if version < 2 {
            return Ok(None);
        }
        self.load_node(version - 1, 0).map(Some)
    }

    /// The block `seq` of this batch, not yet appended (`None`: `seq` is in the core).
    fn pending_block(&self, seq: u64) -> Result<Option<&Pending>> {
        let Some(i) = seq.checked_sub(self.bee.core.length()) else {
            return Ok(None);
        };
        usize::try_from(i)
            .ok()
            .and_then(|i| self.pending.get(i))
            .map(Some)
            .ok_or_else(|| HyperbeeError::Corrupt(format!("no pending block {seq}")))
    }

    fn key_of(&mut self, seq: u64) -> Result<Vec<u8>> {
        if let Some(p) = self.pending_block(seq)? {
            return Ok(p.key.clone());
        }
        if let Some(k) = self.keys.get(&seq) {
            return Ok(k.clone());
        }
        let k = self.bee.block(seq)?.key.clone();
        self.keys.insert(seq, k.clone());
        Ok(k)
    }

    fn entry_of(&mut self, seq: u64) -> Result<Entry> {
        let plen = self.bee.prefix.len();
        if let Some(p) = self.pending_block(seq)? {
            return Ok(Entry {
                seq,
                key: p.key.get(plen..).unwrap_or_default().to_vec(),
                value: p.value.clone(),
            });
        }
        Ok(self.bee.block(seq)?.entry(plen))
    }

    /// `key` against the key of block `seq`, as [`key_of`](Self::key_of) finds it, without copying it (a
    /// put compares its key with a few keys of every node on its path).
    fn cmp_key(&mut self, key: &[u8], seq: u64) -> Result<Ordering> {
        if let Some(p) = self.pending_block(seq)? {
            return Ok(key.cmp(p.key.as_slice()));
        }
        if let Some(k) = self.keys.get(&seq) {
            return Ok(key.cmp(k.as_slice()));
        }
        let k = self.bee.block(seq)?.key.clone();
        let ord = key.cmp(k.as_slice());
        self.keys.insert(seq, k);
        Ok(ord)
    }

    fn child_node(&mut self, node: NodeId, i: usize) -> Result<NodeId> {
        let cid = *self.nodes[node]
            .children
            .get(i)
            .ok_or_else(|| HyperbeeError::Corrupt(format!("missing child {i}")))?;
        let rec = self.childs[cid];
        if let Some(n) = rec.node {
            return Ok(n);
        }
        let n = self.load_node(rec.seq, rec.offset)?;
        self.childs[cid].node = Some(n);
        Ok(n)
    }

    /// Binary search of `key` in `node`: `(Ok(index))` if found, else `Err(insertion index)` computed as JS does.
    fn search(&mut self, node: NodeId, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        let mut s = 0;
        let mut e = self.nodes[node].keys.len();
        let mut c = Ordering::Greater;
        while s < e {
            let mid = (s + e) >> 1;
            c = self.cmp_key(key, self.nodes[node].keys[mid])?;
            match c {
                Ordering::Equal => return Ok(Ok(mid)),
                Ordering::Less => e = mid,
                Ordering::Greater => s = mid + 1,
            }
        }
        Ok(Err(if c == Ordering::Less { e } else { s }))
    }

    fn cas_ok(&mut self, cas: &mut Option<Cas<'_>>, prev_seq: u64, new: &Entry) -> Result<bool> {
        match cas {
            None => Ok(true),
            Some(f) => {
                let prev = self.entry_of(prev_seq)?;
                Ok(f(&prev, new))
            }
        }
    }

    /// The entry under `key` as of this batch, pending writes included (JS `batch.get`). Searches the tree
    /// only, like [`Hyperbee::get_strict`] (without the JS shortcut [`Hyperbee::get`] copies).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Entry>> {
        let key = self.bee.full_key(key);
        let Some(mut node) = self.get_root()? else {
            return Ok(None);
        };
        for _ in 0..=MAX_DEPTH {
            match self.search(node, &key)? {
                Ok(mid) => {
                    let seq = self.nodes[node].keys[mid];
                    return self.entry_of(seq).map(Some);
                }
                Err(i) => {
                    if self.nodes[node].children.is_empty() {
                        return Ok(None);
                    }
                    node = self.child_node(node, i)?;
                }
            }
        }
        too_deep(MAX_DEPTH + 1).map(|()| None)
    }

    /// Puts `value` under `key`. Returns whether a write was added.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<bool> {
        self.put_cas(key, value, None)
    }

    /// [`put`](Self::put) with a compare-and-swap callback (see [`Hyperbee::put_cas`]).
    pub fn put_cas(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        mut cas: Option<Cas<'_>>,
    ) -> Result<bool> {
        let key = self.bee.full_key(key);
        self.ensure_header()?;
        let mut root = match self.get_root()? {
            Some(r) => r,
            None => self.new_node(true),
        };
        let seq = self.next_seq();
        let new_entry = Entry {
            seq,
            key: key
                .get(self.bee.prefix.len()..)
                .unwrap_or_default()
                .to_vec(),
            value: value.map(<[u8]>::to_vec),
        };
        let value = value.map(<[u8]>::to_vec);
        // The key must be resolvable while this write is not yet pending.
        let mut stack = Vec::new();
        let mut node = root;
        while !self.nodes[node].children.is_empty() {
            too_deep(stack.len())?;
            stack.push(node);
            self.nodes[node].changed = true;
            match self.search(node, &key)? {
                Ok(mid) => {
                    let prev = self.nodes[node].keys[mid];
                    if !self.cas_ok(&mut cas, prev, &new_entry)? {
                        return Ok(false);
                    }
                    if !self.bee.always_duplicate && self.entry_of(prev)?.value == new_entry.value {
                        return Ok(false);
                    }
                    self.nodes[node].keys[mid] = seq;
                    self.nodes[node].changed = true;
                    self.append(root, seq, key, value);
                    return Ok(true);
                }
                Err(i) => node = self.child_node(node, i)?,
            }
        }

        let mut needs_split = !self.insert_key(node, seq, &key, None, &mut cas, &new_entry)?;
        if !self.nodes[node].changed {
            return Ok(false);
        }
        while needs_split {
            let (median, right) = self.split(node);
            if let Some(parent) = stack.pop() {
                let median_key = self.key_or(median, seq, &key)?;
                needs_split = !self.insert_key(
                    parent,
                    median,
                    &median_key,
                    Some(right),
                    &mut None,
                    &new_entry,
                )?;
                node = parent;
            } else {
                let r = self.new_node(true);
                self.nodes[r].keys.push(median);
                let a = self.new_child(0, 0, Some(node));
                let b = self.new_child(0, 0, Some(right));
                self.nodes[r].children = vec![a, b];
                root = r;
                needs_split = false;
            }
        }
        self.append(root, seq, key, value);
        Ok(true)
    }

    /// Key bytes of `k`, where `k` may be the seq of the write in progress (not yet pending).
    fn key_or(&mut self, k: u64, seq: u64, key: &[u8]) -> Result<Vec<u8>> {
        if k == seq {
            Ok(key.to_vec())
        } else {
            self.key_of(k)
        }
    }

    /// JS `TreeNode.insertKey`: returns false when the node is now too big.
    fn insert_key(
        &mut self,
        node: NodeId,
        kseq: u64,
        key: &[u8],
        child: Option<NodeId>,
        cas: &mut Option<Cas<'_>>,
        new_entry: &Entry,
    ) -> Result<bool> {
        match self.search(node, key)? {
            Ok(mid) => {
                let prev = self.nodes[node].keys[mid];
                if !self.cas_ok(cas, prev, new_entry)? {
                    return Ok(true);
                }
                if !self.bee.always_duplicate && self.entry_of(prev)?.value == new_entry.value {
                    return Ok(true);
                }
                self.nodes[node].changed = true;
                self.nodes[node].keys[mid] = kseq;
                Ok(true)
            }
            Err(i) => {
                self.nodes[node].keys.insert(i, kseq);
                if let Some(c) = child {
                    let cid = self.new_child(0, 0, Some(c));
                    self.nodes[node].children.insert(i + 1, cid);
                }
                self.nodes[node].changed = true;
                Ok(self.nodes[node].keys.len() < MAX_CHILDREN)
            }
        }
    }

    /// JS `TreeNode.split`: `(median key seq, new right node)`.
    fn split(&mut self, node: NodeId) -> (u64, NodeId) {
        let n = &mut self.nodes[node];
        let len = n.keys.len() >> 1;
        let right_keys = n.keys.split_off(n.keys.len() - len);
        let median = n.keys.pop().unwrap_or_default();
        let right_children = if n.children.is_empty() {
            Vec::new()
        } else {
            n.children
                .split_off(n.children.len().saturating_sub(len + 1))
        };
        n.changed = true;
        let r = self.new_node(true);
        self.nodes[r].keys = right_keys;
        self.nodes[r].children = right_children;
        (median, r)
    }

    /// Deletes `key`. Returns whether a write was added (false when the key is absent).
    pub fn del(&mut self, key: &[u8]) -> Result<bool> {
        self.del_cas(key, None)
    }

    /// [`del`](Self::del) with a compare-and-swap callback (see [`Hyperbee::del_cas`]).
    pub fn del_cas(&mut self, key: &[u8], mut cas: Option<Cas<'_>>) -> Result<bool> {
        let key = self.bee.full_key(key);
        self.ensure_header()?;
        let Some(mut node) = self.get_root()? else {
            return Ok(false);
        };
        let seq = self.next_seq();
        let del_entry = Entry {
            seq,
            key: key
                .get(self.bee.prefix.len()..)
                .unwrap_or_default()
                .to_vec(),
            value: None,
        };
        let mut stack = Vec::new();
        loop {
            too_deep(stack.len())?;
            stack.push(node);
            match self.search(node, &key)? {
                Ok(mid) => {
                    let prev = self.nodes[node].keys[mid];
                    if !self.cas_ok(&mut cas, prev, &del_entry)? {
                        return Ok(false);
                    }
                    if self.nodes[node].children.is_empty() {
                        self.remove_key(node, mid);
                    } else {
                        self.set_key_to_nearest_leaf(node, mid, &mut stack)?;
                    }
                    for &n in &stack {
                        self.nodes[n].changed = true;
                    }
                    let root = self.rebalance(stack)?;
                    self.append(root, seq, key, None);
                    return Ok(true);
                }
                Err(i) => {
                    if self.nodes[node].children.is_empty() {
                        return Ok(false);
                    }
                    node = self.child_node(node, i)?;
                }
            }
        }
    }

    fn remove_key(&mut self, node: NodeId, index: usize) {
        let n = &mut self.nodes[node];
        if index < n.keys.len() {
            n.keys.remove(index);
        }
        if index + 1 < n.children.len() {
            let cid = n.children.remove(index + 1);
            self.childs[cid].seq = 0; // freed
        }
        self.nodes[node].changed = true;
    }

    fn leaf_size(&mut self, mut node: NodeId, go_left: bool) -> Result<usize> {
        let mut depth = 0;
        while !self.nodes[node].children.is_empty() {
            depth += 1;
            too_deep(depth)?;
            let i = if go_left {
                0
            } else {
                self.nodes[node].children.len() - 1
            };
            node = self.child_node(node, i)?;
        }
        Ok(self.nodes[node].keys.len())
    }

    fn set_key_to_nearest_leaf(
        &mut self,
        node: NodeId,
        index: usize,
        stack: &mut Vec<NodeId>,
    ) -> Result<()> {
        let mut left = self.child_node(node, index)?;
        let mut right = self.child_node(node, index + 1)?;
        let ls = self.leaf_size(left, false)?;
        let rs = self.leaf_size(right, true)?;
        let replacement = if ls < rs {
            stack.push(right);
            while !self.nodes[right].children.is_empty() {
                too_deep(stack.len())?;
                right = self.child_node(right, 0)?;
                stack.push(right);
            }
            if self.nodes[right].keys.is_empty() {
                return Err(HyperbeeError::Corrupt("empty leaf".into()));
            }
            self.nodes[right].keys.remove(0)
        } else {
            stack.push(left);
            while !self.nodes[left].children.is_empty() {
                too_deep(stack.len())?;
                let last = self.nodes[left].children.len() - 1;
                left = self.child_node(left, last)?;
                stack.push(left);
            }
            self.nodes[left]
                .keys
                .pop()
                .ok_or_else(|| HyperbeeError::Corrupt("empty leaf".into()))?
        };
        self.nodes[node].keys[index] = replacement;
        Ok(())
    }

    fn rebalance(&mut self, mut stack: Vec<NodeId>) -> Result<NodeId> {
        let root = stack[0];
        while stack.len() > 1 {
            let (Some(node), Some(&parent)) = (stack.pop(), stack.last()) else {
                break;
            };
            if self.nodes[node].keys.len() >= MIN_KEYS {
                return Ok(root);
            }
            // siblings
            let mut index = None;
            for i in 0..self.nodes[parent].children.len() {
                let cid = self.nodes[parent].children[i];
                if self.childs[cid].node == Some(node) {
                    index = Some(i);
                    break;
                }
            }
            let mut index = index.ok_or_else(|| HyperbeeError::Corrupt("bad parent".into()))?;
            let nchildren = self.nodes[parent].children.len();
            let left = if index > 0 {
                Some(self.child_node(parent, index - 1)?)
            } else {
                None
            };
            let right = if index + 1 < nchildren {
                Some(self.child_node(parent, index + 1)?)
            } else {
                None
            };

            if let Some(l) = left.filter(|&l| self.nodes[l].keys.len() > MIN_KEYS) {
                self.nodes[l].changed = true;
                let pk = self.nodes[parent].keys[index - 1];
                self.nodes[node].keys.insert(0, pk);
                if let Some(c) = self.nodes[l].children.pop() {
                    self.nodes[node].children.insert(0, c);
                }
                let lk = self.nodes[l].keys.pop().unwrap_or_default();
                self.nodes[parent].keys[index - 1] = lk;
                return Ok(root);
            }
            if let Some(r) = right.filter(|&r| self.nodes[r].keys.len() > MIN_KEYS) {
                self.nodes[r].changed = true;
                let pk = self.nodes[parent].keys[index];
                self.nodes[node].keys.push(pk);
                if !self.nodes[r].children.is_empty() {
                    let c = self.nodes[r].children.remove(0);
                    self.nodes[node].children.push(c);
                }
                let rk = self.nodes[r].keys.remove(0);
                self.nodes[parent].keys[index] = rk;
                return Ok(root);
            }
            let (l, r) = match left {
                Some(l) => {
                    index -= 1;
                    (l, node)
                }
                None => (
                    node,
                    right.ok_or_else(|| HyperbeeError::Corrupt("lone child".into()))?,
                ),
            };
            let median = *self.nodes[parent]
                .keys
                .get(index)
                .ok_or_else(|| HyperbeeError::Corrupt("parent key".into()))?;
            let rkeys = self.nodes[r].keys.clone();
            let rchildren = self.nodes[r].children.clone();
            let ln = &mut self.nodes[l];
            ln.changed = true;
            ln.keys.push(median);
            ln.keys.extend(rkeys);
            ln.children.extend(rchildren);
            self.remove_key(parent, index);
        }
        if self.nodes[root].keys.is_empty() && !self.nodes[root].children.is_empty() {
            return self.child_node(root, 0);
        }
        Ok(root)
    }

    /// JS `indexChanges`: the changed nodes in pre-order, each child record re-pointed into block `seq`.
    fn index_changes(&mut self, node: NodeId, index: &mut Vec<Option<ChildId>>, seq: u64) -> u64 {
        let offset = index.len() as u64;
        index.push(None);
        self.nodes[node].changed = false;
        let children = self.nodes[node].children.clone();
        for cid in children {
            let Some(n) = self.childs[cid].node else {
                continue;
            };
            if !self.nodes[n].changed {
                continue;
            }
            self.childs[cid].seq = seq;
            let off = self.index_changes(n, index, seq);
            self.childs[cid].offset = off;
            if let Some(slot) = index.get_mut(off as usize) {
                *slot = Some(cid);
            }
        }
        offset
    }

    fn append(&mut self, root: NodeId, seq: u64, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut index = Vec::new();
        self.index_changes(root, &mut index, seq);
        let rc = self.new_child(seq, 0, Some(root));
        index[0] = Some(rc);
        self.pending.push(Pending { key, value, index });
        self.root = Some(root);
    }

    fn deflate(&self, index: &[Option<ChildId>]) -> YoloIndex {
        let levels = index
            .iter()
            .map(|c| {
                let Some(node) = c.and_then(|c| self.childs[c].node) else {
                    return Level::default();
                };
                let n = &self.nodes[node];
                Level {
                    keys: n.keys.clone(),
                    children: n
                        .children
                        .iter()
                        .map(|&c| (self.childs[c].seq, self.childs[c].offset))
                        .collect(),
                }
            })
            .collect();
        YoloIndex { levels }
    }

    /// The blocks the pending writes become (JS `toBlocks`), without appending them.
    pub fn to_blocks(&mut self) -> Vec<Vec<u8>> {
        let base = self.bee.core.length();
        let len = self.pending.len();
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            let seq = base + i as u64;
            let mut index = std::mem::take(&mut self.pending[i].index);
            if i + 1 < len {
                if let Some(first) = index.first_mut() {
                    *first = None;
                }
                let mut j = 0;
                while j < index.len() {
                    if let Some(c) = index[j] {
                        if self.childs[c].seq == seq {
                            self.childs[c].offset = j as u64;
                            j += 1;
                            continue;
                        }
                    }
                    if j == index.len() - 1 {
                        index.pop();
                    } else {
                        index.swap_remove(j);
                    }
                }
            }
            let p = &self.pending[i];
            out.push(
                Node {
                    index: self.deflate(&index).encode(),
                    key: p.key.clone(),
                    value: p.value.clone(),
                }
                .encode(),
            );
            self.pending[i].index = index;
        }
        out
    }

    /// Appends the pending writes, one block each, in one append. Returns the number of blocks appended.
    pub fn flush(&mut self) -> Result<usize> {
        if self.pending.is_empty() {
            self.guard = None;
            return Ok(0);
        }
        let blocks = self.to_blocks();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        self.bee.core.append(&refs)?;
        self.pending.clear();
        self.nodes.clear();
        self.childs.clear();
        self.root = None;
        self.guard = None;
        Ok(blocks.len())
    }
}

fn too_deep(depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(HyperbeeError::Corrupt(format!(
            "tree deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

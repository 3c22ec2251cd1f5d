//! Compact in-memory indexes of a core: where each stored block is, and where (or what) each tree node is.
//!
//! A core of a million blocks has a million block locations and two million tree nodes. Kept in `BTreeMap`s they
//! took about 180 bytes per block (a node was 48 bytes plus the map's keys and node overhead), which made a
//! million-file drive need hundreds of megabytes just to be opened. Here both are [`PagedMap`]s: fixed pages of
//! 256 slots (values in an array, presence in a bitmap) found through a small map of pages, so a contiguous core
//! costs only its values; a sparse replica pays for the pages it touches.
//!
//! Tree nodes of a native core are not kept at all: only the log offset of each node's record entry (8 bytes a
//! node), read back with `pread` when a proof, a seek or a truncation needs it (a core's appends never read
//! nodes: the roots live in its [`TreeState`](super::tree::TreeState)). A hypercore 10 (JS) core keeps its nodes'
//! sizes and hashes (40 bytes a node) in memory, as before.

use std::collections::BTreeMap;

use crate::compact_encoding::{DecodeError, Reader, Writer};
use crate::crypto::TreeNode;

use super::storage::LogReader;
use super::tree::NodeSource;

const PAGE_BITS: u32 = 8;
const PAGE: usize = 1 << PAGE_BITS;
const WORDS: usize = PAGE / 64;

#[derive(Debug, Clone)]
struct Page<T> {
    present: [u64; WORDS],
    vals: Box<[T]>,
}

impl<T: Copy + Default> Page<T> {
    fn new() -> Self {
        Self {
            present: [0; WORDS],
            vals: vec![T::default(); PAGE].into_boxed_slice(),
        }
    }

    fn has(&self, slot: usize) -> bool {
        self.present[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn count(&self) -> u64 {
        self.present.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Clears the slots `from..to` (within the page); returns how many were present.
    fn clear(&mut self, from: usize, to: usize) -> u64 {
        let mut removed = 0;
        for slot in from..to.min(PAGE) {
            if self.has(slot) {
                self.present[slot / 64] &= !(1 << (slot % 64));
                removed += 1;
            }
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.present.iter().all(|w| *w == 0)
    }
}

/// A map from `u64` to small `Copy` values, stored in pages of 256 slots.
#[derive(Debug, Clone, Default)]
pub(crate) struct PagedMap<T> {
    pages: BTreeMap<u64, Page<T>>,
    len: u64,
}

fn split(index: u64) -> (u64, usize) {
    (index >> PAGE_BITS, (index & (PAGE as u64 - 1)) as usize)
}

impl<T: Copy + Default> PagedMap<T> {
    /// The value at `index`.
    pub(crate) fn get(&self, index: u64) -> Option<T> {
        let (p, s) = split(index);
        let page = self.pages.get(&p)?;
        page.has(s).then(|| page.vals[s])
    }

    /// True when `index` has a value.
    pub(crate) fn contains(&self, index: u64) -> bool {
        let (p, s) = split(index);
        self.pages.get(&p).is_some_and(|page| page.has(s))
    }

    /// Sets the value at `index`.
    pub(crate) fn insert(&mut self, index: u64, value: T) {
        let (p, s) = split(index);
        let page = self.pages.entry(p).or_insert_with(Page::new);
        if !page.has(s) {
            page.present[s / 64] |= 1 << (s % 64);
            self.len += 1;
        }
        page.vals[s] = value;
    }

    /// How many indexes have a value.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Removes every value at `start..end`.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (first, _) = split(start);
        let (last, _) = split(end - 1);
        let pages: Vec<u64> = self.pages.range(first..=last).map(|(p, _)| *p).collect();
        for p in pages {
            let Some(page) = self.pages.get_mut(&p) else {
                continue;
            };
            let base = p << PAGE_BITS;
            let from = start.saturating_sub(base).min(PAGE as u64) as usize;
            let to = (end - base).min(PAGE as u64) as usize;
            self.len -= page.clear(from, to);
            if page.is_empty() {
                self.pages.remove(&p);
            }
        }
    }

    /// Removes every value at `start` or after.
    pub(crate) fn remove_from(&mut self, start: u64) {
        let (first, slot) = split(start);
        let tail = self.pages.split_off(&(first + 1));
        self.len -= tail.values().map(Page::count).sum::<u64>();
        if let Some(page) = self.pages.get_mut(&first) {
            self.len -= page.clear(slot, PAGE);
            if page.is_empty() {
                self.pages.remove(&first);
            }
        }
    }

    /// Encodes the map: the page count, then each page's number, presence bitmap and its 256 values (absent
    /// ones as the default), each written by `value`.
    pub(crate) fn encode_with(&self, w: &mut Writer, mut value: impl FnMut(&mut Writer, &T)) {
        w.uint64(self.pages.len() as u64);
        for (p, page) in &self.pages {
            w.uint64(*p);
            for word in page.present {
                w.uint64(word);
            }
            for v in page.vals.iter() {
                value(w, v);
            }
        }
    }

    /// Decodes what [`encode_with`](Self::encode_with) wrote (untrusted bytes: errors, never panics);
    /// `value_len` is the least bytes `value` reads.
    pub(crate) fn decode_with(
        r: &mut Reader,
        value_len: usize,
        mut value: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let n = r.uint64()?;
        let page_bytes = (8 + 8 * WORDS + PAGE * value_len) as u64;
        if n.saturating_mul(page_bytes) > r.remaining() as u64 {
            return Err(DecodeError::Invalid("index page count"));
        }
        let mut map = Self::default();
        for _ in 0..n {
            let p = r.uint64()?;
            if p > u64::MAX >> PAGE_BITS {
                return Err(DecodeError::Invalid("index page number"));
            }
            let mut page = Page::new();
            for word in &mut page.present {
                *word = r.uint64()?;
            }
            for v in page.vals.iter_mut() {
                *v = value(r)?;
            }
            if page.is_empty() {
                continue;
            }
            map.len += page.count();
            if map.pages.insert(p, page).is_some() {
                return Err(DecodeError::Invalid("index page repeated"));
            }
        }
        Ok(map)
    }

    /// The (index, value) pairs within `from..to`, in order.
    pub(crate) fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, T)> + '_ {
        let (first, _) = split(from);
        let last = if to == 0 { None } else { Some(split(to - 1).0) };
        last.into_iter()
            .filter(move |last| from < to && first <= *last)
            .flat_map(move |last| self.pages.range(first..=last))
            .flat_map(move |(p, page)| {
                let base = *p << PAGE_BITS;
                (0..PAGE).filter_map(move |s| {
                    let i = base + s as u64;
                    (page.has(s) && i >= from && i < to).then(|| (i, page.vals[s]))
                })
            })
    }
}

/// Drops the tree nodes of `m` that span a block at or after `length`: every node from index `2 * length` on,
/// and below it the (at most one per depth) parents whose span crosses that leaf.
pub(crate) fn truncate_tree<T: Copy + Default>(m: &mut PagedMap<T>, length: u64) {
    let Some(head) = length.checked_mul(2) else {
        return;
    };
    m.remove_from(head);
    for depth in 1..63u32 {
        let offset = length >> depth;
        if offset >= (1u64 << (63 - depth)) {
            break;
        }
        let index = (offset << (depth + 1)) + (1u64 << depth) - 1;
        if index < head && crate::flat_tree::right_span(index) >= head {
            m.remove_range(index, index + 1);
        }
    }
}

/// A tree node without its index (the map's key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeValue {
    size: u64,
    hash: [u8; 32],
}

/// Where a core's tree nodes are: the log offset of each (a native core) or the nodes themselves (a hypercore
/// 10 core, whose `tree` file is not read back node by node).
#[derive(Debug, Clone)]
pub(crate) enum NodeIndex {
    /// Offset in the log of each node's entry in its record (`uint index, uint size, fixed32 hash`).
    InLog(PagedMap<u64>),
    /// The nodes.
    InMemory(PagedMap<NodeValue>),
}

/// Longest node entry in a record: two varints (at most 9 bytes each) and a 32-byte hash.
const MAX_NODE_ENTRY: usize = 9 + 9 + 32;

impl NodeIndex {
    /// True when node `index` is stored.
    pub(crate) fn contains(&self, index: u64) -> bool {
        match self {
            NodeIndex::InLog(m) => m.contains(index),
            NodeIndex::InMemory(m) => m.contains(index),
        }
    }

    /// Stores `node`, whose entry is at `offset` in the log (a native core; ignored for an in-memory index).
    pub(crate) fn insert(&mut self, node: &TreeNode, offset: Option<u64>) {
        match (self, offset) {
            (NodeIndex::InLog(m), Some(off)) => m.insert(node.index, off),
            (NodeIndex::InLog(_), None) => {}
            (NodeIndex::InMemory(m), _) => m.insert(
                node.index,
                NodeValue {
                    size: node.size,
                    hash: node.hash,
                },
            ),
        }
    }

    /// Drops every node that spans a block at or after `length`.
    pub(crate) fn truncate(&mut self, length: u64) {
        match self {
            NodeIndex::InLog(m) => truncate_tree(m, length),
            NodeIndex::InMemory(m) => truncate_tree(m, length),
        }
    }

    /// The nodes as a [`NodeSource`], reading a native core's from `log`.
    pub(crate) fn source<'a>(&'a self, log: &'a LogReader) -> Nodes<'a> {
        Nodes { index: self, log }
    }
}

/// A core's tree nodes, read where they are.
pub(crate) struct Nodes<'a> {
    index: &'a NodeIndex,
    log: &'a LogReader,
}

impl Nodes<'_> {
    /// Node `index`, if stored (and, in the log, readable and intact).
    pub(crate) fn get(&self, index: u64) -> Option<TreeNode> {
        match self.index {
            NodeIndex::InMemory(m) => m.get(index).map(|v| TreeNode {
                index,
                size: v.size,
                hash: v.hash,
            }),
            NodeIndex::InLog(m) => {
                let offset = m.get(index)?;
                let bytes = self.log.read_up_to(offset, MAX_NODE_ENTRY).ok()?;
                let mut r = Reader::new(&bytes);
                let node = TreeNode {
                    index: r.uint().ok()?,
                    size: r.uint().ok()?,
                    hash: r.fixed32().ok()?,
                };
                (node.index == index).then_some(node)
            }
        }
    }
}

impl NodeSource for Nodes<'_> {
    fn node(&self, index: u64) -> Option<TreeNode> {
        self.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    /// The paged map against a `BTreeMap` under random inserts, range removals, truncations and tree truncations.
    #[test]
    fn paged_map_matches_a_btreemap() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40 {
            let span = [300u64, 2_000, 70_000][round % 3];
            let mut m = PagedMap::<u64>::default();
            let mut model = Model::new();
            for _ in 0..400 {
                match rnd(10) {
                    0 => {
                        let (a, b) = (rnd(span), rnd(span));
                        let (a, b) = (a.min(b), a.max(b));
                        m.remove_range(a, b);
                        let keys: Vec<u64> = model.range(a..b).map(|(k, _)| *k).collect();
                        for k in keys {
                            model.remove(&k);
                        }
                    }
                    1 => {
                        let a = rnd(span);
                        m.remove_from(a);
                        model.split_off(&a);
                    }
                    2 => {
                        let length = rnd(span / 2 + 1);
                        truncate_tree(&mut m, length);
                        model.retain(|k, _| crate::flat_tree::right_span(*k) < 2 * length);
                    }
                    _ => {
                        let base = rnd(span);
                        for i in base..base + rnd(300) {
                            m.insert(i, i * 3 + round as u64);
                            model.insert(i, i * 3 + round as u64);
                        }
                    }
                }
                assert_eq!(m.len(), model.len() as u64);
                let (a, b) = (rnd(span + 300), rnd(span + 300));
                let (a, b) = (a.min(b), a.max(b));
                let got: Vec<(u64, u64)> = m.range(a, b).collect();
                let want: Vec<(u64, u64)> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
                assert_eq!(got, want);
                let k = rnd(span + 300);
                assert_eq!(m.get(k), model.get(&k).copied());
                assert_eq!(m.contains(k), model.contains_key(&k));
            }
        }
    }

    #[test]
    fn huge_indexes_cost_one_page() {
        let mut m = PagedMap::<u64>::default();
        m.insert(u64::MAX, 1);
        m.insert(u64::MAX - 1, 2);
        m.insert(0, 3);
        assert_eq!(m.pages.len(), 2);
        assert_eq!(
            m.range(u64::MAX - 1, u64::MAX).collect::<Vec<_>>(),
            vec![(u64::MAX - 1, 2)]
        );
        m.remove_from(u64::MAX);
        assert_eq!(m.len(), 2);
        m.remove_range(0, u64::MAX);
        assert_eq!(m.len(), 0);
        assert!(m.pages.is_empty());
    }
}

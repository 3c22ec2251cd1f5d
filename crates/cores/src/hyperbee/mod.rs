//! Hyperbee: an append-only B-tree on a [`Hypercore`], block for block compatible with JS hyperbee 2.27.3.
//!
//! Block 0 is a [`messages::Header`]; every later block is a [`messages::Node`] holding the key and value written
//! (or deleted) at that seq plus every tree node the write changed (a [`messages::YoloIndex`]). Level 0 of block
//! `n` is the root of the tree at version `n + 1`; nodes point at their keys by block seq and at their children by
//! `(seq, offset)` into older blocks. The tree has at most 9 keys per node (`T = 5`), splits at the median and
//! rebalances deletions by borrowing from a sibling or merging, exactly as the JS code does, so the same sequence
//! of operations yields the same blocks (and, for the same key pair, the same signed core).
//!
//! - [`Hyperbee`]: `get`, `put`, `del` (with compare-and-swap), [`Hyperbee::batch`], [`Hyperbee::range`]
//!   (`gt`/`gte`/`lt`/`lte`/`reverse`/`limit`), [`Hyperbee::history`], [`Hyperbee::checkout`] and
//!   [`Hyperbee::sub`] (a prefix plus separator, as JS `sub()`), [`Hyperbee::header`].
//! - [`Hyperbee::diff`]: the differences between two versions (JS `createDiffStream`).
//! - [`Batch::get`] reads through a batch's pending writes.
//! - [`Hyperbee::watch`] ([`Watcher`]): `(current, previous)` snapshots on each change within a key range, and
//!   [`Hyperbee::get_and_watch`] ([`EntryWatcher`]): one key kept up to date (JS `watch`, `getAndWatch`).
//! - Keys and values are bytes: JS's default encoding (`binary`, strings as UTF-8) and `utf-8`; JSON values are the
//!   caller's `serde_json::to_vec`, byte-identical to JS `json` for the same serialisation.
//!
//! - [`Hyperbee::get`] answers exactly as JS `get`, including a JS shortcut that can return a key deleted inside a
//!   batch; [`Hyperbee::get_strict`] searches the tree only (see the docs of `get`).
//! - Writers are serialised by a write lock that a [`Batch`] holds from its first write until flushed or dropped.
//!
//! Differences from the JS: no extension (remote `get` hints), no key/value codecs (bytes in, bytes
//! out), no range iteration inside a batch, a diff that walks both versions in full (same output), and checkouts
//! past the core's length are not live sessions. Checking out a version that ends in the middle of a batch fails
//! (it has no root), in JS too.

pub mod messages;
mod tree;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::hypercore::{Hypercore, HypercoreError};
use messages::{Header, Level, MessageError, Metadata, Node, YoloIndex};

pub use tree::Batch;
pub use watch::{EntryWatcher, Watcher};

/// Keys per node before a split: `MAX_CHILDREN` in the JS (`2 * (T - 1) + 1` with `T = 5`).
pub const MAX_CHILDREN: usize = 9;
/// Fewest keys a non-root node keeps after a deletion (`T - 1`).
pub const MIN_KEYS: usize = 4;
/// Deepest tree any reader or writer follows: a real tree of 2^64 entries is far shallower, so a deeper path is
/// a cycle of child pointers in corrupt or hostile blocks.
pub const MAX_DEPTH: usize = 48;
/// Default separator of sub-databases (`sub()`): one zero byte.
pub const SEP: &[u8] = &[0];

/// What went wrong in a hyperbee operation.
#[derive(Debug, thiserror::Error)]
pub enum HyperbeeError {
    /// The underlying core failed.
    #[error("hypercore: {0}")]
    Core(#[from] HypercoreError),
    /// A block that does not decode.
    #[error("block {seq}: {err}")]
    Decode {
        /// The block.
        seq: u64,
        /// Why.
        err: MessageError,
    },
    /// A block the tree needs is not stored locally.
    #[error("block {0} is not available")]
    BlockNotAvailable(u64),
    /// A pointer to a node a block does not have, or a tree that does not add up.
    #[error("corrupt tree: {0}")]
    Corrupt(String),
    /// A write on a read-only view (checkout or a core without a secret key).
    #[error("hyperbee is read-only")]
    ReadOnly,
}

/// Result of hyperbee operations.
pub type Result<T, E = HyperbeeError> = std::result::Result<T, E>;

/// One entry: the seq of the block that wrote it, its key (without the sub prefix) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Block seq (the version the entry was written at, minus one).
    pub seq: u64,
    /// Key.
    pub key: Vec<u8>,
    /// Value (`None` when put without a value).
    pub value: Option<Vec<u8>>,
}

/// Whether a history entry is a put or a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryType {
    /// `put`.
    Put,
    /// `del`.
    Del,
}

/// One entry of [`Hyperbee::history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Put or deletion.
    pub kind: HistoryType,
    /// The entry (value `None` for deletions).
    pub entry: Entry,
}

/// A decoded entry block.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) seq: u64,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
    /// The tree nodes, decoded when first needed (as JS inflates them): a block read for its key alone (most
    /// of a range's reads) never decodes them.
    index_raw: Vec<u8>,
    index: std::sync::OnceLock<std::result::Result<YoloIndex, MessageError>>,
}

impl Block {
    fn index(&self) -> Result<&YoloIndex> {
        self.index
            .get_or_init(|| YoloIndex::decode(&self.index_raw))
            .as_ref()
            .map_err(|err| HyperbeeError::Decode {
                seq: self.seq,
                err: err.clone(),
            })
    }

    fn level(&self, offset: u64) -> Result<&Level> {
        let index = self.index()?;
        usize::try_from(offset)
            .ok()
            .and_then(|o| index.levels.get(o))
            .ok_or_else(|| {
                HyperbeeError::Corrupt(format!("block {} has no node {offset}", self.seq))
            })
    }

    fn is_deletion(&self) -> Result<bool> {
        if self.value.is_some() {
            return Ok(false);
        }
        Ok(!self
            .index()?
            .levels
            .iter()
            .any(|l| l.keys.contains(&self.seq)))
    }

    fn entry(&self, prefix_len: usize) -> Entry {
        Entry {
            seq: self.seq,
            key: self.key.get(prefix_len..).unwrap_or_default().to_vec(),
            value: self.value.clone(),
        }
    }
}

/// A node with children needs exactly one more child than keys.
pub(crate) fn check_shape(level: &Level, seq: u64, offset: u64) -> Result<()> {
    if !level.children.is_empty() && level.children.len() != level.keys.len() + 1 {
        return Err(HyperbeeError::Corrupt(format!(
            "block {seq} node {offset}: {} keys and {} children",
            level.keys.len(),
            level.children.len()
        )));
    }
    Ok(())
}

const CACHE_MAX: usize = 65536;

#[derive(Debug, Default)]
struct BlockCache {
    fork: u64,
    blocks: HashMap<u64, Arc<Block>>,
}

/// A hyperbee over a hypercore: the whole bee, a [`checkout`](Hyperbee::checkout) of an older version, or a
/// [`sub`](Hyperbee::sub)-database. Cheap to clone; clones share the core and the block cache.
#[derive(Debug, Clone)]
pub struct Hyperbee {
    core: Hypercore,
    cache: Arc<Mutex<BlockCache>>,
    prefix: Vec<u8>,
    sep: Vec<u8>,
    checkout: u64,
    metadata: Option<Metadata>,
    /// JS `alwaysDuplicate` (default true): false skips puts of the value a key already has.
    always_duplicate: bool,
    /// Held by a batch from its first write until it is flushed or dropped (JS `bee.lock`).
    write_lock: Arc<Mutex<()>>,
}

/// Bounds of a [`Hyperbee::range`] query, as JS `createReadStream(range, opts)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Keys strictly greater than this.
    pub gt: Option<Vec<u8>>,
    /// Keys greater than or equal to this (ignored when `gt` is set).
    pub gte: Option<Vec<u8>>,
    /// Keys strictly less than this.
    pub lt: Option<Vec<u8>>,
    /// Keys less than or equal to this (ignored when `lt` is set).
    pub lte: Option<Vec<u8>>,
    /// Descending order.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<usize>,
}

/// Bounds of a [`Hyperbee::history`] query, as JS `createHistoryStream(opts)`: seqs, negative values count back
/// from the version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryOptions {
    /// First seq after this.
    pub gt: Option<i64>,
    /// First seq (default 1).
    pub gte: Option<i64>,
    /// Up to this seq, inclusive.
    pub lte: Option<i64>,
    /// Up to this seq, exclusive (default: the version).
    pub lt: Option<i64>,
    /// Newest first.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<usize>,
}

/// Result of a compare-and-swap callback: `cas(previous, new)`; returning false skips the write.
pub type Cas<'a> = &'a mut dyn FnMut(&Entry, &Entry) -> bool;

impl Hyperbee {
    /// A bee over `core`. Nothing is written until the first `put`/`del` (which appends the header when the core
    /// is empty), as in JS.
    pub fn new(core: Hypercore) -> Self {
        Self {
            core,
            cache: Arc::default(),
            prefix: Vec::new(),
            sep: SEP.to_vec(),
            checkout: 0,
            metadata: None,
            always_duplicate: true,
            write_lock: Arc::default(),
        }
    }

    /// Sets the header metadata written with the header block (JS `opts.metadata`).
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// JS `alwaysDuplicate` (true by default, as in JS): when false, a put of the value the key already has
    /// writes nothing. Like JS, [`sub`](Self::sub)-databases do not inherit it (they always duplicate).
    pub fn with_always_duplicate(mut self, always: bool) -> Self {
        self.always_duplicate = always;
        self
    }

    /// Sets the separator used by [`sub`](Self::sub) (JS `opts.sep`).
    pub fn with_sep(mut self, sep: &[u8]) -> Self {
        self.sep = sep.to_vec();
        self
    }

    /// The core.
    pub fn core(&self) -> &Hypercore {
        &self.core
    }

    /// The version: `max(1, checkout or core length)`.
    pub fn version(&self) -> u64 {
        let v = if self.checkout > 0 {
            self.checkout
        } else {
            self.core.length()
        };
        v.max(1)
    }

    /// A read-only view of the bee as of `version` (JS `checkout`; 0 means 1).
    pub fn checkout(&self, version: u64) -> Self {
        Self {
            checkout: version.max(1),
            ..self.clone()
        }
    }

    /// A read-only view of the current version (JS `snapshot`).
    pub fn snapshot(&self) -> Self {
        self.checkout(self.version())
    }

    /// A sub-database: keys are stored as `prefix ++ name ++ sep`-prefixed keys, as JS `sub(name)`.
    pub fn sub(&self, name: &[u8]) -> Self {
        self.sub_with_sep(name, &self.sep.clone())
    }

    /// [`sub`](Self::sub) with its own separator (JS `sub(name, { sep })`).
    pub fn sub_with_sep(&self, name: &[u8], sep: &[u8]) -> Self {
        let mut prefix = self.prefix.clone();
        prefix.extend_from_slice(name);
        prefix.extend_from_slice(sep);
        Self {
            prefix,
            // JS does not pass `alwaysDuplicate` on to subs: they use the default.
            always_duplicate: true,
            ..self.clone()
        }
    }

    /// The prefix of this (sub-)database; empty for the whole bee.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The header (block 0), or `None` if the core is empty.
    pub fn header(&self) -> Result<Option<Header>> {
        match self.core.get(0)? {
            None => Ok(None),
            Some(b) => Header::decode(&b)
                .map(Some)
                .map_err(|err| HyperbeeError::Decode { seq: 0, err }),
        }
    }

    /// Whether block 0 is a hyperbee header.
    pub fn is_hyperbee(core: &Hypercore) -> Result<bool> {
        match core.get(0)? {
            None => Err(HyperbeeError::BlockNotAvailable(0)),
            Some(b) => Ok(Header::decode(&b).is_ok_and(|h| h.protocol == "hyperbee")),
        }
    }

    pub(crate) fn block(&self, seq: u64) -> Result<Arc<Block>> {
        self.block_cached(seq, true)
    }

    /// Block `seq`, from the cache when there, else read and (when `keep`) cached. A range reads every
    /// entry's block once for its key and value: those are not kept, so the blocks of the tree's nodes stay.
    pub(crate) fn block_cached(&self, seq: u64, keep: bool) -> Result<Arc<Block>> {
        let fork = self.core.fork();
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.fork != fork {
                c.blocks.clear();
                c.fork = fork;
            }
            if let Some(b) = c.blocks.get(&seq) {
                return Ok(b.clone());
            }
        }
        let raw = self
            .core
            .get(seq)?
            .ok_or(HyperbeeError::BlockNotAvailable(seq))?;
        let node = Node::decode(&raw).map_err(|err| HyperbeeError::Decode { seq, err })?;
        let block = Arc::new(Block {
            seq,
            key: node.key,
            value: node.value,
            index_raw: node.index,
            index: std::sync::OnceLock::new(),
        });
        if !keep {
            return Ok(block);
        }
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.blocks.len() >= CACHE_MAX {
            c.blocks.clear();
        }
        if c.fork == fork {
            c.blocks.insert(seq, block.clone());
        }
        Ok(block)
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(key);
        k
    }

    /// The entry under `key` at this version, or `None`, answered exactly as JS `get` does.
    ///
    /// JS takes a shortcut: on the way down, a node stored in the block that wrote `key` answers with that block
    /// (or `None` if it was a deletion) without searching further. After some deletions inside batches, a node of
    /// an older block that wrote `key` stays on the search path although `key` was deleted since, and JS (and so
    /// this method) then returns the deleted entry, which `range` does not list. [`get_strict`](Self::get_strict)
    /// searches the tree only.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.lookup(key, true)
    }

    /// The entry under `key` at this version, by searching the tree only (agrees with [`range`](Self::range);
    /// differs from JS `get` in the case described at [`get`](Self::get)).
    pub fn get_strict(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.lookup(key, false)
    }

    fn lookup(&self, key: &[u8], js_shortcut: bool) -> Result<Option<Entry>> {
        let key = self.full_key(key);
        let version = self.version();
        if version < 2 {
            return Ok(None);
        }
        let mut block = self.block(version - 1)?;
        let mut offset = 0;
        for _ in 0..=MAX_DEPTH {
            if js_shortcut && block.key == key {
                return Ok(if block.is_deletion()? {
                    None
                } else {
                    Some(block.entry(self.prefix.len()))
                });
            }
            let level = block.level(offset)?;
            let mut s = 0;
            let mut e = level.keys.len();
            let mut c = std::cmp::Ordering::Greater;
            while s < e {
                let mid = (s + e) >> 1;
                let kb = self.block(level.keys[mid])?;
                c = key.as_slice().cmp(&kb.key);
                match c {
                    std::cmp::Ordering::Equal => return Ok(Some(kb.entry(self.prefix.len()))),
                    std::cmp::Ordering::Less => e = mid,
                    std::cmp::Ordering::Greater => s = mid + 1,
                }
            }
            if level.children.is_empty() {
                return Ok(None);
            }
            let i = if c == std::cmp::Ordering::Less { e } else { s };
            let &(seq, off) = level.children.get(i).ok_or_else(|| {
                HyperbeeError::Corrupt(format!(
                    "block {} node {offset}: missing child {i}",
                    block.seq
                ))
            })?;
            block = self.block(seq)?;
            offset = off;
        }
        Err(HyperbeeError::Corrupt(format!(
            "tree deeper than {MAX_DEPTH} levels"
        )))
    }

    /// The entry written at `seq` (JS `getBySeq`).
    pub fn get_by_seq(&self, seq: u64) -> Result<Entry> {
        Ok(self.block(seq)?.entry(self.prefix.len()))
    }

    fn writable(&self) -> Result<()> {
        if self.checkout > 0 || !self.core.appendable() {
            return Err(HyperbeeError::ReadOnly);
        }
        Ok(())
    }

    /// Puts `value` under `key`. Returns whether a block was appended.
    pub fn put(&self, key: &[u8], value: Option<&[u8]>) -> Result<bool> {
        self.put_cas(key, value, None)
    }

    /// [`put`](Self::put) with a compare-and-swap callback, called with the current entry (if the key exists) and
    /// the new one; the put happens only if it returns true.
    pub fn put_cas(&self, key: &[u8], value: Option<&[u8]>, cas: Option<Cas<'_>>) -> Result<bool> {
        let mut b = self.batch()?;
        let wrote = b.put_cas(key, value, cas)?;
        b.flush()?;
        Ok(wrote)
    }

    /// Deletes `key`. Returns whether a block was appended (false if the key did not exist).
    pub fn del(&self, key: &[u8]) -> Result<bool> {
        self.del_cas(key, None)
    }

    /// [`del`](Self::del) with a compare-and-swap callback (called with the current entry and the deletion).
    pub fn del_cas(&self, key: &[u8], cas: Option<Cas<'_>>) -> Result<bool> {
        let mut b = self.batch()?;
        let wrote = b.del_cas(key, cas)?;
        b.flush()?;
        Ok(wrote)
    }

    /// A batch: its puts and deletions are appended together by [`Batch::flush`], in the same blocks JS
    /// `bee.batch()` writes.
    ///
    /// From its first write until it is flushed or dropped, a batch holds the bee's write lock (shared by its
    /// clones, subs and checkouts): other writers wait, as in JS. A thread must not write to the bee through
    /// another batch, or `put`/`del`, while its own batch holds writes: that would wait forever.
    pub fn batch(&self) -> Result<Batch<'_>> {
        self.writable()?;
        Ok(Batch::new(self))
    }

    /// Entries in key order within `opts` (JS `createReadStream`). Keys are returned without the sub prefix.
    pub fn range(&self, opts: &RangeOptions) -> Result<RangeIter<'_>> {
        RangeIter::open(self, opts)
    }

    /// Collects [`range`](Self::range).
    pub fn range_vec(&self, opts: &RangeOptions) -> Result<Vec<Entry>> {
        self.range(opts)?.collect()
    }

    /// Blocks in seq order (JS `createHistoryStream`), as puts and deletions, with their full keys.
    pub fn history(&self, opts: &HistoryOptions) -> Result<Vec<HistoryEntry>> {
        let version = i64::try_from(self.version()).unwrap_or(i64::MAX);
        let rel = |v: i64| if v < 0 { v + version } else { v };
        let mut gte = if let Some(gt) = opts.gt.filter(|&g| g != 0) {
            rel(gt) + 1
        } else {
            rel(opts.gte.filter(|&g| g != 0).unwrap_or(1))
        };
        let mut lt = if opts.lte == Some(0) || opts.lt == Some(0) {
            0
        } else if let Some(lte) = opts.lte {
            rel(lte) + 1
        } else {
            rel(opts.lt.unwrap_or(version))
        };
        let mut out = Vec::new();
        let mut limit = opts.limit;
        loop {
            if limit == Some(0) {
                break;
            }
            if let Some(l) = limit.as_mut() {
                *l -= 1;
            }
            if gte >= lt {
                break;
            }
            let seq = if opts.reverse {
                if lt <= 1 {
                    break;
                }
                lt -= 1;
                lt
            } else {
                gte += 1;
                gte - 1
            };
            let seq = u64::try_from(seq)
                .map_err(|_| HyperbeeError::Corrupt(format!("negative history seq {seq}")))?;
            let b = self.block(seq)?;
            let kind = if b.is_deletion()? {
                HistoryType::Del
            } else {
                HistoryType::Put
            };
            out.push(HistoryEntry {
                kind,
                entry: b.entry(0),
            });
        }
        Ok(out)
    }

    /// What changed between this version (left) and `other` (right), in key order (JS `createDiffStream(other,
    /// range)`): keys present on one side only, or present on both with different seqs. `opts.reverse` is
    /// ignored; `opts.limit` bounds the number of differences.
    ///
    /// The JS skips subtrees both versions share; this walks both ranges in full, with the same result.
    pub fn diff(&self, other: u64, opts: &RangeOptions) -> Result<Vec<DiffEntry>> {
        let right = self.checkout(other);
        let range = RangeOptions {
            reverse: false,
            limit: None,
            ..opts.clone()
        };
        let mut a = self.range(&range)?;
        let mut b = right.range(&range)?;
        let mut l = a.next().transpose()?;
        let mut r = b.next().transpose()?;
        let mut out = Vec::new();
        while opts.limit.is_none_or(|max| out.len() < max) {
            let order = match (&l, &r) {
                (None, None) => break,
                (Some(x), Some(y)) => x.key.cmp(&y.key),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Equal => {
                    if l.as_ref().map(|e| e.seq) != r.as_ref().map(|e| e.seq) {
                        out.push(DiffEntry {
                            left: l.take(),
                            right: r.take(),
                        });
                    }
                    l = a.next().transpose()?;
                    r = b.next().transpose()?;
                }
                std::cmp::Ordering::Less => {
                    out.push(DiffEntry {
                        left: l.take(),
                        right: None,
                    });
                    l = a.next().transpose()?;
                }
                std::cmp::Ordering::Greater => {
                    out.push(DiffEntry {
                        left: None,
                        right: r.take(),
                    });
                    r = b.next().transpose()?;
                }
            }
        }
        Ok(out)
    }

    /// Range bounds with the sub prefix applied, as JS `encRange` with a prefix encoding.
    fn encode_range(&self, opts: &RangeOptions) -> Bounds {
        let p = |k: &Vec<u8>| self.full_key(k);
        let mut b = Bounds {
            gt: opts.gt.as_ref().map(p),
            gte: opts.gte.as_ref().map(p),
            lt: opts.lt.as_ref().map(p),
            lte: opts.lte.as_ref().map(p),
        };
        if !self.prefix.is_empty() {
            // JS checks truthiness of the encoded bounds: a prefixed key is never empty.
            if b.gt.is_none() && b.gte.is_none() {
                b.gt = Some(self.full_key(SEP));
            }
            if b.lt.is_none() && b.lte.is_none() {
                let mut end = self.prefix.clone();
                if let Some(last) = end.last_mut() {
                    // JS bumps the byte in a Uint8Array: 0xff wraps to 0.
                    *last = last.wrapping_add(1);
                }
                b.lt = Some(end);
            }
        }
        b
    }
}

/// One difference of [`Hyperbee::diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// The entry in this version, if any.
    pub left: Option<Entry>,
    /// The entry in the other version, if any.
    pub right: Option<Entry>,
}

struct Bounds {
    gt: Option<Vec<u8>>,
    gte: Option<Vec<u8>>,
    lt: Option<Vec<u8>>,
    lte: Option<Vec<u8>>,
}

struct Frame {
    block: Arc<Block>,
    offset: u64,
    i: i64,
}

impl Frame {
    fn level(&self) -> Result<&Level> {
        self.block.level(self.offset)
    }
}

impl std::fmt::Debug for RangeIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeIter")
            .field("depth", &self.stack.len())
            .field("reverse", &self.reverse)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Iterator of [`Hyperbee::range`]: a port of JS hyperbee's `RangeIterator` (a stack of nodes and positions,
/// even positions are children, odd ones keys).
pub struct RangeIter<'a> {
    bee: &'a Hyperbee,
    stack: Vec<Frame>,
    limit: i64,
    g_incl: bool,
    g_key: Option<Vec<u8>>,
    l_incl: bool,
    l_key: Option<Vec<u8>>,
    reverse: bool,
    failed: bool,
}

impl<'a> RangeIter<'a> {
    fn open(bee: &'a Hyperbee, opts: &RangeOptions) -> Result<Self> {
        let b = bee.encode_range(opts);
        // JS tests the bounds for truthiness: any buffer, even an empty one, counts.
        let truthy = |k: &Option<Vec<u8>>| k.is_some();
        let mut it = Self {
            bee,
            stack: Vec::new(),
            limit: opts
                .limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            g_incl: !truthy(&b.gt),
            g_key: if truthy(&b.gt) {
                b.gt.clone()
            } else {
                b.gte.clone()
            },
            l_incl: !truthy(&b.lt),
            l_key: if truthy(&b.lt) {
                b.lt.clone()
            } else {
                b.lte.clone()
            },
            reverse: opts.reverse,
            failed: false,
        };
        let version = bee.version();
        if version < 2 {
            return Ok(it);
        }
        let mut block = bee.block(version - 1)?;
        let mut offset = 0u64;
        let incl = if it.reverse { it.l_incl } else { it.g_incl };
        let start = if it.reverse {
            it.l_key.clone()
        } else {
            it.g_key.clone()
        };
        let Some(start) = start else {
            let n = block.level(0)?.keys.len() as i64;
            it.stack.push(Frame {
                block,
                offset: 0,
                i: if it.reverse { n << 1 } else { 0 },
            });
            return Ok(it);
        };
        loop {
            if it.stack.len() > MAX_DEPTH {
                return Err(HyperbeeError::Corrupt(format!(
                    "tree deeper than {MAX_DEPTH} levels"
                )));
            }
            let level = block.level(offset)?;
            let n = level.keys.len();
            let mut s = 0usize;
            let mut e = n;
            let mut c = std::cmp::Ordering::Greater;
            while s < e {
                let mid = (s + e) >> 1;
                c = start.as_slice().cmp(&bee.block(level.keys[mid])?.key);
                match c {
                    std::cmp::Ordering::Equal => {
                        let i = if incl {
                            mid as i64 * 2 + 1
                        } else {
                            mid as i64 * 2 + if it.reverse { 0 } else { 2 }
                        };
                        it.stack.push(Frame { block, offset, i });
                        return Ok(it);
                    }
                    std::cmp::Ordering::Less => e = mid,
                    std::cmp::Ordering::Greater => s = mid + 1,
                }
            }
            let ci = if c == std::cmp::Ordering::Less { e } else { s };
            let i = 2 * ci as i64 + if it.reverse { -1 } else { 1 };
            let child = level.children.get(ci).copied();
            let leaf = level.children.is_empty();
            if i >= 0 && i <= (n as i64) << 1 {
                it.stack.push(Frame {
                    block: block.clone(),
                    offset,
                    i,
                });
            }
            if leaf {
                return Ok(it);
            }
            let (seq, off) = child.ok_or_else(|| {
                HyperbeeError::Corrupt(format!(
                    "block {} node {offset}: missing child {ci}",
                    block.seq
                ))
            })?;
            block = bee.block(seq)?;
            offset = off;
        }
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        let end = if self.reverse {
            self.g_key.clone()
        } else {
            self.l_key.clone()
        };
        let incl = if self.reverse {
            self.g_incl
        } else {
            self.l_incl
        };
        while self.limit != 0 {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            let is_key = top.i & 1 == 1;
            let n = if self.reverse {
                if top.i < 0 {
                    top.block.level(top.offset)?.keys.len() as i64
                } else {
                    let n = top.i >> 1;
                    top.i -= 1;
                    n
                }
            } else {
                let n = top.i >> 1;
                top.i += 1;
                n
            };
            let level = top.level()?;
            if !is_key {
                if level.children.is_empty() {
                    continue;
                }
                let Some(&(seq, off)) = usize::try_from(n).ok().and_then(|n| level.children.get(n))
                else {
                    return Err(HyperbeeError::Corrupt(format!(
                        "block {} node {}: missing child {n}",
                        top.block.seq, top.offset
                    )));
                };
                if self.stack.len() > MAX_DEPTH {
                    return Err(HyperbeeError::Corrupt(format!(
                        "tree deeper than {MAX_DEPTH} levels"
                    )));
                }
                let block = self.bee.block(seq)?;
                let len = block.level(off)?.keys.len() as i64;
                self.stack.push(Frame {
                    block,
                    offset: off,
                    i: if self.reverse { len << 1 } else { 0 },
                });
                continue;
            }
            let Some(&kseq) = usize::try_from(n).ok().and_then(|n| level.keys.get(n)) else {
                self.stack.pop();
                continue;
            };
            let block = self.bee.block_cached(kseq, false)?;
            if let Some(end) = &end {
                let c = block.key.as_slice().cmp(end);
                let stop = if c == std::cmp::Ordering::Equal {
                    !incl
                } else if self.reverse {
                    c == std::cmp::Ordering::Less
                } else {
                    c == std::cmp::Ordering::Greater
                };
                if stop {
                    self.limit = 0;
                    break;
                }
            }
            if self.limit > 0 {
                self.limit -= 1;
            }
            return Ok(Some(block.entry(self.bee.prefix.len())));
        }
        Ok(None)
    }
}

impl Iterator for RangeIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

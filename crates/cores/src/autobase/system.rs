//! The system view (JS autobase 7.28.1 `lib/system.js`): the `_system` hyperbee (binary keys) holding the
//! base's [`Info`] under `[0, 0] "info"` and one [`Member`] per writer under `[1, 0] <key>`.
//!
//! A [`SystemView`] keeps the last flushed `info` decoded, plus what the apply changed since: members added,
//! removed or acked (`changes`, in order), and the writers' lengths as DAG heads were added (`clock_updates`, in
//! first-seen order, as JS's `Map`). [`SystemView::flush`] writes the changed members, then the clock updates'
//! members, then `info`, in one hyperbee batch, as JS does, so the same apply writes the same blocks.
//!
//! Values read from the bee are untrusted (a peer's system core): a value that does not decode is an error,
//! never a panic.

use crate::compact_encoding::{Decode, DecodeError, Encode};
use crate::hyperbee::{HistoryOptions, Hyperbee, HyperbeeError};

use super::keys::generate_entropy;
use super::linearizer::Head;
use super::messages::{
    Checkout, Info, Member, SystemKey, UnsupportedVersion, DEFAULT_AUTOBASE_VERSION, INFO_KEY,
};

/// What went wrong reading or writing the system view.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The bee failed.
    #[error("system bee: {0}")]
    Bee(#[from] HyperbeeError),
    /// A value that does not decode.
    #[error("system value: {0}")]
    Decode(#[from] DecodeError),
    /// A system length that does not end with an `info` block.
    #[error("system length {0} is not a flush point")]
    NotAFlushPoint(u64),
    /// An info version this implementation cannot write.
    #[error("{0}")]
    Unsupported(#[from] UnsupportedVersion),
}

/// Result of system view operations.
pub type Result<T, E = SystemError> = std::result::Result<T, E>;

/// A user view as the system's flush sees it (JS's view objects: `key`, the core's length, `mappedIndex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSlot {
    /// The view core's key.
    pub key: [u8; 32],
    /// Its length.
    pub length: u64,
    /// Its index in `info.views`, once it has one.
    pub mapped_index: Option<usize>,
}

/// One flush point of the system core (JS `SystemView.flushes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flush {
    /// The system length after the flush.
    pub length: u64,
    /// The info it wrote.
    pub info: Info,
}

/// The system view over a hyperbee (JS `SystemView`).
#[derive(Debug, Clone)]
pub struct SystemView {
    db: Hyperbee,
    empty: bool,
    /// System version (1 by default; 2 adds entropy).
    pub version: u64,
    /// Members (writers added and not removed).
    pub members: u64,
    /// Indexers added that have not written since.
    pub pending_indexers: Vec<[u8; 32]>,
    /// The indexers with their applied lengths.
    pub indexers: Vec<Checkout>,
    /// The DAG heads.
    pub heads: Vec<Checkout>,
    /// The user views.
    pub views: Vec<Checkout>,
    /// The encryption core's length.
    pub encryption_length: u64,
    /// Entropy (version 2).
    pub entropy: Option<[u8; 32]>,
    /// Whether the indexer set changed since the last flush.
    pub indexer_update: bool,
    fork: u64,
    length: u64,
    changes: Vec<([u8; 32], Member)>,
    clock_updates: Vec<([u8; 32], u64)>,
}

fn member_key(key: &[u8; 32]) -> Vec<u8> {
    SystemKey::Member(*key).to_bytes()
}

impl SystemView {
    /// Opens the system view over `db` (the whole bee, keys binary), reading the last flushed `info`.
    pub fn open(db: Hyperbee) -> Result<Self> {
        Self::open_inner(db, false)
    }

    fn open_inner(db: Hyperbee, empty: bool) -> Result<Self> {
        let mut sys = Self {
            db,
            empty,
            version: DEFAULT_AUTOBASE_VERSION,
            members: 0,
            pending_indexers: Vec::new(),
            indexers: Vec::new(),
            heads: Vec::new(),
            views: Vec::new(),
            encryption_length: 0,
            entropy: None,
            indexer_update: false,
            fork: 0,
            length: 0,
            changes: Vec::new(),
            clock_updates: Vec::new(),
        };
        let info = sys.read_info()?;
        sys.reset(info);
        Ok(sys)
    }

    fn read_info(&self) -> Result<Option<Info>> {
        if self.empty {
            return Ok(None);
        }
        match self.db.get(INFO_KEY)? {
            Some(e) => Ok(Some(Info::decode(e.value.as_deref().unwrap_or_default())?)),
            None => Ok(None),
        }
    }

    /// The bee.
    pub fn db(&self) -> &Hyperbee {
        &self.db
    }

    /// The system core's length.
    pub fn core_length(&self) -> u64 {
        self.db.core().length()
    }

    /// No writer was added yet (JS `bootstrapping`).
    pub fn bootstrapping(&self) -> bool {
        self.members == 0
    }

    /// The state as of system length `length` (a flush point), read-only (JS `checkout`).
    pub fn checkout(&self, length: u64) -> Result<Self> {
        Self::open_inner(self.db.checkout(length), length == 0)
    }

    /// The info as flushed at system length `length` (JS `getIndexedInfo`); a length whose last block is not
    /// `info` is an error.
    pub fn indexed_info(&self, length: u64) -> Result<Info> {
        if length == self.core_length() {
            return Ok(self.info());
        }
        if length == 0 {
            return Ok(Info {
                version: DEFAULT_AUTOBASE_VERSION,
                ..Info::default()
            });
        }
        let e = self.db.get_by_seq(length - 1)?;
        if e.key != INFO_KEY {
            return Err(SystemError::NotAFlushPoint(length));
        }
        Ok(Info::decode(e.value.as_deref().unwrap_or_default())?)
    }

    /// The current state as an [`Info`] record.
    pub fn info(&self) -> Info {
        Info {
            version: self.version,
            members: self.members,
            pending_indexers: self.pending_indexers.clone(),
            indexers: self.indexers.clone(),
            heads: self.heads.clone(),
            views: self.views.clone(),
            encryption_length: self.encryption_length,
            entropy: self.entropy,
        }
    }

    /// Every flush point below `lt`, newest first (JS `SystemView.flushes`, reverse).
    pub fn flushes(&self, lt: u64) -> Result<Vec<Flush>> {
        let mut out = Vec::new();
        if lt <= 1 {
            return Ok(out);
        }
        let hist = self.db.history(&HistoryOptions {
            lt: Some(i64::try_from(lt).unwrap_or(i64::MAX)),
            reverse: true,
            ..HistoryOptions::default()
        })?;
        for h in hist {
            if h.entry.key != INFO_KEY {
                continue;
            }
            let info = Info::decode(h.entry.value.as_deref().unwrap_or_default())?;
            out.push(Flush {
                length: h.entry.seq + 1,
                info,
            });
        }
        Ok(out)
    }

    /// Rereads the flushed state if the core changed (truncated, or written elsewhere); returns whether it did
    /// (JS `update`).
    pub fn update(&mut self) -> Result<bool> {
        let core = self.db.core();
        if self.fork == core.fork() && self.length == core.length() {
            return Ok(false);
        }
        let info = self.read_info()?;
        self.reset(info);
        Ok(true)
    }

    fn reset(&mut self, info: Option<Info>) {
        let info = info.unwrap_or(Info {
            version: DEFAULT_AUTOBASE_VERSION,
            ..Info::default()
        });
        self.version = info.version;
        self.members = info.members;
        self.pending_indexers = info.pending_indexers;
        self.indexers = info.indexers;
        self.heads = info.heads;
        self.views = info.views;
        self.encryption_length = info.encryption_length;
        self.entropy = info.entropy;
        self.indexer_update = false;
        self.clock_updates.clear();
        self.length = self.db.core().length();
        self.fork = self.db.core().fork();
        self.changes.clear();
    }

    fn indexer_pos(&self, key: &[u8; 32]) -> Option<usize> {
        self.indexers.iter().position(|i| i.key == *key)
    }

    fn seen_length(&self, key: &[u8; 32]) -> u64 {
        self.clock_updates
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |&(_, l)| l)
    }

    fn set_clock(&mut self, key: [u8; 32], length: u64) {
        match self.clock_updates.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = length,
            None => self.clock_updates.push((key, length)),
        }
    }

    fn stored(&self, key: &[u8; 32]) -> Result<Option<Member>> {
        if self.empty {
            return Ok(None);
        }
        match self.db.get(&member_key(key))? {
            Some(e) => Ok(Some(Member::from_bytes(
                e.value.as_deref().unwrap_or_default(),
            )?)),
            None => Ok(None),
        }
    }

    /// A member as the apply sees it: its latest unflushed change, else the flushed record (JS `_get`).
    pub fn get_member(&self, key: &[u8; 32]) -> Result<Option<Member>> {
        if let Some((_, m)) = self.changes.iter().rev().find(|(k, _)| k == key) {
            return Ok(Some(*m));
        }
        self.stored(key)
    }

    /// A member with its length as applied so far, flushed or not (JS `get(key, { unflushed: true })`).
    pub fn get_unflushed(&self, key: &[u8; 32]) -> Result<Option<Member>> {
        let mut m = self.get_member(key)?;
        if let Some(m) = m.as_mut() {
            if let Some(&(_, l)) = self.clock_updates.iter().find(|(k, _)| k == key) {
                m.length = l;
            }
        }
        Ok(m)
    }

    /// Every flushed member, in key order (JS `list`).
    pub fn list(&self) -> Result<Vec<([u8; 32], Member)>> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut lt = super::messages::MEMBERS_PREFIX.to_vec();
        if let Some(last) = lt.last_mut() {
            *last += 1;
        }
        let entries = self.db.range_vec(&crate::hyperbee::RangeOptions {
            gte: Some(super::messages::MEMBERS_PREFIX.to_vec()),
            lt: Some(lt),
            ..Default::default()
        })?;
        let mut out = Vec::new();
        for e in entries {
            let Some(SystemKey::Member(k)) = SystemKey::decode(&e.key) else {
                continue;
            };
            out.push((
                k,
                Member::from_bytes(e.value.as_deref().unwrap_or_default())?,
            ));
        }
        Ok(out)
    }

    /// Adds `node` (its writer `key`, its `length` and the heads it was written with) as a DAG head, dropping
    /// the heads it links to; records the writer's new length; a pending indexer that writes becomes an indexer.
    /// Returns whether the indexers changed (JS `addHead`).
    pub fn add_head(&mut self, key: [u8; 32], length: u64, actual_heads: &[Head]) -> bool {
        let mut i = 0;
        while i < self.heads.len() {
            let head = self.heads[i];
            let linked = actual_heads
                .iter()
                .any(|h| h.key == head.key && h.length == head.length);
            if !linked {
                if key != head.key {
                    i += 1;
                    continue;
                }
                // JS filters out a newer head of the same writer (a bug's leftovers) and adds nothing
                if head.length > length {
                    return false;
                }
            }
            self.heads.swap_remove(i);
        }
        self.heads.push(Checkout { key, length });
        self.set_clock(key, length);
        if let Some(i) = self.pending_indexers.iter().position(|k| *k == key) {
            self.update_indexer(key, Some(length), true, i);
            return true;
        }
        if let Some(p) = self.indexer_pos(&key) {
            self.indexers[p].length = length;
        }
        false
    }

    fn update_indexer(
        &mut self,
        key: [u8; 32],
        length: Option<u64>,
        is_indexer: bool,
        from: usize,
    ) {
        if !is_indexer {
            if let Some(p) = self.indexer_pos(&key) {
                self.indexer_update = true;
                self.indexers.remove(p);
            }
            return;
        }
        let mut i = from;
        while i < self.pending_indexers.len() && self.pending_indexers[i] != key {
            i += 1;
        }
        let length = length.unwrap_or(0);
        if length == 0 {
            if i >= self.pending_indexers.len() {
                self.pending_indexers.push(key);
            }
            return;
        }
        if i < self.pending_indexers.len() {
            self.pending_indexers.swap_remove(i);
        }
        match self.indexer_pos(&key) {
            None => {
                self.indexers.push(Checkout { key, length });
                // the bootstrap writer joins silently, so the first views have no prologue
                if !self.bootstrapping() {
                    self.indexer_update = true;
                }
            }
            Some(p) => self.indexers[p].length = length,
        }
    }

    /// Records that the apply acked `key` at its applied length (JS `ack`).
    pub fn ack(&mut self, key: [u8; 32]) -> Result<()> {
        let value = self.get_member(&key)?;
        let length = self.seen_length(&key);
        if value.is_some_and(|v| v.length == length) {
            return Ok(());
        }
        let m = Member {
            is_indexer: value.is_some_and(|v| v.is_indexer),
            is_removed: value.is_none_or(|v| v.is_removed),
            length,
        };
        self.changes.push((key, m));
        Ok(())
    }

    /// Adds a writer, or makes a removed one a member again, as an indexer or not (JS `add`).
    pub fn add(&mut self, key: [u8; 32], is_indexer: bool) -> Result<()> {
        let length = self.seen_length(&key);
        self.add_with_length(key, is_indexer, length)
    }

    fn add_with_length(&mut self, key: [u8; 32], is_indexer: bool, mut length: u64) -> Result<()> {
        let value = self.get_member(&key)?;
        let mut changed = true;
        let mut was_tracked = false;
        let mut was_indexer = false;
        if let Some(v) = value {
            was_tracked = !v.is_removed;
            was_indexer = v.is_indexer;
            length = length.max(v.length);
            if v.length == length && v.is_indexer == is_indexer && !v.is_removed {
                changed = false;
            }
        }
        if changed {
            self.changes.push((
                key,
                Member {
                    is_indexer,
                    is_removed: false,
                    length,
                },
            ));
        }
        if !was_tracked {
            self.members += 1;
        }
        if was_indexer || is_indexer {
            self.update_indexer(key, Some(length), is_indexer, 0);
        }
        Ok(())
    }

    /// Removes a writer; returns whether it was an indexer (JS `remove`).
    pub fn remove(&mut self, key: [u8; 32]) -> Result<bool> {
        let is_indexer = self.indexer_pos(&key).is_some();
        if is_indexer {
            self.update_indexer(key, None, false, 0);
        }
        let value = self.get_member(&key)?;
        let changed = value.is_none_or(|v| !v.is_removed);
        let was_tracked = value.is_some_and(|v| !v.is_removed);
        if changed {
            self.changes.push((
                key,
                Member {
                    is_indexer: false,
                    is_removed: true,
                    length: value.map_or(0, |v| v.length),
                },
            ));
        }
        if was_tracked {
            self.members = self.members.saturating_sub(1);
        }
        Ok(is_indexer)
    }

    /// Whether the node `key`/`length` is past what the system recorded of its writer (JS `linkable`).
    pub fn linkable(&self, key: &[u8; 32], length: u64) -> Result<bool> {
        let len = self.seen_length(key);
        if len > 0 {
            return Ok(length > len);
        }
        let prev = self.get_member(key)?.map_or(0, |m| m.length);
        Ok(length > prev)
    }

    /// The system length the next flush will reach (JS `flushLength`).
    pub fn flush_length(&self) -> u64 {
        let length = self.core_length();
        let header = u64::from(length == 0);
        let mut updates = (self.changes.len() + self.clock_updates.len()) as u64;
        for (k, _) in &self.changes {
            if self.clock_updates.iter().any(|(c, _)| c == k) {
                updates -= 1;
            }
        }
        header + length + updates + 1
    }

    /// Writes the changed members, the writers' new lengths and `info` (with the views' keys and lengths) in
    /// one hyperbee batch (JS `flush`).
    pub fn flush(&mut self, views: &mut [ViewSlot]) -> Result<()> {
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, m) in &self.changes {
            if self.clock_updates.iter().any(|(c, _)| c == k) {
                continue;
            }
            puts.push((member_key(k), m.to_bytes()));
        }
        for (k, length) in self.clock_updates.clone() {
            let is_indexer = self.indexer_pos(&k).is_some();
            let is_removed = self.get_member(&k)?.is_none_or(|m| m.is_removed);
            let m = Member {
                is_indexer,
                is_removed,
                length,
            };
            puts.push((member_key(&k), m.to_bytes()));
        }
        if self.indexer_update && self.version >= 2 {
            let keys: Vec<[u8; 32]> = self.indexers.iter().map(|i| i.key).collect();
            let header = u64::from(self.core_length() == 0);
            let length = self.core_length() + header + puts.len() as u64 + 1;
            self.entropy = Some(generate_entropy(&keys, length, self.entropy.as_ref()));
        }
        self.clock_updates.clear();
        let max = views.iter().filter_map(|v| v.mapped_index).max();
        self.views.truncate(max.map_or(0, |m| m + 1));
        for view in views.iter_mut() {
            if view.length == 0 {
                continue;
            }
            let v = Checkout {
                key: view.key,
                length: view.length,
            };
            match view.mapped_index {
                Some(i) if i < self.views.len() => self.views[i] = v,
                _ => {
                    self.views.push(v);
                    view.mapped_index = Some(self.views.len() - 1);
                }
            }
        }
        let info = self.info().to_bytes()?;
        let mut batch = self.db.batch()?;
        for (k, v) in &puts {
            batch.put(k, Some(v))?;
        }
        batch.put(INFO_KEY, Some(&info))?;
        batch.flush()?;
        self.length = self.core_length();
        self.changes.clear();
        self.indexer_update = false;
        Ok(())
    }
}

/// Whether two infos have the same indexer set (JS `sameIndexers` of `lib/system.js`: the first view's key
/// when both list views, else the indexer keys).
pub fn same_indexers(a: &Info, b: &Info) -> bool {
    if let (Some(x), Some(y)) = (a.views.first(), b.views.first()) {
        return x.key == y.key;
    }
    a.indexers.len() == b.indexers.len()
        && a.indexers
            .iter()
            .zip(&b.indexers)
            .all(|(x, y)| x.key == y.key)
}

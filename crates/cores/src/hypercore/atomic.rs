//! Atomic batches across cores (JS `core.session({ atom })`, corestore 7's `store.atomize()`, as autobase
//! applies a batch of nodes to its views): appends made through the [`AtomicSession`]s of one [`Atom`] are
//! staged in memory, readable through the sessions, and become visible in their cores together when the atom
//! is [flushed](Atom::flush).
//!
//! A flush takes every core's writer lock (in a fixed order, so two flushes cannot deadlock), writes and syncs
//! each core's part as one record of its log (so each core's part is all-or-nothing after a crash), then
//! publishes all of them under all their state locks at once: a reader in this process sees either none of
//! the batch or all of it. After a crash *during* a flush, the cores whose record was already durable have
//! their part and the others do not (there is no cross-core journal); each core stays consistent and signed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{AppendOutcome, Backend, Hypercore, HypercoreError, Inner, Result, MAX_BLOCK_SIZE};

type Staged = Vec<(Hypercore, Vec<Vec<u8>>)>;

/// A group of staged appends to one or more writable cores, committed together by [`flush`](Self::flush).
/// Cheap to clone (clones share the staged appends).
#[derive(Debug, Clone, Default)]
pub struct Atom {
    staged: Arc<Mutex<Staged>>,
}

/// A writable core seen through an [`Atom`]: its appends are staged until the atom is flushed.
#[derive(Debug, Clone)]
pub struct AtomicSession {
    atom: Atom,
    core: Hypercore,
}

fn same(a: &Hypercore, b: &Hypercore) -> bool {
    Arc::ptr_eq(&a.inner, &b.inner)
}

impl Atom {
    /// An empty atom.
    pub fn new() -> Self {
        Self::default()
    }

    fn staged(&self) -> MutexGuard<'_, Staged> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session of `core` in this atom. The core must be writable.
    pub fn session(&self, core: &Hypercore) -> Result<AtomicSession> {
        if !core.appendable() {
            return Err(HypercoreError::NotWritable);
        }
        Ok(AtomicSession {
            atom: self.clone(),
            core: core.clone(),
        })
    }

    /// Blocks staged in all sessions, not flushed yet.
    pub fn pending(&self) -> u64 {
        self.staged().iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Drops everything staged.
    pub fn discard(&self) {
        self.staged().clear();
    }

    /// Commits every staged append: the cores' new lengths, in the order their sessions first appended. On an
    /// error before anything is written, nothing changes and the appends stay staged; on a write error, the
    /// cores written before it keep (and show) their part, and the error is returned.
    pub fn flush(&self) -> Result<Vec<(Hypercore, AppendOutcome)>> {
        let mut staged = self.staged();
        let entries: Staged = std::mem::take(&mut *staged)
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .collect();
        // Writer locks in a fixed order; the order of first appends is kept for the result.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| Arc::as_ptr(&entries[i].0.inner) as usize);
        let mut logs: Vec<(usize, MutexGuard<'_, Backend>)> = order
            .iter()
            .map(|&i| (i, entries[i].0.log_lock()))
            .collect();

        let mut encrypted = Vec::with_capacity(entries.len());
        let mut failure = None;
        for (core, blocks) in &entries {
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            let g = core.lock();
            match g.encrypt_appended(&refs) {
                Ok(e) => encrypted.push(e),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let stored: Vec<Vec<&[u8]>> = entries
            .iter()
            .zip(&encrypted)
            .map(|((_, blocks), enc)| match enc {
                Some(list) => list.iter().map(Vec::as_slice).collect(),
                None => blocks.iter().map(Vec::as_slice).collect(),
            })
            .collect();
        let mut prepared = Vec::with_capacity(entries.len());
        if failure.is_none() {
            for (i, log) in &logs {
                let js = matches!(&**log, Backend::Js(_));
                match entries[*i].0.lock().prepare_append(&stored[*i], js, None) {
                    Ok(p) => prepared.push((*i, p)),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            drop(prepared);
            drop(stored);
            drop(logs);
            *staged = entries;
            return Err(e);
        }
        drop(staged);

        // Write every core's record (synced), then publish those written under all their state locks at once.
        let mut written = Vec::with_capacity(prepared.len());
        for ((_, log), (i, p)) in logs.iter_mut().zip(&prepared) {
            match p.write(log) {
                Ok(locs) => written.push((*i, locs)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut inners: Vec<MutexGuard<'_, Inner>> =
            written.iter().map(|(i, _)| entries[*i].0.lock()).collect();
        let mut outcomes = vec![None; entries.len()];
        for ((g, (i, locs)), (_, p)) in inners.iter_mut().zip(written).zip(prepared) {
            if let Err(e) = g.publish_append(p, locs) {
                failure.get_or_insert(e);
                continue;
            }
            outcomes[i] = Some(g.outcome());
        }
        drop(inners);
        drop(logs);
        let mut out = Vec::with_capacity(entries.len());
        for ((core, _), outcome) in entries.into_iter().zip(outcomes) {
            if let Some(o) = outcome {
                core.changed();
                out.push((core, o));
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl AtomicSession {
    /// The core this session appends to.
    pub fn core(&self) -> &Hypercore {
        &self.core
    }

    /// The atom this session belongs to.
    pub fn atom(&self) -> &Atom {
        &self.atom
    }

    fn staged_len(&self, staged: &Staged) -> (u64, u64) {
        staged
            .iter()
            .find(|(c, _)| same(c, &self.core))
            .map(|(_, b)| (b.len() as u64, b.iter().map(|x| x.len() as u64).sum()))
            .unwrap_or((0, 0))
    }

    /// Stages `blocks`; returns the length and byte length the core will have once flushed.
    pub fn append(&self, blocks: &[&[u8]]) -> Result<AppendOutcome> {
        if let Some(b) = blocks.iter().find(|b| b.len() > MAX_BLOCK_SIZE) {
            return Err(HypercoreError::BlockTooLarge(b.len()));
        }
        let mut staged = self.atom.staged();
        match staged.iter_mut().find(|(c, _)| same(c, &self.core)) {
            Some((_, list)) => list.extend(blocks.iter().map(|b| b.to_vec())),
            None => staged.push((
                self.core.clone(),
                blocks.iter().map(|b| b.to_vec()).collect(),
            )),
        }
        let (n, bytes) = self.staged_len(&staged);
        Ok(AppendOutcome {
            length: self.core.length() + n,
            byte_length: self.core.byte_length() + bytes,
        })
    }

    /// The core's length with this session's staged blocks.
    pub fn length(&self) -> u64 {
        let staged = self.atom.staged();
        self.core.length() + self.staged_len(&staged).0
    }

    /// Blocks of this session not flushed yet.
    pub fn pending(&self) -> u64 {
        self.staged_len(&self.atom.staged()).0
    }

    /// Block `index`: from the core, or staged in this session.
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        let staged = self.atom.staged();
        let length = self.core.length();
        if index < length {
            drop(staged);
            return self.core.get(index);
        }
        Ok(staged
            .iter()
            .find(|(c, _)| same(c, &self.core))
            .and_then(|(_, b)| usize::try_from(index - length).ok().and_then(|i| b.get(i)))
            .cloned())
    }
}

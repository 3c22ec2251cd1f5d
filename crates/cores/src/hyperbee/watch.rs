//! Watching a bee for changes (JS hyperbee 2.27 `watch(range)` and `getAndWatch(key)`).
//!
//! A [`Watcher`] starts at a snapshot of the bee. Each [`Watcher::next`] waits until the core's length or fork
//! moves (a local append or truncation, or a remote update applied by a replicator), then takes a new
//! snapshot: when the fork changed it reports at once, otherwise it reports only if the diff between the two
//! snapshots has an entry within the range (as JS's default differ, `createDiffStream(previous, range)`),
//! and waits again if not. What it yields is `(current, previous)`, two read-only [`Hyperbee`] views.
//!
//! On a replica the diff may need blocks not stored yet: give the watcher the core's [`Replicator`]
//! ([`Watcher::with_replicator`]) and they are fetched from peers; without one such a read fails with
//! [`HyperbeeError::BlockNotAvailable`].

use tokio::sync::watch;

use super::{Entry, Hyperbee, HyperbeeError, RangeOptions, Result};
use crate::hypercore::replicator::Replicator;

/// Runs a bee read, fetching each missing block through `rep` and trying again (at most once per block in a
/// row, so a peer that cannot serve it ends in the error rather than a loop).
async fn read_fetching<T>(rep: Option<&Replicator>, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    loop {
        match f() {
            Err(HyperbeeError::BlockNotAvailable(seq)) if last != Some(seq) => {
                let Some(rep) = rep else {
                    return Err(HyperbeeError::BlockNotAvailable(seq));
                };
                rep.get(seq).await?;
                last = Some(seq);
            }
            r => return r,
        }
    }
}

/// A stream of `(current, previous)` snapshots, one for each change of the bee within a key range (JS
/// `bee.watch(range)`). Create with [`Hyperbee::watch`].
#[derive(Debug)]
pub struct Watcher {
    bee: Hyperbee,
    range: RangeOptions,
    current: Hyperbee,
    fork: u64,
    rx: watch::Receiver<u64>,
    replicator: Option<Replicator>,
}

impl Watcher {
    pub(super) fn new(bee: &Hyperbee, range: RangeOptions, eager: bool) -> Self {
        let bee = bee.checkout_latest();
        let rx = bee.core.subscribe();
        let current = if eager {
            bee.checkout(1)
        } else {
            bee.snapshot()
        };
        let fork = bee.core.fork();
        Self {
            bee,
            range,
            current,
            fork,
            rx,
            replicator: None,
        }
    }

    /// Fetches blocks a diff needs from peers through `replicator` (the bee's core's).
    #[must_use]
    pub fn with_replicator(mut self, replicator: Replicator) -> Self {
        self.replicator = Some(replicator);
        self
    }

    /// The snapshot the watcher is at (the `current` of the last change yielded).
    pub fn current(&self) -> &Hyperbee {
        &self.current
    }

    fn moved(&self) -> bool {
        self.bee.core.fork() != self.fork || self.bee.version() != self.current.version()
    }

    /// Waits for the next change within the range and returns `(current, previous)`. Errors when a block the
    /// diff needs cannot be read (not stored and no replicator, or a corrupt block).
    pub async fn next(&mut self) -> Result<(Hyperbee, Hyperbee)> {
        loop {
            while !self.moved() {
                self.rx.borrow_and_update();
                if self.moved() {
                    break;
                }
                // The core's sender lives as long as the core, which this watcher holds: it cannot close.
                if self.rx.changed().await.is_err() {
                    return Err(HyperbeeError::Corrupt("hypercore closed".into()));
                }
            }
            let previous = std::mem::replace(&mut self.current, self.bee.snapshot());
            let fork = self.bee.core.fork();
            if fork != self.fork {
                self.fork = fork;
                return Ok((self.current.clone(), previous));
            }
            let range = RangeOptions {
                limit: Some(1),
                ..self.range.clone()
            };
            let current = &self.current;
            let diff = read_fetching(self.replicator.as_ref(), || {
                current.diff(previous.version(), &range)
            })
            .await?;
            if !diff.is_empty() {
                return Ok((self.current.clone(), previous));
            }
        }
    }
}

/// One key's entry, kept up to date (JS `bee.getAndWatch(key)`). Create with [`Hyperbee::get_and_watch`].
#[derive(Debug)]
pub struct EntryWatcher {
    bee: Hyperbee,
    key: Vec<u8>,
    node: Option<Entry>,
    length: u64,
    fork: u64,
    rx: watch::Receiver<u64>,
    replicator: Option<Replicator>,
}

impl EntryWatcher {
    /// The entry as of the last update (`None`: no such key).
    pub fn node(&self) -> Option<&Entry> {
        self.node.as_ref()
    }

    /// Waits until the entry changes (another seq, or gone, or any truncation: JS emits `update` then too) and
    /// returns it.
    pub async fn changed(&mut self) -> Result<Option<&Entry>> {
        loop {
            let core = &self.bee.core;
            while core.length() == self.length && core.fork() == self.fork {
                self.rx.borrow_and_update();
                if core.length() != self.length || core.fork() != self.fork {
                    break;
                }
                if self.rx.changed().await.is_err() {
                    return Err(HyperbeeError::Corrupt("hypercore closed".into()));
                }
            }
            let forced = core.fork() != self.fork || core.length() < self.length;
            self.length = core.length();
            self.fork = core.fork();
            let snap = self.bee.snapshot();
            let key = self.key.clone();
            let node = read_fetching(self.replicator.as_ref(), || snap.get(&key)).await?;
            let moved = node.as_ref().map(|e| e.seq) != self.node.as_ref().map(|e| e.seq);
            if forced || moved {
                self.node = node;
                return Ok(self.node.as_ref());
            }
        }
    }
}

impl Hyperbee {
    /// Watches the bee for changes within `range` (JS `watch(range)`): see [`Watcher`]. Starts at the current
    /// version; a checkout or snapshot is watched as the live bee it came from (JS allows only the main bee).
    pub fn watch(&self, range: RangeOptions) -> Watcher {
        Watcher::new(self, range, false)
    }

    /// [`watch`](Self::watch) starting from version 1 (JS `{ eager: true }`): the first change reported is
    /// the whole bee so far, if it has anything within the range.
    pub fn watch_eager(&self, range: RangeOptions) -> Watcher {
        Watcher::new(self, range, true)
    }

    /// The entry at `key` now, and a watcher that follows it (JS `getAndWatch(key)`). With a replicator the
    /// blocks it reads are fetched from peers.
    pub async fn get_and_watch(
        &self,
        key: &[u8],
        replicator: Option<Replicator>,
    ) -> Result<EntryWatcher> {
        let bee = self.checkout_latest();
        let rx = bee.core.subscribe();
        let (length, fork) = (bee.core.length(), bee.core.fork());
        let snap = bee.snapshot();
        let node = read_fetching(replicator.as_ref(), || snap.get(key)).await?;
        Ok(EntryWatcher {
            bee,
            key: key.to_vec(),
            node,
            length,
            fork,
            rx,
            replicator,
        })
    }

    /// This bee (same sub prefix) following the core's length rather than a fixed version.
    fn checkout_latest(&self) -> Self {
        Self {
            checkout: 0,
            ..self.clone()
        }
    }
}

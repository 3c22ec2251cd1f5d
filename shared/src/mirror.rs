//! Compatibility with JS `mirror-drive` 1.14: mirror any drive into any drive.
//!
//! A *drive* is anything implementing [`Drive`]: a folder ([`crate::localdrive::Localdrive`]) or a hyperdrive.
//! [`Mirror`] walks the source under one or more prefixes and makes the destination equal to it, as
//! mirror-drive does:
//!
//! - **remove** (unless `prune` is off): every destination entry under the prefixes that the source lacks.
//!   Removals are reported before additions, as in JS.
//! - **add**: a source entry the destination lacks.
//! - **change**: both have it but they differ. Equality follows mirror-drive's `same()`: symlinks are equal when
//!   their link names are; otherwise the blob sizes must match, then the *contents* are compared byte for byte
//!   (streamed, never whole in memory), then the executable bit (and metadata when both drives support it).
//!   Modification times are not compared, so an unchanged file is never rewritten, and a file whose only
//!   difference is the executable bit is rewritten only as metadata when the destination supports
//!   [`Drive::put_entry`] (hyperdrive), as in JS.
//! - **equal**: reported only with `include_equals`.
//!
//! Files are compared and written one after another by default; [`MirrorOptions::concurrency`] lets a window
//! of files run at once (diffs are still reported in source order before their writes start, `Done`
//! events in source order; a symlink, or a key below another key of the window, runs alone, so the result
//! is what a sequential run gives, hostile sources included). Content of at most [`CHUNK_SIZE`] bytes is
//! handed to the destination in one [`Drive::put`].
//!
//! `filter` drops keys the caller does not want (drives' default ignore list, `--filter` globs); `ignore` is
//! mirror-drive's `ignore` option: a key and everything under it is skipped (prefix-closed), which lets the
//! folder walk skip `.git` without descending. `dry_run` reports without writing.
//!
//! Hostile sources: a source key that is not a clean absolute drive path (a `..` component, a NUL, an empty
//! name) is never handed to the destination; it is reported as [`MirrorEvent::Skipped`]. Destinations check
//! again on their own (a [`crate::localdrive::Localdrive`] refuses to write outside its folder or through a
//! symlink).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use futures_util::stream::{FuturesOrdered, StreamExt};

/// Size of the chunks content is copied and compared in.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Errors of drives and of the mirror.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// File system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (usually the file name).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key or link name that would leave the drive's root, or is not a valid drive path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path, lossily printed.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The destination is read-only.
    #[error("destination must be writable")]
    NotWritable,
    /// An entry's content changed or vanished while it was read.
    #[error("entry {0} changed while reading")]
    Changed(String),
    /// Any other error of a drive implementation (hyperdrive, hypercore, storage).
    #[error("{0}")]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

impl DriveError {
    /// An I/O error with context.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        DriveError::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = DriveError> = std::result::Result<T, E>;

/// One file or symlink of a drive (mirror-drive's view of a hyperdrive/localdrive entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Normalized absolute key, `/a/b`.
    pub key: String,
    /// The executable bit.
    pub executable: bool,
    /// Symlink target, for symlinks.
    pub linkname: Option<String>,
    /// Content length in bytes, for files (`None` for symlinks and entries without content).
    pub byte_length: Option<u64>,
    /// Opaque metadata (hyperdrive's JSON metadata, encoded), if the drive supports it.
    pub metadata: Option<Vec<u8>>,
    /// Modification time in milliseconds since the epoch (folders only).
    pub mtime: Option<f64>,
    /// Sequence number of the entry in the drive's log (hyperdrives only).
    pub seq: Option<u64>,
    /// Where the content is in a hyperdrive's blobs core (hyperdrives only).
    pub blob_id: Option<crate::hyperblobs::BlobId>,
}

impl Entry {
    /// A file entry with no metadata.
    pub fn file(key: impl Into<String>, byte_length: u64, executable: bool) -> Self {
        Entry {
            key: key.into(),
            executable,
            linkname: None,
            byte_length: Some(byte_length),
            metadata: None,
            mtime: None,
            seq: None,
            blob_id: None,
        }
    }

    /// Content length, 0 without content.
    pub fn len(&self) -> u64 {
        self.byte_length.unwrap_or(0)
    }

    /// True when the entry has no content bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A predicate pruning keys (and their subtrees) from a listing.
pub type IgnoreFn<'a> = &'a (dyn Fn(&str) -> bool + Sync + 'a);

/// A reader of one entry's content, chunk by chunk.
#[async_trait]
pub trait BlobReader: Send {
    /// The next chunk, `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>>;
}

/// A writer of one entry's content; the entry appears on [`BlobWriter::finish`].
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Commits the entry.
    async fn finish(self: Box<Self>) -> Result<()>;
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The executable bit.
    pub executable: bool,
    /// Metadata to store, where supported.
    pub metadata: Option<Vec<u8>>,
}

/// A drive: a folder, a hyperdrive, anything with keyed files and symlinks.
///
/// Keys are absolute unix paths (`/a/b.txt`). Implementations must refuse keys that would leave their root.
#[async_trait]
pub trait Drive: Send + Sync {
    /// The entry at `key`, `None` if absent (folders are not entries).
    async fn entry(&self, key: &str) -> Result<Option<Entry>>;

    /// Every entry under `folder`, recursively, sorted by key. `ignore` prunes keys (and their subtrees).
    async fn list(&self, folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>>;

    /// Names directly under `folder`: files, symlinks and non-empty sub-folders, sorted.
    async fn readdir(&self, folder: &str) -> Result<Vec<String>>;

    /// A reader of `entry`'s content from byte `start`, `length` bytes (`None`: to the end).
    async fn read(
        &self,
        entry: &Entry,
        start: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>>;

    /// A writer for a new content of `key`.
    async fn write(&self, key: &str, opts: WriteOptions) -> Result<Box<dyn BlobWriter>>;

    /// Removes `key` (absent keys are fine).
    async fn del(&self, key: &str) -> Result<()>;

    /// Makes `key` a symlink to `linkname`.
    async fn symlink(&self, key: &str, linkname: &str) -> Result<()>;

    /// Rewrites only the entry's executable bit and metadata, keeping its content (hyperdrive's `putEntry`).
    /// `Ok(false)` when the drive cannot, so the mirror rewrites the content instead.
    async fn put_entry(&self, _key: &str, _existing: &Entry, _opts: WriteOptions) -> Result<bool> {
        Ok(false)
    }

    /// Whether writes are possible.
    fn writable(&self) -> bool {
        true
    }

    /// Whether entries carry metadata (compared by the mirror only when both drives do).
    fn supports_metadata(&self) -> bool {
        false
    }

    /// Persists pending writes.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Reads a whole entry into memory.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.entry(key).await? else {
            return Ok(None);
        };
        if entry.linkname.is_some() || entry.byte_length.is_none() {
            return Ok(None);
        }
        let mut reader = self.read(&entry, 0, None).await?;
        let mut out = Vec::with_capacity(usize::try_from(entry.len()).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    /// Writes a whole entry.
    async fn put(&self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        let mut writer = self.write(key, opts).await?;
        for chunk in data.chunks(CHUNK_SIZE) {
            writer.write(chunk).await?;
        }
        writer.finish().await
    }
}

/// Resolves `key` against `/` as unix-path-resolve does for *reading*: `.` and empty components dropped, `..`
/// clamped at the root. Always starts with `/`.
pub fn resolve_key(key: &str) -> String {
    resolve_from("/", key)
}

/// Resolves `path` relative to the absolute key `base` (unix-path-resolve semantics, `..` clamped at `/`).
pub fn resolve_from(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        [path, ""]
    } else {
        [base, path]
    };
    for piece in joined {
        for comp in piece.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Checks a key for *writing*: it must name a file below the root with no `..` component, no NUL and no
/// backslash-free tricks; `.` and repeated slashes are dropped. Returns the normalized key.
pub fn clean_key(key: &str) -> Result<String> {
    let bad = |reason| DriveError::InvalidPath {
        path: key.to_string(),
        reason,
    };
    if key.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for comp in key.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(bad("contains a `..` component")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(bad("names the root"));
    }
    Ok(parts
        .iter()
        .fold(String::with_capacity(key.len() + 1), |mut s, p| {
            s.push('/');
            s.push_str(p);
            s
        }))
}

/// Whether a key (already checked by [`clean_key`]) is `prefix` or below it.
pub fn under_prefix(key: &str, prefix: &str) -> bool {
    prefix == "/"
        || key == prefix
        || (key.starts_with(prefix) && key.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// What happened to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// New in the destination.
    Add,
    /// Rewritten in the destination.
    Change,
    /// Removed from the destination.
    Remove,
    /// Already equal (reported with `include_equals` only).
    Equal,
}

impl Op {
    /// mirror-drive's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Change => "change",
            Op::Remove => "remove",
            Op::Equal => "equal",
        }
    }
}

/// One diff, as mirror-drive yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The operation.
    pub op: Op,
    /// The key.
    pub key: String,
    /// Bytes the destination loses.
    pub bytes_removed: u64,
    /// Bytes the destination gains.
    pub bytes_added: u64,
}

/// Counts of a run (mirror-drive's `count`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Source files looked at.
    pub files: u64,
    /// Added.
    pub add: u64,
    /// Removed.
    pub remove: u64,
    /// Changed.
    pub change: u64,
}

/// Events of a run, for output and progress bars.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorEvent {
    /// The source was listed: this many files and bytes will be compared or copied.
    Planned {
        /// Files to look at.
        files: u64,
        /// Their total size.
        bytes: u64,
    },
    /// A diff, reported before it is applied (as mirror-drive yields it).
    Diff(Diff),
    /// A source file is done (equal, copied or skipped): progress by its size.
    Done {
        /// The key.
        key: String,
        /// Its size.
        bytes: u64,
    },
    /// A source entry was refused (hostile or invalid key or link).
    Skipped {
        /// The key, lossily.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A key predicate.
pub type KeyFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Options of a mirror (mirror-drive's options).
#[derive(Clone)]
pub struct MirrorOptions {
    /// Prefixes to mirror (default `/`).
    pub prefix: Vec<String>,
    /// Keep only keys for which this is true.
    pub filter: Option<KeyFilter>,
    /// Skip these keys and everything under them.
    pub ignore: Vec<String>,
    /// Report without writing.
    pub dry_run: bool,
    /// Remove destination entries the source lacks (default true).
    pub prune: bool,
    /// Report equal files too.
    pub include_equals: bool,
    /// How many files are compared and written at once (default 1: one after another, as mirror-drive).
    /// Events stay in source order either way. Worth raising for a folder destination (each file is a few
    /// file-system round trips) fed by a remote source (blocks arrive in bulk); a hyperdrive destination
    /// serializes its writes anyway.
    pub concurrency: usize,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            prefix: vec!["/".to_string()],
            filter: None,
            ignore: Vec::new(),
            dry_run: false,
            prune: true,
            include_equals: false,
            concurrency: 1,
        }
    }
}

impl fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("prefix", &self.prefix)
            .field("filter", &self.filter.is_some())
            .field("ignore", &self.ignore)
            .field("dry_run", &self.dry_run)
            .field("prune", &self.prune)
            .field("include_equals", &self.include_equals)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Totals of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorSummary {
    /// Counts.
    pub count: Count,
    /// Bytes added.
    pub bytes_added: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
    /// Hostile or invalid source entries skipped.
    pub skipped: u64,
}

/// A boxed future of the mirror's window.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source entry after its comparison with the destination.
enum Step {
    /// Not written: an invalid key, or one the destination refuses (`counted`: it counts as a file).
    Skipped {
        key: String,
        reason: String,
        counted: bool,
    },
    /// Compared: equal, or to be written (the source entry and the destination's, boxed: entries are big).
    Compared {
        key: String,
        bytes: u64,
        entries: Box<(Entry, Option<Entry>)>,
        same: Same,
    },
}

/// The result of a file's write: `None` for a skipped entry (no `Done` event), else its key, size and
/// outcome.
type Applied = Option<(String, u64, Result<()>)>;

/// What the window yields next.
enum Either {
    Compared(Result<Step>),
    Applied(Applied),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Same {
    Equal,
    Diff,
    DiffMeta,
}

/// Mirrors `src` into `dst`.
#[derive(Debug)]
pub struct Mirror<'a, S: ?Sized, D: ?Sized> {
    src: &'a S,
    dst: &'a D,
    opts: MirrorOptions,
}

impl<'a, S: Drive + ?Sized, D: Drive + ?Sized> Mirror<'a, S, D> {
    /// A mirror of `src` into `dst`.
    pub fn new(src: &'a S, dst: &'a D, opts: MirrorOptions) -> Self {
        Mirror { src, dst, opts }
    }

    fn ignored(&self, key: &str) -> bool {
        self.opts
            .ignore
            .iter()
            .any(|i| under_prefix(key, &resolve_key(i)))
    }

    fn wanted(&self, key: &str) -> bool {
        self.opts.filter.as_ref().is_none_or(|f| f(key))
    }

    async fn list(&self, drive: &(impl Drive + ?Sized), prefix: &str) -> Result<Vec<Entry>> {
        let ignore = |k: &str| self.ignored(k);
        let mut out = drive.list(prefix, Some(&ignore)).await?;
        // The prefix itself may be a file (mirror-drive checks it after the listing).
        if prefix != "/" && !out.iter().any(|e| e.key == prefix) {
            if let Some(e) = drive.entry(prefix).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Runs the mirror, calling `on_event` for every event; returns the totals.
    pub async fn run(&self, mut on_event: impl FnMut(MirrorEvent) + Send) -> Result<MirrorSummary> {
        if !self.opts.dry_run && !self.dst.writable() {
            return Err(DriveError::NotWritable);
        }
        let mut sum = MirrorSummary::default();
        let prefixes: Vec<String> = self.opts.prefix.iter().map(|p| resolve_key(p)).collect();

        let mut sources = Vec::new();
        for prefix in &prefixes {
            for e in self.list(self.src, prefix).await? {
                if self.wanted(&e.key) {
                    sources.push(e);
                }
            }
        }
        tracing::debug!(files = sources.len(), "mirror: source listed");
        on_event(MirrorEvent::Planned {
            files: sources.len() as u64,
            bytes: sources.iter().map(Entry::len).sum(),
        });

        if self.opts.prune {
            for prefix in &prefixes {
                for d in self.list(self.dst, prefix).await? {
                    if self.src.entry(&d.key).await?.is_some() {
                        continue;
                    }
                    let diff = Diff {
                        op: Op::Remove,
                        key: d.key.clone(),
                        bytes_removed: d.len(),
                        bytes_added: 0,
                    };
                    sum.count.remove += 1;
                    sum.bytes_removed += d.len();
                    on_event(MirrorEvent::Diff(diff));
                    if !self.opts.dry_run {
                        self.dst.del(&d.key).await?;
                    }
                }
            }
        }

        tracing::debug!("mirror: destination pruned");
        // Files go through a window of `concurrency` entries: each is compared, its diff reported (in source
        // order, before its write starts), then written; results are taken in source order, so `Done` events
        // keep that order too. A symlink, or an entry below a key still in the window (`/a` then `/a/b`),
        // waits until the window is empty and runs alone, so it sees exactly what a sequential run would
        // (a symlink created here is never raced by a write through it).
        let window = self.opts.concurrency.max(1);
        let mut pending = sources.into_iter().peekable();
        let mut compares: FuturesOrdered<BoxFuture<'_, Result<Step>>> = FuturesOrdered::new();
        let mut applies: FuturesOrdered<BoxFuture<'_, Applied>> = FuturesOrdered::new();
        // Keys in the window, oldest first (each entry leaves it when its apply result is taken).
        let mut in_window: VecDeque<String> = VecDeque::new();
        let mut alone = false;
        loop {
            while in_window.len() < window && !alone {
                let Some(next) = pending.peek() else {
                    break;
                };
                let must_be_alone =
                    next.linkname.is_some() || in_window.iter().any(|k| under_prefix(&next.key, k));
                if must_be_alone && !in_window.is_empty() {
                    break;
                }
                let Some(src_entry) = pending.next() else {
                    break;
                };
                alone = must_be_alone;
                in_window.push_back(src_entry.key.clone());
                compares.push_back(Box::pin(self.compare(src_entry)));
            }
            if in_window.is_empty() {
                break;
            }
            // Apply results first (they free the window), then the next comparison.
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(Some(a)) = applies.poll_next_unpin(cx) {
                    return Poll::Ready(Either::Applied(a));
                }
                if let Poll::Ready(Some(c)) = compares.poll_next_unpin(cx) {
                    return Poll::Ready(Either::Compared(c));
                }
                Poll::Pending
            })
            .await;
            match next {
                Either::Compared(step) => {
                    let fut = self.take_step(step?, &mut sum, &mut on_event);
                    applies.push_back(fut);
                }
                Either::Applied(a) => {
                    in_window.pop_front();
                    if in_window.is_empty() {
                        alone = false;
                    }
                    let Some((key, bytes, res)) = a else {
                        continue;
                    };
                    match res {
                        Ok(()) => {}
                        Err(DriveError::InvalidPath { path, reason }) => {
                            sum.skipped += 1;
                            let reason = if path == key {
                                reason.to_string()
                            } else {
                                format!("{reason} ({path})")
                            };
                            on_event(MirrorEvent::Skipped {
                                key: key.clone(),
                                reason,
                            });
                        }
                        Err(e) => return Err(e),
                    }
                    tracing::trace!(key, bytes, "mirror: file done");
                    on_event(MirrorEvent::Done { key, bytes });
                }
            }
        }
        tracing::debug!("mirror: files written");
        if !self.opts.dry_run {
            self.dst.flush().await?;
        }
        Ok(sum)
    }

    /// Compares one source entry with the destination (the first half of a file's work).
    async fn compare(&self, src_entry: Entry) -> Result<Step> {
        let bytes = src_entry.len();
        let key = match clean_key(&src_entry.key) {
            Ok(k) if k == src_entry.key => k,
            Ok(_) => {
                return Ok(Step::Skipped {
                    key: src_entry.key,
                    reason: "not a normalized key".into(),
                    counted: false,
                })
            }
            Err(e) => {
                return Ok(Step::Skipped {
                    key: src_entry.key,
                    reason: e.to_string(),
                    counted: false,
                })
            }
        };
        let dst_entry = match self.dst.entry(&key).await {
            Ok(e) => e,
            // A destination that refuses the key (a symlinked parent folder, ...): skip it.
            Err(DriveError::InvalidPath { reason, .. }) => {
                return Ok(Step::Skipped {
                    key,
                    reason: reason.into(),
                    counted: true,
                })
            }
            Err(e) => return Err(e),
        };
        let same = self.same(&src_entry, dst_entry.as_ref()).await?;
        Ok(Step::Compared {
            key,
            bytes,
            entries: Box::new((src_entry, dst_entry)),
            same,
        })
    }

    /// Counts and reports a compared entry (in source order) and returns the future applying it.
    fn take_step<'s>(
        &'s self,
        step: Step,
        sum: &mut MirrorSummary,
        on_event: &mut impl FnMut(MirrorEvent),
    ) -> BoxFuture<'s, Applied> {
        let (key, bytes, src_entry, dst_entry, s) = match step {
            Step::Skipped {
                key,
                reason,
                counted,
            } => {
                sum.count.files += u64::from(counted);
                sum.skipped += 1;
                on_event(MirrorEvent::Skipped { key, reason });
                return Box::pin(std::future::ready(None));
            }
            Step::Compared {
                key,
                bytes,
                entries,
                same,
            } => {
                let (src, dst) = *entries;
                (key, bytes, src, dst, same)
            }
        };
        sum.count.files += 1;
        if s == Same::Equal {
            if self.opts.include_equals {
                on_event(MirrorEvent::Diff(Diff {
                    op: Op::Equal,
                    key: key.clone(),
                    bytes_removed: 0,
                    bytes_added: 0,
                }));
            }
            return Box::pin(std::future::ready(Some((key, bytes, Ok(())))));
        }
        let diff = match &dst_entry {
            Some(d) => {
                let (removed, added) = if s == Same::DiffMeta {
                    (0, 0)
                } else {
                    (d.len(), src_entry.len())
                };
                sum.count.change += 1;
                Diff {
                    op: Op::Change,
                    key: key.clone(),
                    bytes_removed: removed,
                    bytes_added: added,
                }
            }
            None => {
                sum.count.add += 1;
                Diff {
                    op: Op::Add,
                    key: key.clone(),
                    bytes_removed: 0,
                    bytes_added: src_entry.len(),
                }
            }
        };
        sum.bytes_added += diff.bytes_added;
        sum.bytes_removed += diff.bytes_removed;
        on_event(MirrorEvent::Diff(diff));
        if self.opts.dry_run {
            return Box::pin(std::future::ready(Some((key, bytes, Ok(())))));
        }
        Box::pin(async move {
            let res = self.apply(&key, &src_entry, dst_entry.as_ref(), s).await;
            Some((key, bytes, res))
        })
    }

    async fn apply(
        &self,
        key: &str,
        src_entry: &Entry,
        dst_entry: Option<&Entry>,
        s: Same,
    ) -> Result<()> {
        if let Some(link) = &src_entry.linkname {
            return self.dst.symlink(key, link).await;
        }
        let opts = WriteOptions {
            executable: src_entry.executable,
            metadata: src_entry.metadata.clone(),
        };
        if s == Same::DiffMeta {
            if let Some(existing) = dst_entry {
                if self.dst.put_entry(key, existing, opts.clone()).await? {
                    return Ok(());
                }
            }
        }
        copy(self.src, src_entry, self.dst, key, opts).await
    }

    async fn same(&self, src: &Entry, dst: Option<&Entry>) -> Result<Same> {
        let Some(dst) = dst else {
            return Ok(Same::Diff);
        };
        if src.linkname.is_some() || dst.linkname.is_some() {
            return Ok(if src.linkname == dst.linkname {
                Same::Equal
            } else {
                Same::Diff
            });
        }
        match (src.byte_length, dst.byte_length) {
            (None, None) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return Ok(Same::Diff),
        }
        let eq = contents_equal(self.src, src, self.dst, dst).await?;
        let diff = if eq { Same::DiffMeta } else { Same::Diff };
        if src.executable != dst.executable {
            return Ok(diff);
        }
        if self.src.supports_metadata()
            && self.dst.supports_metadata()
            && src.metadata != dst.metadata
        {
            return Ok(diff);
        }
        Ok(if eq { Same::Equal } else { Same::Diff })
    }
}

/// Copies `entry` of `src` to `key` of `dst`. Content of at most [`CHUNK_SIZE`] bytes is read whole and
/// handed to [`Drive::put`] (one call, which a folder does in one file-system task); larger content is
/// streamed through [`Drive::write`].
pub async fn copy(
    src: &(impl Drive + ?Sized),
    entry: &Entry,
    dst: &(impl Drive + ?Sized),
    key: &str,
    opts: WriteOptions,
) -> Result<()> {
    if entry.len() <= CHUNK_SIZE as u64 {
        let mut data = Vec::new();
        if entry.byte_length.is_some() {
            let mut reader = src.read(entry, 0, None).await?;
            while let Some(chunk) = reader.next_chunk().await? {
                data.extend_from_slice(&chunk);
                if data.len() > CHUNK_SIZE {
                    // More than the entry said: stream the rest instead of gathering it.
                    let mut writer = dst.write(key, opts).await?;
                    writer.write(&data).await?;
                    drop(data);
                    while let Some(chunk) = reader.next_chunk().await? {
                        writer.write(&chunk).await?;
                    }
                    return writer.finish().await;
                }
            }
        }
        return dst.put(key, &data, opts).await;
    }
    let mut writer = dst.write(key, opts).await?;
    if entry.byte_length.is_some() {
        let mut reader = src.read(entry, 0, None).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            writer.write(&chunk).await?;
        }
    }
    writer.finish().await
}

/// Whether two entries have the same content, streamed in chunks of any sizes.
pub async fn contents_equal(
    a_drive: &(impl Drive + ?Sized),
    a: &Entry,
    b_drive: &(impl Drive + ?Sized),
    b: &Entry,
) -> Result<bool> {
    if a.len() != b.len() {
        return Ok(false);
    }
    if a.is_empty() {
        return Ok(true);
    }
    let mut ra = a_drive.read(a, 0, None).await?;
    let mut rb = b_drive.read(b, 0, None).await?;
    let (mut ba, mut pa) = (Vec::new(), 0usize);
    let (mut bb, mut pb) = (Vec::new(), 0usize);
    loop {
        if pa == ba.len() {
            match ra.next_chunk().await? {
                Some(c) => (ba, pa) = (c, 0),
                None => {
                    ba.clear();
                    pa = 0;
                }
            }
        }
        if pb == bb.len() {
            match rb.next_chunk().await? {
                Some(c) => (bb, pb) = (c, 0),
                None => {
                    bb.clear();
                    pb = 0;
                }
            }
        }
        let (sa, sb) = (ba.get(pa..).unwrap_or(&[]), bb.get(pb..).unwrap_or(&[]));
        if sa.is_empty() || sb.is_empty() {
            return Ok(sa.is_empty() && sb.is_empty());
        }
        let n = sa.len().min(sb.len());
        if sa[..n] != sb[..n] {
            return Ok(false);
        }
        pa += n;
        pb += n;
    }
}

mod hyperdrive_impl {
    //! [`Drive`] for [`Hyperdrive`]: entries with their seq and blob id, metadata as JSON bytes, content
    //! through hyperblobs readers and writers, `put_entry` keeping the blob.

    use async_trait::async_trait;

    use super::{BlobReader, BlobWriter, Drive, DriveError, Entry, IgnoreFn, Result, WriteOptions};
    use crate::hyperblobs::ReadRange;
    use crate::hyperdrive::{self as hd, EntryValue, Hyperdrive, ListOptions, PutOptions};

    fn err(e: hd::DriveError) -> DriveError {
        match e {
            hd::DriveError::Path(p) => DriveError::InvalidPath {
                path: p.to_string(),
                reason: "not a drive path",
            },
            hd::DriveError::InvalidKey(k) => DriveError::InvalidPath {
                path: k,
                reason: "hostile entry key",
            },
            hd::DriveError::ReadOnly => DriveError::NotWritable,
            e => DriveError::Other(Box::new(e)),
        }
    }

    fn metadata_bytes(v: &Option<serde_json::Value>) -> Option<Vec<u8>> {
        v.as_ref().and_then(|m| serde_json::to_vec(m).ok())
    }

    fn metadata_value(v: &Option<Vec<u8>>) -> Option<serde_json::Value> {
        v.as_ref().and_then(|m| serde_json::from_slice(m).ok())
    }

    fn convert(e: hd::Entry) -> Entry {
        Entry {
            key: e.key,
            executable: e.value.executable,
            linkname: e.value.linkname.clone(),
            byte_length: if e.value.linkname.is_some() {
                None
            } else {
                e.value.blob.map(|b| b.byte_length)
            },
            metadata: metadata_bytes(&e.value.metadata),
            mtime: None,
            seq: Some(e.seq),
            blob_id: e.value.blob,
        }
    }

    struct Reader(crate::hyperblobs::BlobReader);

    #[async_trait]
    impl BlobReader for Reader {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
            self.0
                .next_chunk()
                .await
                .map_err(|e| DriveError::Other(Box::new(e)))
        }
    }

    struct Writer(hd::DriveWriter);

    #[async_trait]
    impl BlobWriter for Writer {
        async fn write(&mut self, chunk: &[u8]) -> Result<()> {
            self.0.write(chunk).map_err(err)
        }
        async fn finish(self: Box<Self>) -> Result<()> {
            self.0.finish().map_err(err)
        }
    }

    struct Empty;

    #[async_trait]
    impl BlobReader for Empty {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    #[async_trait]
    impl Drive for Hyperdrive {
        async fn entry(&self, key: &str) -> Result<Option<Entry>> {
            Ok(Hyperdrive::entry(self, key)
                .await
                .map_err(err)?
                .map(convert))
        }

        async fn list(&self, folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>> {
            let opts = ListOptions {
                recursive: true,
                skip_invalid: true,
            };
            let list = Hyperdrive::list(self, folder, opts).await.map_err(err)?;
            Ok(list
                .into_iter()
                .filter(|e| !ignore.is_some_and(|f| ignored(f, &e.key)))
                .map(convert)
                .collect())
        }

        async fn readdir(&self, folder: &str) -> Result<Vec<String>> {
            Hyperdrive::readdir(self, folder).await.map_err(err)
        }

        async fn read(
            &self,
            entry: &Entry,
            start: u64,
            length: Option<u64>,
        ) -> Result<Box<dyn BlobReader>> {
            let Some(blob) = entry.blob_id else {
                return Ok(Box::new(Empty));
            };
            let size = blob.byte_length;
            let start = start.min(size);
            let length = length.map_or(size - start, |l| l.min(size - start));
            if length == 0 {
                return Ok(Box::new(Empty));
            }
            let range = ReadRange {
                start: Some(start),
                end: None,
                length: Some(length),
            };
            Ok(Box::new(Reader(
                self.blob_reader(&blob, range).await.map_err(err)?,
            )))
        }

        async fn write(&self, key: &str, opts: WriteOptions) -> Result<Box<dyn BlobWriter>> {
            let opts = PutOptions {
                executable: opts.executable,
                metadata: metadata_value(&opts.metadata),
            };
            Ok(Box::new(Writer(self.writer(key, opts).await.map_err(err)?)))
        }

        async fn del(&self, key: &str) -> Result<()> {
            Hyperdrive::del(self, key).map(|_| ()).map_err(err)
        }

        async fn symlink(&self, key: &str, linkname: &str) -> Result<()> {
            Hyperdrive::symlink(self, key, linkname, None).map_err(err)
        }

        async fn put_entry(&self, key: &str, existing: &Entry, opts: WriteOptions) -> Result<bool> {
            let value = EntryValue {
                executable: opts.executable,
                linkname: None,
                blob: existing.blob_id,
                metadata: metadata_value(&opts.metadata),
            };
            Hyperdrive::put_entry(self, key, &value).map_err(err)?;
            Ok(true)
        }

        fn writable(&self) -> bool {
            Hyperdrive::writable(self)
        }

        fn supports_metadata(&self) -> bool {
            true
        }
    }

    /// A listed key is ignored when it or one of its parent folders is.
    fn ignored(f: &(dyn Fn(&str) -> bool + Sync), key: &str) -> bool {
        let mut end = key.len();
        loop {
            if f(&key[..end]) {
                return true;
            }
            match key[..end].rfind('/') {
                Some(0) | None => return false,
                Some(i) => end = i,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_like_unix_path_resolve() {
        assert_eq!(resolve_key(""), "/");
        assert_eq!(resolve_key("a/b"), "/a/b");
        assert_eq!(resolve_key("/a//./b/"), "/a/b");
        assert_eq!(resolve_key("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve_from("/a/b", "../c"), "/a/c");
        assert_eq!(resolve_from("/a/b", "/x"), "/x");
    }

    #[test]
    fn clean_key_refuses_escapes() {
        assert_eq!(clean_key("a/./b").ok().as_deref(), Some("/a/b"));
        assert!(clean_key("/../x").is_err());
        assert!(clean_key("/a/../../x").is_err());
        assert!(clean_key("/").is_err());
        assert!(clean_key("/a\0b").is_err());
    }

    #[test]
    fn prefixes() {
        assert!(under_prefix("/a/b", "/a"));
        assert!(!under_prefix("/ab", "/a"));
        assert!(under_prefix("/a", "/a"));
        assert!(under_prefix("/x", "/"));
    }
}

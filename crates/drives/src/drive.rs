//! The drive interface: what [`Mirror`](crate::mirror::Mirror) and the drives CLI work on.
//!
//! A *drive* is anything implementing [`Drive`]: a folder ([`Localdrive`](crate::localdrive::Localdrive))
//! or a hyperdrive ([`Hyperdrive`](crate::hyperdrive::Hyperdrive)). This module holds the trait, the one
//! entry type both fill ([`Entry`]), the one error type of drives and the mirror ([`DriveError`]), content
//! readers and writers ([`BlobReader`], [`BlobWriter`], [`WriteBatch`]), and the key helpers
//! ([`resolve_key`], [`resolve_from`], [`clean_key`], [`under_prefix`]).

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use futures_util::stream::StreamExt;
use serde_json::Value;

use crate::corestore::CorestoreError;
use crate::hyperbee::HyperbeeError;
use crate::hyperblobs::{BlobError, BlobId};
use crate::hypercore::HypercoreError;
use crate::hyperdrive::{EntryError, EntryValue, PathError};

/// Size of the chunks content is copied and compared in.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Errors of drives (folders, hyperdrives) and of the mirror.
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
    /// A path a hyperdrive cannot resolve (too many `..`, the root as a file name).
    #[error(transparent)]
    Path(#[from] PathError),
    /// An entry key read from a hyperdrive that is not a normalized drive path (hostile or broken writer).
    #[error("invalid entry key {0:?}")]
    InvalidKey(String),
    /// An entry value that does not decode.
    #[error("entry {key:?}: {err}")]
    Entry {
        /// The entry key (lossy UTF-8).
        key: String,
        /// Why.
        err: EntryError,
    },
    /// A write on a drive that is read-only (a hyperdrive replica or checkout).
    #[error("drive is not writable")]
    ReadOnly,
    /// A mirror whose destination is read-only (checked before anything is compared).
    #[error("destination must be writable")]
    DestinationNotWritable,
    /// An entry's content changed or vanished while it was read.
    #[error("entry {0} changed while reading")]
    Changed(String),
    /// A hyperdrive's db bee failed.
    #[error("db: {0}")]
    Bee(#[from] HyperbeeError),
    /// A hyperdrive's blobs failed.
    #[error("blobs: {0}")]
    Blob(#[from] BlobError),
    /// A core failed.
    #[error("hypercore: {0}")]
    Core(#[from] HypercoreError),
    /// The corestore failed.
    #[error("corestore: {0}")]
    Store(#[from] CorestoreError),
    /// A hyperdrive's db header is missing or not a hyperbee header with a usable content key.
    #[error("bad drive header: {0}")]
    Header(String),
    /// Following symlinks went round more than [`MAX_SYMLINKS`](crate::hyperdrive::MAX_SYMLINKS) times.
    #[error("recursive symlink")]
    RecursiveSymlink,
    /// Waiting for peers took longer than the timeout.
    #[error("timed out")]
    Timeout,
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

/// Result of drive operations.
pub type Result<T, E = DriveError> = std::result::Result<T, E>;

/// One file or symlink of a drive: a hyperdrive entry (JS `{ seq, key, value: { executable, linkname, blob,
/// metadata } }`, the value flattened) or a folder's file (localdrive's entry, with its modification time).
/// Each drive fills what it has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// Normalized absolute key, `/a/b`.
    pub key: String,
    /// Sequence number of the db block that wrote the entry (hyperdrives only).
    pub seq: Option<u64>,
    /// The executable bit.
    pub executable: bool,
    /// Symlink target (as given to `symlink`, not normalized), for symlinks.
    pub linkname: Option<String>,
    /// Where the content is in a hyperdrive's blobs core (hyperdrives only; `None` for symlinks).
    pub blob: Option<BlobId>,
    /// Content length in bytes, for files (`None` for symlinks and entries without content).
    pub byte_length: Option<u64>,
    /// User metadata (any JSON), if the drive supports it (hyperdrives).
    pub metadata: Option<Value>,
    /// Modification time in milliseconds since the epoch (folders only).
    pub mtime: Option<f64>,
    /// The file's identity and change times (folders only): what a mirror's quick check compares (see
    /// [`crate::mirror_state`]).
    pub stat: Option<FileStat>,
}

/// A folder file's identity and times as `stat` gives them: any write to the file, a rename over it or a
/// `touch` changes one of them (the change time cannot be set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl Entry {
    /// A file entry with no metadata.
    pub fn file(key: impl Into<String>, byte_length: u64, executable: bool) -> Self {
        Entry {
            key: key.into(),
            executable,
            byte_length: Some(byte_length),
            ..Entry::default()
        }
    }

    /// A hyperdrive entry: its key, the seq of the db block that wrote it and its decoded value. A symlink
    /// has no content length even when a (hostile) value names a blob.
    pub fn from_value(key: String, seq: u64, value: EntryValue) -> Self {
        let byte_length = match value.linkname {
            Some(_) => None,
            None => value.blob.map(|b| b.byte_length),
        };
        Entry {
            key,
            seq: Some(seq),
            executable: value.executable,
            linkname: value.linkname,
            blob: value.blob,
            byte_length,
            metadata: value.metadata,
            mtime: None,
            stat: None,
        }
    }

    /// The hyperdrive value of this entry (what a hyperdrive stores under its key).
    pub fn value(&self) -> EntryValue {
        EntryValue {
            executable: self.executable,
            linkname: self.linkname.clone(),
            blob: self.blob,
            metadata: self.metadata.clone(),
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

/// The whole contents of some files, read together (see [`Drive::read_files`]): one buffer, and where each
/// file's bytes are in it.
#[derive(Debug, Default)]
pub struct FileContents {
    /// The files' bytes, one after another.
    pub data: Vec<u8>,
    /// One per file asked, in order: its bytes in `data`, the error its read ended with, or `None` when it
    /// was not read here (it grew past the size listed: read it with [`Drive::read`]).
    pub files: Vec<Option<Result<Range<usize>>>>,
}

impl FileContents {
    /// Appends a file's bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.files.push(Some(Ok(start..self.data.len())));
    }

    /// The bytes of a file read, by its place in [`files`](Self::files).
    pub fn get(&self, range: &Range<usize>) -> &[u8] {
        self.data.get(range.clone()).unwrap_or_default()
    }
}

/// Files [`Drive::read_files`] reads at once by default (each with [`Drive::read`]).
pub const READ_FILES_AT_ONCE: usize = 16;

/// The whole content of `entry` (read to its end, even past the listed size).
pub async fn read_whole(drive: &(impl Drive + ?Sized), entry: &Entry) -> Result<Vec<u8>> {
    let mut reader = drive.read(entry, 0, None).await?;
    let mut data = reader.next_chunk().await?.unwrap_or_default();
    while let Some(more) = reader.next_chunk().await? {
        data.extend_from_slice(&more);
    }
    Ok(data)
}

/// A page of a listing (see [`Drive::list_page`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListPage {
    /// Entries, sorted by key.
    pub entries: Vec<Entry>,
    /// The cursor of the next page, `None` after the last one.
    pub next: Option<Vec<u8>>,
}

/// A predicate pruning keys (and their subtrees) from a listing.
pub type IgnoreFn<'a> = &'a (dyn Fn(&str) -> bool + Sync + 'a);

/// A walk of a drive's entries in key order, page by page (see [`Drive::walk`]): what a mirror merges the
/// source and the destination with, in memory bounded by a page (and, for a folder, by its open folders'
/// names), not by the number of entries.
#[async_trait]
pub trait Walk: Send {
    /// The next entries, sorted by key and after every entry of the pages before; empty at the end.
    async fn next_page(&mut self) -> Result<Vec<Entry>>;
}

/// Entries listed in one page when a walk does not say (see [`Drive::walk`]).
pub const WALK_PAGE: usize = 4096;

/// [`Drive::walk`]'s default: [`Drive::list_page`] page by page (entries the predicate ignores left out), or
/// the whole [`Drive::list`] as one page when the drive has no pages.
struct PagedWalk<'a, D: ?Sized> {
    drive: &'a D,
    folder: String,
    ignore: Option<IgnoreFn<'a>>,
    page: usize,
    /// The cursor of the next page; `None` before the first page.
    after: Option<Vec<u8>>,
    started: bool,
    done: bool,
}

#[async_trait]
impl<D: Drive + ?Sized> Walk for PagedWalk<'_, D> {
    async fn next_page(&mut self) -> Result<Vec<Entry>> {
        while !self.done {
            let first = !self.started;
            self.started = true;
            let page = self
                .drive
                .list_page(&self.folder, self.after.take(), self.page)
                .await?;
            let Some(page) = page else {
                // No pages: listed whole (once), sorted as a listing promises.
                self.done = true;
                if !first {
                    return Ok(Vec::new());
                }
                let mut all = self.drive.list(&self.folder, self.ignore).await?;
                if !all.windows(2).all(|w| w[0].key <= w[1].key) {
                    all.sort_by(|a, b| a.key.cmp(&b.key));
                }
                return Ok(all);
            };
            match page.next {
                Some(n) => self.after = Some(n),
                None => self.done = true,
            }
            let mut entries = page.entries;
            if let Some(f) = self.ignore {
                entries.retain(|e| !ignored_or_under(f, &e.key));
            }
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
        Ok(Vec::new())
    }
}

/// Whether `f` ignores `key` or one of its parent folders (a listing's ignore prunes subtrees).
pub fn ignored_or_under(f: &(dyn Fn(&str) -> bool + Sync), key: &str) -> bool {
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

/// Writes gathered and committed together (a hyperdrive's `batch()`, JS mirror-drive's `batch` option): what
/// a [`Mirror`](crate::mirror::Mirror) writes through when the destination offers one ([`Drive::batch`]).
/// Content may be appended as it comes; the entries appear on [`flush`](Self::flush) (the mirror flushes
/// every [`BATCH_ENTRIES`] entries and at the end). Dropping it unflushed loses the pending entries, not the
/// drive's consistency.
#[async_trait]
pub trait WriteBatch: Send {
    /// Writes a whole file.
    async fn put(&mut self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()>;
    /// Writes a file streamed from `src` (for content too large to hold in memory).
    async fn put_stream(
        &mut self,
        key: &str,
        src: &mut dyn BlobReader,
        opts: WriteOptions,
    ) -> Result<()>;
    /// Makes `key` a symlink to `linkname`.
    async fn symlink(&mut self, key: &str, linkname: &str) -> Result<()>;
    /// Rewrites only the executable bit and metadata of `existing` (see [`Drive::put_entry`]).
    async fn put_entry(&mut self, key: &str, existing: &Entry, opts: WriteOptions) -> Result<()>;
    /// The entry the last write of the batch makes (its key and value as the drive will list them after the
    /// flush), when the batch can tell: what a mirror's quick check records. `None` by default.
    fn last_entry(&self) -> Option<Entry> {
        None
    }
    /// Entries written since the last flush.
    fn pending(&self) -> usize;
    /// Commits the pending entries (after any [`flush_behind`](Self::flush_behind) still being written).
    async fn flush(&mut self) -> Result<()>;
    /// Commits the pending entries as [`flush`](Self::flush) does, but may return before they are written
    /// (a hyperdrive writes them on another thread while the caller goes on); the next flush of either kind
    /// waits for them and returns their error. By default [`flush`](Self::flush).
    async fn flush_behind(&mut self) -> Result<()> {
        self.flush().await
    }
}

/// Entries a [`Mirror`](crate::mirror::Mirror) gathers in a destination's [`WriteBatch`] before committing
/// them.
pub const BATCH_ENTRIES: usize = 1024;

/// Files up to this size are read whole by a [`Mirror`](crate::mirror::Mirror) writing through a
/// [`WriteBatch`] (bigger ones are streamed).
pub const BATCH_FILE_MAX: u64 = CHUNK_SIZE as u64;

/// Options of a write (JS `put(path, buffer, { executable, metadata })`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteOptions {
    /// The executable bit.
    pub executable: bool,
    /// User metadata (any JSON), stored where supported (hyperdrives).
    pub metadata: Option<Value>,
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

    /// One page of [`list`](Self::list) without an ignore predicate (so a listing of any size is walked in
    /// bounded memory): up to `limit` entries after the cursor `after` (`None`: from the start) and the
    /// cursor of the next page. `Ok(None)` when the drive has no pages (list it whole); the default.
    async fn list_page(
        &self,
        _folder: &str,
        _after: Option<Vec<u8>>,
        _limit: usize,
    ) -> Result<Option<ListPage>> {
        Ok(None)
    }

    /// [`list`](Self::list) as a walk in key order, `page` entries at a time (about: a walk may return fewer
    /// or, for a drive without pages, everything at once). By default [`list_page`](Self::list_page) page by
    /// page (ignored keys left out), or the whole listing when the drive has no pages; a folder walks its
    /// tree in key order holding only the names of the folders it is in.
    fn walk<'a>(
        &'a self,
        folder: &str,
        ignore: Option<IgnoreFn<'a>>,
        page: usize,
    ) -> Box<dyn Walk + 'a> {
        Box::new(PagedWalk {
            drive: self,
            folder: folder.to_string(),
            ignore,
            page: page.max(1),
            after: None,
            started: false,
            done: false,
        })
    }

    /// Names directly under `folder`: files, symlinks and non-empty sub-folders, sorted.
    async fn readdir(&self, folder: &str) -> Result<Vec<String>>;

    /// A reader of `entry`'s content from byte `start`, `length` bytes (`None`: to the end).
    async fn read(
        &self,
        entry: &Entry,
        start: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>>;

    /// The whole content of each of `entries` (regular files as listed, small: at most [`BATCH_FILE_MAX`]
    /// bytes each), in one buffer: what a mirror writing through a [`WriteBatch`] reads ahead of its writes.
    /// A file is read to its end as [`read`](Self::read) reads it; one that grew past its listed size may be
    /// left unread (`None`, see [`FileContents::files`]). By default [`READ_FILES_AT_ONCE`] reads at a time;
    /// a folder reads them all in one file-system task.
    async fn read_files(&self, entries: &[&Entry]) -> FileContents {
        let mut out = FileContents {
            data: Vec::new(),
            files: Vec::with_capacity(entries.len()),
        };
        let reads: Vec<_> = entries.iter().map(|e| read_whole(self, e)).collect();
        let mut reads = futures_util::stream::iter(reads).buffered(READ_FILES_AT_ONCE);
        while let Some(read) = reads.next().await {
            match read {
                Ok(bytes) => out.push(&bytes),
                Err(e) => out.files.push(Some(Err(e))),
            }
        }
        out
    }

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

    /// A batch of writes committed together, when the drive has one (hyperdrive): many small files then cost
    /// one content append and one index append per batch instead of one each. `None` (the default): the
    /// mirror writes file by file.
    async fn batch(&self) -> Result<Option<Box<dyn WriteBatch>>> {
        Ok(None)
    }

    /// Whether [`list`](Self::list) lists every valid entry [`entry`](Self::entry) finds, so a key missing
    /// from a listing is absent and a mirror into this drive looks nothing up beyond its listing (a folder
    /// says no: its listing does not follow symlinked folders, its lookups do). False by default.
    fn listing_is_complete(&self) -> bool {
        false
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

    #[test]
    fn hyperdrive_values_round_trip_through_entries() {
        let blob = BlobId {
            block_offset: 1,
            byte_offset: 2,
            block_length: 3,
            byte_length: 4,
            block_map: false,
        };
        let file = EntryValue::file(blob, true, Some(serde_json::json!({"z": 1, "a": 2})));
        let e = Entry::from_value("/f".into(), 7, file.clone());
        assert_eq!((e.seq, e.byte_length, e.len()), (Some(7), Some(4), 4));
        assert_eq!(e.value(), file);
        assert_eq!(e.value().encode(), file.encode());
        // A (hostile) symlink naming a blob has no content length; its value keeps the blob.
        let link = EntryValue {
            blob: Some(blob),
            ..EntryValue::symlink("/f", None)
        };
        let l = Entry::from_value("/l".into(), 8, link.clone());
        assert_eq!((l.byte_length, l.blob), (None, Some(blob)));
        assert_eq!(l.value(), link);
    }
}

//! Hyperblobs (JS `hyperblobs` 2.12): blobs stored as runs of blocks in one hypercore.
//!
//! Facts of the JS module:
//! - A blob is appended as consecutive blocks of at most [`DEFAULT_BLOCK_SIZE`] (64 KiB) bytes; its id is
//!   `{ blockOffset, byteOffset, blockLength, byteLength }` ([`BlobId`]): the core's length and byte length
//!   before the append, and how many blocks and bytes it added. An empty blob has `blockLength: 0` at the
//!   current end. (A JS write stream appends the chunks it is given as blocks, so blocks of other blobs may
//!   have any size up to hypercore's maximum.)
//! - Read ranges (`createReadStream(id, { start, end, length })`): `start` is a byte offset into the blob,
//!   `end` is inclusive, `length` wins over `end`; both map to blocks with `core.seek(byteOffset + x)`.
//! - With `dedup`/`blockMap` the blocks listed by a *block map* are the content: the blob's own blocks (at
//!   most 64) hold compact-encoded maps `{ uint version = 0, array { uint index, uint byteLength } }`
//!   ([`decode_block_map`]). This implementation reads such blobs; [`Hyperblobs::chunked_writer`] writes them
//!   for changed files, cut with content-defined chunking so the previous version's blocks are reused
//!   ([`cdc`]).
//!
//! [`Hyperblobs`] writes to a local writable core; reads fetch missing blocks through the core's
//! [`Replicator`] when one is given and waiting is allowed ([`WaitOptions`]), prefetching the whole range of a
//! read in the background. Differences from the JS: a range is clamped to the blob (JS reads on into the next
//! blob when `end` is past it), and a blob whose blocks hold fewer bytes than its id says is an error.

pub mod cdc;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::compact_encoding::{DecodeError, Reader};
use crate::hypercore::replicator::Replicator;
use crate::hypercore::{Hypercore, HypercoreError, MAX_BLOCK_SIZE};

/// Block size of blobs written by `put` (JS `DEFAULT_BLOCK_SIZE`, 64 KiB).
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 16;
/// Blocks appended per hypercore append by writers (one signature and one write each).
pub const APPEND_BLOCKS: usize = 64;
/// Most block-map blocks a blob may have (JS refuses more: "Block map is too large").
pub const MAX_BLOCK_MAP_BLOCKS: u64 = 64;
/// Bytes read from a source per read by [`Hyperblobs::put_reader`].
const READ_CHUNK: usize = 2 << 20;
/// Largest capacity reserved up front for a blob read into memory (hostile ids may claim any size).
const MAX_PREALLOC: u64 = 8 << 20;

/// Where a blob lives in the blobs core (JS blob id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobId {
    /// First block.
    pub block_offset: u64,
    /// Byte offset of the first block in the core.
    pub byte_offset: u64,
    /// Number of blocks (block-map blocks for a block-map blob).
    pub block_length: u64,
    /// Number of bytes (of the map blocks for a block-map blob).
    pub byte_length: u64,
    /// The blocks are block maps (JS `blockMap: true`, written by dedup write streams).
    pub block_map: bool,
}

impl BlobId {
    /// One past the last block.
    pub fn block_end(&self) -> u64 {
        self.block_offset.saturating_add(self.block_length)
    }
}

/// Errors of blob operations.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The core failed.
    #[error("hypercore: {0}")]
    Core(#[from] HypercoreError),
    /// A block that is not stored here and cannot (or may not) be fetched (JS `BLOCK_NOT_AVAILABLE`).
    #[error("block {0} is not available")]
    BlockNotAvailable(u64),
    /// Waiting for a block took longer than the timeout.
    #[error("timed out waiting for block {0}")]
    Timeout(u64),
    /// A blob id pointing past the end of the core.
    #[error("blob blocks {start}..{end} are past the blobs core length {length}")]
    OutOfBounds {
        /// First block.
        start: u64,
        /// One past the last block.
        end: u64,
        /// The core length.
        length: u64,
    },
    /// The blocks hold fewer bytes than the blob id says, or a block map that does not decode.
    #[error("corrupt blob: {0}")]
    Corrupt(String),
    /// Reading the source of a put failed.
    #[error("reading blob source: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of blob operations.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// Whether reads wait for blocks from peers, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// Fetch missing blocks from peers (JS `wait: true`, the default). False fails at once.
    pub wait: bool,
    /// Give up after this long per block (JS `timeout`; `None` waits forever, as JS's default 0).
    pub timeout: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            wait: true,
            timeout: None,
        }
    }
}

/// A byte range of a blob (JS `{ start, end, length }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadRange {
    /// First byte (default 0).
    pub start: Option<u64>,
    /// Last byte, inclusive (ignored when `length` is set).
    pub end: Option<u64>,
    /// Number of bytes.
    pub length: Option<u64>,
}

impl ReadRange {
    /// `[start, end)` relative to a blob of `size` bytes, clamped to it.
    pub fn bounds(&self, size: u64) -> (u64, u64) {
        let start = self.start.unwrap_or(0).min(size);
        let end = match (self.length, self.end) {
            (Some(l), _) => start.saturating_add(l),
            (None, Some(e)) => e.saturating_add(1),
            (None, None) => size,
        };
        (start, end.clamp(start, size))
    }
}

/// Decodes one block-map block: `uint version (0)`, `array { uint index, uint byteLength }`.
pub fn decode_block_map(block: &[u8]) -> Result<Vec<(u64, u64)>, DecodeError> {
    let mut r = Reader::new(block);
    if r.uint()? != 0 {
        return Err(DecodeError::Invalid("block map version"));
    }
    let list = r.array(|r| Ok((r.uint()?, r.uint()?)))?;
    r.finish()?;
    Ok(list)
}

/// Fetches block `index` of `core`: stored, or from a peer through `rep` when `wait` allows.
pub async fn fetch_block(
    core: &Hypercore,
    rep: Option<&Replicator>,
    wait: WaitOptions,
    index: u64,
) -> Result<Vec<u8>> {
    if let Some(b) = core.get(index)? {
        return Ok(b);
    }
    let rep = match rep {
        Some(r) if wait.wait => r,
        _ => return Err(BlobError::BlockNotAvailable(index)),
    };
    match wait.timeout {
        None => Ok(rep.get(index).await?),
        Some(t) => tokio::time::timeout(t, rep.get(index))
            .await
            .map_err(|_| BlobError::Timeout(index))?
            .map_err(BlobError::from),
    }
}

/// Waits until `core` has at least `length` blocks (a replica learning of appends), when allowed.
pub async fn wait_for_length(
    core: &Hypercore,
    rep: Option<&Replicator>,
    wait: WaitOptions,
    length: u64,
) -> bool {
    if core.length() >= length {
        return true;
    }
    // Nobody else appends to a core we write.
    if !wait.wait || rep.is_none() || core.writable() {
        return false;
    }
    let mut rx = core.subscribe();
    let fut = async {
        while core.length() < length {
            if rx.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    match wait.timeout {
        None => fut.await,
        Some(t) => tokio::time::timeout(t, fut).await.unwrap_or(false),
    }
}

/// Blobs in a hypercore. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hyperblobs {
    core: Hypercore,
    replicator: Option<Replicator>,
    wait: WaitOptions,
    lock: Arc<AsyncMutex<()>>,
    block_size: usize,
}

impl Hyperblobs {
    /// Blobs in `core`; reads fetch missing blocks through `replicator` if given.
    pub fn new(core: Hypercore, replicator: Option<Replicator>) -> Self {
        Self {
            core,
            replicator,
            wait: WaitOptions::default(),
            lock: Arc::default(),
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }

    /// Sets how reads wait for blocks.
    pub fn with_wait(mut self, wait: WaitOptions) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the block size of writes (default 64 KiB, at most hypercore's maximum block size).
    pub fn with_block_size(mut self, size: usize) -> Self {
        self.block_size = size.clamp(1, MAX_BLOCK_SIZE);
        self
    }

    /// The core.
    pub fn core(&self) -> &Hypercore {
        &self.core
    }

    /// The replicator reads fetch through, if any.
    pub fn replicator(&self) -> Option<&Replicator> {
        self.replicator.as_ref()
    }

    /// The wait options of reads.
    pub fn wait_options(&self) -> WaitOptions {
        self.wait
    }

    /// Appends `data` as a blob (JS `put`).
    pub async fn put(&self, data: &[u8]) -> Result<BlobId> {
        let mut w = self.writer().await;
        w.write(data)?;
        w.finish()
    }

    /// Appends everything `src` yields as one blob, never holding more than [`APPEND_BLOCKS`] blocks in memory.
    pub async fn put_reader<R: AsyncRead + Unpin>(&self, mut src: R) -> Result<BlobId> {
        let mut w = self.writer().await;
        // Large reads: an async file read is a round trip to tokio's blocking pool each time.
        let mut buf = vec![0u8; READ_CHUNK.max(self.block_size)];
        loop {
            let n = src.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(buf.get(..n).unwrap_or_default())?;
        }
        w.finish()
    }

    /// A writer for one blob (JS `createWriteStream`): holds the blobs write lock until finished or dropped,
    /// so blobs written concurrently do not interleave.
    pub async fn writer(&self) -> BlobWriter {
        let guard = Arc::clone(&self.lock).lock_owned().await;
        BlobWriter::new(self.core.clone(), self.block_size, guard)
    }

    /// A writer that cuts the blob with content-defined chunking ([`cdc`]): chunks that `previous` (the
    /// previous version of the file, if any) already has here are referenced through a block map instead of
    /// appended. Holds the blobs write lock as [`writer`](Self::writer) does. Reading the previous version's
    /// local blocks to index them happens here.
    pub async fn chunked_writer(&self, previous: Option<&BlobId>) -> BlobWriter {
        let guard = Arc::clone(&self.lock).lock_owned().await;
        let index = previous.map(|id| cdc::ChunkIndex::of_blob(&self.core, id));
        let mut w = BlobWriter::new(self.core.clone(), self.block_size, guard);
        w.chunker = Some(cdc::Chunker::new(&self.core, index));
        w
    }

    /// Takes the blobs write lock (what a [`BlobWriter`] holds), for callers that append blocks themselves.
    pub async fn lock(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.lock).lock_owned().await
    }

    /// The block size of writes.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The blocks a block-map blob lists, `(index, byteLength)` in order (JS `getBlockMap(id).blocks`),
    /// fetching the map blocks when allowed; empty for a plain blob.
    pub async fn block_map(&self, id: &BlobId) -> Result<Vec<(u64, u64)>> {
        if !id.block_map {
            return Ok(Vec::new());
        }
        if id.block_length > MAX_BLOCK_MAP_BLOCKS {
            return Err(BlobError::Corrupt("block map is too large".into()));
        }
        let rep = self.replicator.as_ref();
        if !wait_for_length(&self.core, rep, self.wait, id.block_end()).await {
            return Err(BlobError::OutOfBounds {
                start: id.block_offset,
                end: id.block_end(),
                length: self.core.length(),
            });
        }
        let mut out = Vec::new();
        for i in id.block_offset..id.block_end() {
            let block = fetch_block(&self.core, rep, self.wait, i).await?;
            out.extend(
                decode_block_map(&block)
                    .map_err(|e| BlobError::Corrupt(format!("block map {i}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The content length of a blob (JS `getByteLength`): the sum of its block map for a block-map blob.
    pub async fn byte_size(&self, id: &BlobId) -> Result<u64> {
        if !id.block_map {
            return Ok(id.byte_length);
        }
        let map = self.block_map(id).await?;
        Ok(map.iter().fold(0u64, |n, &(_, len)| n.saturating_add(len)))
    }

    /// The whole blob (JS `get`).
    pub async fn get(&self, id: &BlobId) -> Result<Vec<u8>> {
        self.read(id, ReadRange::default()).await
    }

    /// A byte range of the blob, in memory.
    pub async fn read(&self, id: &BlobId, range: ReadRange) -> Result<Vec<u8>> {
        let mut r = self.reader(id, range).await?;
        let mut out =
            Vec::with_capacity(usize::try_from(r.remaining().min(MAX_PREALLOC)).unwrap_or(0));
        while let Some(chunk) = r.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// A reader of a byte range of the blob (JS `createReadStream(id, range)`): yields the blob's blocks
    /// (cut to the range) in order, fetching missing ones with the whole range prefetched in the background.
    pub async fn reader(&self, id: &BlobId, range: ReadRange) -> Result<BlobReader> {
        let rep = self.replicator.as_ref();
        if !wait_for_length(&self.core, rep, self.wait, id.block_end()).await {
            return Err(BlobError::OutOfBounds {
                start: id.block_offset,
                end: id.block_end(),
                length: self.core.length(),
            });
        }
        let mut segments = Vec::new();
        let size = if id.block_map {
            if id.block_length > MAX_BLOCK_MAP_BLOCKS {
                return Err(BlobError::Corrupt("block map is too large".into()));
            }
            let mut total = 0u64;
            for i in id.block_offset..id.block_end() {
                let block = fetch_block(&self.core, rep, self.wait, i).await?;
                for (index, len) in decode_block_map(&block)
                    .map_err(|e| BlobError::Corrupt(format!("block map {i}: {e}")))?
                {
                    total = total.saturating_add(len);
                    segments.push((index, Some(len)));
                }
            }
            total
        } else {
            id.byte_length
        };
        let (start, end) = range.bounds(size);
        let mut reader = BlobReader {
            core: self.core.clone(),
            rep: self.replicator.clone(),
            wait: self.wait,
            next: 0,
            blocks: Vec::new(),
            skip: 0,
            remaining: end - start,
            prefetch: None,
        };
        if reader.remaining == 0 {
            return Ok(reader);
        }
        if id.block_map {
            let mut skip = start;
            let mut first = 0;
            for (i, (_, len)) in segments.iter().enumerate() {
                let len = len.unwrap_or(0);
                if skip < len {
                    first = i;
                    break;
                }
                skip -= len;
                first = i + 1;
            }
            reader.blocks = segments.into_iter().skip(first).map(|(i, _)| i).collect();
            reader.skip = skip;
        } else {
            let (index, skip) = self.locate(id, start).await?;
            // Only the blocks the range covers: a short read in the middle of a large blob must not
            // prefetch (download) the rest of it.
            let last = if end < size {
                self.locate(id, end - 1).await?.0
            } else {
                id.block_end().saturating_sub(1)
            };
            reader.blocks = (index..=last.max(index)).collect();
            reader.skip = skip;
        }
        reader.start_prefetch();
        Ok(reader)
    }

    /// The block holding byte `start` of a plain blob and the offset in it.
    async fn locate(&self, id: &BlobId, start: u64) -> Result<(u64, u64)> {
        if start == 0 {
            return Ok((id.block_offset, 0));
        }
        let in_blob =
            |r: Option<(u64, u64)>| r.filter(|(i, _)| *i >= id.block_offset && *i < id.block_end());
        let target = id.byte_offset.saturating_add(start);
        if let Some(found) = in_blob(self.core.seek(target).ok().flatten()) {
            return Ok(found);
        }
        // A sparse replica may lack the tree nodes a seek needs. Fetch the block the blob's average block size
        // puts there: its proof brings the nodes that give its byte offset; from that offset and its size,
        // guess again (blocks of content-defined chunks vary in size), narrowing [lo, hi) each time, until
        // the block holding the byte is found or a seek can tell. Each guess fetches one block.
        let rep = self.replicator.as_ref();
        let (mut lo, mut hi) = (id.block_offset, id.block_end());
        let average = (id.byte_length / id.block_length.max(1)).max(1);
        let mut guess = id
            .block_offset
            .saturating_add(start / average)
            .min(hi.saturating_sub(1));
        for _ in 0..64 {
            let len = fetch_block(&self.core, rep, self.wait, guess).await?.len() as u64;
            if let Some(found) = in_blob(self.core.seek(target).ok().flatten()) {
                return Ok(found);
            }
            let Some(offset) = self.core.byte_offset(guess) else {
                break;
            };
            if target < offset {
                hi = guess;
            } else if target - offset < len {
                return Ok((guess, target - offset));
            } else {
                lo = guess + 1;
            }
            if lo >= hi {
                break;
            }
            // The next guess: as many blocks of this one's size away as the byte is, kept inside [lo, hi).
            let per = len.max(1);
            guess = if target < offset {
                guess.saturating_sub((offset - target).div_ceil(per))
            } else {
                guess.saturating_add((target - offset - len) / per + 1)
            }
            .clamp(lo, hi - 1);
        }
        let mut skip = start;
        for i in id.block_offset..id.block_end() {
            let len = fetch_block(&self.core, rep, self.wait, i).await?.len() as u64;
            if skip < len {
                return Ok((i, skip));
            }
            skip -= len;
        }
        Err(BlobError::Corrupt(format!(
            "blob at block {} holds fewer than {start} bytes",
            id.block_offset
        )))
    }

    /// Drops locally stored blocks of the blob is not supported by this hypercore's storage: returns the
    /// number of blocks of the blob stored here (what a clear would free).
    pub fn stored_blocks(&self, id: &BlobId) -> u64 {
        (id.block_offset..id.block_end())
            .filter(|&i| self.core.has(i))
            .count() as u64
    }
}

/// Writes one blob in blocks (see [`Hyperblobs::writer`]). Dropping it without [`finish`](Self::finish)
/// leaves the blocks already appended in the core, unreferenced (as a destroyed JS write stream does).
#[derive(Debug)]
pub struct BlobWriter {
    core: Hypercore,
    block_size: usize,
    id: BlobId,
    blocks: Vec<Vec<u8>>,
    current: Vec<u8>,
    chunker: Option<cdc::Chunker>,
    _guard: OwnedMutexGuard<()>,
}

impl BlobWriter {
    fn new(core: Hypercore, block_size: usize, guard: OwnedMutexGuard<()>) -> Self {
        let id = BlobId {
            block_offset: core.length(),
            byte_offset: core.byte_length(),
            ..BlobId::default()
        };
        Self {
            core,
            block_size,
            id,
            blocks: Vec::new(),
            current: Vec::new(),
            chunker: None,
            _guard: guard,
        }
    }

    /// Adds bytes to the blob; full blocks are appended [`APPEND_BLOCKS`] at a time.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if let Some(c) = &mut self.chunker {
            return c.write(&self.core, data);
        }
        while !data.is_empty() {
            let room = self.block_size - self.current.len();
            let (head, rest) = data.split_at(room.min(data.len()));
            self.current.extend_from_slice(head);
            data = rest;
            if self.current.len() == self.block_size {
                let full =
                    std::mem::replace(&mut self.current, Vec::with_capacity(self.block_size));
                self.blocks.push(full);
                if self.blocks.len() >= APPEND_BLOCKS {
                    self.flush()?;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.blocks.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[u8]> = self.blocks.iter().map(Vec::as_slice).collect();
        self.core.append(&refs)?;
        self.blocks.clear();
        Ok(())
    }

    /// Appends what is left and returns the blob's id.
    pub fn finish(self) -> Result<BlobId> {
        self.finish_with_stats().map(|(id, _)| id)
    }

    /// [`finish`](Self::finish), with what a [chunked writer](Hyperblobs::chunked_writer) did.
    pub fn finish_with_stats(mut self) -> Result<(BlobId, Option<cdc::ChunkStats>)> {
        if let Some(c) = self.chunker.take() {
            return c
                .finish(&self.core, self.block_size)
                .map(|(id, s)| (id, Some(s)));
        }
        if !self.current.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.blocks.push(last);
        }
        self.flush()?;
        let mut id = self.id;
        id.block_length = self.core.length() - id.block_offset;
        id.byte_length = self.core.byte_length() - id.byte_offset;
        Ok((id, None))
    }
}

/// Most runs of missing blocks a block-map read prefetches at once (the rest are fetched as read).
const MAX_PREFETCH_RUNS: usize = 256;

/// The blocks of `blocks` missing from `core`, as sorted `[start, end)` runs (at most [`MAX_PREFETCH_RUNS`]).
fn missing_runs(core: &Hypercore, blocks: &[u64]) -> Vec<(u64, u64)> {
    let length = core.length();
    let mut missing: Vec<u64> = blocks
        .iter()
        .copied()
        .filter(|&i| i < length && !core.has(i))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for i in missing {
        if let Some((_, end)) = runs.last_mut().filter(|(_, end)| *end == i) {
            *end = i.saturating_add(1);
        } else if runs.len() == MAX_PREFETCH_RUNS {
            break;
        } else {
            runs.push((i, i.saturating_add(1)));
        }
    }
    runs
}

/// Reads a byte range of a blob block by block (see [`Hyperblobs::reader`]).
#[derive(Debug)]
pub struct BlobReader {
    core: Hypercore,
    rep: Option<Replicator>,
    wait: WaitOptions,
    blocks: Vec<u64>,
    next: usize,
    skip: u64,
    remaining: u64,
    prefetch: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        if let Some(p) = self.prefetch.take() {
            p.abort();
        }
    }
}

impl BlobReader {
    /// Bytes still to be read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn start_prefetch(&mut self) {
        let Some(rep) = self.rep.clone() else {
            return;
        };
        if !self.wait.wait || self.blocks.len() < 2 {
            return;
        }
        let (Some(&first), Some(&last)) = (self.blocks.first(), self.blocks.last()) else {
            return;
        };
        // (A block map may list blocks in any order: `last` can be below `first`.)
        let in_order = last
            .checked_sub(first)
            .is_some_and(|d| d.checked_add(1) == Some(self.blocks.len() as u64));
        if !in_order {
            // A block map: the missing blocks it lists, as runs downloaded side by side.
            let runs = missing_runs(&self.core, &self.blocks);
            if !runs.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
                self.prefetch = Some(tokio::spawn(async move {
                    let mut set = tokio::task::JoinSet::new();
                    for (start, end) in runs {
                        let rep = rep.clone();
                        set.spawn(async move { rep.download(start, end).await });
                    }
                    while set.join_next().await.is_some() {}
                }));
            }
            return;
        }
        let missing = self.blocks.iter().any(|&i| !self.core.has(i));
        if missing && tokio::runtime::Handle::try_current().is_ok() {
            self.prefetch = Some(tokio::spawn(async move {
                rep.download(first, last + 1).await;
            }));
        }
    }

    /// The next piece of the range, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let Some(&index) = self.blocks.get(self.next) else {
            return Err(BlobError::Corrupt(format!(
                "blob ends {} bytes short",
                self.remaining
            )));
        };
        self.next += 1;
        let mut block = fetch_block(&self.core, self.rep.as_ref(), self.wait, index).await?;
        let skip = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(block.len());
        self.skip = 0;
        if skip > 0 {
            block.drain(..skip);
        }
        let take = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        if block.len() > take {
            block.truncate(take);
        }
        self.remaining -= block.len() as u64;
        Ok(Some(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "hyperblobs-unit-{}-{name}-{}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }

    #[tokio::test]
    async fn put_get_ranges() -> Result<()> {
        let dir = tmp("pgr");
        let core = Hypercore::create(&dir, KeyPair::generate())?;
        let blobs = Hyperblobs::new(core.clone(), None).with_block_size(10);
        let a = blobs.put(b"hello").await?;
        assert_eq!(
            a,
            BlobId {
                block_offset: 0,
                byte_offset: 0,
                block_length: 1,
                byte_length: 5,
                block_map: false
            }
        );
        let data: Vec<u8> = (0..=255u8).cycle().take(95).collect();
        let b = blobs.put_reader(&data[..]).await?;
        assert_eq!(
            (b.block_offset, b.byte_offset, b.block_length, b.byte_length),
            (1, 5, 10, 95)
        );
        let empty = blobs.put(b"").await?;
        assert_eq!(
            (empty.block_offset, empty.block_length, empty.byte_length),
            (11, 0, 0)
        );
        assert_eq!(blobs.get(&a).await?, b"hello");
        assert_eq!(blobs.get(&b).await?, data);
        assert_eq!(blobs.get(&empty).await?, b"");
        for (start, end, length) in [
            (Some(3), None, None),
            (Some(9), Some(10), None),
            (Some(10), None, Some(25)),
            (None, Some(0), None),
            (Some(94), None, Some(100)),
            (Some(200), None, None),
        ] {
            let r = ReadRange { start, end, length };
            let (s, e) = r.bounds(95);
            let got = blobs.read(&b, r).await?;
            assert_eq!(
                got,
                data.get(s as usize..e as usize).unwrap_or_default(),
                "{r:?}"
            );
        }
        let past = BlobId {
            block_offset: 11,
            block_length: 2,
            ..a
        };
        assert!(matches!(
            blobs.get(&past).await,
            Err(BlobError::OutOfBounds { .. })
        ));
        let lying = BlobId {
            byte_length: 50,
            ..a
        };
        assert!(matches!(
            blobs.get(&lying).await,
            Err(BlobError::Corrupt(_))
        ));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn block_maps_decode_and_reject_garbage() {
        assert_eq!(
            decode_block_map(&[0, 2, 5, 3, 7, 4]),
            Ok(vec![(5, 3), (7, 4)])
        );
        assert!(decode_block_map(&[1, 0]).is_err());
        assert!(decode_block_map(&[0, 2, 5]).is_err());
        assert!(decode_block_map(&[0, 0, 9]).is_err());
    }
}

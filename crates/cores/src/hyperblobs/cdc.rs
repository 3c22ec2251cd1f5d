//! Content-defined chunking of blobs ("diffable" writes): a changed file re-uses the blocks its previous
//! version already has in the blobs core, through a hyperblobs 2.12 *block map*.
//!
//! A chunked write cuts the content with FastCDC (2020; [`CDC_MIN`] / [`CDC_AVG`] / [`CDC_MAX`]: 64 / 64 /
//! 256 KiB: at least the 64 KiB blocks JS writes, cut at a content-defined point after that; the gear hash
//! skips each chunk's first 64 KiB, which keeps the cutting cheap: a chunked import of new data runs at
//! ~85% of a plain one, see `benches/drives-cdc.sh`), so
//! boundaries follow the content: an edit or an insertion moves only the chunks around it. Each chunk is one
//! block. With an index of the previous version's blocks ([`ChunkIndex`], BLAKE2b-256 of each block) a chunk
//! already stored is referenced instead of appended (and a chunk repeated inside the file once written).
//!
//! Files of at most [`PLAIN_MAX`] bytes are written in fixed 64 KiB blocks, as `put` does. For bigger ones the
//! result is a plain blob when every chunk was appended in order (a new file, or nothing reused: any
//! reader reads it, its blocks just vary in size), else a block-map blob (`blockMap: true`): the map blocks
//! `{ uint version = 0, array { uint index, uint byteLength } }`, 8192 entries per block as JS writes them,
//! are appended after the new chunks. JS readers (hyperblobs 2.12, hyperdrive 13) read both. A map longer
//! than JS accepts ([`MAX_BLOCK_MAP_BLOCKS`] blocks) is never written: the content is appended again as a
//! plain blob instead (only for files of tens of GiB).

use std::collections::HashMap;

use fastcdc::v2020::FastCDC;

use super::{decode_block_map, BlobError, BlobId, Result, MAX_BLOCK_MAP_BLOCKS};
use crate::compact_encoding::Writer;
use crate::hypercore::Hypercore;

/// Smallest chunk (except a file's last): the gear hash starts after it.
pub const CDC_MIN: u32 = 64 << 10;
/// Average chunk size FastCDC aims at.
pub const CDC_AVG: u32 = 64 << 10;
/// Largest chunk.
pub const CDC_MAX: u32 = 256 << 10;
/// Entries per block-map block (as JS `encodeBlockMap`).
pub const MAP_BLOCK_ENTRIES: usize = 8192;
/// Most entries a block map may have (JS reads at most [`MAX_BLOCK_MAP_BLOCKS`] map blocks).
pub const MAX_MAP_ENTRIES: usize = MAP_BLOCK_ENTRIES * MAX_BLOCK_MAP_BLOCKS as usize;
/// Files up to this size are written as plain 64 KiB-block blobs, as `put` writes them (the same blocks
/// whichever way a file is written; a change rewrites at most this much).
pub const PLAIN_MAX: usize = 1 << 20;
/// Bytes gathered before chunking them (chunks cut before the last one of the buffer are final).
const CUT_BYTES: usize = 4 << 20;
/// Bytes gathered before one append when a too-long map is written again as a plain blob.
const APPEND_BYTES: usize = 4 << 20;

/// A block's content hash.
type Hash = [u8; 32];

fn hash(block: &[u8]) -> Hash {
    let h = blake2b_simd::Params::new().hash_length(32).hash(block);
    let mut out = [0u8; 32];
    out.copy_from_slice(h.as_bytes());
    out
}

/// Encodes a block map in blocks of at most [`MAP_BLOCK_ENTRIES`] entries (JS `blockMap.encode`); no blocks
/// for an empty map.
pub fn encode_block_map(blocks: &[(u64, u64)]) -> Vec<Vec<u8>> {
    blocks
        .chunks(MAP_BLOCK_ENTRIES)
        .map(|part| {
            let mut w = Writer::new();
            w.uint(0).uint(part.len() as u64);
            for &(index, len) in part {
                w.uint(index).uint(len);
            }
            w.into_vec()
        })
        .collect()
}

/// The blocks listed by a blob: its own blocks, or those its block map lists (`None` when a map block is
/// missing here or does not decode, or the map is too large).
pub fn blob_blocks(core: &Hypercore, id: &BlobId) -> Option<Vec<(u64, u64)>> {
    if !id.block_map {
        let end = id.block_end().min(core.length());
        return Some((id.block_offset..end).map(|i| (i, 0)).collect());
    }
    if id.block_length > MAX_BLOCK_MAP_BLOCKS {
        return None;
    }
    let mut out = Vec::new();
    for i in id.block_offset..id.block_end() {
        let block = core.get(i).ok().flatten()?;
        out.extend(decode_block_map(&block).ok()?);
    }
    Some(out)
}

/// Where chunks already in the blobs core are: content hash -> `(block index, byte length)`.
#[derive(Debug, Default, Clone)]
pub struct ChunkIndex {
    map: HashMap<Hash, (u64, u64)>,
}

impl ChunkIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The blocks of `id` (a previous version) that are stored here, read locally (a block that is missing
    /// or unreadable is left out; a broken block map gives an empty index).
    pub fn of_blob(core: &Hypercore, id: &BlobId) -> Self {
        let mut index = Self::new();
        for (i, _) in blob_blocks(core, id).unwrap_or_default() {
            if let Ok(Some(block)) = core.get(i) {
                if !block.is_empty() {
                    index
                        .map
                        .entry(hash(&block))
                        .or_insert((i, block.len() as u64));
                }
            }
        }
        index
    }

    /// Number of distinct chunks.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What a chunked write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkStats {
    /// Chunks of the content.
    pub chunks: u64,
    /// Chunks found in the index (not appended).
    pub reused_chunks: u64,
    /// Bytes of the reused chunks.
    pub reused_bytes: u64,
}

/// The state of a chunked [`BlobWriter`](super::BlobWriter).
#[derive(Debug)]
pub(super) struct Chunker {
    index: Option<ChunkIndex>,
    start_length: u64,
    start_bytes: u64,
    buf: Vec<u8>,
    map: Vec<(u64, u64)>,
    in_order: bool,
    stats: ChunkStats,
    /// Longest map written ([`MAX_MAP_ENTRIES`]; smaller in tests).
    max_entries: usize,
    /// Blocks re-appended by [`append_plain`](Self::append_plain), not yet appended.
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
}

impl Chunker {
    /// Chunks written at the end of `core`; chunks found in `index` are reused (no index: every chunk is
    /// appended and nothing is hashed).
    pub(super) fn new(core: &Hypercore, index: Option<ChunkIndex>) -> Self {
        Self {
            index,
            start_length: core.length(),
            start_bytes: core.byte_length(),
            buf: Vec::new(),
            map: Vec::new(),
            in_order: true,
            stats: ChunkStats::default(),
            max_entries: MAX_MAP_ENTRIES,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    pub(super) fn write(&mut self, core: &Hypercore, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CUT_BYTES {
            self.cut(core, false)?;
        }
        Ok(())
    }

    /// Chunks the buffer and appends its new chunks (one append, straight from the buffer); unless `last`,
    /// the final chunk (cut by the buffer's end) stays buffered.
    fn cut(&mut self, core: &Hypercore, last: bool) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let mut done = 0;
        let mut new: Vec<&[u8]> = Vec::new();
        let first = core.length();
        {
            let mut chunks = FastCDC::new(&buf, CDC_MIN, CDC_AVG, CDC_MAX).peekable();
            while let Some(c) = chunks.next() {
                if !last && chunks.peek().is_none() {
                    break;
                }
                let end = c.offset + c.length;
                let chunk = buf.get(c.offset..end).unwrap_or_default();
                done = end;
                self.stats.chunks += 1;
                let index = first + new.len() as u64;
                let len = chunk.len() as u64;
                if let Some(known) = &mut self.index {
                    let h = hash(chunk);
                    if let Some(&found) = known.map.get(&h) {
                        self.map.push(found);
                        self.in_order = false;
                        self.stats.reused_chunks += 1;
                        self.stats.reused_bytes += found.1;
                        continue;
                    }
                    known.map.insert(h, (index, len));
                }
                self.map.push((index, len));
                new.push(chunk);
            }
        }
        if !new.is_empty() {
            core.append(&new)?;
        }
        drop(new);
        self.buf = buf;
        self.buf.drain(..done);
        Ok(())
    }

    fn flush(&mut self, core: &Hypercore) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
        core.append(&refs)?;
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Appends what is left (and the block map, when one is needed) and returns the blob's id.
    pub(super) fn finish(
        mut self,
        core: &Hypercore,
        block_size: usize,
    ) -> Result<(BlobId, ChunkStats)> {
        if self.stats.chunks == 0 && self.buf.len() <= PLAIN_MAX {
            // Small: fixed blocks, nothing reused.
            let blocks: Vec<&[u8]> = self.buf.chunks(block_size.max(1)).collect();
            core.append(&blocks)?;
            let id = BlobId {
                block_offset: self.start_length,
                byte_offset: self.start_bytes,
                block_length: core.length() - self.start_length,
                byte_length: core.byte_length() - self.start_bytes,
                block_map: false,
            };
            return Ok((id, self.stats));
        }
        self.cut(core, true)?;
        let stats = self.stats;
        self.finish_id(core).map(|id| (id, stats))
    }

    fn finish_id(&mut self, core: &Hypercore) -> Result<BlobId> {
        if self.in_order {
            return Ok(BlobId {
                block_offset: self.start_length,
                byte_offset: self.start_bytes,
                block_length: core.length() - self.start_length,
                byte_length: core.byte_length() - self.start_bytes,
                block_map: false,
            });
        }
        if self.map.len() > self.max_entries {
            return self.append_plain(core);
        }
        let blocks = encode_block_map(&self.map);
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let block_offset = core.length();
        let byte_offset = core.byte_length();
        core.append(&refs)?;
        Ok(BlobId {
            block_offset,
            byte_offset,
            block_length: core.length() - block_offset,
            byte_length: core.byte_length() - byte_offset,
            block_map: true,
        })
    }

    /// A map too long for JS: the content again, as a plain blob (read back from the core).
    fn append_plain(&mut self, core: &Hypercore) -> Result<BlobId> {
        let block_offset = core.length();
        let byte_offset = core.byte_length();
        let map = std::mem::take(&mut self.map);
        for &(i, len) in &map {
            let block = core.get(i)?.ok_or(BlobError::BlockNotAvailable(i))?;
            if block.len() as u64 != len {
                return Err(BlobError::Corrupt(format!("block {i} changed size")));
            }
            self.pending_bytes += block.len();
            self.pending.push(block);
            if self.pending_bytes >= APPEND_BYTES {
                self.flush(core)?;
            }
        }
        self.flush(core)?;
        Ok(BlobId {
            block_offset,
            byte_offset,
            block_length: core.length() - block_offset,
            byte_length: core.byte_length() - byte_offset,
            block_map: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hyperblobs, ReadRange};
    use super::*;
    use crate::crypto::KeyPair;
    use proptest::prelude::*;

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    async fn write(blobs: &Hyperblobs, prev: Option<&BlobId>, data: &[u8]) -> (BlobId, ChunkStats) {
        let mut w = blobs.chunked_writer(prev).await;
        // Odd write sizes: boundaries must not depend on them.
        for part in data.chunks(1_000_003) {
            w.write(part).expect("write");
        }
        let (id, stats) = w.finish_with_stats().expect("finish");
        (id, stats.expect("chunked"))
    }

    #[tokio::test]
    async fn changed_files_reuse_the_previous_chunks() {
        let dir = testkit::scratch_dir("cdc-reuse");
        let core = Hypercore::create(&dir, KeyPair::generate()).expect("core");
        let blobs = Hyperblobs::new(core.clone(), None);
        let v1 = noise(12 << 20, 7);
        let (id1, s1) = write(&blobs, None, &v1).await;
        assert!(!id1.block_map, "a new file is a plain blob");
        assert_eq!(id1.byte_length, v1.len() as u64);
        assert_eq!(s1.reused_chunks, 0);
        assert!(id1.block_length > 12 * 4, "{} chunks", id1.block_length);
        assert_eq!(blobs.get(&id1).await.expect("get"), v1);

        // 1 MiB changed in the middle.
        let mut v2 = v1.clone();
        v2[6 << 20..7 << 20].copy_from_slice(&noise(1 << 20, 9));
        let before = core.byte_length();
        let (id2, s2) = write(&blobs, Some(&id1), &v2).await;
        assert!(id2.block_map);
        let appended = core.byte_length() - before;
        assert!(appended < 2 << 20, "appended {appended}");
        assert_eq!(
            s2.reused_bytes + appended - id2.byte_length,
            v2.len() as u64
        );
        assert_eq!(blobs.get(&id2).await.expect("get"), v2);
        assert_eq!(blobs.byte_size(&id2).await.expect("size"), v2.len() as u64);
        let r = ReadRange {
            start: Some(5 << 20),
            end: None,
            length: Some(3 << 20),
        };
        assert_eq!(
            blobs.read(&id2, r).await.expect("range"),
            v2[5 << 20..8 << 20]
        );

        // 1 MiB inserted at the start of the block-mapped version.
        let mut v3 = noise(1 << 20, 11);
        v3.extend_from_slice(&v2);
        let before = core.byte_length();
        let (id3, _) = write(&blobs, Some(&id2), &v3).await;
        let appended = core.byte_length() - before;
        assert!(appended < 2 << 20, "appended {appended}");
        assert_eq!(blobs.get(&id3).await.expect("get"), v3);

        // The same content again: nothing but the map.
        let before = core.byte_length();
        let (id4, s4) = write(&blobs, Some(&id3), &v3).await;
        assert_eq!(s4.reused_chunks, s4.chunks);
        assert_eq!(core.byte_length() - before, id4.byte_length);
        assert_eq!(blobs.get(&id4).await.expect("get"), v3);
    }

    #[tokio::test]
    async fn empty_repeated_and_oversized_maps() {
        let dir = testkit::scratch_dir("cdc-edge");
        let core = Hypercore::create(&dir, KeyPair::generate()).expect("core");
        let blobs = Hyperblobs::new(core.clone(), None);
        let (empty, _) = write(&blobs, None, b"").await;
        assert_eq!((empty.block_length, empty.block_map), (0, false));
        assert_eq!(blobs.get(&empty).await.expect("get"), b"");
        let (small, _) = write(&blobs, Some(&empty), b"tiny").await;
        assert!(!small.block_map);
        assert_eq!(blobs.get(&small).await.expect("get"), b"tiny");
        // Up to PLAIN_MAX: 64 KiB blocks, as `put` writes them.
        let mib = noise(PLAIN_MAX, 5);
        let (fixed, _) = write(&blobs, Some(&small), &mib).await;
        assert_eq!((fixed.block_length, fixed.block_map), (16, false));
        assert_eq!(blobs.get(&fixed).await.expect("get"), mib);

        // A chunk repeated inside a file (with an index) is stored once.
        let unit = noise(300 << 10, 3);
        let data: Vec<u8> = unit.iter().cycle().take(unit.len() * 8).copied().collect();
        let before = core.byte_length();
        let (rep, stats) = write(&blobs, Some(&small), &data).await;
        assert!(stats.reused_chunks > 0, "{stats:?}");
        assert!(core.byte_length() - before < data.len() as u64 / 2);
        assert_eq!(blobs.get(&rep).await.expect("get"), data);

        // A map longer than readers accept: the content is appended again as a plain blob.
        let mut w = blobs.chunked_writer(Some(&rep)).await;
        if let Some(c) = &mut w.chunker {
            c.max_entries = 3;
        }
        w.write(&data).expect("write");
        let plain = w.finish().expect("finish");
        assert!(!plain.block_map);
        assert_eq!(plain.byte_length, data.len() as u64);
        assert_eq!(blobs.get(&plain).await.expect("get"), data);
    }

    #[test]
    fn maps_encode_in_blocks_of_8192_entries() {
        let list: Vec<(u64, u64)> = (0..20_000u64).map(|i| (i * 3, 65_536 + i)).collect();
        let blocks = encode_block_map(&list);
        assert_eq!(blocks.len(), 3);
        let mut back = Vec::new();
        for b in &blocks {
            back.extend(decode_block_map(b).expect("decode"));
        }
        assert_eq!(back, list);
        assert!(encode_block_map(&[]).is_empty());
        // JS `blockMap.encode({ blocks: [{ index: 5, byteLength: 3 }, { index: 300, byteLength: 70000 }] })`.
        assert_eq!(
            encode_block_map(&[(5, 3), (300, 70_000)]),
            vec![vec![
                0, 2, 5, 3, 0xfd, 0x2c, 0x01, 0xfe, 0x70, 0x11, 0x01, 0x00
            ]]
        );
    }

    proptest! {
        #[test]
        fn block_map_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(list) = decode_block_map(&bytes) {
                let again: Vec<(u64, u64)> = encode_block_map(&list)
                    .iter()
                    .flat_map(|b| decode_block_map(b).unwrap_or_default())
                    .collect();
                prop_assert_eq!(again, list);
            }
        }
    }
}

//! A checkpoint of a native core's in-memory index (file `index` beside `log`), so opening a large core reads
//! the index instead of replaying its whole log.
//!
//! The log stays the only record of the core: the checkpoint is a cache of what replaying its first `end` bytes
//! gives (block locations, tree node offsets, the signed head, the truncations), tied to those bytes by a
//! [`LogMark`] (the last record's frame start and the CRC-32 of its header, which holds that record's
//! checksum). On open, a checkpoint whose mark the log still holds is loaded and only the records after it are
//! replayed; a missing, damaged or stale one (a log cut back or rewritten since, another core's file) is ignored
//! and the whole log replayed as before. It is written after an open that replayed many bytes, with a
//! temporary file and a rename, not synced: a torn one fails its checksum and is ignored.
//!
//! ```text
//! "HCX1"
//! uint64 end, uint64 last_start, uint32 last_header_crc       the LogMark
//! uint64 fork, uint64 length, uint32 signature length (0xffffffff: none), signature bytes
//! uint64 n, n * (uint64 fork, uint64 length)                   truncations
//! blocks: uint64 pages, per page uint64 number, 4 * uint64 presence, 256 * (uint64 offset, uint32 length)
//! nodes:  uint64 pages, per page uint64 number, 4 * uint64 presence, 256 * uint64 log offset
//! uint32 CRC-32 of everything before
//! ```
//!
//! Older versions of this implementation do not know the file and leave it alone; what they append after the
//! mark is replayed on the next open, and a log they cut back no longer holds the mark.

use std::io;
use std::path::Path;

use crate::compact_encoding::{DecodeError, Reader, Writer};

use super::index::PagedMap;
use super::storage::{Head, LogMark};
use super::BlockLoc;

const MAGIC: &[u8; 4] = b"HCX1";

/// The file name, in the core's directory.
pub const FILE: &str = "index";

/// Opens that replayed at least this many bytes of log write a checkpoint.
pub(crate) const WRITE_AFTER: u64 = 4 << 20;

/// What a checkpoint holds.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    pub(crate) mark: LogMark,
    pub(crate) head: Head,
    pub(crate) truncations: Vec<(u64, u64)>,
    pub(crate) blocks: PagedMap<BlockLoc>,
    pub(crate) nodes: PagedMap<u64>,
}

/// Encodes a checkpoint.
pub(crate) fn encode(
    mark: &LogMark,
    head: &Head,
    truncations: &[(u64, u64)],
    blocks: &PagedMap<BlockLoc>,
    nodes: &PagedMap<u64>,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(MAGIC)
        .uint64(mark.end)
        .uint64(mark.last_start)
        .uint32(mark.last_header_crc)
        .uint64(head.fork)
        .uint64(head.length);
    match &head.signature {
        Some(sig) => {
            w.uint32(u32::try_from(sig.len()).unwrap_or(0)).bytes(sig);
        }
        None => {
            w.uint32(u32::MAX);
        }
    }
    w.uint64(truncations.len() as u64);
    for (fork, len) in truncations {
        w.uint64(*fork).uint64(*len);
    }
    blocks.encode_with(&mut w, |w, b| {
        w.uint64(b.offset).uint32(b.len);
    });
    nodes.encode_with(&mut w, |w, o| {
        w.uint64(*o);
    });
    seal(w.into_vec())
}

/// `body` followed by its CRC-32, as a checkpoint file ends (for tests and the fuzz target: any body then
/// reaches the decoder).
pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Decodes a checkpoint (untrusted bytes: a damaged file is an error, never a panic).
pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    let split = bytes
        .len()
        .checked_sub(4)
        .ok_or(DecodeError::Invalid("checkpoint too short"))?;
    let (body, crc) = bytes.split_at(split);
    let mut c = [0u8; 4];
    c.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(c) {
        return Err(DecodeError::Invalid("checkpoint checksum"));
    }
    let mut r = Reader::new(body);
    if r.fixed::<4>()? != *MAGIC {
        return Err(DecodeError::Invalid("checkpoint magic"));
    }
    let mark = LogMark {
        end: r.uint64()?,
        last_start: r.uint64()?,
        last_header_crc: r.uint32()?,
    };
    let fork = r.uint64()?;
    let length = r.uint64()?;
    let signature = match r.uint32()? {
        u32::MAX => None,
        n => Some(r.bytes(n as usize)?.to_vec()),
    };
    let n = r.uint64()?;
    if n.saturating_mul(16) > r.remaining() as u64 {
        return Err(DecodeError::Invalid("checkpoint truncations"));
    }
    let mut truncations = Vec::with_capacity(n as usize);
    for _ in 0..n {
        truncations.push((r.uint64()?, r.uint64()?));
    }
    let blocks = PagedMap::decode_with(&mut r, 12, |r| {
        Ok(BlockLoc {
            offset: r.uint64()?,
            len: r.uint32()?,
        })
    })?;
    let nodes = PagedMap::decode_with(&mut r, 8, |r| r.uint64())?;
    r.finish()?;
    Ok(Checkpoint {
        mark,
        head: Head {
            fork,
            length,
            signature,
        },
        truncations,
        blocks,
        nodes,
    })
}

/// Decodes checkpoint bytes, keeping nothing: what the fuzz target and the decode-doesn't-panic test call.
pub fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
    decode(bytes).map(|_| ())
}

/// The checkpoint in `dir`, if there is a readable one.
pub(crate) fn load(dir: &Path) -> Option<Checkpoint> {
    let bytes = std::fs::read(dir.join(FILE)).ok()?;
    match decode(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "hypercore index checkpoint ignored: {e}");
            None
        }
    }
}

/// Writes `bytes` as the checkpoint in `dir` (temporary file, then rename; not synced).
pub(crate) fn save(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Removes the checkpoint in `dir` (a core created anew over a stale one).
pub(crate) fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut blocks = PagedMap::default();
        let mut nodes = PagedMap::default();
        for i in 0..700u64 {
            blocks.insert(
                i,
                BlockLoc {
                    offset: i * 100,
                    len: 90,
                },
            );
            nodes.insert(2 * i, i * 100 + 5);
        }
        nodes.insert(u64::MAX - 3, 7);
        encode(
            &LogMark {
                end: 70_000,
                last_start: 69_000,
                last_header_crc: 0xdead_beef,
            },
            &Head {
                fork: 2,
                length: 700,
                signature: Some(vec![5; 64]),
            },
            &[(1, 3), (2, 9)],
            &blocks,
            &nodes,
        )
    }

    #[test]
    fn round_trips() {
        let c = decode(&sample()).expect("decode");
        assert_eq!(c.mark.end, 70_000);
        assert_eq!(c.head.length, 700);
        assert_eq!(c.head.signature, Some(vec![5; 64]));
        assert_eq!(c.truncations, vec![(1, 3), (2, 9)]);
        assert_eq!(c.blocks.len(), 700);
        assert_eq!(c.blocks.get(699).map(|b| b.offset), Some(69_900));
        assert_eq!(c.nodes.len(), 701);
        assert_eq!(c.nodes.get(u64::MAX - 3), Some(7));
    }

    #[test]
    fn damaged_or_cut_checkpoints_are_errors_not_panics() {
        let good = sample();
        for cut in (0..good.len()).step_by(97) {
            assert!(decode(&good[..cut]).is_err());
        }
        for i in (0..good.len()).step_by(89) {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flipped byte {i} accepted");
        }
    }
}

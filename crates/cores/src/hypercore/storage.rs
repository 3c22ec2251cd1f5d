//! Crash-safe storage for a hypercore: one append-only log of checksummed records plus a write-once
//! metadata file. See `STORAGE.md` next to this file for the design and the measurements behind it.
//!
//! Every state change (an append batch, a truncation, a verified proof) is one [`Record`] written with a
//! single `pwrite` at the end of the log and made durable with `fdatasync` before the call returns. On open
//! the log is replayed; the first record whose frame or checksum is wrong (a write torn by a crash) ends the
//! log, and the file is cut back there, so a reader never sees half a batch.
//!
//! Frames come in two versions: `HCL2` (written now) carries a CRC-32 of the payload, `HCL1` (written before)
//! the first 16 bytes of its BLAKE2b-256. Both are read, so older stores keep opening; a log may mix them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::compact_encoding::{DecodeError, Encode, Reader, Writer};
use crate::crypto::{hash, TreeNode};

/// Frame magic of version 1 (BLAKE2b checksum, read only).
const MAGIC_V1: [u8; 4] = *b"HCL1";
/// Frame magic of version 2 (CRC-32 checksum, written).
const MAGIC_V2: [u8; 4] = *b"HCL2";
/// Version 1 frame header: magic, payload length (u32 LE), 16-byte BLAKE2b-256 prefix of the payload.
pub const FRAME_HEADER_V1: usize = 4 + 4 + 16;
/// Version 2 frame header (the one written): magic, payload length (u32 LE), CRC-32 (IEEE, u32 LE) of the
/// length bytes and the payload.
pub const FRAME_HEADER: usize = 4 + 4 + 4;
/// The longest frame header of any version.
pub const MAX_FRAME_HEADER: usize = FRAME_HEADER_V1;
/// Largest record payload (a batch's blocks must fit in it).
pub const MAX_RECORD: usize = 1 << 30;

const FLAG_TRUNCATE: u64 = 1;
const FLAG_HEAD: u64 = 2;
/// Bit 2: the record clears (drops the stored blocks of) a range, see [`Clear`].
const FLAG_CLEAR: u64 = 4;

/// A cleared range of blocks (`core.clear(start, end)`), logged as a record of its own:
///
/// ```text
/// uint flags = 4, uint start, uint end, array(uint offset, uint length) punched, array() nodes, array() blocks
/// ```
///
/// `punched` lists the byte ranges of the log (the cleared blocks' bytes) that were then deallocated with
/// `fallocate(PUNCH_HOLE)`: the records holding them no longer match their checksums, and replay accepts such a
/// record only when a later clear record names a hole inside it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clear {
    /// First cleared block.
    pub start: u64,
    /// End (exclusive) of the cleared blocks.
    pub end: u64,
    /// Log byte ranges (offset, length) punched out after the record was durable.
    pub punched: Vec<(u64, u64)>,
}

impl Encode for Clear {
    fn encode(&self, w: &mut Writer) {
        w.uint(FLAG_CLEAR).uint(self.start).uint(self.end);
        w.array(&self.punched, |w, (o, l)| {
            w.uint(*o).uint(*l);
        });
        w.uint(0).uint(0);
    }
}

/// The signed head of the tree after a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Fork id.
    pub fork: u64,
    /// Length.
    pub length: u64,
    /// Signature (verifier-specific form).
    pub signature: Option<Vec<u8>>,
}

/// One atomic change to the core, as logged. Blocks are borrowed: an append writes them straight from the
/// caller's slices into the frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record<'a> {
    /// Drop every block and tree node at or after this length first.
    pub truncate: Option<u64>,
    /// The new signed head, if it changed.
    pub head: Option<Head>,
    /// Tree nodes to add.
    pub nodes: Vec<TreeNode>,
    /// Blocks to add: (index, bytes).
    pub blocks: Vec<(u64, &'a [u8])>,
}

impl Encode for Record<'_> {
    fn encode(&self, w: &mut Writer) {
        self.encode_without_blocks(w, None);
        w.array(&self.blocks, |w, (i, b)| {
            w.uint(*i).buffer(b);
        });
    }
}

impl Record<'_> {
    /// Everything but the block array; notes where each node's entry starts in `node_at`.
    fn encode_without_blocks(&self, w: &mut Writer, mut node_at: Option<&mut Vec<usize>>) {
        let flags = if self.truncate.is_some() {
            FLAG_TRUNCATE
        } else {
            0
        } | if self.head.is_some() { FLAG_HEAD } else { 0 };
        w.uint(flags);
        if let Some(t) = self.truncate {
            w.uint(t);
        }
        if let Some(h) = &self.head {
            w.uint(h.fork)
                .uint(h.length)
                .optional_buffer(h.signature.as_deref());
        }
        w.uint(self.nodes.len() as u64);
        for n in &self.nodes {
            if let Some(at) = node_at.as_deref_mut() {
                at.push(w.len());
            }
            w.uint(n.index).uint(n.size).fixed32(&n.hash);
        }
    }
}

/// A record as read back: blocks are located in the log instead of copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordView {
    /// See [`Record::truncate`].
    pub truncate: Option<u64>,
    /// See [`Record::head`].
    pub head: Option<Head>,
    /// See [`Record::nodes`].
    pub nodes: Vec<TreeNode>,
    /// Offset of each node's entry within the payload (same order as `nodes`).
    pub node_offsets: Vec<usize>,
    /// (index, offset of the bytes within the payload, length).
    pub blocks: Vec<(u64, usize, usize)>,
    /// A cleared range (applied after the truncation and before the nodes and blocks).
    pub clear: Option<Clear>,
}

impl RecordView {
    /// Decodes a record payload (untrusted bytes: a damaged log must not crash the reader).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let flags = r.uint()?;
        if flags & !(FLAG_TRUNCATE | FLAG_HEAD | FLAG_CLEAR) != 0 {
            return Err(DecodeError::Invalid("record flags"));
        }
        let truncate = if flags & FLAG_TRUNCATE != 0 {
            Some(r.uint()?)
        } else {
            None
        };
        let head = if flags & FLAG_HEAD != 0 {
            Some(Head {
                fork: r.uint()?,
                length: r.uint()?,
                signature: r.optional_buffer()?.map(<[u8]>::to_vec),
            })
        } else {
            None
        };
        let clear = if flags & FLAG_CLEAR != 0 {
            let (start, end) = (r.uint()?, r.uint()?);
            if start > end {
                return Err(DecodeError::Invalid("clear range"));
            }
            let punched = r.array(|r| Ok((r.uint()?, r.uint()?)))?;
            Some(Clear {
                start,
                end,
                punched,
            })
        } else {
            None
        };
        let mut node_offsets = Vec::new();
        let nodes = r.array(|r| {
            node_offsets.push(r.position());
            Ok(TreeNode {
                index: r.uint()?,
                size: r.uint()?,
                hash: r.fixed32()?,
            })
        })?;
        let blocks = r.array(|r| {
            let index = r.uint()?;
            let len = r.buffer()?.len();
            Ok((index, r.position() - len, len))
        })?;
        r.finish()?;
        Ok(Self {
            truncate,
            head,
            nodes,
            node_offsets,
            blocks,
            clear,
        })
    }
}

/// A frame's checksum, by frame version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// `HCL1`: the first 16 bytes of BLAKE2b-256 of the payload.
    Blake2b([u8; 16]),
    /// `HCL2`: CRC-32 (IEEE) of the payload length (u32 LE) then the payload.
    Crc32(u32),
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes in the header (the payload follows).
    pub header_len: usize,
    /// Payload length.
    pub len: usize,
    /// The payload's checksum.
    pub checksum: Checksum,
}

impl FrameHeader {
    /// True when `payload` matches the checksum.
    pub fn verify(&self, payload: &[u8]) -> bool {
        match self.checksum {
            Checksum::Blake2b(sum) => blake2b_prefix(payload) == sum,
            Checksum::Crc32(sum) => crc32(payload) == Some(sum),
        }
    }
}

fn blake2b_prefix(payload: &[u8]) -> [u8; 16] {
    let h = hash(&[payload]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// CRC-32 of the payload's length (u32 LE) and the payload; None when too long for a frame.
fn crc32(payload: &[u8]) -> Option<u32> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    Some(h.finalize())
}

/// The (version 2) frame header of a payload: magic, length, checksum.
fn header(payload: &[u8]) -> io::Result<[u8; FRAME_HEADER]> {
    let too_large = || io::Error::new(ErrorKind::InvalidInput, "record too large");
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_RECORD)
        .ok_or_else(too_large)?;
    let sum = crc32(payload).ok_or_else(too_large)?;
    Ok(header_with(len, sum))
}

/// A version 2 frame header with the given payload length and CRC.
fn header_with(len: u32, sum: u32) -> [u8; FRAME_HEADER] {
    let mut out = [0u8; FRAME_HEADER];
    out[..4].copy_from_slice(&MAGIC_V2);
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out[8..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// A piece of a record payload: a range of its encoded part, or a block written from the caller's memory.
type Piece<'a> = std::result::Result<std::ops::Range<usize>, &'a [u8]>;

/// The bytes of a piece.
fn piece_bytes<'a>(encoded: &'a [u8], p: &Piece<'a>) -> &'a [u8] {
    match p {
        Ok(r) => encoded.get(r.clone()).unwrap_or_default(),
        Err(b) => b,
    }
}

/// Blocks shorter than this are copied into the encoded part of a record; longer ones are written from the
/// caller's memory (an iovec each).
const INLINE_BLOCK: usize = 4096;

/// Most iovecs one `pwritev` takes (`IOV_MAX` on Linux).
const MAX_IOVECS: usize = 1024;

/// `pwritev` of all of `bufs` at `offset`, over as many calls as short writes and `IOV_MAX` need.
fn write_all_vectored_at(
    file: &File,
    mut bufs: &mut [io::IoSlice<'_>],
    mut offset: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !bufs.is_empty() {
        let count = bufs.len().min(MAX_IOVECS);
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "log offset too large"))?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on unix (std guarantees it), the `count` slices
        // are valid for reads for the duration of the call, and the descriptor is open (owned by `file`).
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                off,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let n = n as usize;
        offset += n as u64;
        io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Frames a payload: header then payload.
pub fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&header(payload)?);
    out.extend_from_slice(payload);
    Ok(out)
}

/// The header length of a frame starting with `magic`, or None if it is not a frame.
pub fn header_len(magic: &[u8]) -> Option<usize> {
    match magic.get(..4)? {
        m if m == MAGIC_V2 => Some(FRAME_HEADER),
        m if m == MAGIC_V1 => Some(FRAME_HEADER_V1),
        _ => None,
    }
}

/// Parses the frame header at the start of `bytes` (of either version; more bytes may follow), or None if it is
/// not a whole frame header.
pub fn parse_header(bytes: &[u8]) -> Option<FrameHeader> {
    let header_len = header_len(bytes)?;
    let mut r = Reader::new(bytes.get(4..header_len)?);
    let len = r.uint32().ok()? as usize;
    if len > MAX_RECORD {
        return None;
    }
    let checksum = if header_len == FRAME_HEADER {
        Checksum::Crc32(r.uint32().ok()?)
    } else {
        Checksum::Blake2b(r.fixed::<16>().ok()?)
    };
    Some(FrameHeader {
        header_len,
        len,
        checksum,
    })
}

/// When an append is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fdatasync` before returning: the record survives a crash of the process and of the machine.
    #[default]
    Sync,
    /// Written to the OS before returning, not synced: survives a crash (even `kill -9`) of the process but not
    /// a power loss; what JS hypercore's RocksDB writes (`sync: false`) guarantee.
    Process,
}

/// The append-only record log.
#[derive(Debug)]
pub struct Log {
    file: File,
    end: u64,
    durability: Durability,
    /// The last record's frame start and the CRC-32 of its frame header (for [`Log::mark`]).
    last: Option<(u64, u32)>,
}

/// A point in a log as it was: its length and the last record's frame (start, CRC-32 of its header bytes, which
/// hold the record's own checksum). A log that still has that frame there holds the same records up to `end`
/// (records are only ever added after it or cut away), so an index of them stays good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogMark {
    /// Bytes of the log covered.
    pub end: u64,
    /// Frame start of the last record.
    pub last_start: u64,
    /// CRC-32 of that frame's header.
    pub last_header_crc: u32,
}

/// Reads a [`Log`] without its writer's lock ([`Log::reader`]).
#[derive(Debug)]
pub struct LogReader {
    file: File,
}

impl LogReader {
    /// A reader over any file (a hypercore 10 core's `data`).
    pub(crate) fn from_file(file: File) -> Self {
        Self { file }
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        read_at(&self.file, offset, len)
    }

    /// Reads at most `max` bytes at `offset` (fewer at the end of the file).
    pub fn read_up_to(&self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max];
        let mut got = 0;
        while got < max {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }
}

fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Where an appended record's blocks and tree nodes landed in the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appended {
    /// (index, file offset, length) of each block, in record order.
    pub blocks: Vec<(u64, u64, usize)>,
    /// File offset of each tree node's entry (`uint index, uint size, fixed32 hash`), in record order.
    pub nodes: Vec<u64>,
}

/// A record found while replaying the log, with the log offset its payload starts at.
#[derive(Debug)]
pub struct Replayed {
    /// Offset of the payload in the log file.
    pub payload_offset: u64,
    /// The record.
    pub record: RecordView,
}

impl Log {
    /// Opens (creating if missing) the log at `path`, returning every whole record. A torn or damaged tail is
    /// cut off.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Replayed>)> {
        let mut records = Vec::new();
        let log = Self::open_with(path, &mut |event| match event {
            Replay::Reset => records.clear(),
            Replay::Record(r) => records.push(r),
        })?;
        Ok((log, records))
    }

    /// Opens (creating if missing) the log at `path`, handing every whole record to `apply` in order as it is
    /// read, so a large log is never held in memory. A torn or damaged tail is cut off. When damage is only found
    /// after records past it were handed over (a record that fails its checksum is accepted only if a later clear
    /// record explains it), `apply` gets [`Replay::Reset`] and the records up to the cut again.
    pub fn open_with(path: &Path, apply: &mut dyn FnMut(Replay)) -> io::Result<Self> {
        Self::open_from(path, None, apply).map(|(log, _)| log)
    }

    /// [`open_with`](Self::open_with), replaying only the records after `resume` when the log still holds
    /// the records it marks (else [`Replay::Reset`] first, then everything). Returns the log and how many of its
    /// bytes were replayed.
    pub fn open_from(
        path: &Path,
        resume: Option<LogMark>,
        apply: &mut dyn FnMut(Replay),
    ) -> io::Result<(Self, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        lock_exclusive(&file)?;
        let size = file.metadata()?.len();
        let resumed = resume.filter(|m| mark_holds(&file, size, m));
        if resume.is_some() && resumed.is_none() {
            apply(Replay::Reset);
        }
        let from = resumed.map_or((0, None), |m| {
            (m.end, Some((m.last_start, m.last_header_crc)))
        });
        let scanned = scan(&file, size, from, None, apply)?;
        let (pos, last) = match scanned.cut {
            Some(cut) => {
                apply(Replay::Reset);
                let again = scan(&file, size, (0, None), Some(cut), apply)?;
                (cut, again.last)
            }
            None => (scanned.end, scanned.last),
        };
        if pos < size {
            tracing::warn!(
                path = %path.display(),
                valid = pos,
                size,
                "hypercore log has a torn tail; cutting it off"
            );
            file.set_len(pos)?;
            file.sync_all()?;
        }
        Ok((
            Self {
                file,
                end: pos,
                durability: Durability::Sync,
                last,
            },
            pos - from.0.min(pos),
        ))
    }

    /// Where the log is now (None while it holds no record).
    pub fn mark(&self) -> Option<LogMark> {
        self.last.map(|(last_start, last_header_crc)| LogMark {
            end: self.end,
            last_start,
            last_header_crc,
        })
    }

    /// Appends a record durably; returns where each of its blocks landed in the log, in record order, as
    /// (index, file offset, length).
    ///
    /// The frame goes out in one `pwritev` of pieces: the header, the record's fields with each block's index
    /// and length (and small blocks) encoded into one buffer, and the large blocks straight from the caller's
    /// slices, so block data is not copied on its way to the kernel.
    pub fn append(&mut self, record: &Record) -> io::Result<Vec<(u64, u64, usize)>> {
        self.append_located(record).map(|a| a.blocks)
    }

    /// [`append`](Self::append), also returning the log offset of each of the record's tree nodes.
    pub fn append_located(&mut self, record: &Record) -> io::Result<Appended> {
        let mut w = Writer::from_vec(Vec::with_capacity(
            64 + record.nodes.len() * 50 + record.blocks.len() * 16,
        ));
        let mut node_at = Vec::with_capacity(record.nodes.len());
        record.encode_without_blocks(&mut w, Some(&mut node_at));
        w.uint(record.blocks.len() as u64);
        // Pieces of the payload, in order: `Ok(range)` of the encoded buffer or `Err(block)` borrowed.
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        let mut located = Vec::with_capacity(record.blocks.len());
        let (mut seg_start, mut borrowed) = (0usize, 0usize);
        for (i, b) in &record.blocks {
            w.uint(*i).uint(b.len() as u64);
            located.push((*i, w.len() + borrowed, b.len()));
            if b.len() < INLINE_BLOCK {
                w.bytes(b);
            } else {
                pieces.push(Ok(seg_start..w.len()));
                pieces.push(Err(b));
                seg_start = w.len();
                borrowed += b.len();
            }
        }
        pieces.push(Ok(seg_start..w.len()));
        let encoded = w.into_vec();
        let piece = |p| piece_bytes(&encoded, p);
        let payload_len = encoded.len() + borrowed;
        let too_large = || io::Error::new(ErrorKind::InvalidInput, "record too large");
        let len = u32::try_from(payload_len)
            .ok()
            .filter(|l| (*l as usize) <= MAX_RECORD)
            .ok_or_else(too_large)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len.to_le_bytes());
        for p in &pieces {
            crc.update(piece(p));
        }
        let head = header_with(len, crc.finalize());
        let frame_start = self.end;
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(pieces.len() + 1);
        slices.push(io::IoSlice::new(&head));
        slices.extend(
            pieces
                .iter()
                .map(piece)
                .filter(|p| !p.is_empty())
                .map(io::IoSlice::new),
        );
        write_all_vectored_at(&self.file, &mut slices, self.end)?;
        if self.durability == Durability::Sync {
            self.file.sync_data()?;
        }
        let base = self.end + FRAME_HEADER as u64;
        self.end = base + payload_len as u64;
        self.last = Some((frame_start, crc32fast::hash(&head)));
        Ok(Appended {
            blocks: located
                .into_iter()
                .map(|(i, off, len)| (i, base + off as u64, len))
                .collect(),
            nodes: node_at.into_iter().map(|off| base + off as u64).collect(),
        })
    }

    /// Appends a clear record, always synced (its holes are punched only once it is durable, so a crash in
    /// between leaves whole records), then punches `clear.punched` out of the log (best effort: a file system
    /// without hole punching keeps the bytes). Returns the bytes punched.
    pub fn append_clear(&mut self, clear: &Clear) -> io::Result<u64> {
        let framed = frame(&clear.to_bytes())?;
        self.file.write_all_at(&framed, self.end)?;
        self.file.sync_data()?;
        self.last = Some((
            self.end,
            crc32fast::hash(framed.get(..FRAME_HEADER).unwrap_or_default()),
        ));
        self.end += framed.len() as u64;
        let mut freed = 0;
        for &(offset, len) in &clear.punched {
            if offset.saturating_add(len) > self.end || !punch_hole(&self.file, offset, len) {
                break;
            }
            freed += len;
        }
        Ok(freed)
    }

    /// Puts every record written so far on disk (`fdatasync`), whatever the durability.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Sets when appends are durable.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        read_at(&self.file, offset, len)
    }

    /// A handle that reads the log while appends go on (appends only write past what was written before).
    pub fn reader(&self) -> io::Result<LogReader> {
        Ok(LogReader {
            file: self.file.try_clone()?,
        })
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// True when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }
}

/// What [`Log::open_with`] hands over while replaying.
#[derive(Debug)]
pub enum Replay {
    /// Forget every record handed over so far (they are handed over again, up to a cut).
    Reset,
    /// The next whole record.
    Record(Replayed),
}

/// What a replay pass found.
struct Scanned {
    /// End of the last record read.
    end: u64,
    /// The last record's frame start and header CRC.
    last: Option<(u64, u32)>,
    /// Where the log must be cut (the frame start of the first record that failed its checksum unexplained).
    cut: Option<u64>,
}

/// What the cut decision needs of a record read after the first one that failed its checksum.
struct Meta {
    start: u64,
    payload_offset: u64,
    verified: bool,
    punched: Vec<(u64, u64)>,
}

/// Reads the records of `file` (of `size` bytes) from the start, up to `limit` when given, handing each to
/// `apply`. Without a limit, also decides where the log must be cut.
fn scan(
    file: &File,
    size: u64,
    (start, mut last): (u64, Option<(u64, u32)>),
    limit: Option<u64>,
    apply: &mut dyn FnMut(Replay),
) -> io::Result<Scanned> {
    let size = limit.map_or(size, |l| l.min(size));
    let mut from_start = file;
    from_start.seek(io::SeekFrom::Start(start))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, from_start);
    let mut pos = start.min(size);
    let mut header = [0u8; MAX_FRAME_HEADER];
    let mut payload = Vec::new();
    // From the first record whose checksum failed on: what deciding the cut takes.
    let mut metas: Vec<Meta> = Vec::new();
    loop {
        if size - pos < 4 {
            break;
        }
        let (magic, rest) = header.split_at_mut(4);
        reader.read_exact(magic)?;
        let Some(hlen) = header_len(magic) else {
            break;
        };
        if size - pos < hlen as u64 {
            break;
        }
        reader.read_exact(rest.get_mut(..hlen - 4).unwrap_or_default())?;
        let Some(frame) = parse_header(&header) else {
            break;
        };
        let len = frame.len;
        if size - pos - (hlen as u64) < len as u64 {
            break;
        }
        payload.resize(len, 0);
        reader.read_exact(&mut payload)?;
        let verified = frame.verify(&payload);
        let Ok(record) = RecordView::decode(&payload) else {
            break;
        };
        let payload_offset = pos + hlen as u64;
        last = Some((pos, crc32fast::hash(header.get(..hlen).unwrap_or_default())));
        if limit.is_none() && (!verified || !metas.is_empty()) {
            // Either damage (a torn write) or holes punched by a later clear: decided below.
            metas.push(Meta {
                start: pos,
                payload_offset,
                verified,
                punched: record
                    .clear
                    .as_ref()
                    .map(|c| c.punched.clone())
                    .unwrap_or_default(),
            });
        }
        apply(Replay::Record(Replayed {
            payload_offset,
            record,
        }));
        pos += (hlen + len) as u64;
    }
    let cut = first_unexplained(&metas).and_then(|i| metas.get(i).map(|m| m.start));
    Ok(Scanned {
        end: pos,
        last,
        cut,
    })
}

/// True when `file` (of `size` bytes) still has the frame `mark` names where it names it.
fn mark_holds(file: &File, size: u64, mark: &LogMark) -> bool {
    let mut header = [0u8; MAX_FRAME_HEADER];
    if mark.end > size || mark.last_start >= mark.end {
        return false;
    }
    let Ok(n) = file.read_at(&mut header, mark.last_start) else {
        return false;
    };
    let Some(hlen) = header.get(..n).and_then(header_len) else {
        return false;
    };
    hlen <= n
        && mark.last_start + hlen as u64 <= mark.end
        && crc32fast::hash(&header[..hlen]) == mark.last_header_crc
}

/// The first record (by index) whose checksum failed without a later clear record explaining it by a hole
/// punched inside its payload. Cutting there can drop clear records that explained earlier ones, so this
/// repeats until stable.
fn first_unexplained(records: &[Meta]) -> Option<usize> {
    let mut cut: Option<usize> = None;
    loop {
        let limit = cut.unwrap_or(records.len());
        let found = (0..limit).find(|&i| {
            let Some(rec) = records.get(i) else {
                return false;
            };
            if rec.verified {
                return false;
            }
            let start = rec.payload_offset;
            let end = records
                .get(i + 1)
                .map_or(u64::MAX, |next| next.payload_offset);
            !records
                .get(i + 1..limit)
                .unwrap_or_default()
                .iter()
                .flat_map(|r| r.punched.iter())
                .any(|&(o, l)| o >= start && o.saturating_add(l) <= end)
        });
        match found {
            Some(i) => cut = Some(i),
            None => return cut,
        }
    }
}

/// Deallocates `len` bytes at `offset` of `file` (they read as zeros after), keeping its size. False when the
/// file system cannot.
#[cfg(target_os = "linux")]
fn punch_hole(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return false;
    };
    if len == 0 {
        return true;
    }
    // SAFETY: `fallocate` only reads the descriptor, which `file` keeps open for the duration of the call.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    rc == 0
}

/// Deallocates `len` bytes at `offset` of `file`: not available here, the bytes stay.
#[cfg(not(target_os = "linux"))]
fn punch_hole(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}

/// Takes an exclusive advisory lock (`flock`) on the log for as long as the file is open, so a second process
/// (or a second open in this one) cannot append to the same core; it fails with `WouldBlock` instead.
///
/// A lock held elsewhere is retried for up to a second: a process that forks copies every descriptor into the
/// child until it `exec`s (they are close-on-exec), so a core closed while another thread spawns a process can
/// stay locked for a moment after its last handle is gone.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn lock_file(file: &File) -> io::Result<()> {
    lock_exclusive(file)
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        // SAFETY: `flock` only reads the descriptor, which `file` keeps open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != ErrorKind::WouldBlock {
            return Err(err);
        }
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                "hypercore is already open (its log is locked)",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Writes `bytes` to `path` atomically and durably: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads a framed file written by [`write_atomic`] with [`frame`]; errors when damaged.
pub fn read_framed(path: &Path) -> io::Result<Vec<u8>> {
    let bytes = fs::read(path)?;
    let bad = || io::Error::new(ErrorKind::InvalidData, "damaged metadata file");
    let frame = parse_header(&bytes).ok_or_else(bad)?;
    let payload = bytes.get(frame.header_len..).ok_or_else(bad)?;
    if payload.len() != frame.len || !frame.verify(payload) {
        return Err(bad());
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let rec = Record {
            truncate: Some(3),
            head: Some(Head {
                fork: 1,
                length: 5,
                signature: Some(vec![7; 64]),
            }),
            nodes: vec![TreeNode {
                index: 4,
                size: 2,
                hash: [1; 32],
            }],
            blocks: vec![(4, &b"hi"[..]), (5, &[][..])],
        };
        let bytes = rec.to_bytes();
        let view = RecordView::decode(&bytes).expect("decode");
        assert_eq!(view.truncate, rec.truncate);
        assert_eq!(view.head, rec.head);
        assert_eq!(view.nodes, rec.nodes);
        let (i, off, len) = view.blocks[0];
        assert_eq!((i, &bytes[off..off + len]), (4, &b"hi"[..]));
    }

    /// A version 1 frame (BLAKE2b checksum), as logs written before `HCL2` hold them.
    fn frame_v1(payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC_V1.to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&blake2b_prefix(payload));
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn old_blake2b_frames_still_open_and_mix_with_new_ones() {
        let dir = std::env::temp_dir().join(format!("hc-log-v1-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("log");
        let old = Record {
            blocks: vec![(0, &b"old frame"[..])],
            ..Record::default()
        };
        let mut bytes = frame_v1(&old.to_bytes());
        bytes.extend(frame_v1(
            &Record {
                blocks: vec![(1, &b"second old"[..])],
                ..Record::default()
            }
            .to_bytes(),
        ));
        fs::write(&path, &bytes).expect("write v1 log");
        let (mut log, recs) = Log::open(&path).expect("open v1 log");
        assert_eq!(recs.len(), 2);
        assert_eq!(log.len(), bytes.len() as u64);
        let (_, off, len) = recs[0].record.blocks[0];
        assert_eq!(
            log.read(recs[0].payload_offset + off as u64, len)
                .expect("read"),
            b"old frame"
        );
        let new = Record {
            blocks: vec![(2, &b"new frame"[..])],
            ..Record::default()
        };
        let locs = log.append(&new).expect("append v2");
        assert_eq!(&log.read(locs[0].1, locs[0].2).expect("read"), b"new frame");
        drop(log);
        let raw = fs::read(&path).expect("read log");
        assert_eq!(&raw[bytes.len()..bytes.len() + 4], b"HCL2");
        let (log, recs) = Log::open(&path).expect("reopen mixed log");
        assert_eq!(recs.len(), 3);
        let (_, off, len) = recs[2].record.blocks[0];
        assert_eq!(
            log.read(recs[2].payload_offset + off as u64, len)
                .expect("read"),
            b"new frame"
        );
        drop(log);
        // A damaged old frame still ends the log there.
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        fs::write(&path, &damaged).expect("write");
        let (_, recs) = Log::open(&path).expect("open damaged");
        assert_eq!(recs.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn crc_frames_reject_any_flipped_byte() {
        let rec = Record {
            head: Some(Head {
                fork: 0,
                length: 1,
                signature: Some(vec![9; 64]),
            }),
            blocks: vec![(0, &b"checked"[..])],
            ..Record::default()
        };
        let framed = frame(&rec.to_bytes()).expect("frame");
        let ok = parse_header(&framed).expect("header");
        assert_eq!(ok.header_len, FRAME_HEADER);
        assert!(ok.verify(&framed[FRAME_HEADER..]));
        for i in 0..framed.len() {
            let mut bad = framed.clone();
            bad[i] ^= 0x40;
            let whole = parse_header(&bad)
                .filter(|h| bad.len() - h.header_len == h.len)
                .is_some_and(|h| h.verify(&bad[h.header_len..]));
            assert!(!whole, "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn appended_blocks_land_where_reported_and_replay() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let (mut log, _) = Log::open(&path).expect("open");
        let data: Vec<Vec<u8>> = [0usize, 10, 4095, 4096, 5000, 70_000, 1, 65_536]
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let head = Head {
            fork: 0,
            length: 8,
            signature: Some(vec![9; 64]),
        };
        let rec = Record {
            truncate: None,
            head: Some(head.clone()),
            nodes: vec![TreeNode {
                index: 2,
                size: 4,
                hash: [3; 32],
            }],
            blocks: data
                .iter()
                .enumerate()
                .map(|(i, d)| (i as u64, d.as_slice()))
                .collect(),
        };
        // The frame is what framing the encoded record makes.
        let locs = log.append(&rec).expect("append");
        assert_eq!(
            fs::read(&path).expect("read"),
            frame(&rec.to_bytes()).expect("frame")
        );
        // More than IOV_MAX pieces: 1500 blocks written from the caller's memory.
        let many: Vec<Vec<u8>> = (0..1500u32).map(|i| vec![i as u8; INLINE_BLOCK]).collect();
        let rec2 = Record {
            blocks: many
                .iter()
                .enumerate()
                .map(|(i, d)| (100 + i as u64, d.as_slice()))
                .collect(),
            ..Record::default()
        };
        let locs2 = log.append(&rec2).expect("append");
        for ((i, off, len), d) in locs.iter().chain(&locs2).zip(data.iter().chain(&many)) {
            assert_eq!(*len, d.len(), "block {i}");
            assert_eq!(&log.read(*off, *len).expect("read"), d, "block {i}");
        }
        let end = log.len();
        assert_eq!(fs::metadata(&path).expect("meta").len(), end);
        drop(log);
        let (log, recs) = Log::open(&path).expect("reopen");
        assert_eq!(log.len(), end);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record.head, Some(head));
        assert_eq!(recs[0].record.nodes, rec.nodes);
        for (r, locs) in recs.iter().zip([&locs, &locs2]) {
            let replayed: Vec<(u64, u64, usize)> = r
                .record
                .blocks
                .iter()
                .map(|(i, off, len)| (*i, r.payload_offset + *off as u64, *len))
                .collect();
            assert_eq!(&replayed, locs);
        }
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("hc-log-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = fs::remove_file(&path);
        let (mut log, recs) = Log::open(&path).expect("open");
        assert!(recs.is_empty());
        let rec = Record {
            blocks: vec![(0, &b"abc"[..])],
            ..Record::default()
        };
        log.append(&rec).expect("append");
        let good = log.len();
        log.append(&rec).expect("append");
        drop(log);
        // Tear the second record.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(good + 10).expect("cut");
        drop(f);
        let (log, recs) = Log::open(&path).expect("reopen");
        assert_eq!(recs.len(), 1);
        assert_eq!(log.len(), good);
        let _ = fs::remove_dir_all(&dir);
    }
}

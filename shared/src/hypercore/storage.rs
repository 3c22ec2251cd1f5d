//! Crash-safe storage for a hypercore: one append-only log of checksummed records plus a write-once
//! metadata file. See `STORAGE.md` next to this file for the design and the measurements behind it.
//!
//! Every state change (an append batch, a truncation, a verified proof) is one [`Record`] written with a
//! single `pwrite` at the end of the log and made durable with `fdatasync` before the call returns. On open
//! the log is replayed; the first record whose frame or checksum is wrong (a write torn by a crash) ends the
//! log, and the file is cut back there, so a reader never sees half a batch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::compact_encoding::{DecodeError, Encode, Reader, Writer};
use crate::crypto::{hash, TreeNode};

/// Frame magic: "HCL1".
const MAGIC: [u8; 4] = *b"HCL1";
/// Frame header: magic, payload length (u32 LE), 16-byte BLAKE2b-256 prefix of the payload.
pub const FRAME_HEADER: usize = 4 + 4 + 16;
/// Largest record payload (a batch's blocks must fit in it).
pub const MAX_RECORD: usize = 1 << 30;

const FLAG_TRUNCATE: u64 = 1;
const FLAG_HEAD: u64 = 2;

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

/// One atomic change to the core, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Drop every block and tree node at or after this length first.
    pub truncate: Option<u64>,
    /// The new signed head, if it changed.
    pub head: Option<Head>,
    /// Tree nodes to add.
    pub nodes: Vec<TreeNode>,
    /// Blocks to add: (index, bytes).
    pub blocks: Vec<(u64, Vec<u8>)>,
}

impl Encode for Record {
    fn encode(&self, w: &mut Writer) {
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
        w.array(&self.nodes, |w, n| {
            w.uint(n.index).uint(n.size).fixed32(&n.hash);
        });
        w.array(&self.blocks, |w, (i, b)| {
            w.uint(*i).buffer(b);
        });
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
    /// (index, offset of the bytes within the payload, length).
    pub blocks: Vec<(u64, usize, usize)>,
}

impl RecordView {
    /// Decodes a record payload (untrusted bytes: a damaged log must not crash the reader).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let flags = r.uint()?;
        if flags & !(FLAG_TRUNCATE | FLAG_HEAD) != 0 {
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
        let nodes = r.array(|r| {
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
            blocks,
        })
    }
}

fn checksum(payload: &[u8]) -> [u8; 16] {
    let h = hash(&[payload]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// The frame header of a payload: magic, length, checksum.
fn header(payload: &[u8]) -> io::Result<[u8; FRAME_HEADER]> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_RECORD)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "record too large"))?;
    let mut out = [0u8; FRAME_HEADER];
    out[..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out[8..].copy_from_slice(&checksum(payload));
    Ok(out)
}

/// Frames a payload: header then payload.
pub fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&header(payload)?);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Parses a frame header: the payload length and checksum, or None if it is not a frame.
pub fn parse_header(header: &[u8]) -> Option<(usize, [u8; 16])> {
    let mut r = Reader::new(header);
    if r.fixed::<4>().ok()? != MAGIC {
        return None;
    }
    let len = r.uint32().ok()? as usize;
    if len > MAX_RECORD {
        return None;
    }
    Some((len, r.fixed::<16>().ok()?))
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        lock_exclusive(&file)?;
        let size = file.metadata()?.len();
        let mut reader = io::BufReader::with_capacity(1 << 20, &file);
        let mut records = Vec::new();
        let mut pos = 0u64;
        let mut header = [0u8; FRAME_HEADER];
        let mut payload = Vec::new();
        loop {
            if size - pos < FRAME_HEADER as u64 {
                break;
            }
            reader.read_exact(&mut header)?;
            let Some((len, sum)) = parse_header(&header) else {
                break;
            };
            if size - pos - (FRAME_HEADER as u64) < len as u64 {
                break;
            }
            payload.resize(len, 0);
            reader.read_exact(&mut payload)?;
            if checksum(&payload) != sum {
                break;
            }
            let Ok(record) = RecordView::decode(&payload) else {
                break;
            };
            records.push(Replayed {
                payload_offset: pos + FRAME_HEADER as u64,
                record,
            });
            pos += (FRAME_HEADER + len) as u64;
        }
        drop(reader);
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
            },
            records,
        ))
    }

    /// Appends a record durably; returns where each of its blocks landed in the log, in record order, as
    /// (index, file offset, length).
    pub fn append(&mut self, record: &Record) -> io::Result<Vec<(u64, u64, usize)>> {
        // Encode straight after room for the header, into a buffer sized up front: the payload is copied once.
        let hint = FRAME_HEADER
            + 64
            + record.nodes.len() * 50
            + record
                .blocks
                .iter()
                .map(|(_, b)| b.len() + 16)
                .sum::<usize>();
        let mut buf = Vec::with_capacity(hint);
        buf.resize(FRAME_HEADER, 0);
        let mut w = Writer::from_vec(buf);
        record.encode(&mut w);
        let mut framed = w.into_vec();
        let (head, payload) = framed.split_at_mut(FRAME_HEADER);
        let view =
            RecordView::decode(payload).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        head.copy_from_slice(&header(payload)?);
        self.file.write_all_at(&framed, self.end)?;
        if self.durability == Durability::Sync {
            self.file.sync_data()?;
        }
        let base = self.end + FRAME_HEADER as u64;
        self.end += framed.len() as u64;
        Ok(view
            .blocks
            .into_iter()
            .map(|(i, off, len)| (i, base + off as u64, len))
            .collect())
    }

    /// Sets when appends are durable.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
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

/// Takes an exclusive advisory lock (`flock`) on the log for as long as the file is open, so a second process
/// (or a second open in this one) cannot append to the same core; it fails with `WouldBlock` instead.
///
/// A lock held elsewhere is retried for up to a second: a process that forks copies every descriptor into the
/// child until it `exec`s (they are close-on-exec), so a core closed while another thread spawns a process can
/// stay locked for a moment after its last handle is gone.
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
    let header = bytes.get(..FRAME_HEADER).ok_or_else(bad)?;
    let (len, sum) = parse_header(header).ok_or_else(bad)?;
    let payload = bytes.get(FRAME_HEADER..).ok_or_else(bad)?;
    if payload.len() != len || checksum(payload) != sum {
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
            blocks: vec![(4, b"hi".to_vec()), (5, vec![])],
        };
        let bytes = rec.to_bytes();
        let view = RecordView::decode(&bytes).expect("decode");
        assert_eq!(view.truncate, rec.truncate);
        assert_eq!(view.head, rec.head);
        assert_eq!(view.nodes, rec.nodes);
        let (i, off, len) = view.blocks[0];
        assert_eq!((i, &bytes[off..off + len]), (4, &b"hi"[..]));
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
            blocks: vec![(0, b"abc".to_vec())],
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

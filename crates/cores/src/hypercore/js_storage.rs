//! Hypercore 10's on-disk format, the one JS `drives` 2.9.1 (corestore 6, hypercore 10.38) keeps its cores in,
//! read and written in place so a JS user's existing store opens with the same keys and stays readable by
//! the JS tools.
//!
//! A core is a directory of four files (JS `random-access-file`s, all little-endian):
//!
//! - `oplog`: two 4 KiB header slots at 0 and 4096, then entries from 8192. Every slot and entry is framed as
//!   `crc32 (u32)`, `len << 2 | partial << 1 | header bit (u32)`, then `len` bytes of compact encoding. The CRC
//!   (IEEE, as `crc-universal`) covers the second word and the payload. The header in force is slot
//!   `(bit0 + bit1) & 1` of the slots' header bits (a slot that fails its checksum takes the bit that makes the
//!   other one win); entries carry the bit of the header they follow, and replay stops at the first entry
//!   that fails its checksum, does not decode or carries another bit; trailing `partial` entries (an atomic
//!   batch cut short) are dropped. A flush writes the other slot with the flipped bit, then cuts the log back
//!   to 8192, so the entries written before it no longer count.
//! - `tree`: Merkle tree node `i` at byte `40 * i`: `u64` size, 32-byte hash; all zeros is no node.
//! - `bitfield`: block `i` present when bit `i % 8` of byte `i / 8` is set (written in 4 KiB pages).
//! - `data`: block `i` at its byte offset in the core (the sizes of the blocks before it).
//!
//! A header too large for a slot lives in a file `header` (`external: { start, length }` in the slot).
//!
//! Writes follow JS's order: block bytes, then one oplog entry describing the change (nodes, new head,
//! bitfield range), then the flush (tree nodes, bitfield pages, header slot, log cut). A crash at any point
//! reopens (here and in JS) at the last entry or header that was whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::compact_encoding::{DecodeError, Reader, Writer};
use crate::crypto::TreeNode;
use crate::flat_tree;

use super::messages::Manifest;
use super::storage::Durability;

/// Size of one oplog header slot (and of a bitfield page).
pub const PAGE_SIZE: usize = 4096;
/// Where oplog entries start.
pub const ENTRY_OFFSET: u64 = 2 * PAGE_SIZE as u64;
/// Bytes per stored tree node.
pub const NODE_SIZE: u64 = 40;

/// The files of a hypercore 10 core.
pub const FILES: [&str; 4] = ["oplog", "tree", "bitfield", "data"];

/// `tree` in the oplog header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeHeader {
    /// Fork id.
    pub fork: u64,
    /// Length.
    pub length: u64,
    /// Tree hash (empty when none).
    pub root_hash: Vec<u8>,
    /// Signature of the head (empty when none).
    pub signature: Vec<u8>,
}

/// `hints` in the oplog header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hints {
    /// Recent reorgs: (from fork, to fork, ancestors).
    pub reorgs: Vec<(u64, u64, u64)>,
    /// Blocks 0.. all present.
    pub contiguous_length: u64,
}

/// The oplog header (`messages.oplog.header`, version 1; version 0 is read and converted as JS does).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OplogHeader {
    /// Set when the real header lives in the `header` file: (start, length).
    pub external: Option<(u64, u64)>,
    /// The core key.
    pub key: [u8; 32],
    /// The manifest as encoded (version 0 or 1).
    pub manifest: Option<Vec<u8>>,
    /// (public key, secret key) as stored; the secret key may be empty.
    pub key_pair: Option<(Vec<u8>, Vec<u8>)>,
    /// User data (corestore keeps `corestore/name` and `corestore/namespace` here).
    pub user_data: Vec<(String, Vec<u8>)>,
    /// The head as of the last flush.
    pub tree: TreeHeader,
    /// Hints.
    pub hints: Hints,
}

/// A tree upgrade in an oplog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUpgrade {
    /// Fork id.
    pub fork: u64,
    /// Length shared with the previous head.
    pub ancestors: u64,
    /// New length.
    pub length: u64,
    /// Signature of the new head.
    pub signature: Vec<u8>,
}

/// A bitfield range update in an oplog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitfieldUpdate {
    /// Clear instead of set.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

/// An oplog entry (`messages.oplog.entry`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OplogEntry {
    /// One user data key set (empty value: removed).
    pub user_data: Option<(String, Vec<u8>)>,
    /// Tree nodes added.
    pub tree_nodes: Option<Vec<TreeNode>>,
    /// A new head.
    pub tree_upgrade: Option<TreeUpgrade>,
    /// Blocks added or dropped.
    pub bitfield: Option<BitfieldUpdate>,
}

fn decode_manifest_raw(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let rest = r.rest();
    let mut sub = Reader::new(rest);
    let version = sub.uint()?;
    if version == 0 {
        if sub.uint()? != 0 {
            return Err(DecodeError::Invalid("manifest hash id"));
        }
        match sub.uint()? {
            0 => {
                sub.fixed32()?;
            }
            1 => {
                decode_signer(&mut sub)?;
            }
            2 => {
                sub.uint()?;
                sub.uint()?;
                sub.array(|r| decode_signer(r))?;
            }
            _ => return Err(DecodeError::Invalid("manifest type")),
        }
    } else {
        let mut sub2 = Reader::new(rest);
        crate::compact_encoding::Decode::decode(&mut sub2).map(|_: Manifest| ())?;
        sub = sub2;
    }
    let used = sub.position();
    Ok(r.bytes(used)?.to_vec())
}

fn decode_signer(r: &mut Reader<'_>) -> Result<([u8; 32], [u8; 32]), DecodeError> {
    if r.uint()? != 0 {
        return Err(DecodeError::Invalid("manifest signature id"));
    }
    Ok((r.fixed32()?, r.fixed32()?))
}

/// The manifest in the form the verifier takes: version 1 as is; a version 0 single-signer manifest as the
/// equivalent signer list (enough for a compat core, whose key is the signer's public key).
pub fn parse_manifest(raw: &[u8]) -> Result<Manifest, DecodeError> {
    let mut r = Reader::new(raw);
    let version = r.uint()?;
    if version != 0 {
        return crate::compact_encoding::Decode::decode(&mut Reader::new(raw));
    }
    r.uint()?;
    if r.uint()? != 1 {
        return Err(DecodeError::Invalid(
            "version 0 manifest without a single signer",
        ));
    }
    let (namespace, public_key) = decode_signer(&mut r)?;
    let mut m = Manifest::default_signer(public_key);
    m.version = 0;
    if let Some(s) = m.signers.first_mut() {
        s.namespace = namespace;
    }
    Ok(m)
}

fn decode_hints(r: &mut Reader<'_>) -> Result<Hints, DecodeError> {
    let reorgs = r.array(|r| Ok((r.uint()?, r.uint()?, r.uint()?)))?;
    let contiguous_length = if r.is_empty() { 0 } else { r.uint()? };
    Ok(Hints {
        reorgs,
        contiguous_length,
    })
}

fn decode_tree_header(r: &mut Reader<'_>) -> Result<TreeHeader, DecodeError> {
    Ok(TreeHeader {
        fork: r.uint()?,
        length: r.uint()?,
        root_hash: r.buffer()?.to_vec(),
        signature: r.buffer()?.to_vec(),
    })
}

fn decode_user_data(r: &mut Reader<'_>) -> Result<Vec<(String, Vec<u8>)>, DecodeError> {
    r.array(|r| Ok((r.string()?.to_string(), r.buffer()?.to_vec())))
}

impl OplogHeader {
    /// Decodes a header slot's payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.uint()?;
        if version > 1 {
            return Err(DecodeError::Invalid("oplog header version"));
        }
        if version == 0 {
            // types: tree hash, bitfield, signer names
            r.string()?;
            r.string()?;
            r.string()?;
            let user_data = decode_user_data(&mut r)?;
            let tree = decode_tree_header(&mut r)?;
            let public = r.buffer()?.to_vec();
            let secret = r.buffer()?.to_vec();
            let hints = decode_hints(&mut r)?;
            let key: [u8; 32] = public
                .as_slice()
                .try_into()
                .map_err(|_| DecodeError::Invalid("signer public key"))?;
            let mut w = Writer::new();
            w.uint(0)
                .uint(0)
                .uint(1)
                .uint(0)
                .fixed32(&[0; 32])
                .fixed32(&key);
            return Ok(Self {
                external: None,
                key,
                manifest: Some(w.into_vec()),
                key_pair: (!secret.is_empty()).then_some((public, secret)),
                user_data,
                tree,
                hints,
            });
        }
        let flags = r.uint()?;
        if flags & 1 != 0 {
            return Ok(Self {
                external: Some((r.uint()?, r.uint()?)),
                ..Self::default()
            });
        }
        let key = r.fixed32()?;
        let manifest = if flags & 2 != 0 {
            Some(decode_manifest_raw(&mut r)?)
        } else {
            None
        };
        let key_pair = if flags & 4 != 0 {
            Some((r.buffer()?.to_vec(), r.buffer()?.to_vec()))
        } else {
            None
        };
        Ok(Self {
            external: None,
            key,
            manifest,
            key_pair,
            user_data: decode_user_data(&mut r)?,
            tree: decode_tree_header(&mut r)?,
            hints: decode_hints(&mut r)?,
        })
    }

    /// Encodes the header (version 1), or only its `external` pointer when `pointer` is set.
    pub fn encode(&self, pointer: Option<(u64, u64)>) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(1);
        if let Some((start, length)) = pointer {
            w.uint(1).uint(start).uint(length);
            return w.into_vec();
        }
        w.uint(u64::from(self.manifest.is_some()) << 1 | u64::from(self.key_pair.is_some()) << 2);
        w.fixed32(&self.key);
        if let Some(m) = &self.manifest {
            w.bytes(m);
        }
        if let Some((p, s)) = &self.key_pair {
            w.buffer(p).buffer(s);
        }
        w.array(&self.user_data, |w, (k, v)| {
            w.string(k).buffer(v);
        });
        w.uint(self.tree.fork)
            .uint(self.tree.length)
            .buffer(&self.tree.root_hash)
            .buffer(&self.tree.signature);
        w.array(&self.hints.reorgs, |w, (a, b, c)| {
            w.uint(*a).uint(*b).uint(*c);
        });
        w.uint(self.hints.contiguous_length);
        w.into_vec()
    }

    /// A user data value.
    pub fn user_data(&self, key: &str) -> Option<&[u8]> {
        self.user_data
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

impl OplogEntry {
    /// Decodes an entry's payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let flags = r.uint()?;
        let user_data = if flags & 1 != 0 {
            Some((r.string()?.to_string(), r.buffer()?.to_vec()))
        } else {
            None
        };
        let tree_nodes = if flags & 2 != 0 {
            Some(r.array(|r| {
                Ok(TreeNode {
                    index: r.uint()?,
                    size: r.uint()?,
                    hash: r.fixed32()?,
                })
            })?)
        } else {
            None
        };
        let tree_upgrade = if flags & 4 != 0 {
            Some(TreeUpgrade {
                fork: r.uint()?,
                ancestors: r.uint()?,
                length: r.uint()?,
                signature: r.buffer()?.to_vec(),
            })
        } else {
            None
        };
        let bitfield = if flags & 8 != 0 {
            let f = r.uint()?;
            Some(BitfieldUpdate {
                drop: f & 1 != 0,
                start: r.uint()?,
                length: r.uint()?,
            })
        } else {
            None
        };
        Ok(Self {
            user_data,
            tree_nodes,
            tree_upgrade,
            bitfield,
        })
    }

    /// Encodes the entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let flags = u64::from(self.user_data.is_some())
            | u64::from(self.tree_nodes.is_some()) << 1
            | u64::from(self.tree_upgrade.is_some()) << 2
            | u64::from(self.bitfield.is_some()) << 3;
        w.uint(flags);
        if let Some((k, v)) = &self.user_data {
            w.string(k).buffer(v);
        }
        if let Some(nodes) = &self.tree_nodes {
            w.array(nodes, |w, n| {
                w.uint(n.index).uint(n.size).fixed32(&n.hash);
            });
        }
        if let Some(u) = &self.tree_upgrade {
            w.uint(u.fork)
                .uint(u.ancestors)
                .uint(u.length)
                .buffer(&u.signature);
        }
        if let Some(b) = &self.bitfield {
            w.uint(u64::from(b.drop)).uint(b.start).uint(b.length);
        }
        w.into_vec()
    }
}

/// Frames a payload as a slot or entry: checksum, length word, payload.
pub fn frame(payload: &[u8], header_bit: u8, partial: bool) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l < 1 << 30)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "oplog entry too large"))?;
    let word = len << 2 | u32::from(partial) << 1 | u32::from(header_bit & 1);
    let mut out = Vec::with_capacity(8 + payload.len());
    let mut h = crc32fast::Hasher::new();
    h.update(&word.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&word.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// One framed item found in the oplog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// Header bit.
    pub header_bit: u8,
    /// Partial bit (more entries of the same atomic batch follow).
    pub partial: bool,
    /// The payload.
    pub payload: &'a [u8],
}

/// Reads the frame at the start of `buf`, or None when it is short or fails its checksum.
pub fn read_frame(buf: &[u8]) -> Option<Framed<'_>> {
    let cksum = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?);
    let word = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    let len = (word >> 2) as usize;
    let payload = buf.get(8..8usize.checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&word.to_le_bytes());
    h.update(payload);
    (h.finalize() == cksum).then_some(Framed {
        header_bit: (word & 1) as u8,
        partial: word & 2 != 0,
        payload,
    })
}

/// What opening an oplog finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedOplog {
    /// The header in force (None: nothing was ever flushed).
    pub header: Option<OplogHeader>,
    /// The two slots' header bits as JS tracks them (`_headers`).
    pub bits: [u8; 2],
    /// Entries after the header, in order.
    pub entries: Vec<OplogEntry>,
    /// Bytes of those entries (the log's valid length is `ENTRY_OFFSET + entries_len`).
    pub entries_len: u64,
}

/// Why an oplog cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OplogError {
    /// No valid header slot in a log long enough to have entries (JS `OPLOG_CORRUPT`).
    #[error("oplog is corrupt: neither header slot is valid")]
    Corrupt,
}

fn decode_slot(buf: &[u8], at: usize) -> Option<(u8, OplogHeader)> {
    let f = read_frame(buf.get(at..)?)?;
    let h = OplogHeader::decode(f.payload).ok()?;
    Some((f.header_bit, h))
}

/// Decodes a whole oplog file as JS `Oplog.open` does. Never panics on any input.
pub fn decode_oplog(buf: &[u8]) -> Result<DecodedOplog, OplogError> {
    let h1 = decode_slot(buf, 0);
    let h2 = decode_slot(buf, PAGE_SIZE);
    let (bits, header) = match (h1, h2) {
        (None, None) => {
            if buf.len() as u64 >= ENTRY_OFFSET {
                return Err(OplogError::Corrupt);
            }
            return Ok(DecodedOplog {
                header: None,
                bits: [1, 0],
                entries: Vec::new(),
                entries_len: 0,
            });
        }
        (Some((b, h)), None) => ([b, b], h),
        (None, Some((b, h))) => ([(b + 1) & 1, b], h),
        (Some((b1, h1)), Some((b2, h2))) => ([b1, b2], if (b1 + b2) & 1 == 1 { h2 } else { h1 }),
    };
    let bit = (bits[0] + bits[1]) & 1;
    let mut decoded: Vec<(bool, u64, OplogEntry)> = Vec::new();
    let mut pos = ENTRY_OFFSET as usize;
    while let Some(f) = buf.get(pos..).and_then(read_frame) {
        if f.header_bit != bit {
            break;
        }
        let Ok(entry) = OplogEntry::decode(f.payload) else {
            break;
        };
        let len = 8 + f.payload.len();
        decoded.push((f.partial, len as u64, entry));
        pos += len;
    }
    while decoded.last().is_some_and(|(partial, _, _)| *partial) {
        decoded.pop();
    }
    let entries_len = decoded.iter().map(|(_, l, _)| l).sum();
    Ok(DecodedOplog {
        header: Some(header),
        bits,
        entries: decoded.into_iter().map(|(_, _, e)| e).collect(),
        entries_len,
    })
}

/// Decodes a tree file's node at `index` (None: blank or absent).
pub fn decode_node(index: u64, bytes: &[u8]) -> Option<TreeNode> {
    let size = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let hash: [u8; 32] = bytes.get(8..40)?.try_into().ok()?;
    (size != 0 || hash != [0; 32]).then_some(TreeNode { index, size, hash })
}

/// Encodes a tree node as stored.
pub fn encode_node(node: &TreeNode) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&node.size.to_le_bytes());
    out[8..].copy_from_slice(&node.hash);
    out
}

/// Every node in a tree file.
pub fn decode_tree(bytes: &[u8]) -> BTreeMap<u64, TreeNode> {
    bytes
        .chunks_exact(NODE_SIZE as usize)
        .enumerate()
        .filter_map(|(i, c)| decode_node(i as u64, c))
        .map(|n| (n.index, n))
        .collect()
}

/// The in-memory bitfield: bit `i % 8` of byte `i / 8`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    dirty: BTreeSet<u64>,
}

impl Bitfield {
    /// From the file's bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            dirty: BTreeSet::new(),
        }
    }

    /// Whether block `i` is present.
    pub fn get(&self, i: u64) -> bool {
        usize::try_from(i / 8)
            .ok()
            .and_then(|b| self.bytes.get(b))
            .is_some_and(|b| b >> (i % 8) & 1 == 1)
    }

    /// Sets or clears `start..start + length`.
    pub fn set_range(&mut self, start: u64, length: u64, value: bool) {
        let end = start.saturating_add(length);
        if end == start {
            return;
        }
        // A range past what any disk holds is a corrupt entry: cap it (JS would run out of memory).
        let end = end.min(start.saturating_add(1 << 32));
        let need = usize::try_from(end.div_ceil(8)).unwrap_or(usize::MAX);
        if value && need > self.bytes.len() {
            let pages = need.div_ceil(PAGE_SIZE);
            self.bytes.resize(pages * PAGE_SIZE, 0);
        }
        let mut i = start;
        while i < end {
            let byte = (i / 8) as usize;
            let Some(b) = self.bytes.get_mut(byte) else {
                break;
            };
            if i % 8 == 0 && end - i >= 8 {
                *b = if value { 0xff } else { 0 };
                i += 8;
            } else {
                let mask = 1u8 << (i % 8);
                if value {
                    *b |= mask;
                } else {
                    *b &= !mask;
                }
                i += 1;
            }
            self.dirty.insert((byte / PAGE_SIZE) as u64);
        }
    }

    /// The present blocks below `length`, in order.
    pub fn set_bits(&self, length: u64) -> impl Iterator<Item = u64> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .flat_map(|(i, b)| {
                (0..8u64)
                    .filter(move |bit| b >> bit & 1 == 1)
                    .map(move |bit| i as u64 * 8 + bit)
            })
            .take_while(move |i| *i < length)
    }

    /// First block at or after `from` that is not present.
    pub fn first_unset(&self, from: u64) -> u64 {
        let mut i = from;
        while self.get(i) {
            i += 1;
        }
        i
    }

    fn take_dirty(&mut self) -> Vec<(u64, &[u8])> {
        let pages = std::mem::take(&mut self.dirty);
        pages
            .into_iter()
            .filter_map(|p| {
                let start = p as usize * PAGE_SIZE;
                self.bytes
                    .get(start..start + PAGE_SIZE)
                    .map(|b| (p * PAGE_SIZE as u64, b))
            })
            .collect()
    }
}

/// The state a core's files describe once the oplog is replayed.
#[derive(Debug)]
pub struct JsState {
    /// The header (with the replayed head and hints folded in).
    pub header: OplogHeader,
    /// Every tree node.
    pub nodes: BTreeMap<u64, TreeNode>,
    /// The bitfield.
    pub bitfield: Bitfield,
}

fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// JS `updateContig`.
fn update_contig(hints: &mut Hints, upd: BitfieldUpdate, bitfield: &Bitfield) {
    let end = upd.start.saturating_add(upd.length);
    let mut c = hints.contiguous_length;
    if upd.drop {
        if c <= end && c > upd.start {
            c = upd.start;
        }
    } else if c <= end && c >= upd.start {
        c = bitfield.first_unset(end);
    }
    hints.contiguous_length = c;
}

/// JS `addReorgHint`.
fn add_reorg_hint(hints: &mut Hints, old_length: u64, old_fork: u64, fork: u64, ancestors: u64) {
    if old_length == 0 || old_fork == fork {
        return;
    }
    while hints.reorgs.len() >= 4 {
        hints.reorgs.remove(0);
    }
    while hints.reorgs.last().is_some_and(|r| r.2 > ancestors) {
        hints.reorgs.pop();
    }
    hints.reorgs.push((old_fork, fork, ancestors));
}

fn truncate_nodes(nodes: &mut BTreeMap<u64, TreeNode>, length: u64) {
    let head = length.saturating_mul(2);
    nodes.retain(|index, _| flat_tree::right_span(*index) < head);
}

/// A change to write: one or more entries (an atomic batch), block bytes at their offsets, and how the
/// header's tree changes.
#[derive(Debug, Default)]
pub struct Change<'a> {
    /// Entries, in order.
    pub entries: Vec<OplogEntry>,
    /// (data offset, bytes) to write before the entries.
    pub blocks: Vec<(u64, &'a [u8])>,
    /// Byte ranges of `data` to deallocate after the entries (cleared blocks).
    pub punch: Vec<(u64, u64)>,
    /// The tree hash after the change, when the head moves.
    pub root_hash: Option<[u8; 32]>,
}

/// A hypercore 10 core open for reading and writing.
#[derive(Debug)]
pub struct JsCore {
    dir: PathBuf,
    oplog: File,
    tree: File,
    bitfield_file: File,
    data: File,
    external: Option<File>,
    header: OplogHeader,
    bits: [u8; 2],
    entries_len: u64,
    bitfield: Bitfield,
    durability: Durability,
    /// Tree writes the oplog's replayed entries describe (a node, or a blank after a truncation), not yet in
    /// the `tree` file: JS keeps an append's nodes in the log until a later flush, so a store it left has them
    /// there. The next flush writes them, before it cuts the log that holds them.
    replayed_nodes: BTreeMap<u64, Option<TreeNode>>,
    /// The shortest truncation among the replayed entries (the `tree` file is cut there at the next flush).
    replayed_cut: Option<u64>,
}

impl JsCore {
    /// True when `dir` holds a core (an oplog with something in it, as corestore 6's `_exists`).
    pub fn exists(dir: &Path) -> bool {
        fs::metadata(dir.join("oplog")).is_ok_and(|m| m.len() > 0)
    }

    /// Opens the core in `dir`, replaying its oplog (a torn tail is cut off, as JS does).
    pub fn open(dir: &Path) -> io::Result<(Self, JsState)> {
        let oplog_bytes = read_file(&dir.join("oplog"))?;
        let decoded = decode_oplog(&oplog_bytes).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("{}: {e}", dir.join("oplog").display()),
            )
        })?;
        let Some(mut header) = decoded.header else {
            return Err(io::Error::new(
                ErrorKind::NotFound,
                format!("no hypercore is stored in {}", dir.display()),
            ));
        };
        let external = if let Some((start, length)) = header.external {
            let file = File::open(dir.join("header"))?;
            let len = usize::try_from(length)
                .map_err(|_| io::Error::new(ErrorKind::InvalidData, "header length"))?;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, start)?;
            header = OplogHeader::decode(&buf).map_err(|e| {
                io::Error::new(ErrorKind::InvalidData, format!("external header: {e}"))
            })?;
            header.external = Some((start, length));
            Some(open_rw(&dir.join("header"))?)
        } else {
            None
        };
        let oplog = open_rw(&dir.join("oplog"))?;
        let valid = ENTRY_OFFSET + decoded.entries_len;
        if (oplog_bytes.len() as u64) > valid && oplog_bytes.len() as u64 > ENTRY_OFFSET {
            tracing::warn!(dir = %dir.display(), valid, "hypercore 10 oplog has a torn tail; cutting it off");
            oplog.set_len(valid)?;
        }
        let mut nodes = decode_tree(&read_file(&dir.join("tree"))?);
        let mut bitfield = Bitfield::from_bytes(read_file(&dir.join("bitfield"))?);
        if header.hints.contiguous_length == 0 {
            header.hints.contiguous_length = bitfield.first_unset(0);
        }
        // JS trusts the header's length for the roots; nodes past it are stale leftovers.
        truncate_nodes(&mut nodes, header.tree.length);
        let mut replayed_nodes: BTreeMap<u64, Option<TreeNode>> = BTreeMap::new();
        let mut replayed_cut: Option<u64> = None;
        for e in &decoded.entries {
            if let Some((k, v)) = &e.user_data {
                update_user_data(&mut header.user_data, k, v);
            }
            if let Some(u) = &e.tree_upgrade {
                if u.ancestors < header.tree.length {
                    truncate_nodes(&mut nodes, u.ancestors);
                    replayed_cut = Some(replayed_cut.map_or(u.ancestors, |c| c.min(u.ancestors)));
                    replayed_nodes.retain(|i, _| *i < 2 * u.ancestors);
                    for i in blanks_for(u.ancestors) {
                        replayed_nodes.insert(i, None);
                    }
                }
            }
            for n in e.tree_nodes.iter().flatten() {
                nodes.insert(n.index, *n);
                replayed_nodes.insert(n.index, Some(*n));
            }
            if let Some(b) = e.bitfield {
                bitfield.set_range(b.start, b.length, !b.drop);
                update_contig(&mut header.hints, b, &bitfield);
            }
            if let Some(u) = &e.tree_upgrade {
                add_reorg_hint(
                    &mut header.hints,
                    header.tree.length,
                    header.tree.fork,
                    u.fork,
                    u.ancestors,
                );
                header.tree.fork = u.fork;
                header.tree.length = u.length;
                header.tree.signature.clone_from(&u.signature);
                // The root hash is recomputed by the caller from the nodes.
                header.tree.root_hash.clear();
            }
        }
        let core = Self {
            dir: dir.to_path_buf(),
            oplog,
            tree: open_rw(&dir.join("tree"))?,
            bitfield_file: open_rw(&dir.join("bitfield"))?,
            data: open_rw(&dir.join("data"))?,
            external,
            header: header.clone(),
            bits: decoded.bits,
            entries_len: decoded.entries_len,
            bitfield: bitfield.clone(),
            durability: Durability::Sync,
            replayed_nodes,
            replayed_cut,
        };
        Ok((
            core,
            JsState {
                header,
                nodes,
                bitfield,
            },
        ))
    }

    /// Creates a core in `dir` (refusing to overwrite one) with `header` (key, manifest, key pair, user
    /// data; an empty tree), as JS does on first open.
    pub fn create(dir: &Path, header: OplogHeader) -> io::Result<(Self, JsState)> {
        if Self::exists(dir) {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("a hypercore already exists in {}", dir.display()),
            ));
        }
        fs::create_dir_all(dir)?;
        let oplog = open_rw(&dir.join("oplog"))?;
        oplog.set_len(0)?;
        let mut core = Self {
            dir: dir.to_path_buf(),
            oplog,
            tree: open_rw(&dir.join("tree"))?,
            bitfield_file: open_rw(&dir.join("bitfield"))?,
            data: open_rw(&dir.join("data"))?,
            external: None,
            header,
            bits: [1, 0],
            entries_len: 0,
            bitfield: Bitfield::default(),
            durability: Durability::Sync,
            replayed_nodes: BTreeMap::new(),
            replayed_cut: None,
        };
        core.flush_header()?;
        if let Ok(d) = File::open(dir) {
            d.sync_all()?;
        }
        Self::open(dir)
    }

    /// The data file, for reading blocks.
    pub fn data_file(&self) -> io::Result<File> {
        self.data.try_clone()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The header as it stands (after the last change).
    pub fn header(&self) -> &OplogHeader {
        &self.header
    }

    /// Sets the tree hash recorded in the header at the next flush (after a replay, from the rebuilt tree).
    pub fn set_root_hash(&mut self, hash: [u8; 32]) {
        self.header.tree.root_hash = hash.to_vec();
    }

    /// Records a manifest learnt from a peer (written with the next change's flush, as JS `_setManifest`).
    pub fn set_manifest(&mut self, manifest: &Manifest) {
        let mut w = Writer::new();
        crate::compact_encoding::Encode::encode(manifest, &mut w);
        self.header.manifest = Some(w.into_vec());
    }

    /// Sets whether changes are synced to disk before returning.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Puts everything written so far on disk (`fdatasync` of every file), whatever the durability.
    pub fn sync(&self) -> io::Result<()> {
        self.data.sync_data()?;
        self.tree.sync_data()?;
        self.bitfield_file.sync_data()?;
        if let Some(external) = &self.external {
            external.sync_data()?;
        }
        self.oplog.sync_data()
    }

    /// Writes a change: block bytes, the entries, then the flush JS does (tree nodes, bitfield pages, the
    /// header in the other slot, the log cut back).
    pub fn write(&mut self, change: &Change<'_>) -> io::Result<()> {
        for (offset, bytes) in &change.blocks {
            self.data.write_all_at(bytes, *offset)?;
        }
        let bit = (self.bits[0] + self.bits[1]) & 1;
        let mut buf = Vec::new();
        let n = change.entries.len();
        for (i, e) in change.entries.iter().enumerate() {
            buf.extend_from_slice(&frame(&e.encode(), bit, i + 1 < n)?);
        }
        if !buf.is_empty() {
            self.oplog
                .write_all_at(&buf, ENTRY_OFFSET + self.entries_len)?;
            self.entries_len += buf.len() as u64;
        }
        if self.durability == Durability::Sync {
            self.data.sync_data()?;
            self.oplog.sync_data()?;
        }
        for &(offset, len) in &change.punch {
            punch(&self.data, offset, len);
        }
        // Apply to the header and the bitfield, collecting the tree writes (after those of the replayed log,
        // which this flush cuts).
        let mut node_writes = self.replayed_nodes.clone();
        let mut cut_tree = self.replayed_cut;
        for e in &change.entries {
            if let Some((k, v)) = &e.user_data {
                update_user_data(&mut self.header.user_data, k, v);
            }
            if let Some(u) = &e.tree_upgrade {
                if u.ancestors < self.header.tree.length {
                    cut_tree = Some(cut_tree.map_or(u.ancestors, |c| c.min(u.ancestors)));
                    node_writes.retain(|i, _| *i < 2 * u.ancestors);
                    for i in blanks_for(u.ancestors) {
                        node_writes.insert(i, None);
                    }
                }
            }
            for nd in e.tree_nodes.iter().flatten() {
                node_writes.insert(nd.index, Some(*nd));
            }
            if let Some(b) = e.bitfield {
                self.bitfield.set_range(b.start, b.length, !b.drop);
                if b.drop && e.tree_upgrade.is_none() {
                    // A clear (JS `core.clear`): the contiguous prefix ends at its start.
                    let h = &mut self.header.hints;
                    h.contiguous_length = h.contiguous_length.min(b.start);
                } else {
                    update_contig(&mut self.header.hints, b, &self.bitfield);
                }
            }
            if let Some(u) = &e.tree_upgrade {
                add_reorg_hint(
                    &mut self.header.hints,
                    self.header.tree.length,
                    self.header.tree.fork,
                    u.fork,
                    u.ancestors,
                );
                self.header.tree.fork = u.fork;
                self.header.tree.length = u.length;
                self.header.tree.signature.clone_from(&u.signature);
            }
        }
        if let Some(h) = change.root_hash {
            self.header.tree.root_hash = h.to_vec();
        }
        // The flush.
        if let Some(t) = cut_tree {
            let offset = if t == 0 { 0 } else { (t - 1) * 80 + 40 };
            self.tree.set_len(offset)?;
        }
        for (index, node) in &node_writes {
            let bytes = node.as_ref().map_or([0u8; 40], encode_node);
            self.tree.write_all_at(&bytes, index * NODE_SIZE)?;
        }
        for (offset, page) in self.bitfield.take_dirty() {
            self.bitfield_file.write_all_at(page, offset)?;
        }
        if self.durability == Durability::Sync {
            self.tree.sync_data()?;
            self.bitfield_file.sync_data()?;
        }
        self.flush_header()?;
        self.replayed_nodes.clear();
        self.replayed_cut = None;
        Ok(())
    }

    /// JS `flushHeader`: the header into the slot not in force (or into the `header` file when it does not
    /// fit a slot), then the log cut back to its entries' start.
    fn flush_header(&mut self) -> io::Result<()> {
        let full = self.header.encode(None);
        let payload = if self.external.is_some() || full.len() + 8 > PAGE_SIZE {
            self.flush_external(&full)?
        } else {
            full
        };
        let i = usize::from(self.bits[0] == self.bits[1]);
        let bit = (self.bits[i] + 1) & 1;
        let framed = frame(&payload, bit, false)?;
        if framed.len() > PAGE_SIZE {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "oplog header overflow",
            ));
        }
        self.oplog
            .write_all_at(&framed, if i == 0 { 0 } else { PAGE_SIZE as u64 })?;
        self.oplog.set_len(ENTRY_OFFSET)?;
        if self.durability == Durability::Sync {
            self.oplog.sync_data()?;
        }
        self.bits[i] = bit;
        self.entries_len = 0;
        Ok(())
    }

    /// JS `BigHeader.flush`: writes the full header to the `header` file (past the previous copy when it
    /// grew) and returns the slot payload pointing at it.
    fn flush_external(&mut self, full: &[u8]) -> io::Result<Vec<u8>> {
        let (prev_start, prev_len) = self.header.external.unwrap_or((0, 0));
        let mut start = 0;
        if full.len() as u64 > prev_start {
            start = prev_start + prev_len;
            let rem = start & 4095;
            if rem > 0 {
                start += 4096 - rem;
            }
        }
        if self.external.is_none() {
            self.external = Some(open_rw(&self.dir.join("header"))?);
        }
        if let Some(f) = &self.external {
            f.write_all_at(full, start)?;
            if self.durability == Durability::Sync {
                f.sync_data()?;
            }
        }
        let pointer = (start, full.len() as u64);
        self.header.external = Some(pointer);
        Ok(self.header.encode(Some(pointer)))
    }
}

/// Parent nodes left of `2 * length` whose span reaches past it: stale after a truncation to `length`, so
/// JS blanks them (`_commitUpgrade`).
fn blanks_for(length: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if length == 0 {
        return out;
    }
    let head = 2 * length;
    let mut ite = flat_tree::TreeIterator::new(head - 2);
    loop {
        if ite.contains(head) && ite.index < head {
            out.push(ite.index);
        }
        if flat_tree::offset(ite.index) == 0 || out.len() > 64 {
            break;
        }
        ite.parent();
    }
    out
}

fn update_user_data(list: &mut Vec<(String, Vec<u8>)>, key: &str, value: &[u8]) {
    if let Some(i) = list.iter().position(|(k, _)| k == key) {
        if value.is_empty() {
            list.remove(i);
        } else if let Some(e) = list.get_mut(i) {
            e.1 = value.to_vec();
        }
        return;
    }
    if !value.is_empty() {
        list.push((key.to_string(), value.to_vec()));
    }
}

#[cfg(target_os = "linux")]
fn punch(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: fallocate only reads the descriptor, kept open by `file` during the call.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            l,
        )
    };
    if rc != 0 {
        // No hole support: zero the range, as random-access-file's `del` does.
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 24)];
        let _ = file.write_all_at(&zeros, offset);
    }
}

#[cfg(not(target_os = "linux"))]
fn punch(file: &File, offset: u64, len: u64) {
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 24)];
    let _ = file.write_all_at(&zeros, offset);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(index: u64, size: u64) -> TreeNode {
        TreeNode {
            index,
            size,
            hash: [index as u8 ^ 0x5a; 32],
        }
    }

    fn header(length: u64) -> OplogHeader {
        OplogHeader {
            key: [7; 32],
            manifest: None,
            key_pair: Some((vec![1; 32], vec![2; 64])),
            user_data: vec![("corestore/name".into(), b"db".to_vec())],
            tree: TreeHeader {
                fork: 0,
                length,
                root_hash: vec![3; 32],
                signature: vec![4; 64],
            },
            hints: Hints {
                reorgs: vec![(0, 1, 2)],
                contiguous_length: length,
            },
            external: None,
        }
    }

    fn entry(i: u64) -> OplogEntry {
        OplogEntry {
            user_data: None,
            tree_nodes: Some(vec![node(2 * i, 10)]),
            tree_upgrade: Some(TreeUpgrade {
                fork: 0,
                ancestors: i,
                length: i + 1,
                signature: vec![9; 64],
            }),
            bitfield: Some(BitfieldUpdate {
                drop: false,
                start: i,
                length: 1,
            }),
        }
    }

    /// An oplog as JS lays it out: `slots` at 0 and 4096, entries from 8192.
    fn oplog(
        slots: [Option<(u8, &OplogHeader)>; 2],
        entries: &[(u8, bool, OplogEntry)],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; ENTRY_OFFSET as usize];
        for (i, slot) in slots.iter().enumerate() {
            if let Some((bit, h)) = slot {
                let f = frame(&h.encode(None), *bit, false).expect("frame");
                buf[i * PAGE_SIZE..i * PAGE_SIZE + f.len()].copy_from_slice(&f);
            }
        }
        for (bit, partial, e) in entries {
            buf.extend_from_slice(&frame(&e.encode(), *bit, *partial).expect("frame"));
        }
        buf
    }

    #[test]
    fn header_and_entries_round_trip() {
        let h = header(5);
        assert_eq!(OplogHeader::decode(&h.encode(None)), Ok(h.clone()));
        let ext = OplogHeader::decode(&h.encode(Some((4096, 300)))).expect("external");
        assert_eq!(ext.external, Some((4096, 300)));
        for i in 0..3 {
            assert_eq!(OplogEntry::decode(&entry(i).encode()), Ok(entry(i)));
        }
        let ud = OplogEntry {
            user_data: Some(("k".into(), b"v".to_vec())),
            ..OplogEntry::default()
        };
        assert_eq!(OplogEntry::decode(&ud.encode()), Ok(ud));
    }

    #[test]
    fn the_header_in_force_follows_the_slot_bits() {
        let (old, new) = (header(1), header(2));
        // Slot 0 bit 0 alone: slot 0.
        let d = decode_oplog(&oplog([Some((0, &old)), None], &[])).expect("decode");
        assert_eq!((d.header.as_ref(), d.bits), (Some(&old), [0, 0]));
        // Slot 0 bit 0, slot 1 bit 1: (0 + 1) & 1 = 1, slot 1 is newer.
        let d = decode_oplog(&oplog([Some((0, &old)), Some((1, &new))], &[])).expect("decode");
        assert_eq!(d.header.as_ref(), Some(&new));
        // Then slot 0 rewritten with bit 1: (1 + 1) & 1 = 0, slot 0 is newer.
        let d = decode_oplog(&oplog([Some((1, &new)), Some((1, &old))], &[])).expect("decode");
        assert_eq!(d.header.as_ref(), Some(&new));
        // A torn newer slot: the other one is used.
        let mut buf = oplog([Some((0, &old)), Some((1, &new))], &[]);
        buf[PAGE_SIZE + 20] ^= 0xff;
        let d = decode_oplog(&buf).expect("decode");
        assert_eq!(d.header.as_ref(), Some(&old));
        // No valid slot: empty when short, corrupt when entries could follow.
        assert_eq!(decode_oplog(&[]).map(|d| d.header), Ok(None));
        assert_eq!(decode_oplog(&vec![0u8; 9000]), Err(OplogError::Corrupt));
    }

    #[test]
    fn entries_replay_until_a_torn_or_foreign_one() {
        let h = header(0);
        let entries: Vec<_> = (0..4).map(|i| (0u8, false, entry(i))).collect();
        let whole = oplog([Some((0, &h)), None], &entries);
        let d = decode_oplog(&whole).expect("decode");
        assert_eq!(d.entries.len(), 4);
        assert_eq!(ENTRY_OFFSET + d.entries_len, whole.len() as u64);
        // Cut anywhere inside the last entry: the first three remain.
        let last = frame(&entry(3).encode(), 0, false).expect("frame").len();
        for cut in 1..last {
            let d = decode_oplog(&whole[..whole.len() - cut]).expect("decode");
            assert_eq!(
                d.entries,
                (0..3).map(entry).collect::<Vec<_>>(),
                "cut {cut}"
            );
            assert_eq!(ENTRY_OFFSET + d.entries_len, (whole.len() - last) as u64);
        }
        // A flipped byte in the second entry ends the log before it (its checksum fails).
        let mut bad = whole.clone();
        bad[ENTRY_OFFSET as usize + last + 12] ^= 1;
        assert_eq!(decode_oplog(&bad).expect("decode").entries, vec![entry(0)]);
        // Entries of an older header (the other bit) do not count.
        let stale: Vec<_> = (0..2).map(|i| (1u8, false, entry(i))).collect();
        let d = decode_oplog(&oplog([Some((0, &h)), None], &stale)).expect("decode");
        assert!(d.entries.is_empty());
        // An atomic batch cut short (trailing partial entries) is dropped whole.
        let batch = [
            (0u8, false, entry(0)),
            (0, true, entry(1)),
            (0, true, entry(2)),
        ];
        let d = decode_oplog(&oplog([Some((0, &h)), None], &batch)).expect("decode");
        assert_eq!(d.entries, vec![entry(0)]);
    }

    #[test]
    fn tree_nodes_are_40_bytes_at_their_index() {
        let mut file = vec![0u8; 5 * 40];
        for n in [node(0, 3), node(1, 7), node(4, 1)] {
            let at = (n.index * NODE_SIZE) as usize;
            file[at..at + 40].copy_from_slice(&encode_node(&n));
        }
        let nodes = decode_tree(&file);
        assert_eq!(nodes.keys().copied().collect::<Vec<_>>(), vec![0, 1, 4]);
        assert_eq!(nodes.get(&1), Some(&node(1, 7)));
        assert_eq!(encode_node(&node(1, 7))[..8], 7u64.to_le_bytes());
        // All zeros is no node; a trailing partial node is ignored.
        assert_eq!(decode_node(2, &[0; 40]), None);
        file.extend_from_slice(&[1; 39]);
        assert_eq!(decode_tree(&file).len(), 3);
    }

    #[test]
    fn bitfield_bits_and_pages() {
        let mut b = Bitfield::default();
        b.set_range(3, 20, true);
        assert!(!b.get(2) && b.get(3) && b.get(22) && !b.get(23));
        assert_eq!(b.bytes.len(), PAGE_SIZE);
        assert_eq!(b.bytes[0], 0b1111_1000);
        assert_eq!(
            b.set_bits(100).collect::<Vec<_>>(),
            (3..23).collect::<Vec<_>>()
        );
        assert_eq!(b.set_bits(10).count(), 7);
        assert_eq!(b.first_unset(3), 23);
        b.set_range(10, 2, false);
        assert!(!b.get(10) && !b.get(11) && b.get(12));
        // A bit on the second page dirties (and writes) that page only.
        b.take_dirty();
        b.set_range(8 * PAGE_SIZE as u64 + 1, 1, true);
        let dirty: Vec<u64> = b.take_dirty().into_iter().map(|(o, _)| o).collect();
        assert_eq!(dirty, vec![PAGE_SIZE as u64]);
    }

    #[test]
    fn a_core_written_here_reopens_with_the_same_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("core");
        let mut h = header(0);
        h.tree = TreeHeader::default();
        h.hints = Hints::default();
        let (mut core, state) = JsCore::create(&path, h.clone()).expect("create");
        assert_eq!(state.header, h);
        for i in 0..3u64 {
            let block = vec![i as u8; 10];
            core.write(&Change {
                entries: vec![entry(i)],
                blocks: vec![(i * 10, &block)],
                punch: Vec::new(),
                root_hash: Some([i as u8; 32]),
            })
            .expect("write");
        }
        drop(core);
        let (core, state) = JsCore::open(&path).expect("open");
        assert_eq!(state.header.tree.length, 3);
        assert_eq!(state.header.tree.root_hash, vec![2; 32]);
        assert_eq!(state.header.hints.contiguous_length, 3);
        assert_eq!(state.nodes.len(), 3);
        assert_eq!(state.bitfield.set_bits(3).count(), 3);
        let mut buf = [0u8; 10];
        core.data_file()
            .expect("data")
            .read_exact_at(&mut buf, 20)
            .expect("read");
        assert_eq!(buf, [2; 10]);
        // Everything was flushed: the log holds only its header slots.
        assert_eq!(
            fs::metadata(path.join("oplog")).expect("oplog").len(),
            ENTRY_OFFSET
        );
    }

    /// JS leaves an append in the log until a later flush (its nodes and bit are only in an oplog entry).
    /// The first write here flushes them with its own, before its header cuts the log that held them.
    #[test]
    fn nodes_replayed_from_a_js_log_survive_the_next_flush() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("core");
        let mut h = header(0);
        h.tree = TreeHeader::default();
        h.hints = Hints::default();
        let (mut core, _) = JsCore::create(&path, h).expect("create");
        let block = [0u8; 10];
        core.write(&Change {
            entries: vec![entry(0)],
            blocks: vec![(0, &block)],
            punch: Vec::new(),
            root_hash: Some([0; 32]),
        })
        .expect("write");
        drop(core);
        // As JS leaves a store: block 1 in `data`, its entry in the log, nothing in `tree` or `bitfield`.
        let bytes = fs::read(path.join("oplog")).expect("oplog");
        let bits = decode_oplog(&bytes).expect("decode").bits;
        let mut log = OpenOptions::new()
            .append(true)
            .open(path.join("oplog"))
            .expect("open oplog");
        std::io::Write::write_all(
            &mut log,
            &frame(&entry(1).encode(), (bits[0] + bits[1]) & 1, false).expect("frame"),
        )
        .expect("append entry");
        drop(log);
        File::options()
            .write(true)
            .open(path.join("data"))
            .expect("data")
            .write_all_at(&[1u8; 10], 10)
            .expect("block 1");
        let (mut core, state) = JsCore::open(&path).expect("open");
        assert_eq!(state.header.tree.length, 2);
        assert!(state.nodes.contains_key(&2), "{:?}", state.nodes.keys());
        let block = [2u8; 10];
        core.write(&Change {
            entries: vec![entry(2)],
            blocks: vec![(20, &block)],
            punch: Vec::new(),
            root_hash: Some([2; 32]),
        })
        .expect("write");
        drop(core);
        assert_eq!(
            fs::metadata(path.join("oplog")).expect("oplog").len(),
            ENTRY_OFFSET,
            "the flush cut the log"
        );
        let tree = decode_tree(&fs::read(path.join("tree")).expect("tree"));
        assert_eq!(
            tree.keys().copied().collect::<Vec<_>>(),
            [0, 2, 4],
            "the replayed entry's node is in the tree file"
        );
        let (_, state) = JsCore::open(&path).expect("reopen");
        assert_eq!(state.header.tree.length, 3);
        assert_eq!(state.bitfield.set_bits(3).count(), 3);
    }

    #[test]
    fn a_header_too_big_for_its_slot_goes_to_the_header_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("core");
        let mut h = header(0);
        h.tree = TreeHeader::default();
        h.user_data = vec![("big".into(), vec![9; 6000])];
        let (mut core, state) = JsCore::create(&path, h.clone()).expect("create");
        assert_eq!(state.header.user_data, h.user_data);
        assert!(state.header.external.is_some());
        assert!(
            fs::metadata(path.join("header"))
                .expect("header file")
                .len()
                > 6000
        );
        let block = [1u8; 4];
        core.write(&Change {
            entries: vec![entry(0)],
            blocks: vec![(0, &block)],
            punch: Vec::new(),
            root_hash: Some([1; 32]),
        })
        .expect("write");
        drop(core);
        let (_, state) = JsCore::open(&path).expect("reopen");
        assert_eq!(state.header.user_data, h.user_data);
        assert_eq!(state.header.tree.length, 1);
    }

    #[test]
    fn hypercore_on_js_files_appends_truncates_clears_and_reopens() {
        use crate::crypto::KeyPair;
        use crate::hypercore::{messages::Manifest, Hypercore};
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("core");
        let kp = KeyPair::from_seed(&[4; 32]);
        let core = Hypercore::create_js(
            &path,
            kp.public,
            Some(&Manifest::default_signer(kp.public)),
            Some(&kp),
            Vec::new(),
            None,
        )
        .expect("create");
        let blocks: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
        core.truncate(2).expect("truncate");
        core.append(&[b"new"]).expect("append");
        core.clear(0, 1).expect("clear");
        let (hash, sig) = (core.tree_hash(), core.signature());
        drop(core);
        let core = Hypercore::open(&path).expect("reopen");
        assert!(core.writable());
        assert_eq!((core.length(), core.fork()), (3, 1));
        assert_eq!((core.tree_hash(), core.signature()), (hash, sig));
        assert_eq!(core.get(0).expect("get"), None, "cleared");
        assert_eq!(core.get(1).expect("get"), Some(blocks[1].clone()));
        assert_eq!(core.get(2).expect("get").as_deref(), Some(&b"new"[..]));
        assert_eq!(core.byte_length(), 100 + 101 + 3);
        // The head JS reads: the header's tree after the flush.
        let (_, state) = JsCore::open(&path).expect("raw");
        assert_eq!(state.header.tree.length, 3);
        assert_eq!(state.header.tree.fork, 1);
        assert_eq!(state.header.tree.root_hash, hash.to_vec());
        assert_eq!(state.header.hints.contiguous_length, 0);
        assert_eq!(state.header.hints.reorgs, vec![(0, 1, 2)]);
        assert_eq!(state.bitfield.set_bits(10).collect::<Vec<_>>(), vec![1, 2]);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
            let _ = decode_oplog(&bytes);
            let _ = OplogHeader::decode(&bytes);
            let _ = OplogEntry::decode(&bytes);
            let _ = read_frame(&bytes);
            let _ = parse_manifest(&bytes);
            let _ = decode_tree(&bytes);
            let _ = Bitfield::from_bytes(bytes.clone()).set_bits(u64::MAX).count();
        }

        #[test]
        fn damaged_oplogs_never_panic(cut in 0usize..9000, flip in 0usize..9000) {
            let h = header(0);
            let entries: Vec<_> = (0..3).map(|i| (0u8, false, entry(i))).collect();
            let mut buf = oplog([Some((0, &h)), Some((1, &h))], &entries);
            if let Some(b) = buf.get_mut(flip) {
                *b ^= 0x41;
            }
            buf.truncate(cut.max(1));
            if let Ok(d) = decode_oplog(&buf) {
                prop_assert!(ENTRY_OFFSET + d.entries_len <= buf.len().max(ENTRY_OFFSET as usize) as u64);
            }
        }
    }
}

//! Hypercore 11's wire messages for proofs (`lib/messages.js`): the `request` and `data` types the replicator
//! exchanges, tree nodes, the manifest and the multi-signature envelope a version 1 manifest signs with.

use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Result, Writer};
use crate::crypto::TreeNode;

/// Flags of `request` and `data`.
const FLAG_BLOCK: u64 = 1;
const FLAG_HASH: u64 = 2;
const FLAG_SEEK: u64 = 4;
const FLAG_UPGRADE: u64 = 8;
const FLAG_MANIFEST: u64 = 16;
const FLAG_PRIORITY: u64 = 32;

/// Manifest flags.
const MANIFEST_PATCH: u64 = 1;
const MANIFEST_PROLOGUE: u64 = 2;
const MANIFEST_LINKED: u64 = 4;
const MANIFEST_USER_DATA: u64 = 8;

fn encode_node(w: &mut Writer, n: &TreeNode) {
    w.uint(n.index).uint(n.size).fixed32(&n.hash);
}

fn decode_node(r: &mut Reader<'_>) -> Result<TreeNode> {
    Ok(TreeNode {
        index: r.uint()?,
        size: r.uint()?,
        hash: r.fixed32()?,
    })
}

fn encode_nodes(w: &mut Writer, nodes: &[TreeNode]) {
    w.array(nodes, encode_node);
}

fn decode_nodes(r: &mut Reader<'_>) -> Result<Vec<TreeNode>> {
    r.array(decode_node)
}

/// A block (or hash) request: the block index and how many tree nodes the requester already has above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestBlock {
    /// Block index (for `hash` requests: a tree node index).
    pub index: u64,
    /// Nodes the requester already has on the path to the root (so they are left out of the proof).
    pub nodes: u64,
}

/// A seek request: find the block holding byte `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestSeek {
    /// Byte offset.
    pub bytes: u64,
    /// Per-block padding not counted in `bytes` (block encryption's 8-byte header).
    pub padding: u64,
}

/// An upgrade request: prove the tree from `start` to `start + length` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestUpgrade {
    /// Length the requester already trusts.
    pub start: u64,
    /// Blocks to upgrade by.
    pub length: u64,
}

/// `wire.request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Request id (echoed in the `data` answer).
    pub id: u64,
    /// Fork id the requester is on.
    pub fork: u64,
    /// Block with proof.
    pub block: Option<RequestBlock>,
    /// Tree node hash with proof.
    pub hash: Option<RequestBlock>,
    /// Byte seek.
    pub seek: Option<RequestSeek>,
    /// Length upgrade.
    pub upgrade: Option<RequestUpgrade>,
    /// Ask for the manifest too.
    pub manifest: bool,
    /// Priority (0 = normal; not encoded when 0).
    pub priority: u64,
}

impl Encode for Request {
    fn encode(&self, w: &mut Writer) {
        let flags = flag(self.block.is_some(), FLAG_BLOCK)
            | flag(self.hash.is_some(), FLAG_HASH)
            | flag(self.seek.is_some(), FLAG_SEEK)
            | flag(self.upgrade.is_some(), FLAG_UPGRADE)
            | flag(self.manifest, FLAG_MANIFEST)
            | flag(self.priority != 0, FLAG_PRIORITY);
        w.uint(flags).uint(self.id).uint(self.fork);
        if let Some(b) = &self.block {
            w.uint(b.index).uint(b.nodes);
        }
        if let Some(b) = &self.hash {
            w.uint(b.index).uint(b.nodes);
        }
        if let Some(s) = &self.seek {
            w.uint(s.bytes).uint(s.padding);
        }
        if let Some(u) = &self.upgrade {
            w.uint(u.start).uint(u.length);
        }
        if self.priority != 0 {
            w.uint(self.priority);
        }
    }
}

impl<'a> Decode<'a> for Request {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let flags = r.uint()?;
        let id = r.uint()?;
        let fork = r.uint()?;
        let block = opt(flags & FLAG_BLOCK != 0, || {
            Ok(RequestBlock {
                index: r.uint()?,
                nodes: r.uint()?,
            })
        })?;
        let hash = opt(flags & FLAG_HASH != 0, || {
            Ok(RequestBlock {
                index: r.uint()?,
                nodes: r.uint()?,
            })
        })?;
        let seek = opt(flags & FLAG_SEEK != 0, || {
            Ok(RequestSeek {
                bytes: r.uint()?,
                padding: r.uint()?,
            })
        })?;
        let upgrade = opt(flags & FLAG_UPGRADE != 0, || {
            Ok(RequestUpgrade {
                start: r.uint()?,
                length: r.uint()?,
            })
        })?;
        let priority = if flags & FLAG_PRIORITY != 0 {
            r.uint()?
        } else {
            0
        };
        Ok(Self {
            id,
            fork,
            block,
            hash,
            seek,
            upgrade,
            manifest: flags & FLAG_MANIFEST != 0,
            priority,
        })
    }
}

fn flag(on: bool, bit: u64) -> u64 {
    if on {
        bit
    } else {
        0
    }
}

fn opt<T>(present: bool, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    if present {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// A block with the nodes proving it (`dataBlock`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataBlock {
    /// Block index.
    pub index: u64,
    /// Block bytes.
    pub value: Vec<u8>,
    /// Sibling nodes from the block up.
    pub nodes: Vec<TreeNode>,
}

/// A tree node hash with the nodes proving it (`dataHash`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataHash {
    /// Tree node index.
    pub index: u64,
    /// The node itself then its uncles.
    pub nodes: Vec<TreeNode>,
}

/// A seek answer (`dataSeek`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataSeek {
    /// The byte offset sought.
    pub bytes: u64,
    /// The nodes down to the block holding the byte.
    pub nodes: Vec<TreeNode>,
}

/// An upgrade proof (`dataUpgrade`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataUpgrade {
    /// Length the proof starts from.
    pub start: u64,
    /// Blocks added.
    pub length: u64,
    /// Nodes connecting the old roots to the new ones.
    pub nodes: Vec<TreeNode>,
    /// Roots past `start + length`, up to the signed length.
    pub additional_nodes: Vec<TreeNode>,
    /// The signature of the tree at the signed length.
    pub signature: Option<Vec<u8>>,
}

/// `wire.data`: the answer to a [`Request`], a proof that [`crate::hypercore::tree`] verifies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// The request id answered.
    pub request: u64,
    /// The fork the proof is for.
    pub fork: u64,
    /// Block proof.
    pub block: Option<DataBlock>,
    /// Hash proof.
    pub hash: Option<DataHash>,
    /// Seek proof.
    pub seek: Option<DataSeek>,
    /// Upgrade proof.
    pub upgrade: Option<DataUpgrade>,
    /// The core's manifest.
    pub manifest: Option<Manifest>,
}

impl Encode for Data {
    fn encode(&self, w: &mut Writer) {
        let flags = flag(self.block.is_some(), FLAG_BLOCK)
            | flag(self.hash.is_some(), FLAG_HASH)
            | flag(self.seek.is_some(), FLAG_SEEK)
            | flag(self.upgrade.is_some(), FLAG_UPGRADE)
            | flag(self.manifest.is_some(), FLAG_MANIFEST);
        w.uint(flags).uint(self.request).uint(self.fork);
        if let Some(b) = &self.block {
            w.uint(b.index).buffer(&b.value);
            encode_nodes(w, &b.nodes);
        }
        if let Some(h) = &self.hash {
            w.uint(h.index);
            encode_nodes(w, &h.nodes);
        }
        if let Some(s) = &self.seek {
            w.uint(s.bytes);
            encode_nodes(w, &s.nodes);
        }
        if let Some(u) = &self.upgrade {
            w.uint(u.start).uint(u.length);
            encode_nodes(w, &u.nodes);
            encode_nodes(w, &u.additional_nodes);
            w.optional_buffer(u.signature.as_deref());
        }
        if let Some(m) = &self.manifest {
            m.encode(w);
        }
    }
}

impl<'a> Decode<'a> for Data {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let flags = r.uint()?;
        let request = r.uint()?;
        let fork = r.uint()?;
        let block = opt(flags & FLAG_BLOCK != 0, || {
            Ok(DataBlock {
                index: r.uint()?,
                value: r.buffer()?.to_vec(),
                nodes: decode_nodes(r)?,
            })
        })?;
        let hash = opt(flags & FLAG_HASH != 0, || {
            Ok(DataHash {
                index: r.uint()?,
                nodes: decode_nodes(r)?,
            })
        })?;
        let seek = opt(flags & FLAG_SEEK != 0, || {
            Ok(DataSeek {
                bytes: r.uint()?,
                nodes: decode_nodes(r)?,
            })
        })?;
        let upgrade = opt(flags & FLAG_UPGRADE != 0, || {
            Ok(DataUpgrade {
                start: r.uint()?,
                length: r.uint()?,
                nodes: decode_nodes(r)?,
                additional_nodes: decode_nodes(r)?,
                signature: r.optional_buffer()?.map(<[u8]>::to_vec),
            })
        })?;
        let manifest = opt(flags & FLAG_MANIFEST != 0, || Manifest::decode(r))?;
        Ok(Self {
            request,
            fork,
            block,
            hash,
            seek,
            upgrade,
            manifest,
        })
    }
}

/// One signer of a manifest (always Ed25519 today).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer {
    /// Signing namespace (hypercore's `DEFAULT_NAMESPACE` by default).
    pub namespace: [u8; 32],
    /// Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A known length and tree hash the core starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prologue {
    /// Tree hash at `length`.
    pub hash: [u8; 32],
    /// Length.
    pub length: u64,
}

/// A hypercore manifest (versions 1 to 3; version 0 is refused as unsupported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest version.
    pub version: u64,
    /// Whether signers may patch.
    pub allow_patch: bool,
    /// Signatures needed.
    pub quorum: u64,
    /// Signers (hash is always BLAKE2b, signatures Ed25519).
    pub signers: Vec<Signer>,
    /// Optional prologue.
    pub prologue: Option<Prologue>,
    /// Linked core keys (version 2+).
    pub linked: Option<Vec<[u8; 32]>>,
    /// User data (version 2+).
    pub user_data: Option<Vec<u8>>,
}

impl Manifest {
    /// `Verifier.defaultSignerManifest(publicKey)`: version 1, quorum 1, one Ed25519 signer in the default
    /// namespace.
    pub fn default_signer(public_key: [u8; 32]) -> Self {
        Self {
            version: 1,
            allow_patch: false,
            quorum: 1,
            signers: vec![Signer {
                namespace: super::caps::default_namespace(),
                public_key,
            }],
            prologue: None,
            linked: None,
            user_data: None,
        }
    }
}

impl Encode for Manifest {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.version);
        let flags = flag(self.allow_patch, MANIFEST_PATCH)
            | flag(self.prologue.is_some(), MANIFEST_PROLOGUE)
            | flag(self.linked.is_some(), MANIFEST_LINKED)
            | flag(self.user_data.is_some(), MANIFEST_USER_DATA);
        w.uint(flags);
        w.uint(0); // blake2b
        w.uint(self.quorum);
        w.array(&self.signers, |w, s| {
            w.uint(0).fixed32(&s.namespace).fixed32(&s.public_key); // ed25519
        });
        if let Some(p) = &self.prologue {
            w.fixed32(&p.hash).uint(p.length);
        }
        if let Some(l) = &self.linked {
            w.array(l, |w, k| {
                w.fixed32(k);
            });
        }
        if let Some(u) = &self.user_data {
            w.buffer(u);
        }
    }
}

impl<'a> Decode<'a> for Manifest {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let version = r.uint()?;
        if version == 0 || version > 3 {
            return Err(DecodeError::Invalid("manifest version"));
        }
        let flags = r.uint()?;
        if r.uint()? != 0 {
            return Err(DecodeError::Invalid("manifest hash id"));
        }
        let quorum = r.uint()?;
        let signers = r.array(|r| {
            if r.uint()? != 0 {
                return Err(DecodeError::Invalid("manifest signature id"));
            }
            Ok(Signer {
                namespace: r.fixed32()?,
                public_key: r.fixed32()?,
            })
        })?;
        let prologue = opt(flags & MANIFEST_PROLOGUE != 0, || {
            Ok(Prologue {
                hash: r.fixed32()?,
                length: r.uint()?,
            })
        })?;
        let linked = opt(flags & MANIFEST_LINKED != 0, || r.array(|r| r.fixed32()))?;
        let user_data = opt(flags & MANIFEST_USER_DATA != 0, || {
            r.buffer().map(<[u8]>::to_vec)
        })?;
        Ok(Self {
            version,
            allow_patch: flags & MANIFEST_PATCH != 0,
            quorum,
            signers,
            prologue,
            linked,
            user_data,
        })
    }
}

/// One signature in a [`MultiSignature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultisigInput {
    /// Index of the signer in the manifest.
    pub signer: u64,
    /// Ed25519 signature.
    pub signature: [u8; 64],
    /// Number of patch nodes (0 without a patch).
    pub patch: u64,
}

/// `multiSignature`: how a version 1+ manifest core carries its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSignature {
    /// Signatures.
    pub proofs: Vec<MultisigInput>,
    /// Patch nodes.
    pub patch: Vec<TreeNode>,
}

impl Encode for MultiSignature {
    fn encode(&self, w: &mut Writer) {
        w.array(&self.proofs, |w, p| {
            w.uint(p.signer).fixed64(&p.signature).uint(p.patch);
        });
        encode_nodes(w, &self.patch);
    }
}

impl<'a> Decode<'a> for MultiSignature {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let proofs = r.array(|r| {
            Ok(MultisigInput {
                signer: r.uint()?,
                signature: r.fixed64()?,
                patch: r.uint()?,
            })
        })?;
        let patch = decode_nodes(r)?;
        Ok(Self { proofs, patch })
    }
}

/// `wire.handshake`: the payload of a `hypercore/alpha` channel open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The sender answers seek requests.
    pub seeks: bool,
    /// `caps.replicate(isInitiator, key, handshakeHash)` of the sender.
    pub capability: [u8; 32],
}

impl Encode for Handshake {
    fn encode(&self, w: &mut Writer) {
        w.uint(u64::from(self.seeks)).fixed32(&self.capability);
    }
}

impl<'a> Decode<'a> for Handshake {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let flags = r.uint()?;
        Ok(Self {
            seeks: flags & 1 != 0,
            capability: r.fixed32()?,
        })
    }
}

/// `wire.sync` (message 0): the sender's head and what it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync {
    /// Sender's fork.
    pub fork: u64,
    /// Sender's length.
    pub length: u64,
    /// The receiver's length as the sender last heard it (0 on another fork).
    pub remote_length: u64,
    /// The sender can prove an upgrade from `remote_length` to `length`.
    pub can_upgrade: bool,
    /// The sender answers requests.
    pub uploading: bool,
    /// The sender wants data.
    pub downloading: bool,
    /// The sender has a manifest to give (non-compat cores).
    pub has_manifest: bool,
    /// The sender accepts unrequested data.
    pub allow_push: bool,
}

impl Encode for Sync {
    fn encode(&self, w: &mut Writer) {
        let flags = flag(self.can_upgrade, 1)
            | flag(self.uploading, 2)
            | flag(self.downloading, 4)
            | flag(self.has_manifest, 8)
            | flag(self.allow_push, 16);
        w.uint(flags)
            .uint(self.fork)
            .uint(self.length)
            .uint(self.remote_length);
    }
}

impl<'a> Decode<'a> for Sync {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let flags = r.uint()?;
        Ok(Self {
            fork: r.uint()?,
            length: r.uint()?,
            remote_length: r.uint()?,
            can_upgrade: flags & 1 != 0,
            uploading: flags & 2 != 0,
            downloading: flags & 4 != 0,
            has_manifest: flags & 8 != 0,
            allow_push: flags & 16 != 0,
        })
    }
}

/// `wire.cancel` (message 2): the sender no longer wants the answer to request `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancel {
    /// The request id.
    pub request: u64,
}

impl Encode for Cancel {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.request);
    }
}

impl<'a> Decode<'a> for Cancel {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        Ok(Self { request: r.uint()? })
    }
}

/// [`NoData::reason`]: the sender does not have what was asked.
pub const NO_DATA_NOT_AVAILABLE: u64 = 1;
/// [`NoData::reason`]: the request could not be answered (a proof the sender cannot build).
pub const NO_DATA_INVALID_REQUEST: u64 = 2;

/// `wire.noData` (message 4): request `request` cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoData {
    /// The request id.
    pub request: u64,
    /// Why (0 = unspecified, [`NO_DATA_NOT_AVAILABLE`], [`NO_DATA_INVALID_REQUEST`]).
    pub reason: u64,
}

impl Encode for NoData {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.request).uint(u64::from(self.reason != 0));
        if self.reason != 0 {
            w.uint(self.reason);
        }
    }
}

impl<'a> Decode<'a> for NoData {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let request = r.uint()?;
        // Older peers send the id alone.
        let flags = if r.is_empty() { 0 } else { r.uint()? };
        let reason = if flags & 1 != 0 { r.uint()? } else { 0 };
        Ok(Self { request, reason })
    }
}

/// `wire.want` / `wire.unwant` (messages 5 and 6): the sender (no longer) wants to hear what the receiver
/// has in `start..start + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
    /// Any one block of the range will do.
    pub any: bool,
}

impl Encode for Want {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.start).uint(self.length);
        if self.any {
            w.uint(1);
        }
    }
}

impl<'a> Decode<'a> for Want {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let start = r.uint()?;
        let length = r.uint()?;
        let flags = if r.is_empty() { 0 } else { r.uint()? };
        Ok(Self {
            start,
            length,
            any: flags & 1 != 0,
        })
    }
}

/// `wire.range` (message 8): the sender has (or, with `drop`, dropped) blocks `start..start + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// The blocks were removed rather than added.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

impl Encode for Range {
    fn encode(&self, w: &mut Writer) {
        w.uint(flag(self.drop, 1) | flag(self.length == 1, 2))
            .uint(self.start);
        if self.length != 1 {
            w.uint(self.length);
        }
    }
}

impl<'a> Decode<'a> for Range {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let flags = r.uint()?;
        let start = r.uint()?;
        let length = if flags & 2 != 0 { 1 } else { r.uint()? };
        Ok(Self {
            drop: flags & 1 != 0,
            start,
            length,
        })
    }
}

/// `wire.bitfield` (message 7): which of the blocks from `start` the sender has, 32 per word, least
/// significant bit first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitfieldMessage {
    /// First block the words describe.
    pub start: u64,
    /// The bits.
    pub bitfield: Vec<u32>,
}

impl Encode for BitfieldMessage {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.start).uint32_array(&self.bitfield);
    }
}

impl<'a> Decode<'a> for BitfieldMessage {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        Ok(Self {
            start: r.uint()?,
            bitfield: r.uint32_array()?,
        })
    }
}

/// `wire.reorgHint`: hints about a truncation (`from`, `to`, `ancestors`); JS hypercore 11 defines it but
/// sends and reads none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReorgHint {
    /// Length before.
    pub from: u64,
    /// Length after.
    pub to: u64,
    /// Shared ancestors.
    pub ancestors: u64,
}

impl Encode for ReorgHint {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.from).uint(self.to).uint(self.ancestors);
    }
}

impl<'a> Decode<'a> for ReorgHint {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        Ok(Self {
            from: r.uint()?,
            to: r.uint()?,
            ancestors: r.uint()?,
        })
    }
}

/// `wire.extension` (message 9): a message of a named extension; an empty name repeats the last one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// Extension name.
    pub name: String,
    /// The rest of the message.
    pub message: Vec<u8>,
}

impl Encode for Extension {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.name).bytes(&self.message);
    }
}

impl<'a> Decode<'a> for Extension {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        Ok(Self {
            name: r.string()?.to_owned(),
            message: r.raw().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let req = Request {
            id: 7,
            fork: 2,
            block: Some(RequestBlock { index: 5, nodes: 1 }),
            hash: None,
            seek: Some(RequestSeek {
                bytes: 1000,
                padding: 0,
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 9,
            }),
            manifest: true,
            priority: 3,
        };
        let bytes = req.to_bytes();
        assert_eq!(Request::from_bytes_exact(&bytes), Ok(req));
    }

    #[test]
    fn data_round_trip() {
        let node = TreeNode {
            index: 3,
            size: 10,
            hash: [9; 32],
        };
        let data = Data {
            request: 1,
            fork: 0,
            block: Some(DataBlock {
                index: 1,
                value: b"hi".to_vec(),
                nodes: vec![node],
            }),
            hash: Some(DataHash {
                index: 3,
                nodes: vec![node, node],
            }),
            seek: Some(DataSeek {
                bytes: 3,
                nodes: vec![],
            }),
            upgrade: Some(DataUpgrade {
                start: 0,
                length: 4,
                nodes: vec![node],
                additional_nodes: vec![],
                signature: Some(vec![1; 64]),
            }),
            manifest: Some(Manifest::default_signer([4; 32])),
        };
        let bytes = data.to_bytes();
        assert_eq!(Data::from_bytes_exact(&bytes), Ok(data));
    }
}

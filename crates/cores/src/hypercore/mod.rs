//! Hypercore 11 without the network: a signed, append-only Merkle log stored crash-safely on disk, the proofs
//! hypercore's replication exchanges, and their verification.
//!
//! - [`tree`]: the flat-tree Merkle tree, proof generation and verification (sans-IO).
//! - [`messages`]: the `request`/`data` wire types, manifest and multi-signature codecs.
//! - [`caps`], [`Verifier`], [`multisig`]: the signed bytes; compat cores and manifest cores (several signers
//!   with a quorum, multi-signatures with patches, prologues); signing API: `signed_length`,
//!   `partial_signature`, `set_signature`, `info`; user data ([`user_data`]); atomic batches ([`atomic`]).
//! - [`storage`]: the checksummed record log (design and measurements in `STORAGE.md`).
//! - [`replicator`]: replication with other peers (JS hypercore's `hypercore/alpha` protomux protocol), sans-IO
//!   state plus a tokio driver.
//!
//! [`Hypercore`] ties them together with an API in the spirit of JS hypercore. Hypercore's default block
//! encryption (`encryptionKey`) and the set of blocks a remote peer has are private modules.

pub mod atomic;
mod bitfield;
pub mod caps;
pub mod checkpoint;
pub mod encryption;
mod index;
pub mod js_storage;
pub mod messages;
pub mod multisig;
pub mod replicator;
mod signing;
pub mod storage;
pub mod tree;
pub mod user_data;
mod verifier;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::{discovery_key, KeyPair, TreeNode};
use crate::flat_tree;

use index::{NodeIndex, Nodes, PagedMap};
use messages::{Data, Manifest, Request};
use storage::{Clear, Head, Log, LogReader, Record};

use encryption::BlockEncryption;
pub use encryption::ShortBlock;
pub use signing::CoreInfo;
pub use storage::Durability;
use tree::{Batch, ProofError, ProofRequest, TreeState};
pub use verifier::{Verifier, VerifierError};

/// Largest block the JS implementation suggests (`MAX_SUGGESTED_BLOCK_SIZE`, 15 MiB).
pub const MAX_BLOCK_SIZE: usize = 15 * 1024 * 1024;

const META_FILE: &str = "meta";
const LOG_FILE: &str = "log";

/// What went wrong in a hypercore operation.
#[derive(Debug, thiserror::Error)]
pub enum HypercoreError {
    /// File system error.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data that does not decode or does not add up.
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// A core already exists at the path given to `create`.
    #[error("a hypercore already exists in {0}")]
    AlreadyExists(PathBuf),
    /// No key pair with a secret key: the core is read-only.
    #[error("core is not writable")]
    NotWritable,
    /// A block over [`MAX_BLOCK_SIZE`].
    #[error("block of {0} bytes exceeds the maximum block size")]
    BlockTooLarge(usize),
    /// `truncate` to a length above the current one.
    #[error("cannot truncate to {requested}: length is {length}")]
    BadTruncate {
        /// Requested length.
        requested: u64,
        /// Current length.
        length: u64,
    },
    /// A rejected or unanswerable proof.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// A key/manifest/key pair that does not fit.
    #[error("verifier: {0}")]
    Verifier(#[from] VerifierError),
    /// A message that does not decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// A stored block too short to be an encrypted block.
    #[error("{0}")]
    Encryption(#[from] encryption::ShortBlock),
    /// A snapshot whose blocks were truncated away since.
    #[error("snapshot is no longer valid: the core was truncated below {0}")]
    SnapshotInvalidated(u64),
    /// A peer's signed head offered to a core that takes no upgrades now (unsigned writes without
    /// [`Hypercore::set_upgrades_allowed`]; asked for before that changed): not stored, not the peer's fault.
    #[error("the core takes no upgrades now")]
    UpgradeRefused,
}

/// Result of hypercore operations.
pub type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// Options for [`Hypercore::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Compat core (key = public key, JS's default when creating from a key pair); false makes a manifest
    /// core (key = hash of the default single-signer manifest), as JS `compat: false`.
    pub compat: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self { compat: true }
    }
}

/// Where a core's changes are written: our own record log, or hypercore 10's files (a JS store).
#[derive(Debug)]
enum Backend {
    Native(Log),
    Js(Box<js_storage::JsCore>),
}

impl Backend {
    fn set_durability(&mut self, durability: Durability) {
        match self {
            Backend::Native(log) => log.set_durability(durability),
            Backend::Js(js) => js.set_durability(durability),
        }
    }

    fn sync(&self) -> std::io::Result<()> {
        match self {
            Backend::Native(log) => log.sync(),
            Backend::Js(js) => js.sync(),
        }
    }
}

/// Nodes of a map plus nodes not stored yet (a batch being written).
struct Overlay<'a> {
    base: Nodes<'a>,
    extra: &'a [TreeNode],
}

impl tree::NodeSource for Overlay<'_> {
    fn node(&self, index: u64) -> Option<TreeNode> {
        self.extra
            .iter()
            .find(|n| n.index == index)
            .copied()
            .or_else(|| self.base.get(index))
    }
}

/// Where a block lives in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlockLoc {
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

#[derive(Debug)]
struct Inner {
    /// Reads blocks; writes go through [`Hypercore`]'s `log`.
    reader: LogReader,
    key: [u8; 32],
    manifest: Option<Manifest>,
    key_pair: Option<KeyPair>,
    verifier: Verifier,
    tree: TreeState,
    nodes: NodeIndex,
    blocks: PagedMap<BlockLoc>,
    /// (fork after, length truncated to), for snapshots.
    truncations: Vec<(u64, u64)>,
    encryption: Option<BlockEncryption>,
    /// Ranges cleared since the core was opened, in order (for the replicator to tell peers).
    clears: Vec<(u64, u64)>,
    /// The length of the latest head whose signature verifies (or that the prologue proves).
    signed_length: u64,
    /// The signature of the tree at `signed_length`, when known (none when the prologue proves it, or when
    /// only a reopen's replay found the length): what a core with unsigned writes serves its peers.
    signed_signature: Option<Vec<u8>>,
    /// Whether a core with unsigned writes takes upgrades from peers (see
    /// [`Hypercore::set_upgrades_allowed`]).
    upgrades_allowed: bool,
    /// `core.setUserData` pairs (native cores: the `user-data` file; JS stores: the oplog header).
    user_data: Vec<(String, Vec<u8>)>,
    /// Appends and truncations without a key pair write heads with no signature (see
    /// [`Hypercore::set_unsigned_writes`]).
    unsigned_writes: bool,
}

/// An append computed under the state lock, to write to the log and then publish (see [`Hypercore::append`]
/// and the atomic batches of [`atomic`]).
struct PreparedAppend<'a> {
    start: u64,
    batch: Batch,
    signature: Option<Vec<u8>>,
    /// The signature was handed in and verified (see `Hypercore::append_signed`).
    verified: bool,
    record: Record<'a>,
    js_change: Option<js_storage::Change<'a>>,
}

impl PreparedAppend<'_> {
    /// Writes (and syncs) the append; returns where its blocks (and, in a native log, its tree nodes) landed.
    fn write(&self, log: &mut Backend) -> Result<storage::Appended> {
        Ok(match (log, &self.js_change) {
            (Backend::Native(l), _) => l.append_located(&self.record)?,
            (Backend::Js(js), Some(change)) => {
                js.write(change)?;
                storage::Appended {
                    blocks: change
                        .blocks
                        .iter()
                        .enumerate()
                        .map(|(i, (off, b))| (self.start + i as u64, *off, b.len()))
                        .collect(),
                    nodes: Vec::new(),
                }
            }
            (Backend::Js(_), None) => storage::Appended::default(),
        })
    }
}

impl Inner {
    fn outcome(&self) -> AppendOutcome {
        AppendOutcome {
            length: self.tree.length,
            byte_length: self.tree.byte_length - self.tree.length * self.padding(),
        }
    }

    /// Checks the blocks of an append and encrypts them when the core is encrypted.
    fn encrypt_appended(&self, blocks: &[&[u8]]) -> Result<Option<Vec<Vec<u8>>>> {
        if let Some(b) = blocks.iter().find(|b| b.len() > MAX_BLOCK_SIZE) {
            return Err(HypercoreError::BlockTooLarge(b.len()));
        }
        let start = self.tree.length;
        let fork = self.encryption_fork();
        Ok(self.encryption.as_ref().map(|e| {
            blocks
                .iter()
                .enumerate()
                .map(|(i, b)| e.encrypt(start + i as u64, fork, b))
                .collect()
        }))
    }

    /// The fork id an appended block's encryption header carries (JS `state.encryptionFork`: the fork of
    /// the core's own head, `core.header.tree.fork`, whatever session appends). A core with unsigned writes
    /// (autobase's system and views) is JS's `batch` session on top of a head that stays on fork 0 (see
    /// [`Hypercore::replicated_head`]): its own truncations (the apply's undos) move the local fork, not the
    /// one its blocks are encrypted with, so every peer that applies the same blocks stores the same bytes
    /// and the indexers' signatures verify on each one's tree. Any other core: its fork.
    fn encryption_fork(&self) -> u64 {
        if self.unsigned_writes {
            0
        } else {
            self.tree.fork
        }
    }

    /// The tree, signature and log record of appending `stored` (the blocks as stored).
    fn prepare_append<'a>(
        &self,
        stored: &[&'a [u8]],
        js: bool,
        given: Option<Vec<u8>>,
    ) -> Result<PreparedAppend<'a>> {
        let start = self.tree.length;
        let mut batch = Batch::new(&self.tree);
        batch.append_all(stored);
        let verified = given.is_some();
        let signature = match (&self.key_pair, given) {
            (_, Some(sig)) => {
                if !self
                    .verifier
                    .verify_roots(&batch.roots, batch.length, batch.fork, Some(&sig))
                {
                    return Err(ProofError::InvalidSignature {
                        length: batch.length,
                        fork: batch.fork,
                    }
                    .into());
                }
                Some(sig)
            }
            (Some(kp), None) => {
                Some(
                    self.verifier
                        .sign(kp, &batch.hash(), batch.length, batch.fork)?,
                )
            }
            // Without a key pair, only the prologue's own blocks (JS `append(block, { writable: true })` on
            // an autobase anchor core): the tree must be the prologue's.
            (None, None)
                if self.verifier.prologue_covers(batch.length)
                    && self
                        .verifier
                        .verify_roots(&batch.roots, batch.length, batch.fork, None) =>
            {
                None
            }
            // An unsigned head (JS `append` without a key pair on a `writable` session: autobase's views).
            (None, None) if self.unsigned_writes => None,
            (None, None) => return Err(HypercoreError::NotWritable),
        };
        let record = Record {
            truncate: None,
            head: Some(Head {
                fork: batch.fork,
                length: batch.length,
                signature: signature.clone(),
            }),
            nodes: std::mem::take(&mut batch.nodes),
            blocks: stored
                .iter()
                .enumerate()
                .map(|(i, b)| (start + i as u64, *b))
                .collect(),
        };
        let js_change = js.then(|| {
            let mut offset = self.tree.byte_length;
            let mut placed = Vec::with_capacity(stored.len());
            for b in stored {
                placed.push((offset, *b));
                offset += b.len() as u64;
            }
            js_storage::Change {
                entries: vec![js_storage::OplogEntry {
                    user_data: None,
                    tree_nodes: Some(record.nodes.clone()),
                    tree_upgrade: Some(js_storage::TreeUpgrade {
                        fork: batch.fork,
                        ancestors: start,
                        length: batch.length,
                        signature: signature.clone().unwrap_or_default(),
                    }),
                    bitfield: Some(js_storage::BitfieldUpdate {
                        drop: false,
                        start,
                        length: stored.len() as u64,
                    }),
                }],
                blocks: placed,
                punch: Vec::new(),
                root_hash: Some(batch.hash()),
            }
        });
        Ok(PreparedAppend {
            start,
            batch,
            signature,
            verified,
            record,
            js_change,
        })
    }

    /// Makes a written append visible.
    fn publish_append(&mut self, p: PreparedAppend<'_>, located: storage::Appended) -> Result<()> {
        insert_blocks(&mut self.blocks, located.blocks)?;
        insert_nodes(&mut self.nodes, &p.record.nodes, &located.nodes);
        self.tree = p.batch.state(p.signature);
        if p.verified || signing::head_is_signed(&self.verifier, &self.tree) {
            self.signed_length = self.tree.length;
            self.signed_signature.clone_from(&self.tree.signature);
        }
        Ok(())
    }
}

impl Inner {
    /// What a core with unsigned writes serves: its signed length with the signature there, or (when that
    /// signature is not known) the prologue's length, which needs none.
    fn served(&self) -> (u64, Option<Vec<u8>>) {
        match &self.signed_signature {
            Some(sig) => (self.signed_length, Some(sig.clone())),
            None => (
                self.verifier
                    .prologue()
                    .map_or(0, |p| p.length)
                    .min(self.signed_length),
                None,
            ),
        }
    }

    /// The tree nodes, read where they are kept.
    fn nodes(&self) -> Nodes<'_> {
        self.nodes.source(&self.reader)
    }

    fn padding(&self) -> u64 {
        if self.encryption.is_some() {
            encryption::PADDING as u64
        } else {
            0
        }
    }

    /// Block `index` as the user sees it: decrypted when the core is encrypted.
    fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>> {
        let Some(stored) = get_block(self, index)? else {
            return Ok(None);
        };
        match &self.encryption {
            Some(e) => Ok(Some(e.decrypt(index, &stored)?)),
            None => Ok(Some(stored)),
        }
    }
}

/// A hypercore on disk. Cheap to clone (clones share the core); every method takes `&self`.
#[derive(Debug, Clone)]
pub struct Hypercore {
    /// The state readers see, locked briefly.
    inner: Arc<Mutex<Inner>>,
    /// The log's writer. Every change takes it before `inner` and holds it until the change is published,
    /// so changes are serialised; appends and stored proofs write (and sync) the log with `inner` unlocked,
    /// then publish, so reads are not held up by disk writes.
    log: Arc<Mutex<Backend>>,
    dir: PathBuf,
    /// Bumped after every change (append, truncate, applied proof), for [`Hypercore::subscribe`].
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What [`Hypercore::clear`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleared {
    /// Blocks that were stored and are gone now.
    pub blocks: u64,
    /// Their bytes as stored.
    pub bytes: u64,
    /// Bytes handed back to the file system (punched out of the log; 0 where it cannot).
    pub freed: u64,
}

/// What [`Hypercore::append`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// New length.
    pub length: u64,
    /// New byte length.
    pub byte_length: u64,
}

fn encode_meta(key: &[u8; 32], manifest: Option<&Manifest>, key_pair: Option<&KeyPair>) -> Vec<u8> {
    let mut w = Writer::new();
    let flags = u64::from(manifest.is_some()) | (u64::from(key_pair.is_some()) << 1);
    w.uint(1).fixed32(key).uint(flags);
    if let Some(m) = manifest {
        m.encode(&mut w);
    }
    if let Some(kp) = key_pair {
        w.fixed64(&kp.secret);
    }
    w.into_vec()
}

type Meta = ([u8; 32], Option<Manifest>, Option<KeyPair>);

fn decode_meta(bytes: &[u8]) -> Result<Meta, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.uint()? != 1 {
        return Err(DecodeError::Invalid("meta version"));
    }
    let key = r.fixed32()?;
    let flags = r.uint()?;
    let manifest = if flags & 1 != 0 {
        Some(Manifest::decode(&mut r)?)
    } else {
        None
    };
    let key_pair = if flags & 2 != 0 {
        Some(KeyPair::from_secret_key(&r.fixed64()?))
    } else {
        None
    };
    r.finish()?;
    Ok((key, manifest, key_pair))
}

impl Hypercore {
    /// Creates a writable compat core in `dir` (created if missing) signed by `key_pair`.
    pub fn create(dir: impl AsRef<Path>, key_pair: KeyPair) -> Result<Self> {
        Self::create_with(dir, key_pair, CreateOptions::default())
    }

    /// Creates a writable core in `dir` with options.
    pub fn create_with(
        dir: impl AsRef<Path>,
        key_pair: KeyPair,
        opts: CreateOptions,
    ) -> Result<Self> {
        let manifest = Manifest::default_signer(key_pair.public);
        let key = if opts.compat {
            key_pair.public
        } else {
            caps::manifest_hash(&manifest)
        };
        Self::init(dir.as_ref(), key, Some(manifest), Some(key_pair))
    }

    /// Creates a writable manifest core in `dir` for `manifest` (key = its hash), signed by `key_pair`, which
    /// must be one of its signers. Used for cores whose manifest is not the default one, such as hyperdrive's
    /// blobs core (a signer namespace derived from the drive).
    pub fn create_with_manifest(
        dir: impl AsRef<Path>,
        key_pair: KeyPair,
        manifest: Manifest,
    ) -> Result<Self> {
        if !manifest
            .signers
            .iter()
            .any(|s| s.public_key == key_pair.public)
        {
            return Err(VerifierError::NotASigner.into());
        }
        let key = caps::manifest_hash(&manifest);
        Self::init(dir.as_ref(), key, Some(manifest), Some(key_pair))
    }

    /// Creates an empty read-only core for `key` (to fill from verified proofs). A manifest core needs its
    /// manifest; a compat core does not.
    pub fn create_reader(
        dir: impl AsRef<Path>,
        key: [u8; 32],
        manifest: Option<Manifest>,
    ) -> Result<Self> {
        Self::init(dir.as_ref(), key, manifest, None)
    }

    fn init(
        dir: &Path,
        key: [u8; 32],
        manifest: Option<Manifest>,
        key_pair: Option<KeyPair>,
    ) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let meta = dir.join(META_FILE);
        if meta.exists() {
            return Err(HypercoreError::AlreadyExists(dir.to_path_buf()));
        }
        Verifier::new(&key, manifest.as_ref())?;
        // A stale log from an interrupted create would belong to no key: start from nothing.
        let _ = fs::remove_file(dir.join(LOG_FILE));
        checkpoint::remove(dir);
        let payload = encode_meta(&key, manifest.as_ref(), key_pair.as_ref());
        storage::write_atomic(&meta, &storage::frame(&payload)?)?;
        Self::open(dir)
    }

    /// Opens the core in `dir`, replaying its log (a hypercore 10 core, as JS keeps them, is opened in its own
    /// format: see [`Hypercore::open_js`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.join(META_FILE).exists() && js_storage::JsCore::exists(dir) {
            return Self::open_js(dir, None);
        }
        let meta = storage::read_framed(&dir.join(META_FILE))?;
        let (key, manifest, key_pair) = decode_meta(&meta)?;
        let verifier = Verifier::new(&key, manifest.as_ref())?;
        let (mut nodes, mut blocks, mut head, mut truncations, resume) = match checkpoint::load(dir)
        {
            Some(c) => (c.nodes, c.blocks, c.head, c.truncations, Some(c.mark)),
            None => (
                PagedMap::<u64>::default(),
                PagedMap::<BlockLoc>::default(),
                Head {
                    fork: 0,
                    length: 0,
                    signature: None,
                },
                Vec::new(),
                None,
            ),
        };
        // The last RECENT_HEADS heads (oldest first, cleared of those a truncation dropped), for the signed
        // length of a core whose newest heads carry partial signatures only. A replay resumed from a checkpoint
        // starts from the checkpoint's head alone (the heads before it are not replayed): if that head and those
        // after it are all partially signed, the signed length found on open is 0 until a fully signed head
        // comes (a quorum signature or a received proof).
        let mut recent_heads: std::collections::VecDeque<Head> = std::collections::VecDeque::new();
        if resume.is_some() {
            recent_heads.push_back(head.clone());
        }
        let mut bad_block = false;
        let (log, replayed) = Log::open_from(&dir.join(LOG_FILE), resume, &mut |event| {
            let rep = match event {
                storage::Replay::Reset => {
                    nodes = PagedMap::default();
                    blocks = PagedMap::default();
                    head = Head {
                        fork: 0,
                        length: 0,
                        signature: None,
                    };
                    truncations.clear();
                    recent_heads.clear();
                    bad_block = false;
                    return;
                }
                storage::Replay::Record(rep) => rep,
            };
            let rec = rep.record;
            if let Some(len) = rec.truncate {
                index::truncate_tree(&mut nodes, len);
                blocks.remove_from(len);
                recent_heads.retain(|h| h.length <= len);
            }
            if let Some(c) = &rec.clear {
                blocks.remove_range(c.start, c.end);
            }
            for (n, off) in rec.nodes.iter().zip(&rec.node_offsets) {
                nodes.insert(n.index, rep.payload_offset + *off as u64);
            }
            for (index, off, len) in rec.blocks {
                let Ok(len) = u32::try_from(len) else {
                    bad_block = true;
                    continue;
                };
                blocks.insert(
                    index,
                    BlockLoc {
                        offset: rep.payload_offset + off as u64,
                        len,
                    },
                );
            }
            if let Some(h) = rec.head {
                if let Some(len) = rec.truncate {
                    truncations.push((h.fork, len));
                }
                if recent_heads.len() == signing::RECENT_HEADS {
                    recent_heads.pop_front();
                }
                recent_heads.push_back(h.clone());
                head = h;
            }
        })?;
        if bad_block {
            return Err(HypercoreError::Corrupt("block length".into()));
        }
        if replayed >= checkpoint::WRITE_AFTER {
            if let Some(mark) = log.mark() {
                let bytes = checkpoint::encode(&mark, &head, &truncations, &blocks, &nodes);
                if let Err(e) = checkpoint::save(dir, &bytes) {
                    tracing::debug!(dir = %dir.display(), "could not write the index checkpoint: {e}");
                }
            }
        }
        let nodes = NodeIndex::InLog(nodes);
        let reader = log.reader()?;
        let mut tree = TreeState::at(&nodes.source(&reader), head.length, head.fork)
            .map_err(|e| HypercoreError::Corrupt(format!("tree head: {e}")))?;
        tree.signature = head.signature;
        // an unsigned head (a view appended without a key pair) is signed only as far as an older head is
        let signed_length = if signing::heads_all_signed(&verifier, key_pair.as_ref())
            && (tree.signature.is_some() || head.length == 0)
        {
            head.length
        } else {
            signing::signed_length_of(&verifier, &nodes.source(&reader), recent_heads.iter())
        };
        let user_data = user_data::load(dir)?;
        let (tree_length, tree_signature) = (tree.length, tree.signature.clone());
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                reader,
                key,
                manifest,
                key_pair,
                verifier,
                tree,
                nodes,
                blocks,
                truncations,
                encryption: None,
                clears: Vec::new(),
                signed_signature: (signed_length == tree_length)
                    .then(|| tree_signature.clone())
                    .flatten(),
                signed_length,
                user_data,
                unsigned_writes: false,
                upgrades_allowed: false,
            })),
            log: Arc::new(Mutex::new(Backend::Native(log))),
            dir: dir.to_path_buf(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// Opens a hypercore 10 core (JS hypercore 10's `oplog`, `tree`, `bitfield` and `data` files) in place.
    /// Its key pair is the one in its header, else (as corestore 6 does for named cores) the one derived from
    /// `primary_key` and the `corestore/name` and `corestore/namespace` in its user data.
    pub fn open_js(dir: impl AsRef<Path>, primary_key: Option<&[u8; 32]>) -> Result<Self> {
        let dir = dir.as_ref();
        let (mut js, state) = js_storage::JsCore::open(dir)?;
        let header = &state.header;
        let key = header.key;
        let manifest = header
            .manifest
            .as_deref()
            .map(js_storage::parse_manifest)
            .transpose()?;
        let verifier = Verifier::new(&key, manifest.as_ref())?;
        let signer_ok = |kp: &KeyPair| match &verifier {
            Verifier::Compat { public_key } => *public_key == kp.public,
            Verifier::Manifest { manifest, .. } => {
                manifest.signers.iter().any(|s| s.public_key == kp.public)
            }
        };
        let mut key_pair = header
            .key_pair
            .as_ref()
            .and_then(|(_, secret)| <[u8; 64]>::try_from(secret.as_slice()).ok())
            .map(|secret| KeyPair::from_secret_key(&secret))
            .filter(|kp| signer_ok(kp));
        if key_pair.is_none() {
            if let (Some(pk), Some(name)) = (primary_key, header.user_data("corestore/name")) {
                let ns = header
                    .user_data("corestore/namespace")
                    .and_then(|n| <[u8; 32]>::try_from(n).ok())
                    .unwrap_or([0; 32]);
                let kp = crate::corestore::create_key_pair(pk, &ns, name);
                key_pair = Some(kp).filter(|kp| signer_ok(kp));
            }
        }
        let (fork, length) = (header.tree.fork, header.tree.length);
        let signature = (!header.tree.signature.is_empty()).then(|| header.tree.signature.clone());
        let js_nodes = state.nodes;
        let mut tree = TreeState::at(&js_nodes, length, fork)
            .map_err(|e| HypercoreError::Corrupt(format!("{}: tree head: {e}", dir.display())))?;
        tree.signature = signature;
        js.set_root_hash(tree.hash());
        // Blocks present: set bits below the length whose leaf is stored, at their byte offsets.
        let mut blocks = PagedMap::default();
        let mut prev: Option<(u64, BlockLoc)> = None;
        for i in state.bitfield.set_bits(length) {
            let Some(leaf) = js_nodes.get(&(2 * i)) else {
                continue;
            };
            let Ok(len) = u32::try_from(leaf.size) else {
                continue;
            };
            let offset = match prev {
                Some((p, loc)) if p + 1 == i => loc.offset + u64::from(loc.len),
                _ => match tree::byte_offset(&tree, &js_nodes, 2 * i) {
                    Ok(o) => o,
                    Err(_) => continue,
                },
            };
            let loc = BlockLoc { offset, len };
            blocks.insert(i, loc);
            prev = Some((i, loc));
        }
        let mut nodes = NodeIndex::InMemory(PagedMap::default());
        for n in js_nodes.values() {
            nodes.insert(n, None);
        }
        drop(js_nodes);
        let reader = LogReader::from_file(js.data_file()?);
        let signed_length = if signing::heads_all_signed(&verifier, key_pair.as_ref())
            && (tree.signature.is_some() || length == 0)
        {
            length
        } else {
            signing::signed_length_of(
                &verifier,
                &nodes.source(&reader),
                [Head {
                    fork,
                    length,
                    signature: tree.signature.clone(),
                }]
                .iter(),
            )
        };
        let user_data = js.header().user_data.clone();
        let (tree_length, tree_signature) = (tree.length, tree.signature.clone());
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                reader,
                key,
                manifest,
                key_pair,
                verifier,
                tree,
                nodes,
                blocks,
                truncations: Vec::new(),
                encryption: None,
                clears: Vec::new(),
                signed_signature: (signed_length == tree_length)
                    .then(|| tree_signature.clone())
                    .flatten(),
                signed_length,
                user_data,
                unsigned_writes: false,
                upgrades_allowed: false,
            })),
            log: Arc::new(Mutex::new(Backend::Js(Box::new(js)))),
            dir: dir.to_path_buf(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// Creates a hypercore 10 core in `dir` (JS hypercore 10's files), as corestore 6 does: `key`, the
    /// manifest when known, the key pair when writable, and `user_data` (`corestore/name`,
    /// `corestore/namespace` for named cores). Fails if a core is stored there already.
    pub fn create_js(
        dir: impl AsRef<Path>,
        key: [u8; 32],
        manifest: Option<&Manifest>,
        key_pair: Option<&KeyPair>,
        user_data: Vec<(String, Vec<u8>)>,
        primary_key: Option<&[u8; 32]>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join(META_FILE).exists() || js_storage::JsCore::exists(dir) {
            return Err(HypercoreError::AlreadyExists(dir.to_path_buf()));
        }
        Verifier::new(&key, manifest)?;
        let header = js_storage::OplogHeader {
            key,
            manifest: manifest.map(|m| {
                let mut w = Writer::new();
                m.encode(&mut w);
                w.into_vec()
            }),
            key_pair: key_pair.map(|kp| (kp.public.to_vec(), kp.secret.to_vec())),
            user_data,
            ..js_storage::OplogHeader::default()
        };
        js_storage::JsCore::create(dir, header)?;
        Self::open_js(dir, primary_key)
    }

    /// True when this core is stored in hypercore 10's format (a JS store).
    pub fn is_js_format(&self) -> bool {
        matches!(&*self.log_lock(), Backend::Js(_))
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a new value after every change of the core (append, truncate, a stored proof):
    /// how the replicator and waiting readers learn about new blocks.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// True when block `index` is stored locally.
    pub fn has(&self, index: u64) -> bool {
        self.lock().blocks.contains(index)
    }

    /// The runs `start..end` of locally stored blocks within `from..to`, in order, at most `max` of them.
    pub fn stored_runs(&self, from: u64, to: u64, max: usize) -> Vec<(u64, u64)> {
        let g = self.lock();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for i in g.blocks.range(from, to).map(|(i, _)| i) {
            match runs.last_mut() {
                Some(last) if last.1 == i => last.1 = i + 1,
                _ => {
                    if runs.len() == max {
                        break;
                    }
                    runs.push((i, i + 1));
                }
            }
        }
        runs
    }

    /// Number of blocks stored locally.
    pub fn stored_blocks(&self) -> u64 {
        self.lock().blocks.len()
    }

    /// The log's writer lock; taken before [`Hypercore::lock`] by every change.
    fn log_lock(&self) -> MutexGuard<'_, Backend> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-updated (the log write comes first, the
        // in-memory update after cannot panic), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory the core lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The core's key (public key for compat cores, manifest hash otherwise).
    pub fn key(&self) -> [u8; 32] {
        self.lock().key
    }

    /// The discovery key (`hypercore-crypto` `discoveryKey(key)`).
    pub fn discovery_key(&self) -> [u8; 32] {
        discovery_key(&self.key())
    }

    /// The manifest, if known.
    pub fn manifest(&self) -> Option<Manifest> {
        self.lock().manifest.clone()
    }

    /// Number of blocks.
    pub fn length(&self) -> u64 {
        self.lock().tree.length
    }

    /// Bytes in all blocks (without the encryption headers when the core is encrypted, as JS reports it).
    pub fn byte_length(&self) -> u64 {
        let g = self.lock();
        g.tree.byte_length - g.tree.length * g.padding()
    }

    /// Encrypts appended blocks and decrypts read ones with hypercore's default block encryption
    /// (`encryptionKey`); with `block` the key is used as the block key directly (`{ block: true }`). Not
    /// stored: pass it on every open, as in JS.
    pub fn set_encryption_key(&self, key: &[u8; 32], block: bool) {
        let mut g = self.lock();
        let compat = matches!(g.verifier, Verifier::Compat { .. });
        g.encryption = Some(BlockEncryption::new(key, &g.key, compat, block));
    }

    /// Whether blocks are encrypted ([`set_encryption_key`](Self::set_encryption_key) was called).
    pub fn encrypted(&self) -> bool {
        self.lock().encryption.is_some()
    }

    /// Fork id.
    pub fn fork(&self) -> u64 {
        self.lock().tree.fork
    }

    /// The signature of the current head.
    pub fn signature(&self) -> Option<Vec<u8>> {
        self.lock().tree.signature.clone()
    }

    /// The current tree hash (`core.treeHash()`).
    pub fn tree_hash(&self) -> [u8; 32] {
        self.lock().tree.hash()
    }

    /// The current head: roots, length, fork and signature.
    pub fn tree(&self) -> TreeState {
        self.lock().tree.clone()
    }

    /// Sets when appends, truncations and applied proofs are durable (default [`Durability::Sync`]: on disk
    /// before the call returns).
    pub fn set_durability(&self, durability: Durability) {
        self.log_lock().set_durability(durability);
    }

    /// Puts everything written so far on disk (`fdatasync` of the log), also under
    /// [`Durability::Process`].
    pub fn flush(&self) -> Result<()> {
        Ok(self.log_lock().sync()?)
    }

    /// Lets [`append`](Self::append) and [`truncate`](Self::truncate) write without a key pair: the new heads
    /// carry no signature (the signed length stays where a verified signature, a prologue or
    /// [`set_signature`](Self::set_signature) put it), as JS hypercore appends on a `writable: true` session
    /// of a core it cannot sign (autobase's system and view cores, which only a quorum of indexers signs, in
    /// checkpoints). Not kept across reopens.
    pub fn set_unsigned_writes(&self, on: bool) {
        self.lock().unsigned_writes = on;
    }

    /// Lets a core with unsigned writes take upgrades from peers (off by default): its replicator then
    /// asks a peer with a longer signed head for it, as any reader does. Only for a core whose unsigned tail
    /// has been dropped (autobase's fast-forward truncates to the signed length first): a peer's signed tree
    /// replaces what is past the signed length.
    pub fn set_upgrades_allowed(&self, on: bool) {
        self.lock().upgrades_allowed = on;
    }

    /// Whether the replicator may take upgrades (a longer signed head) from peers: always, unless the core
    /// takes unsigned writes and [`set_upgrades_allowed`](Self::set_upgrades_allowed) is off.
    pub fn takes_upgrades(&self) -> bool {
        let g = self.lock();
        !g.unsigned_writes || g.upgrades_allowed
    }

    /// The head peers see: `(length, fork)`. A core with unsigned writes (autobase's system and views, as JS
    /// commits them) shows only its signed prefix, on fork 0 (what the indexers sign), and serves proofs of
    /// that tree with the signature that signed it ([`serve_proof`](Self::serve_proof)); its unsigned tail
    /// stays local. Any other core shows its head.
    pub fn replicated_head(&self) -> (u64, u64) {
        let g = self.lock();
        if g.unsigned_writes {
            (g.served().0, 0)
        } else {
            (g.tree.length, g.tree.fork)
        }
    }

    /// The answer to a peer's request (see [`replicated_head`](Self::replicated_head)): [`proof`](Self::proof)
    /// for most cores; for a core with unsigned writes a proof of the signed tree, its block index below the
    /// signed length.
    pub fn serve_proof(&self, req: &Request) -> Result<Data> {
        let g = self.lock();
        if !g.unsigned_writes {
            drop(g);
            return self.proof(req);
        }
        let (length, signature) = g.served();
        let mut state = TreeState::at(&g.nodes(), length, 0)?;
        state.signature = signature;
        proof_of(&g, &state, req)
    }

    /// True when this core holds a secret key.
    pub fn writable(&self) -> bool {
        self.lock().key_pair.is_some()
    }

    /// True when [`append`](Self::append) may write: the core holds a secret key, or takes unsigned writes
    /// ([`set_unsigned_writes`](Self::set_unsigned_writes)).
    pub fn appendable(&self) -> bool {
        let g = self.lock();
        g.key_pair.is_some() || g.unsigned_writes
    }

    /// Appends blocks atomically: after a crash either all of them are there (with a signed head) or none.
    pub fn append(&self, blocks: &[&[u8]]) -> Result<AppendOutcome> {
        self.append_blocks(blocks, false)
    }

    /// Appends blocks as they are stored: on an encrypted core, blocks already encrypted (say, copied with
    /// [`get_raw`](Self::get_raw) from a core of the same block key, as autobase moves a view to another
    /// core), not encrypted again. Otherwise as [`append`](Self::append).
    pub fn append_raw(&self, blocks: &[&[u8]]) -> Result<AppendOutcome> {
        self.append_blocks(blocks, true)
    }

    /// [`append`](Self::append), or with `raw` [`append_raw`](Self::append_raw).
    fn append_blocks(&self, blocks: &[&[u8]], raw: bool) -> Result<AppendOutcome> {
        let log = self.log_lock();
        let g = self.lock();
        if g.key_pair.is_none() && g.verifier.prologue().is_none() && !g.unsigned_writes {
            return Err(HypercoreError::NotWritable);
        }
        if blocks.is_empty() {
            return Ok(g.outcome());
        }
        if raw {
            if let Some(b) = blocks.iter().find(|b| b.len() > MAX_BLOCK_SIZE) {
                return Err(HypercoreError::BlockTooLarge(b.len()));
            }
        }
        self.append_locked(log, g, blocks, None, raw)
    }

    /// Appends `blocks` with the log and the state locked by the caller: signed with our key pair, or with
    /// `signature` when given (it must verify, see [`append_signed`](Self::append_signed)).
    fn append_locked(
        &self,
        mut log: MutexGuard<'_, Backend>,
        g: MutexGuard<'_, Inner>,
        blocks: &[&[u8]],
        signature: Option<Vec<u8>>,
        raw: bool,
    ) -> Result<AppendOutcome> {
        let encrypted = if raw {
            None
        } else {
            g.encrypt_appended(blocks)?
        };
        let stored: Vec<&[u8]> = match &encrypted {
            Some(list) => list.iter().map(Vec::as_slice).collect(),
            None => blocks.to_vec(),
        };
        let prepared = g.prepare_append(&stored, matches!(&*log, Backend::Js(_)), signature)?;
        // Written (and synced) with the state unlocked: readers go on meanwhile; `log` keeps other changes out.
        drop(g);
        let locs = prepared.write(&mut log)?;
        let mut g = self.lock();
        g.publish_append(prepared, locs)?;
        let outcome = g.outcome();
        drop(g);
        self.changed();
        Ok(outcome)
    }

    /// The block at `index` if stored locally (decrypted when an encryption key is set).
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        self.lock().read_block(index)
    }

    /// The block at `index` as stored and hashed (still encrypted on an encrypted core).
    pub fn get_raw(&self, index: u64) -> Result<Option<Vec<u8>>> {
        get_block(&self.lock(), index)
    }

    /// Truncates to `length`, bumping the fork id by one, and re-signs.
    pub fn truncate(&self, length: u64) -> Result<()> {
        let fork = self.fork() + 1;
        self.truncate_with_fork(length, fork)
    }

    /// Truncates to `length` and sets the fork id to `fork`.
    pub fn truncate_with_fork(&self, length: u64, fork: u64) -> Result<()> {
        let mut log = self.log_lock();
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.key_pair.is_none() && !inner.unsigned_writes {
            return Err(HypercoreError::NotWritable);
        }
        if length > inner.tree.length {
            return Err(HypercoreError::BadTruncate {
                requested: length,
                length: inner.tree.length,
            });
        }
        let mut state = TreeState::at(&inner.nodes(), length, fork)?;
        let signature = match &inner.key_pair {
            Some(kp) => Some(
                inner
                    .verifier
                    .sign(kp, &state.hash(), state.length, state.fork)?,
            ),
            None => None,
        };
        let record = Record {
            truncate: Some(length),
            head: Some(Head {
                fork,
                length,
                signature: signature.clone(),
            }),
            nodes: Vec::new(),
            blocks: Vec::new(),
        };
        match &mut *log {
            Backend::Native(l) => {
                l.append(&record)?;
            }
            Backend::Js(js) => js.write(&js_storage::Change {
                entries: vec![js_storage::OplogEntry {
                    user_data: None,
                    tree_nodes: Some(Vec::new()),
                    tree_upgrade: Some(js_storage::TreeUpgrade {
                        fork,
                        ancestors: length,
                        length,
                        signature: signature.clone().unwrap_or_default(),
                    }),
                    bitfield: Some(js_storage::BitfieldUpdate {
                        drop: true,
                        start: length,
                        length: inner.tree.length - length,
                    }),
                }],
                root_hash: Some(state.hash()),
                ..js_storage::Change::default()
            })?,
        }
        truncate_maps(&mut inner.nodes, &mut inner.blocks, length);
        inner.truncations.push((fork, length));
        state.signature = signature;
        inner.tree = state;
        let signed = if signing::head_is_signed(&inner.verifier, &inner.tree) {
            length
        } else {
            inner.signed_length.min(length)
        };
        if signed != inner.signed_length {
            inner.signed_signature = None;
        }
        inner.signed_length = signed;
        drop(g);
        self.changed();
        Ok(())
    }

    /// Drops the stored blocks `start..end` (JS `core.clear(start, end)`): they read as absent afterwards (also
    /// after a reopen) until downloaded again, and replicators tell their peers (a `range` with `drop`). The
    /// tree nodes stay, so the core still verifies and answers hash requests. Works on writable cores too.
    ///
    /// The clear is one record of the log, synced before the blocks' bytes are deallocated with
    /// `fallocate(PUNCH_HOLE)`, so the disk space comes back (in whole file system blocks) without rewriting
    /// the log. Returns what was dropped (JS returns `{ blocks: 0 }` with `{ diff: true }`, never filled in
    /// 11.37.1; here the counts are real).
    pub fn clear(&self, start: u64, end: u64) -> Result<Cleared> {
        let mut log = self.log_lock();
        let mut g = self.lock();
        let inner = &mut *g;
        let end = end.min(inner.tree.length);
        if start >= end {
            return Ok(Cleared::default());
        }
        let punched: Vec<(u64, u64)> = inner
            .blocks
            .range(start, end)
            .map(|(_, loc)| (loc.offset, u64::from(loc.len)))
            .collect();
        if punched.is_empty() {
            return Ok(Cleared::default());
        }
        let cleared = Cleared {
            blocks: punched.len() as u64,
            bytes: punched.iter().map(|(_, l)| l).sum(),
            freed: 0,
        };
        // Under the state lock: the holes punched must not be read as blocks.
        let freed = match &mut *log {
            Backend::Native(l) => l.append_clear(&Clear {
                start,
                end,
                punched,
            })?,
            Backend::Js(js) => {
                js.write(&js_storage::Change {
                    entries: vec![js_storage::OplogEntry {
                        bitfield: Some(js_storage::BitfieldUpdate {
                            drop: true,
                            start,
                            length: end - start,
                        }),
                        ..js_storage::OplogEntry::default()
                    }],
                    punch: punched.clone(),
                    ..js_storage::Change::default()
                })?;
                punched.iter().map(|(_, l)| l).sum()
            }
        };
        inner.blocks.remove_range(start, end);
        inner.clears.push((start, end));
        drop(g);
        self.changed();
        Ok(Cleared { freed, ..cleared })
    }

    /// The ranges cleared since the core was opened, from the `from`-th on (a replicator keeps how many it
    /// has seen).
    pub fn clears_since(&self, from: usize) -> Vec<(u64, u64)> {
        self.lock().clears.get(from..).unwrap_or_default().to_vec()
    }

    /// How many clears happened since the core was opened.
    pub fn clear_count(&self) -> usize {
        self.lock().clears.len()
    }

    /// The block holding byte `bytes` and the offset within it (`core.seek(bytes)`); `(length, 0)` at the
    /// end; None past it.
    pub fn seek(&self, bytes: u64) -> Result<Option<(u64, u64)>> {
        let g = self.lock();
        let padding = g.padding();
        if bytes > g.tree.byte_length - g.tree.length * padding {
            return Ok(None);
        }
        Ok(tree::seek(&g.tree, &g.nodes(), bytes, padding)?)
    }

    /// The byte offset of block `index` (counted as [`seek`](Self::seek) counts, without encryption padding),
    /// when the tree nodes it takes are here (a sparse replica has those of the blocks it fetched).
    pub fn byte_offset(&self, index: u64) -> Option<u64> {
        let g = self.lock();
        if index > g.tree.length {
            return None;
        }
        let offset = tree::byte_offset(&g.tree, &g.nodes(), 2 * index).ok()?;
        offset.checked_sub(index.checked_mul(g.padding())?)
    }

    /// How many nodes on the path from tree node `index` (`2 * block` for a block) up to the nearest stored
    /// node are missing here (`MerkleTree.missingNodes`): the `nodes` count to put in a block or hash request
    /// so the proof stops at a node this core can check it against.
    pub fn missing_nodes(&self, index: u64) -> u64 {
        let g = self.lock();
        let head = 2 * g.tree.length;
        let mut ite = flat_tree::TreeIterator::new(index);
        if ite.peek_right_span() >= head {
            return 0;
        }
        let mut count = 0;
        while !ite.contains(head) && !g.nodes.contains(ite.index) && count < 64 {
            count += 1;
            ite.parent();
        }
        count
    }

    /// A read-only view frozen at the current head.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            core: self.clone(),
            tree: self.tree(),
        }
    }

    /// Answers a peer's request with a proof (and the block's value), as the replicator does.
    pub fn proof(&self, req: &Request) -> Result<Data> {
        let g = self.lock();
        proof_of(&g, &g.tree, req)
    }

    /// Checks a received proof against the core's key and what is stored, without storing anything. Returns the
    /// batch of nodes it proves.
    pub fn verify_proof(&self, data: &Data) -> Result<Batch> {
        let g = self.lock();
        verify_locked(&g, data).map(|v| v.batch)
    }

    /// Verifies a received proof and stores what it proves (nodes, the block, a new signed head). A proof that
    /// fails any check stores nothing. A signed upgrade on another fork (proving the whole tree from 0) moves
    /// the core to that fork, dropping what is not shared.
    pub fn apply_proof(&self, data: &Data) -> Result<()> {
        let mut log = self.log_lock();
        let g = self.lock();
        let Verified {
            batch,
            verifier,
            truncate,
            new_head,
        } = verify_locked(&g, data)?;
        if new_head && g.unsigned_writes && !g.upgrades_allowed {
            // checked under the lock the upgrade is published with: a reply to a request sent while upgrades
            // were allowed (or before the core was marked) must not move a core the apply writes
            return Err(HypercoreError::UpgradeRefused);
        }
        // Written (and synced) with the state unlocked: readers go on meanwhile; `log` keeps other changes out,
        // so what was verified still holds when it is published below.
        drop(g);
        let head = new_head.then(|| Head {
            fork: batch.fork,
            length: batch.length,
            signature: batch.signature.clone(),
        });
        let record = Record {
            truncate,
            head,
            nodes: batch.nodes.clone(),
            blocks: data
                .block
                .as_ref()
                .map(|b| vec![(b.index, b.value.as_slice())])
                .unwrap_or_default(),
        };
        let located = match &mut *log {
            Backend::Native(l) => {
                // The manifest learnt from the peer goes to disk before what it verified: a process killed
                // in between must not leave blocks whose core cannot be verified (or, for a hyperdrive, whose
                // blobs core cannot be derived) when reopened.
                if let Some(Verifier::Manifest { manifest, .. }) = &verifier {
                    let g = self.lock();
                    if g.manifest.is_none() {
                        let payload = encode_meta(&g.key, Some(manifest), g.key_pair.as_ref());
                        drop(g);
                        storage::write_atomic(
                            &self.dir().join(META_FILE),
                            &storage::frame(&payload)?,
                        )?;
                    }
                }
                l.append_located(&record)?
            }
            Backend::Js(js) => {
                let g = self.lock();
                let change = js_proof_change(&g, &record, &batch, data, new_head, truncate)?;
                if let Some(Verifier::Manifest { manifest, .. }) = &verifier {
                    if g.manifest.is_none() {
                        js.set_manifest(manifest);
                    }
                }
                drop(g);
                js.write(&change)?;
                storage::Appended {
                    blocks: change
                        .blocks
                        .iter()
                        .zip(&record.blocks)
                        .map(|((off, b), (index, _))| (*index, *off, b.len()))
                        .collect(),
                    nodes: Vec::new(),
                }
            }
        };
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(len) = truncate {
            truncate_maps(&mut inner.nodes, &mut inner.blocks, len);
            inner.truncations.push((batch.fork, len));
            if len < inner.signed_length {
                inner.signed_length = len;
                inner.signed_signature = None;
            }
        }
        insert_blocks(&mut inner.blocks, located.blocks)?;
        insert_nodes(&mut inner.nodes, &record.nodes, &located.nodes);
        if new_head {
            inner.tree = batch.state(batch.signature.clone());
            // Verified above: the quorum signed it (or the prologue proves it).
            inner.signed_length = batch.length;
            inner.signed_signature.clone_from(&batch.signature);
        }
        if let Some(v) = verifier {
            if let Verifier::Manifest { manifest, .. } = &v {
                // Persisted above, before the record (in the meta file, or in a hypercore 10 core's header).
                inner.manifest = Some(manifest.clone());
            }
            inner.verifier = v;
            // The block keys of a manifest core differ from a compat core's: derive them again now that the
            // manifest says which one this is.
            let compat = matches!(inner.verifier, Verifier::Compat { .. });
            if let Some(e) = &inner.encryption {
                inner.encryption = Some(e.for_compat(&inner.key, compat));
            }
        }
        drop(g);
        self.changed();
        Ok(())
    }
}

/// The hypercore 10 change for a verified proof: the block at its byte offset, then one entry (nodes, the new
/// head, the block's bit) or, moving to another fork, an entry truncating to the shared length and one adding
/// the block (one atomic batch).
fn js_proof_change<'a>(
    inner: &Inner,
    record: &Record<'a>,
    batch: &Batch,
    data: &Data,
    new_head: bool,
    truncate: Option<u64>,
) -> Result<js_storage::Change<'a>> {
    let state = if new_head {
        batch.state(None)
    } else {
        inner.tree.clone()
    };
    let overlay = Overlay {
        base: inner.nodes(),
        extra: &batch.nodes,
    };
    let mut blocks = Vec::new();
    for (index, bytes) in &record.blocks {
        let offset = tree::byte_offset(&state, &overlay, 2 * index)?;
        blocks.push((offset, *bytes));
    }
    let upgrade = new_head.then(|| js_storage::TreeUpgrade {
        fork: batch.fork,
        ancestors: truncate.unwrap_or(inner.tree.length),
        length: batch.length,
        signature: batch.signature.clone().unwrap_or_default(),
    });
    let block_bits = data.block.as_ref().map(|b| js_storage::BitfieldUpdate {
        drop: false,
        start: b.index,
        length: 1,
    });
    let mut entries = Vec::new();
    match truncate {
        Some(t) => {
            entries.push(js_storage::OplogEntry {
                user_data: None,
                tree_nodes: Some(batch.nodes.clone()),
                tree_upgrade: upgrade,
                bitfield: Some(js_storage::BitfieldUpdate {
                    drop: true,
                    start: t,
                    length: inner.tree.length.saturating_sub(t),
                }),
            });
            if block_bits.is_some() {
                entries.push(js_storage::OplogEntry {
                    bitfield: block_bits,
                    ..js_storage::OplogEntry::default()
                });
            }
        }
        None => entries.push(js_storage::OplogEntry {
            user_data: None,
            tree_nodes: Some(batch.nodes.clone()),
            tree_upgrade: upgrade,
            bitfield: block_bits,
        }),
    }
    Ok(js_storage::Change {
        entries,
        blocks,
        punch: Vec::new(),
        root_hash: new_head.then(|| batch.hash()),
    })
}

/// A proof that passed every check, with what applying it changes.
struct Verified {
    batch: Batch,
    /// A verifier learnt from the proof's manifest.
    verifier: Option<Verifier>,
    /// For a proof on another fork: the length both forks share (everything after is dropped).
    truncate: Option<u64>,
    /// True when the proof moves the signed head.
    new_head: bool,
}

fn verify_locked(inner: &Inner, data: &Data) -> Result<Verified> {
    let mut new_verifier = None;
    let verifier = match (&inner.manifest, &data.manifest) {
        (None, Some(m)) => {
            let v = Verifier::new(&inner.key, Some(m))?;
            new_verifier = Some(v.clone());
            v
        }
        _ => inner.verifier.clone(),
    };
    let reorg = data.fork != inner.tree.fork;
    if reorg && data.upgrade.as_ref().is_none_or(|u| u.start != 0) {
        // Another fork can only be taken from a signed upgrade that proves the whole new tree.
        return Err(ProofError::ForkMismatch {
            ours: inner.tree.fork,
            got: data.fork,
        }
        .into());
    }
    let base = if reorg {
        TreeState {
            fork: data.fork,
            ..TreeState::default()
        }
    } else {
        inner.tree.clone()
    };
    let batch = tree::verify(&base, &inner.nodes(), data)?;
    let mut new_head = false;
    if batch.upgraded {
        if reorg || batch.length > inner.tree.length {
            if let (Some(p), Some(u)) = (verifier.prologue(), &data.upgrade) {
                // As JS `verifyUpgrade`: an upgrade into the prologue proves it whole, from 0.
                if u.start < p.length && (u.start != 0 || u.length < p.length) {
                    return Err(ProofError::InvalidRequest(
                        "upgrade does not satisfy the prologue",
                    )
                    .into());
                }
            }
            let sig = batch.signature.as_deref();
            if sig.is_none() && !verifier.prologue_covers(batch.length) {
                return Err(ProofError::MissingSignature.into());
            }
            if !verifier.verify_roots(&batch.roots, batch.length, batch.fork, sig) {
                return Err(ProofError::InvalidSignature {
                    length: batch.length,
                    fork: batch.fork,
                }
                .into());
            }
            new_head = true;
        } else {
            // An upgrade to a length we already have must land on exactly our roots.
            let ours = TreeState::at(&inner.nodes(), batch.length, inner.tree.fork)?;
            if ours.roots != batch.roots {
                return Err(ProofError::Conflict.into());
            }
        }
    }
    let truncate = if reorg {
        // The new tree's roots that we hold too (same hash) cover a prefix both forks share.
        let mut shared = 0;
        for root in &batch.roots {
            if inner.nodes().get(root.index).as_ref() != Some(root) {
                break;
            }
            shared = flat_tree::right_span(root.index) / 2 + 1;
        }
        Some(shared.min(inner.tree.length))
    } else {
        None
    };
    Ok(Verified {
        batch,
        verifier: new_verifier,
        truncate,
        new_head,
    })
}

fn insert_blocks(blocks: &mut PagedMap<BlockLoc>, locs: Vec<(u64, u64, usize)>) -> Result<()> {
    for (index, offset, len) in locs {
        let len = u32::try_from(len).map_err(|_| HypercoreError::BlockTooLarge(len))?;
        blocks.insert(index, BlockLoc { offset, len });
    }
    Ok(())
}

/// Indexes `nodes`, whose entries are at `offsets` in a native core's log (none for a hypercore 10 core).
fn insert_nodes(index: &mut NodeIndex, nodes: &[TreeNode], offsets: &[u64]) {
    for (i, n) in nodes.iter().enumerate() {
        index.insert(n, offsets.get(i).copied());
    }
}

/// The answer to `req` from the tree `state` (the core's own, or the signed tree a core with unsigned writes
/// serves), with the block's value and, when asked, the manifest.
fn proof_of(g: &Inner, state: &TreeState, req: &Request) -> Result<Data> {
    let preq = ProofRequest {
        block: req.block,
        hash: req.hash,
        seek: req.seek,
        upgrade: req.upgrade,
    };
    let mut data = tree::proof(state, &g.nodes(), &preq)?;
    data.request = req.id;
    if let Some(b) = data.block.as_mut() {
        b.value = get_block(g, b.index)?.ok_or(ProofError::MissingNode(2 * b.index))?;
    }
    // As the JS replicator: only a non-compat core sends its manifest (a compat key is the public key).
    if req.manifest && !matches!(g.verifier, Verifier::Compat { .. }) {
        data.manifest.clone_from(&g.manifest);
    }
    Ok(data)
}

fn get_block(inner: &Inner, index: u64) -> Result<Option<Vec<u8>>> {
    let Some(loc) = inner.blocks.get(index) else {
        return Ok(None);
    };
    Ok(Some(inner.reader.read(loc.offset, loc.len as usize)?))
}

fn truncate_maps(nodes: &mut NodeIndex, blocks: &mut PagedMap<BlockLoc>, length: u64) {
    blocks.remove_from(length);
    nodes.truncate(length);
}

/// A read-only view of a core frozen at one head (`core.snapshot()`): its length, byte length and tree hash
/// stay fixed while the core grows; reading a block truncated away since is an error.
#[derive(Debug, Clone)]
pub struct Snapshot {
    core: Hypercore,
    tree: TreeState,
}

impl Snapshot {
    /// Length at the snapshot.
    pub fn length(&self) -> u64 {
        self.tree.length
    }

    /// Byte length at the snapshot (without encryption headers).
    pub fn byte_length(&self) -> u64 {
        let padding = self.core.lock().padding();
        self.tree.byte_length - self.tree.length * padding
    }

    /// Fork at the snapshot.
    pub fn fork(&self) -> u64 {
        self.tree.fork
    }

    /// Tree hash at the snapshot.
    pub fn tree_hash(&self) -> [u8; 32] {
        self.tree.hash()
    }

    /// The block at `index` as of the snapshot (None when beyond its length or not stored).
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        if index >= self.tree.length {
            return Ok(None);
        }
        let g = self.core.lock();
        if let Some(min) = g
            .truncations
            .iter()
            .filter(|(fork, _)| *fork > self.tree.fork)
            .map(|(_, len)| *len)
            .min()
        {
            if index >= min {
                return Err(HypercoreError::SnapshotInvalidated(min));
            }
        }
        g.read_block(index)
    }
}

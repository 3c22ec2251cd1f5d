//! A minimal [`Autobase`] over a [`Corestore`], in one process (JS autobase 7.28.1 `index.js` `_drain` and
//! `lib/apply-state.js` `update`): writers' cores in, one set of views out.
//!
//! What it does, in the order of JS's drain:
//!
//! - **Writers.** The local writer is the store's core named `local` (JS `store.get({ name: 'local' })`, so
//!   the same primary key gives the same writer key in JS and here); the base's key is its creator's local
//!   key. Remote writers' cores are read from the store by key (whatever put their blocks there: a
//!   replicator, or [`copy_core`] in tests). Each [`Autobase::update`] feeds every known writer's new blocks
//!   to the [`Linearizer`], one batch per writer per pass, a node only once the nodes it names are in the DAG
//!   (a writer named by a head and not known yet is loaded as JS's `_getWriterByKey` does: removed unless the
//!   system lists it). A block that does not decode, or that the linearizer refuses (a head of a node that
//!   does not exist, a gap, a bad batch), freezes its writer: nothing of it is applied from then on, as JS
//!   freezes a writer whose block throws.
//! - **Local appends** ([`Autobase::append`]) link the linearizer's current heads and are written to the
//!   local core after the apply, with a digest naming the system core.
//! - **The apply** ([`ApplyState`] steps 1-4 of the module docs of [`super`]): shift the writers of indexed
//!   nodes already applied in place, undo (truncating the system core and the views to the last kept update
//!   record's system length), apply `shared..length` (the system adds each node as a DAG head with its causal
//!   dependencies; the application's [`Handlers::apply`] runs once per batch with a [`Host`] that can add,
//!   remove and ack writers; the system flushes once per batch; an update record is kept per batch), then
//!   index: the records of the indexed nodes are dropped and the last one's system length becomes the
//!   indexed length.
//! - **Indexer changes** (step 5): a batch that changed the indexer set stops the shifting; after the
//!   round the base reboots as JS `_reboot` does: a new linearizer for the indexed system state (its indexers,
//!   heads and member lengths), the un-indexed nodes of the update records re-added in their order (JS
//!   `catchup`), the system and views truncated to the indexed length and the records dropped, so the next
//!   round re-applies the un-indexed tail under the new indexers.
//!
//! - **Reopen**: from the boot record's indexed system length and the update records kept in the local
//!   writer's user data (`autobase/updates`): a reboot at the indexed length that re-applies the tail.
//!
//! - **Cores and checkpoints**: the system and view cores are JS's derived manifest cores, appended unsigned
//!   and moved to new keys on an indexer change (`_premigrate`); indexers write checkpoints and every peer
//!   assembles them into the cores' signed lengths (see the module docs of [`super`]).
//!
//! - **Fast-forward** ([`Autobase::begin_fast_forward`], [`Autobase::finish_fast_forward`]; the network part
//!   is [`super::replicate::fast_forward`]): the indexed state jumps to a peer's signed system core and the
//!   views it lists, and each writer is read from the length the system indexed (JS `_applyFastForward`).
//!
//! Not here yet: traces in writer blocks; the apply's writes are not one atomic
//! batch with the system flush; encryption. Replication over the network is [`super::replicate`].

use std::collections::HashMap;

use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::corestore::{Corestore, CorestoreError};
use crate::crypto::discovery_key;
use crate::hyperbee::{Hyperbee, HyperbeeError};
use crate::hypercore::messages::{Prologue, Request, RequestBlock, RequestUpgrade};
use crate::hypercore::{Durability, Hypercore, HypercoreError};

use super::checkpoints::{
    inflate_checkpoint, inflate_digest, DigestAt, LocalCheckpoints, SignatureAt, Slot,
};
use super::keys::{
    bootstrap_manifest, generate_entropy, view_manifest, view_namespace, IndexerSigner,
    ViewKeyInputs, DEFAULT_MANIFEST_VERSION,
};
use super::linearizer::{Head, Linearizer, NodeInput};
use super::messages::{
    BootRecord, Checkout, LinearizerUpdate, Member, Node, OplogMessage, BOOT_RECORD_VERSION,
    OPLOG_VERSION,
};
use super::system::{SystemError, SystemView, ViewSlot};
use super::topolist::{NodeId, TopoUpdate};

/// What went wrong in the base.
#[derive(Debug, thiserror::Error)]
pub enum AutobaseError {
    /// A core failed.
    #[error("hypercore: {0}")]
    Core(#[from] HypercoreError),
    /// The store failed.
    #[error("corestore: {0}")]
    Store(#[from] CorestoreError),
    /// A view's bee failed.
    #[error("hyperbee: {0}")]
    Bee(#[from] HyperbeeError),
    /// The system view failed.
    #[error("{0}")]
    System(#[from] SystemError),
    /// Stored state that does not decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// The local writer may not append (not a member, or removed).
    #[error("not writable")]
    NotWritable,
    /// Removing the last indexer.
    #[error("not allowed to remove the last indexer")]
    LastIndexer,
    /// The application's apply failed.
    #[error("apply: {0}")]
    Apply(String),
    /// An earlier update failed part-way (an apply error, or a core that could not be written): the base's
    /// state may be half-applied, so it refuses to go on; reopening it truncates to the indexed length and
    /// re-applies.
    #[error("the base failed in an earlier update; reopen it")]
    Failed,
    /// The encryption key does not open the base: its blocks do not decode with it (or the store keeps
    /// another key for this base).
    #[error("wrong encryption key: {0}")]
    WrongEncryptionKey(String),
}

/// Result of base operations.
pub type Result<T, E = AutobaseError> = std::result::Result<T, E>;

/// One node handed to [`Handlers::apply`] (JS's apply batch entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyNode {
    /// Whether the node is indexed (final) or in the tip (may be undone).
    pub indexed: bool,
    /// Whether it is applied optimistically (JS `node.optimistic`): a node of a writer that is not a member,
    /// which stays applied only if the apply acks or adds its writer ([`Host::ack_writer`]).
    pub optimistic: bool,
    /// The writer's key.
    pub from: [u8; 32],
    /// The node's length in its writer's core.
    pub length: u64,
    /// The value, as the writer appended it (JSON for autobase-kv).
    pub value: Vec<u8>,
    /// The heads it was written with.
    pub heads: Vec<Head>,
}

/// Opens named view cores for [`Handlers::open`] (JS `open(store)` with `store.get(name)`).
#[derive(Debug)]
pub struct ViewStore<'a> {
    store: &'a Corestore,
    keys: &'a ViewKeys,
    views: &'a mut Vec<ViewCore>,
}

impl ViewStore<'_> {
    /// The view core `name`, in the order views are opened (the order gives their index in `info.views`): the
    /// core the indexed system lists for this name (found by its signers' namespace), else a fresh one under
    /// the base's derived keys (JS `_preload`).
    pub fn get(&mut self, name: &str) -> Result<Hypercore> {
        if let Some(v) = self.views.iter().find(|v| v.name == name) {
            return Ok(v.core.clone());
        }
        let core = self.keys.open_view(self.store, name)?;
        self.views.push(ViewCore {
            name: name.to_string(),
            key: core.key(),
            core: core.clone(),
            mapped_index: None,
        });
        Ok(core)
    }
}

/// What view keys are derived from at a point of the system (JS `AutoStore`): the bootstrap key, the
/// indexers' signers, the entropy, the manifest version, and the view keys the system lists.
#[derive(Debug, Clone)]
pub struct ViewKeys {
    bootstrap: [u8; 32],
    signers: Vec<IndexerSigner>,
    entropy: Option<[u8; 32]>,
    manifest_version: u64,
    listed: Vec<[u8; 32]>,
    encryption_key: Option<[u8; 32]>,
}

impl ViewKeys {
    fn inputs(&self) -> ViewKeyInputs<'_> {
        ViewKeyInputs {
            bootstrap: self.bootstrap,
            encryption_key: self.encryption_key.as_ref().map(|k| &k[..]),
            indexers: &self.signers,
            entropy: self.entropy,
            manifest_version: self.manifest_version,
        }
    }

    /// The key of view `name` with this prologue (JS `createView` / `_generateNextViews`).
    fn key(&self, name: &str, prologue: Option<Prologue>) -> [u8; 32] {
        crate::hypercore::caps::manifest_hash(&view_manifest(
            &self.inputs(),
            name,
            prologue,
            None,
            None,
        ))
    }

    fn open_view(&self, store: &Corestore, name: &str) -> Result<Hypercore> {
        if !self.signers.is_empty() {
            let entropy = self.entropy.unwrap_or(self.signers[0].namespace);
            let ek = self.encryption_key.as_ref().map(|k| &k[..]);
            let ns = view_namespace(&self.bootstrap, ek, &entropy, name);
            let is_view = |core: &Hypercore| {
                core.manifest()
                    .and_then(|m| m.signers.first().map(|s| s.namespace))
                    == Some(ns)
            };
            for key in &self.listed {
                let found = store.get_by_discovery_key_init(&discovery_key(key), |core| {
                    if is_view(core) {
                        self.init_view(core, name);
                    }
                })?;
                if let Some(core) = found.filter(is_view) {
                    return Ok(core);
                }
            }
        }
        let manifest = view_manifest(&self.inputs(), name, None, None, None);
        Ok(store.get_with_manifest_init(manifest, None, |core| self.init_view(core, name))?)
    }

    /// Readies a core of view `name` as the store opens it, before a replicator can reach it:
    /// [`mark_view_core`], and its block encryption on an encrypted base (JS `getViewEncryption`;
    /// `_encryption` is not encrypted).
    fn init_view(&self, core: &Hypercore, name: &str) {
        mark_view_core(core);
        encrypt_view(core, &self.bootstrap, self.encryption_key.as_ref(), name);
    }
}

/// Sets the block encryption of the system core (`_system`) or view `name` on `core` when the base is
/// encrypted and the core is not yet (version-1 manifests: [`super::encryption::view_block_key`]).
fn encrypt_view(core: &Hypercore, bootstrap: &[u8; 32], key: Option<&[u8; 32]>, name: &str) {
    if let Some(ek) = key {
        if name != "_encryption" && !core.encrypted() {
            core.set_encryption_key(
                &super::encryption::view_block_key(bootstrap, ek, name),
                true,
            );
        }
    }
}

/// A system or view core as the apply writes it: unsigned appends (only the indexers sign, in checkpoints),
/// made durable by [`Autobase::flush`] rather than per append.
fn view_core(core: Hypercore) -> Hypercore {
    mark_view_core(&core);
    core
}

/// [`view_core`] in place: what the store's `*_init` opens run before a replicator can reach the core, so it
/// never takes a peer's signed head meanwhile (its length would move past blocks it does not hold).
fn mark_view_core(core: &Hypercore) {
    core.set_unsigned_writes(true);
    core.set_durability(Durability::Process);
}

/// Readies a system or view core for a fast-forward: back to its signed length on fork 0 (what peers serve:
/// its unsigned tail is dropped), and taking upgrades from peers.
pub fn prepare_fast_forward(core: &Hypercore) -> Result<()> {
    let (served, _) = core.replicated_head();
    if core.appendable() && (core.length() != served || core.fork() != 0) {
        core.truncate_with_fork(served, 0)?;
    }
    core.set_upgrades_allowed(true);
    Ok(())
}

/// Moves a view to its core under `next` (JS `_migrateView`): the core of the manifest whose prologue is the
/// source's tree hash and length at `indexed_length`, holding the source's first `indexed_length` blocks.
fn migrate_core(
    store: &Corestore,
    source: &Hypercore,
    keys: &ViewKeys,
    name: &str,
    indexed_length: u64,
) -> Result<Hypercore> {
    let prologue = if indexed_length == 0 {
        None
    } else {
        Some(Prologue {
            hash: source.tree_hash_at(indexed_length)?,
            length: indexed_length,
        })
    };
    let manifest = view_manifest(&keys.inputs(), name, prologue, None, None);
    let next = store.get_with_manifest_init(manifest, None, |core| keys.init_view(core, name))?;
    if next.length() > indexed_length {
        next.truncate(indexed_length)?;
    }
    let mut blocks = Vec::new();
    for i in next.length()..indexed_length {
        let block = source.get_raw(i)?.ok_or_else(|| {
            AutobaseError::Apply(format!("view {name}: block {i} missing to migrate"))
        })?;
        blocks.push(block);
        if blocks.len() == 256 || i + 1 == indexed_length {
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            // stored bytes: encrypted under the view name's key, the same on both cores
            next.append_raw(&refs)?;
            blocks.clear();
        }
    }
    Ok(next)
}

/// The application: the views it builds and how nodes change them.
pub trait Handlers {
    /// What [`Handlers::open`] makes (e.g. a [`Hyperbee`]).
    type View;
    /// Creates the views (JS `open`).
    fn open(&mut self, store: &mut ViewStore<'_>) -> Result<Self::View>;
    /// Applies one batch of nodes (JS `apply(nodes, view, host)`).
    fn apply(&mut self, nodes: &[ApplyNode], view: &Self::View, host: &mut Host<'_>) -> Result<()>;
    /// Whether optimistic nodes of writers that are not members are handed to [`Handlers::apply`] (JS's
    /// `optimistic: true` handler option, `_hasOptimisticApply`). Off by default: such nodes are skipped as
    /// any removed writer's are.
    fn optimistic(&self) -> bool {
        false
    }
}

/// A writer change made from the apply, for the base to act on after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterChange {
    Added([u8; 32]),
    Removed([u8; 32]),
}

/// What the apply may do to the base (JS `PrivateApplyCalls`).
#[derive(Debug)]
pub struct Host<'a> {
    system: &'a mut SystemView,
    changes: Vec<WriterChange>,
    key: [u8; 32],
}

impl Host<'_> {
    /// The base's key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The system view as the apply left it so far.
    pub fn system(&self) -> &SystemView {
        self.system
    }

    /// Adds a writer (JS `host.addWriter(key, { indexer })`).
    pub fn add_writer(&mut self, key: [u8; 32], indexer: bool) -> Result<()> {
        self.system.add(key, indexer)?;
        self.changes.push(WriterChange::Added(key));
        Ok(())
    }

    /// Acks a writer at the length applied (JS `host.ackWriter`). For a writer that is not a member (the
    /// writer of an optimistic node) this records it as a removed member at that length, as JS does: the
    /// optimistic node stays applied, and the writer is still not writable.
    pub fn ack_writer(&mut self, key: [u8; 32]) -> Result<()> {
        Ok(self.system.ack(key)?)
    }

    /// Whether `key` may be removed: not the last indexer (JS `removeable`).
    pub fn removeable(&self, key: &[u8; 32]) -> bool {
        self.system.indexers.len() != 1 || self.system.indexers[0].key != *key
    }

    /// Removes a writer (JS `host.removeWriter`); the last indexer cannot be removed.
    pub fn remove_writer(&mut self, key: [u8; 32]) -> Result<()> {
        if !self.removeable(&key) {
            return Err(AutobaseError::LastIndexer);
        }
        self.system.remove(key)?;
        self.changes.push(WriterChange::Removed(key));
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ViewCore {
    name: String,
    core: Hypercore,
    /// The key the system lists for the view: the core's, or the next core's once an indexer change in the
    /// un-indexed tip derived it (JS `view.key`).
    key: [u8; 32],
    mapped_index: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct WriterState {
    /// Nodes of the writer fed to the linearizer (its next block's seq).
    fed: u64,
    /// A block that did not decode or was refused: nothing more of this writer is read.
    frozen: bool,
}

/// The apply state (JS `ApplyState`): the system view, the views, the update records and the indexed
/// length.
#[derive(Debug)]
pub struct ApplyState {
    system: SystemView,
    views: Vec<ViewCore>,
    updates: Vec<LinearizerUpdate>,
    indexed_length: u64,
    stats: ApplyStats,
}

/// Counts of what the apply did, for tests and tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Batches applied (the system flushed once each).
    pub batches: u64,
    /// Nodes undone (un-indexed nodes whose order changed).
    pub undone: u64,
    /// Reboots after indexer changes.
    pub reboots: u64,
    /// Un-indexed nodes re-added to a new linearizer by reboots (JS `catchup`).
    pub readded: u64,
    /// Moves of the system and views to new cores after indexer changes (JS `_premigrate`).
    pub migrations: u64,
    /// Multi-signatures assembled from the indexers' checkpoints and committed (each raises a core's signed
    /// length).
    pub signed: u64,
    /// Assembled multi-signatures that did not verify (a bad checkpoint): refused, nothing changed.
    pub bad_signatures: u64,
    /// Fast-forwards: the system core taken at a peer's signed length and the views at the lengths it
    /// lists, the writers' nodes before that never applied (JS `_applyFastForward`).
    pub fast_forwards: u64,
}

/// What an indexer's latest block says it signed (JS `CheckpointCore`): the system key it saw and its
/// signatures of the system, encryption and user view cores.
#[derive(Debug, Clone, Default)]
struct IndexerCheckpoint {
    signer: u64,
    digest: Option<DigestAt>,
    system: Option<SignatureAt>,
    encryption: Option<SignatureAt>,
    user: Vec<Option<SignatureAt>>,
}

impl IndexerCheckpoint {
    fn signed_length(&self) -> u64 {
        self.system.map_or(0, |s| s.length)
    }
}

impl ApplyState {
    /// The system view.
    pub fn system(&self) -> &SystemView {
        &self.system
    }

    /// The system length the indexers have indexed (what they would sign).
    pub fn indexed_length(&self) -> u64 {
        self.indexed_length
    }

    /// What the apply did so far.
    pub fn stats(&self) -> ApplyStats {
        self.stats
    }

    /// The update records of the applied batches not indexed yet.
    pub fn updates(&self) -> &[LinearizerUpdate] {
        &self.updates
    }

    fn slots(&self) -> Vec<ViewSlot> {
        self.views
            .iter()
            .map(|v| ViewSlot {
                key: v.key,
                length: v.core.length(),
                mapped_index: v.mapped_index,
            })
            .collect()
    }

    fn push_update(&mut self, mut u: LinearizerUpdate) {
        u.system_length = self.system.core_length();
        self.updates.push(u);
    }

    /// Truncates the system core to `system_length` and every view to the length the system's `info` there
    /// lists (a view it does not list is unmapped and emptied) (JS `truncate`).
    fn truncate(&mut self, system_length: u64) -> Result<bool> {
        if system_length != self.system.core_length() {
            self.system.db().core().truncate(system_length)?;
        }
        let changed = self.system.update()?;
        for view in &mut self.views {
            let listed = view
                .mapped_index
                .and_then(|i| self.system.views.get(i))
                .copied();
            if listed.is_none() {
                view.mapped_index = None;
            }
            let len = listed.map_or(0, |v| v.length);
            if view.core.length() > len {
                view.core.truncate(len)?;
            }
        }
        Ok(changed)
    }

    /// Pops update records covering `undo` nodes and truncates to the last kept one (JS `undo`).
    fn undo(&mut self, mut undo: usize) -> Result<bool> {
        if undo == 0 {
            return Ok(false);
        }
        self.stats.undone += undo as u64;
        while undo > 0 {
            let Some(u) = self.updates.pop() else { break };
            undo = undo.saturating_sub(usize::try_from(u.batch).unwrap_or(usize::MAX));
        }
        let len = self
            .updates
            .last()
            .map_or(self.indexed_length, |u| u.system_length);
        self.truncate(len)
    }

    /// Drops the records covering the first `indexed` nodes; the last one's system length is the new indexed
    /// length (JS `_indexUpdates`).
    fn index_updates(&mut self, mut indexed: usize) {
        let mut shift = 0;
        while indexed > 0 && shift < self.updates.len() {
            indexed = indexed
                .saturating_sub(usize::try_from(self.updates[shift].batch).unwrap_or(usize::MAX));
            shift += 1;
        }
        if shift == 0 {
            return;
        }
        self.indexed_length = self.updates[shift - 1].system_length;
        self.updates.drain(..shift);
    }
}

/// Options of [`Autobase::open`].
#[derive(Debug, Clone, Default)]
pub struct AutobaseOptions {
    /// The base to join (its bootstrap key); `None` creates a base whose key is the local writer's.
    pub bootstrap: Option<[u8; 32]>,
    /// The base's encryption key (JS `encryptionKey`): writer, system and view blocks are encrypted with
    /// keys derived from it ([`super::encryption`]). Kept in the local writer's `autobase/encryption` user
    /// data, so a reopen needs it no more; a key given that differs from the kept one is refused.
    pub encryption_key: Option<[u8; 32]>,
}

/// The user data key under which the local writer keeps the base's encryption key (as JS does).
pub const ENCRYPTION_KEY: &str = "autobase/encryption";

/// A base: the local writer, the remote writers' cores in the store, the linearizer and the apply state.
pub struct Autobase<H: Handlers> {
    store: Corestore,
    key: [u8; 32],
    local: Hypercore,
    handlers: H,
    view: H::View,
    lin: Linearizer,
    writers: HashMap<[u8; 32], WriterState>,
    order: Vec<[u8; 32]>,
    state: ApplyState,
    appending: Vec<Option<Vec<u8>>>,
    /// The pending append is one optimistic value (JS `_optimistic === 0`).
    optimistic_next: bool,
    digests: LocalCheckpoints,
    /// The encryption view (`_encryption`): empty on a base without encryption, but indexers sign it.
    encryption: Hypercore,
    /// Whether the local writer signs checkpoints (JS `localIndexer`: an indexer of the info at the system
    /// core's signed length, with a quorum), fixed at open and at each reboot.
    local_indexer: bool,
    /// The cores the next local blocks' signatures are of, when a migration in this round moved them (JS
    /// signs the pre-move cores in the round that migrates): system, encryption, user views.
    signing: Option<(Hypercore, Hypercore, Vec<Hypercore>)>,
    persisted_at: u64,
    failed: bool,
    /// A fast-forward is under way ([`Autobase::begin_fast_forward`]): updates wait.
    fast_forwarding: bool,
    /// The next boot record says the base fast-forwarded (JS's `fastForwarding` flag).
    fast_forwarded: bool,
    /// The base's encryption key, when encrypted.
    encryption_key: Option<[u8; 32]>,
}

/// How far a peer's signed system core must be ahead of the indexed length for a fast-forward (JS
/// `FastForward.MINIMUM`).
pub const FAST_FORWARD_MINIMUM: u64 = 16;

impl<H: Handlers> Drop for Autobase<H> {
    fn drop(&mut self) {
        // best effort: a reopen without it re-applies more, nothing else
        if !self.failed {
            let _ = self.persist();
        }
    }
}

impl<H: Handlers> std::fmt::Debug for Autobase<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autobase")
            .field("key", &hex::encode(self.key))
            .field("local", &hex::encode(self.local.key()))
            .field("system_length", &self.state.system.core_length())
            .field("indexed_length", &self.state.indexed_length)
            .finish_non_exhaustive()
    }
}

const UPDATES_KEY: &str = "autobase/updates";

/// The local writer's user data holding the committed multi-signatures of the system, encryption and view
/// cores ([`encode_signed`]), so a reopen keeps their signed lengths (JS commits them with the cores).
const SIGNED_KEY: &str = "autobase/signed";

/// One committed multi-signature: the core, the length it signs, the signature.
pub type SignedHead = ([u8; 32], u64, Vec<u8>);

/// Encodes committed multi-signatures as the local writer keeps them (`autobase/signed` user data: an array
/// of `{ fixed32 key, uint length, buffer signature }`).
pub fn encode_signed(heads: &[SignedHead]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(heads, |w, (k, l, sig)| {
        w.bytes(k).uint(*l).buffer(sig);
    });
    w.into_vec()
}

/// Decodes [`encode_signed`]'s bytes (untrusted: from disk).
pub fn decode_signed(bytes: &[u8]) -> Result<Vec<SignedHead>, DecodeError> {
    let mut r = Reader::new(bytes);
    let out = r.array(|r| Ok((r.fixed32()?, r.uint()?, r.buffer()?.to_vec())))?;
    r.finish()?;
    Ok(out)
}

/// Applied batches between two writes of the boot record and update records (and at [`Autobase::flush`] and
/// on drop).
pub const PERSIST_EVERY: u64 = 64;

/// Encodes the update records as the local writer keeps them (`autobase/updates` user data: an array of
/// `@autobase/linearizer-update`).
pub fn encode_updates(updates: &[LinearizerUpdate]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(updates, |w, u| u.encode(w));
    w.into_vec()
}

/// Decodes [`encode_updates`]' bytes (untrusted: from disk).
pub fn decode_updates(bytes: &[u8]) -> Result<Vec<LinearizerUpdate>, DecodeError> {
    let mut r = Reader::new(bytes);
    r.array(LinearizerUpdate::decode)
}

/// The encryption key of the base whose local writer is `local`: the one it keeps (`autobase/encryption`
/// user data), else `given` (then kept). A given key that differs from the kept one is refused (JS keeps
/// using the stored one silently).
fn open_encryption_key(local: &Hypercore, given: Option<[u8; 32]>) -> Result<Option<[u8; 32]>> {
    let kept = match local.get_user_data(ENCRYPTION_KEY) {
        Some(k) => Some(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| {
            AutobaseError::WrongEncryptionKey(format!(
                "the kept encryption key has {} bytes, not 32",
                k.len()
            ))
        })?),
        None => None,
    };
    match (kept, given) {
        (Some(k), Some(g)) if k != g => Err(AutobaseError::WrongEncryptionKey(
            "the store keeps another encryption key for this base".into(),
        )),
        (Some(k), _) => Ok(Some(k)),
        (None, Some(g)) => {
            local.set_user_data(ENCRYPTION_KEY, Some(&g))?;
            Ok(Some(g))
        }
        (None, None) => Ok(None),
    }
}

/// Refuses an encrypted writer core whose first block (when stored) does not decode.
fn check_decodes(core: &Hypercore) -> Result<()> {
    if core.length() == 0 || !core.has(0) {
        return Ok(());
    }
    match core.get(0)? {
        Some(b) if OplogMessage::decode(&b).is_err() => Err(AutobaseError::WrongEncryptionKey(
            "the bootstrap writer's first block does not decode".into(),
        )),
        _ => Ok(()),
    }
}

/// The system length the boot record says was indexed, if it names this system core.
fn indexed_at_boot(local: &Hypercore, system: &SystemView) -> u64 {
    local
        .get_user_data("autobase/boot")
        .and_then(|b| BootRecord::decode(&b).ok())
        .filter(|b| b.key == system.db().core().key() && b.system_length <= system.core_length())
        .map_or(0, |b| b.system_length)
}

/// The first signer of each indexer's writer core (JS `getIndexerManifests`: an indexer whose core or manifest
/// is not known yet is left out).
fn indexer_signers(
    store: &Corestore,
    local: &Hypercore,
    indexers: &[Checkout],
) -> Result<Vec<IndexerSigner>> {
    let mut out = Vec::new();
    for i in indexers {
        let core = if i.key == local.key() {
            Some(local.clone())
        } else {
            store.get_by_discovery_key(&discovery_key(&i.key))?
        };
        if let Some(s) = core
            .and_then(|c| c.manifest())
            .and_then(|m| IndexerSigner::from_manifest(&m))
        {
            out.push(s);
        }
    }
    Ok(out)
}

/// The view keys of the system's info at `length` (a flush point; the current state when it is not one).
fn view_keys(
    store: &Corestore,
    local: &Hypercore,
    bootstrap: [u8; 32],
    system: &SystemView,
    length: u64,
    encryption_key: Option<[u8; 32]>,
) -> Result<ViewKeys> {
    let info = system
        .indexed_info(length)
        .unwrap_or_else(|_| system.info());
    Ok(ViewKeys {
        bootstrap,
        signers: indexer_signers(store, local, &info.indexers)?,
        entropy: info.entropy,
        manifest_version: system
            .db()
            .core()
            .manifest()
            .map_or(DEFAULT_MANIFEST_VERSION, |m| m.version),
        listed: info.views.iter().map(|v| v.key).collect(),
        encryption_key,
    })
}

impl<H: Handlers> Autobase<H> {
    /// Opens a new base (or joins `opts.bootstrap`) over `store`.
    pub fn open(store: Corestore, mut handlers: H, opts: AutobaseOptions) -> Result<Self> {
        let local = store.get("local")?;
        let key = opts.bootstrap.unwrap_or_else(|| local.key());
        let encryption_key = open_encryption_key(&local, opts.encryption_key)?;
        if let Some(ek) = &encryption_key {
            if !local.encrypted() {
                local.set_encryption_key(ek, false);
            }
            // a key the bootstrap writer's first block does not decode with is the wrong one
            let boot = if key == local.key() {
                Some(local.clone())
            } else {
                store.get_by_discovery_key(&discovery_key(&key))?
            };
            if let Some(boot) = boot {
                if !boot.encrypted() {
                    boot.set_encryption_key(ek, false);
                }
                check_decodes(&boot)?;
            }
        }
        let init_system = |core: &Hypercore| {
            mark_view_core(core);
            encrypt_view(core, &key, encryption_key.as_ref(), "_system");
        };
        let booted = local
            .get_user_data("autobase/boot")
            .and_then(|b| BootRecord::decode(&b).ok())
            .map(|b| b.key)
            .map(|k| store.get_by_discovery_key_init(&discovery_key(&k), init_system))
            .transpose()?
            .flatten();
        let system_core = match booted {
            Some(core) => core,
            None => store.get_with_manifest_init(
                bootstrap_manifest(&key, "_system"),
                None,
                init_system,
            )?,
        };
        let system = SystemView::open(Hyperbee::new(system_core)).map_err(|e| {
            if encryption_key.is_some() {
                AutobaseError::WrongEncryptionKey(format!("the system core does not decode: {e}"))
            } else {
                e.into()
            }
        })?;
        let mut views = Vec::new();
        let keys = view_keys(
            &store,
            &local,
            key,
            &system,
            indexed_at_boot(&local, &system),
            encryption_key,
        )?;
        let view = handlers.open(&mut ViewStore {
            store: &store,
            keys: &keys,
            views: &mut views,
        })?;
        for v in &mut views {
            v.mapped_index = system.views.iter().position(|s| s.key == v.core.key());
        }
        let encryption = keys.open_view(&store, "_encryption")?;
        let mut lin = Linearizer::new(&[Head { key, length: 0 }], &[]);
        lin.add_writer(key, 0, false);
        let mut base = Self {
            store,
            key,
            local,
            handlers,
            view,
            lin,
            writers: HashMap::new(),
            order: Vec::new(),
            state: ApplyState {
                system,
                views,
                updates: Vec::new(),
                indexed_length: 0,
                stats: ApplyStats::default(),
            },
            appending: Vec::new(),
            optimistic_next: false,
            digests: LocalCheckpoints::default(),
            encryption,
            local_indexer: false,
            signing: None,
            persisted_at: 0,
            failed: false,
            fast_forwarding: false,
            fast_forwarded: false,
            encryption_key,
        };
        base.restore_signed();
        base.track(key, 0);
        base.local.set_user_data("referrer", Some(&key))?;
        base.refresh_local_indexer();
        // what the local writer last wrote, as JS's CheckpointCore reloads it from its last block: the next
        // blocks point at it instead of repeating it
        if let Some(c) = base.read_checkpoint(&base.local.key(), 0)? {
            base.digests = LocalCheckpoints {
                digest: c.digest,
                system: c.system,
                encryption: c.encryption,
                user: c.user,
            };
        }
        if base.state.system.core_length() > 0 {
            base.reopen()?;
        }
        base.ensure_local_writer()?;
        Ok(base)
    }

    /// The base's key (its bootstrap writer's key).
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The local writer's key.
    pub fn local_key(&self) -> [u8; 32] {
        self.local.key()
    }

    /// The local writer's core.
    pub fn local(&self) -> &Hypercore {
        &self.local
    }

    /// The store.
    pub fn store(&self) -> &Corestore {
        &self.store
    }

    /// The views [`Handlers::open`] made.
    pub fn view(&self) -> &H::View {
        &self.view
    }

    /// The apply state (system view, update records, indexed length).
    pub fn state(&self) -> &ApplyState {
        &self.state
    }

    /// The system view.
    pub fn system(&self) -> &SystemView {
        &self.state.system
    }

    /// The linearizer.
    pub fn linearizer(&self) -> &Linearizer {
        &self.lin
    }

    /// The writers whose cores the base reads, in the order it met them.
    pub fn writers(&self) -> &[[u8; 32]] {
        &self.order
    }

    /// Whether the local writer may append values: a member that is not removed, or the creator of a base
    /// with no members yet.
    pub fn writable(&self) -> Result<bool> {
        let me = self.local.key();
        let sys = &self.state.system;
        if sys.bootstrapping() {
            return Ok(me == self.key);
        }
        Ok(sys.get_member(&me)?.is_some_and(|m| !m.is_removed))
    }

    /// Whether the local writer is an indexer (or a pending one).
    pub fn is_indexer(&self) -> bool {
        let me = self.local.key();
        let sys = &self.state.system;
        sys.indexers.iter().any(|i| i.key == me)
            || sys.pending_indexers.contains(&me)
            || (sys.bootstrapping() && me == self.key)
    }

    /// The writers this peer would wake others up with (JS `_getWakeup`): every writer that is not an
    /// active indexer and whose core holds nodes not indexed yet, with its core's length.
    pub fn wakeup(&self) -> Vec<([u8; 32], u64)> {
        let mut out = Vec::new();
        for key in &self.order {
            let Some(id) = self.lin.writer_id(key) else {
                continue;
            };
            let w = self.lin.writer(id);
            if w.is_active_indexer {
                continue;
            }
            let length = match self.writer_core(key) {
                Ok(Some(core)) => core.length(),
                _ => continue,
            };
            if length > w.indexed() {
                out.push((*key, length));
            }
        }
        out
    }

    /// A peer said writer `key` has `length` blocks (a wakeup announce): the base reads it from now on (JS
    /// `_wakeupWriter`: at the length the system recorded, removed unless the system lists it). A hint for a
    /// writer the system already applied up to `length` is stale and ignored.
    pub fn hint_writer(&mut self, key: [u8; 32], length: u64) -> Result<()> {
        if self.lin.writer_id(&key).is_some() || length == 0 {
            return Ok(());
        }
        if self
            .state
            .system
            .get_member(&key)?
            .is_some_and(|m| length <= m.length)
        {
            return Ok(());
        }
        self.ensure_writer(key)
    }

    fn track(&mut self, key: [u8; 32], fed: u64) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.writers.entry(key) {
            e.insert(WriterState { fed, frozen: false });
            self.order.push(key);
        }
    }

    /// Appends one value (or an ack, `None`) from the local writer and runs the update that writes it.
    pub fn append(&mut self, value: Option<&[u8]>) -> Result<()> {
        self.append_batch(&[value])
    }

    /// Appends values as one atomic batch (nodes with batch counts `n..1`).
    pub fn append_batch(&mut self, values: &[Option<&[u8]>]) -> Result<()> {
        if self.failed {
            return Err(AutobaseError::Failed);
        }
        let me = self.local.key();
        if values.iter().any(Option::is_some) && !self.writable()? {
            return Err(AutobaseError::NotWritable);
        }
        if self.lin.writer_id(&me).is_none() {
            return Err(AutobaseError::NotWritable);
        }
        for v in values {
            // an ack left unflushed before a value is dropped, and acks after anything are folded (JS `_append`)
            if !self.appending.is_empty() {
                if v.is_none() {
                    continue;
                }
                if self.appending.last().is_some_and(Option::is_none) {
                    self.appending.pop();
                }
            }
            self.appending.push(v.map(<[u8]>::to_vec));
        }
        self.update()
    }

    /// Appends `value` optimistically (JS `append(value, { optimistic: true })`): one node, a batch of one,
    /// with the optimistic flag, written whether or not the local writer is a member. Peers whose apply
    /// takes optimistic nodes ([`Handlers::optimistic`]) apply it; unless that apply acks or adds the writer
    /// it is undone and skipped, as a removed writer's node is.
    pub fn append_optimistic(&mut self, value: &[u8]) -> Result<()> {
        if self.failed {
            return Err(AutobaseError::Failed);
        }
        let me = self.local.key();
        if self.lin.writer_id(&me).is_none() {
            self.ensure_writer(me)?;
        }
        // anything queued goes first, as its own batch
        if !self.appending.is_empty() {
            self.update()?;
        }
        self.appending.push(Some(value.to_vec()));
        self.optimistic_next = true;
        let r = self.update();
        self.optimistic_next = false;
        r
    }

    /// Reads the local writer's own blocks when it has some and is not read yet (a writer that is not a
    /// member and appended optimistically: JS hints its local writer at open).
    fn ensure_local_writer(&mut self) -> Result<()> {
        let me = self.local.key();
        if self.local.length() > 0 && self.lin.writer_id(&me).is_none() {
            self.ensure_writer(me)?;
        }
        Ok(())
    }

    /// Appends an ack if the local writer is an indexer and the linearizer says one is due, or it is a
    /// pending indexer (JS `ack()` without checkpoints: `shouldWrite` is not checked). Returns whether it
    /// appended.
    pub fn ack(&mut self) -> Result<bool> {
        self.update()?;
        let me = self.local.key();
        let pending = self.is_pending_indexer();
        let sys = &self.state.system;
        if !(pending || sys.indexers.iter().any(|i| i.key == me)) {
            return Ok(false);
        }
        let has_pending = sys.indexers.len() > self.lin.indexers().len();
        let always = pending || self.should_write()?;
        if always || self.lin.should_ack(&me, has_pending) {
            self.append(None)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn is_pending_indexer(&self) -> bool {
        let me = self.local.key();
        self.state.system.pending_indexers.contains(&me)
            && me != self.key
            && self.local.length() == 0
    }

    /// Reads what the writers' cores hold, linearizes and applies it, and writes the pending local appends
    /// (JS `update()`/`_drain`). A pending indexer then acks, as JS's `_advance` does.
    pub fn update(&mut self) -> Result<()> {
        if self.fast_forwarding {
            return Ok(());
        }
        self.drain()?;
        if self.is_pending_indexer() && self.lin.writer_id(&self.local.key()).is_some() {
            self.appending.push(None);
            self.drain()?;
        }
        self.maybe_signed()
    }

    fn drain(&mut self) -> Result<()> {
        if self.failed {
            return Err(AutobaseError::Failed);
        }
        let r = self.drain_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn drain_inner(&mut self) -> Result<()> {
        loop {
            let added = self.add_remote_heads()?;
            let local_nodes = self.add_local_heads()?;
            let Some(u) = self.lin.update() else {
                if added == 0 && local_nodes.is_empty() {
                    return Ok(());
                }
                continue;
            };
            let reboot = self.apply_update(u, &local_nodes)?;
            if reboot {
                self.reboot()?;
                continue;
            }
            if added == 0 {
                return Ok(());
            }
        }
    }

    /// The core of writer `key`, if the store has it.
    pub fn writer_core(&self, key: &[u8; 32]) -> Result<Option<Hypercore>> {
        if *key == self.local.key() {
            return Ok(Some(self.local.clone()));
        }
        let core = self.store.get_by_discovery_key(&discovery_key(key))?;
        if let (Some(c), Some(ek)) = (&core, &self.encryption_key) {
            if !c.encrypted() {
                c.set_encryption_key(ek, false);
            }
        }
        Ok(core)
    }

    /// The base's encryption key, when it is encrypted.
    pub fn encryption_key(&self) -> Option<&[u8; 32]> {
        self.encryption_key.as_ref()
    }

    /// The writer's block `seq`, if stored; `Err(())` when it does not decode.
    fn load(&self, key: &[u8; 32], seq: u64) -> Result<Option<Result<OplogMessage, ()>>> {
        let Some(core) = self.writer_core(key)? else {
            return Ok(None);
        };
        if seq >= core.length() || !core.has(seq) {
            return Ok(None);
        }
        let Some(block) = core.get(seq)? else {
            return Ok(None);
        };
        Ok(Some(OplogMessage::decode(&block).map_err(|_| ())))
    }

    /// Makes a writer named by a head known to the linearizer: at the length the system recorded, removed
    /// unless the system lists it (JS `_getWriterByKey(key, -1, ...)`).
    fn ensure_writer(&mut self, key: [u8; 32]) -> Result<()> {
        if self.lin.writer_id(&key).is_some() {
            self.track(key, self.lin_length(&key));
            return Ok(());
        }
        let sys = &self.state.system;
        let member = sys.get_member(&key)?;
        let mut removed = member.is_none_or(|m| m.is_removed);
        if removed && sys.bootstrapping() && key == self.key {
            removed = false;
        }
        let len = member.map_or(0, |m| m.length);
        self.lin.add_writer(key, len, removed);
        self.track(key, len);
        Ok(())
    }

    fn lin_length(&self, key: &[u8; 32]) -> u64 {
        self.lin
            .writer_id(key)
            .map_or(0, |w| self.lin.writer(w).length())
    }

    /// Feeds one batch of `key`'s next nodes, if their dependencies are in; returns the nodes fed.
    fn feed_batch(&mut self, key: [u8; 32]) -> Result<usize> {
        let mut fed = 0;
        loop {
            let Some(state) = self.writers.get(&key) else {
                return Ok(fed);
            };
            if state.frozen {
                return Ok(fed);
            }
            let seq = state.fed;
            let msg = match self.load(&key, seq)? {
                None => return Ok(fed),
                Some(Err(())) => {
                    if self.encryption_key.is_some() && key == self.key {
                        // every block of the bootstrap writer decodes, unless the key is wrong
                        return Err(AutobaseError::WrongEncryptionKey(format!(
                            "block {seq} of the bootstrap writer does not decode"
                        )));
                    }
                    self.freeze(key);
                    return Ok(fed);
                }
                Some(Ok(m)) => m,
            };
            for h in &msg.node.heads {
                if h.key == key {
                    continue;
                }
                self.ensure_writer(h.key)?;
                if self.lin_length(&h.key) < h.length {
                    return Ok(fed); // wait for the head's writer
                }
            }
            let input = NodeInput {
                key,
                length: seq + 1,
                heads: heads_of(&msg.node.heads),
                batch: msg.node.batch,
                value: msg.node.value,
                optimistic: msg.optimistic,
            };
            let batch = input.batch;
            if self.lin.add_node(input).is_err() {
                self.freeze(key);
                return Ok(fed);
            }
            if let Some(s) = self.writers.get_mut(&key) {
                s.fed = seq + 1;
            }
            fed += 1;
            if batch <= 1 {
                return Ok(fed);
            }
        }
    }

    fn freeze(&mut self, key: [u8; 32]) {
        if let Some(s) = self.writers.get_mut(&key) {
            s.frozen = true;
        }
    }

    /// JS `_addRemoteHeads`: rounds of one batch per writer until nothing moves.
    fn add_remote_heads(&mut self) -> Result<usize> {
        let mut added = 0;
        loop {
            let mut advanced = 0;
            let mut i = 0;
            while i < self.order.len() {
                let key = self.order[i];
                advanced += self.feed_batch(key)?;
                i += 1;
            }
            if advanced == 0 {
                return Ok(added);
            }
            added += advanced;
        }
    }

    /// JS `_addLocalHeads`: the pending appends as nodes linking the current heads.
    fn add_local_heads(&mut self) -> Result<Vec<(NodeId, OplogMessage)>> {
        let me = self.local.key();
        if self.appending.is_empty() || self.lin.writer_id(&me).is_none() {
            return Ok(Vec::new());
        }
        let values = std::mem::take(&mut self.appending);
        let n = values.len() as u64;
        let optimistic = std::mem::take(&mut self.optimistic_next) && n == 1;
        let mut out = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let length = self.writers.get(&me).map_or(0, |s| s.fed) + 1;
            // JS adds each local node to the linearizer's heads at once (`addHead`), so a batch's later nodes
            // name only the node before them: the first one named every head. Ours joins the DAG when the
            // batch ends; naming the first node's heads again would leave it a head on the peers (a head
            // inside a batch, which no later node may name) and write other bytes than JS.
            let heads = if i == 0 {
                self.lin.heads()
            } else {
                vec![Head {
                    key: me,
                    length: length - 1,
                }]
            };
            let batch = n - i as u64;
            let input = NodeInput {
                key: me,
                length,
                heads: heads.clone(),
                batch,
                value: value.clone(),
                optimistic,
            };
            let ids = self
                .lin
                .add_node(input)
                .map_err(|e| AutobaseError::Apply(format!("local node refused: {e}")))?;
            if let Some(s) = self.writers.get_mut(&me) {
                s.fed = length;
            }
            let msg = OplogMessage {
                version: OPLOG_VERSION,
                max_supported_version: 0,
                node: Node {
                    heads: heads
                        .iter()
                        .map(|h| Checkout {
                            key: h.key,
                            length: h.length,
                        })
                        .collect(),
                    batch,
                    value,
                },
                checkpoint: None,
                digest: None,
                optimistic,
                trace: None,
            };
            out.push((ids.last().copied().unwrap_or(usize::MAX), msg));
        }
        Ok(out)
    }

    fn refresh_writers(&mut self) -> Result<()> {
        let sys = &self.state.system;
        let boot = sys.core_length() == 0;
        let mut flags = Vec::new();
        for key in &self.order {
            let removed = match sys.get_member(key)? {
                Some(m) => m.is_removed,
                None => !(boot && *key == self.key),
            };
            flags.push((*key, removed));
        }
        for (k, r) in flags {
            self.lin.set_removed(&k, r);
        }
        Ok(())
    }

    fn node_at(&self, u: &TopoUpdate, i: usize) -> Option<NodeId> {
        if i < u.indexed.len() {
            u.indexed.get(i).copied()
        } else {
            u.tip.get(i - u.indexed.len()).copied()
        }
    }

    /// JS `ApplyState.update(u, localNodes)`; returns whether the indexers changed (the base reboots).
    fn apply_update(
        &mut self,
        u: TopoUpdate,
        local_nodes: &[(NodeId, OplogMessage)],
    ) -> Result<bool> {
        let mut batch = 0u64;
        let mut apply_batch: Vec<ApplyNode> = Vec::new();
        let mut indexers_updated = 0usize;

        // 1. indexed nodes already applied in place
        let mut i = 0;
        let mut j = 0;
        while i < u.indexed.len().min(u.shared) {
            let node = u.indexed[i];
            i += 1;
            if self.lin.node(node).batch > 1 {
                continue;
            }
            let key = self.lin.node_head(node).key;
            self.lin.shift_writer(&key);
            let rec = self.state.updates.get(j).copied();
            j += 1;
            if rec.is_some_and(|r| r.indexers) {
                indexers_updated = i;
                break;
            }
        }

        // 2. undo
        if u.undo > 0 {
            if self.state.undo(u.undo)? {
                self.refresh_writers()?;
            }
            self.rollback_views()?;
        }
        if self.state.system.bootstrapping() {
            self.state.system.add(self.key, true)?;
        }
        if self.state.system.update()? {
            self.refresh_writers()?;
        }

        // 3. apply
        for i in u.shared..u.length {
            let indexed = i < u.indexed.len();
            let Some(node) = self.node_at(&u, i) else {
                break;
            };
            batch += 1;
            let n = self.lin.node(node).clone();
            let head = self.lin.node_head(node);
            let w = self.lin.writer(n.writer).clone();
            let optimist = w.is_removed
                && n.optimistic
                && batch == 1
                && self.handlers.optimistic()
                && self.optimistic_apply(node, indexed)?;
            if optimist {
                // applied and acked: recorded and flushed as any batch
            } else if w.is_removed && !w.is_active_indexer {
                if n.batch > 1 {
                    continue;
                }
                self.state.push_update(LinearizerUpdate {
                    key: head.key,
                    length: head.length,
                    batch,
                    system_length: 0,
                    indexers: false,
                });
                batch = 0;
                continue;
            } else {
                let deps = self.lin.causal_dependencies(node);
                for &d in deps.iter().skip(1).rev() {
                    let dh = self.lin.node_head(d);
                    if self.state.system.linkable(&dh.key, dh.length)? {
                        let actual = self.lin.node(d).actual_heads.clone();
                        self.state.system.add_head(dh.key, dh.length, &actual);
                    }
                }
                self.state
                    .system
                    .add_head(head.key, head.length, &n.actual_heads);
                if let Some(value) = &n.value {
                    if !w.is_removed {
                        apply_batch.push(ApplyNode {
                            indexed,
                            optimistic: false,
                            from: head.key,
                            length: head.length,
                            value: value.clone(),
                            heads: n.actual_heads.clone(),
                        });
                    }
                }
                if n.batch > 1 {
                    continue;
                }
                if !apply_batch.is_empty() {
                    let mut host = Host {
                        system: &mut self.state.system,
                        changes: Vec::new(),
                        key: self.key,
                    };
                    self.handlers.apply(&apply_batch, &self.view, &mut host)?;
                    let changes = std::mem::take(&mut host.changes);
                    self.writer_changes(changes)?;
                }
            }
            let rec = LinearizerUpdate {
                key: head.key,
                length: head.length,
                batch,
                system_length: 0,
                indexers: self.state.system.indexer_update,
            };
            if rec.indexers {
                self.generate_next_views()?;
            }
            let mut slots = self.state.slots();
            self.state.system.flush(&mut slots)?;
            for (v, s) in self.state.views.iter_mut().zip(&slots) {
                v.mapped_index = s.mapped_index;
            }
            self.state.system.update()?;
            self.state.stats.batches += 1;
            batch = 0;
            apply_batch.clear();
            self.state.push_update(rec);
            if !indexed || indexers_updated != 0 {
                continue;
            }
            self.lin.shift_writer(&head.key);
            if rec.indexers {
                indexers_updated = i + 1;
            }
        }

        // 4. index
        if !u.indexed.is_empty() {
            let n = if indexers_updated != 0 {
                indexers_updated
            } else {
                u.indexed.len()
            };
            self.state.index_updates(n);
        }

        // 5. an indexed indexer change: the views and the system core move to their next keys
        if indexers_updated != 0 {
            self.premigrate()?;
        }

        // 6. the local nodes, then the boot record and the update records
        self.flush_local(local_nodes)?;
        Ok(indexers_updated != 0)
    }

    /// Acts on the writers the apply added or removed.
    fn writer_changes(&mut self, changes: Vec<WriterChange>) -> Result<()> {
        for c in changes {
            match c {
                WriterChange::Added(k) => {
                    if self.lin.writer_id(&k).is_some() {
                        self.lin.set_removed(&k, false);
                    } else {
                        let len = self.state.system.get_member(&k)?.map_or(0, |m| m.length);
                        self.lin.add_writer(k, len, false);
                    }
                    self.track(k, self.lin_length(&k));
                }
                WriterChange::Removed(k) => self.lin.set_removed(&k, true),
            }
        }
        Ok(())
    }

    /// JS `_optimisticApply`: applies the optimistic node `node` of a writer that is not a member on its own.
    /// It stays applied if the apply added or acked its writer (the writer's member length moved); otherwise,
    /// or if the apply failed, the system's unflushed state and the views are put back as they were and the
    /// node is left to be skipped. Returns whether it stays applied.
    fn optimistic_apply(&mut self, node: NodeId, indexed: bool) -> Result<bool> {
        let checkpoint = self.state.system.clone();
        let n = self.lin.node(node).clone();
        let head = self.lin.node_head(node);
        self.state
            .system
            .add_head(head.key, head.length, &n.actual_heads);
        let pre = self
            .state
            .system
            .get_member(&head.key)?
            .map_or(0, |m| m.length);
        let nodes = [ApplyNode {
            indexed,
            optimistic: true,
            from: head.key,
            length: head.length,
            value: n.value.clone().unwrap_or_default(),
            heads: n.actual_heads.clone(),
        }];
        let mut host = Host {
            system: &mut self.state.system,
            changes: Vec::new(),
            key: self.key,
        };
        let applied = self.handlers.apply(&nodes, &self.view, &mut host);
        let changes = std::mem::take(&mut host.changes);
        let mut failed = match applied {
            Ok(()) => false,
            // the application refused it (JS catches whatever its apply throws)
            Err(AutobaseError::Apply(_)) => true,
            Err(e) => return Err(e),
        };
        if !failed {
            let post = self.state.system.get_member(&head.key)?;
            failed = post.is_none_or(|m| m.length == pre);
        }
        if !failed {
            self.writer_changes(changes)?;
            self.refresh_writers()?;
            return Ok(true);
        }
        // not acked: back to the state before it
        self.state.system = checkpoint;
        for view in &mut self.state.views {
            let len = view
                .mapped_index
                .and_then(|i| self.state.system.views.get(i))
                .map_or(0, |v| v.length);
            if view.core.length() > len {
                view.core.truncate(len)?;
            }
        }
        self.refresh_writers()?;
        self.rollback_views()?;
        Ok(false)
    }

    /// The view keys of the system's current (unflushed) state.
    fn current_view_keys(&self) -> Result<ViewKeys> {
        let sys = &self.state.system;
        view_keys(
            &self.store,
            &self.local,
            self.key,
            sys,
            sys.core_length(),
            self.encryption_key,
        )
    }

    /// JS `_generateNextViews`, at the flush of a batch that changed the indexers: each view's key becomes
    /// the one of its core under the new indexers, with its current tree hash and length as the prologue.
    fn generate_next_views(&mut self) -> Result<()> {
        let sys = &self.state.system;
        let mut keys = self.current_view_keys()?;
        keys.signers = indexer_signers(&self.store, &self.local, &sys.indexers)?;
        keys.entropy = (sys.version >= 2).then(|| {
            let idx: Vec<[u8; 32]> = sys.indexers.iter().map(|i| i.key).collect();
            generate_entropy(&idx, sys.flush_length(), sys.entropy.as_ref())
        });
        for v in &mut self.state.views {
            let length = v.core.length();
            let prologue = if length == 0 {
                None
            } else {
                Some(Prologue {
                    hash: v.core.tree_hash_at(length)?,
                    length,
                })
            };
            v.key = keys.key(&v.name, prologue);
        }
        Ok(())
    }

    /// JS `_rollbackViews`, after an undo or truncation: each view takes the key the system lists for it, or
    /// (when it lists none) the key of a fresh core under the current indexers.
    fn rollback_views(&mut self) -> Result<()> {
        let keys = self.current_view_keys()?;
        let sys = &self.state.system;
        for v in &mut self.state.views {
            v.key = match v.mapped_index.and_then(|i| sys.views.get(i)) {
                Some(c) => c.key,
                None => keys.key(&v.name, None),
            };
        }
        Ok(())
    }

    /// JS `_premigrate` after an indexed indexer change: every view and the system core move to the cores of
    /// the indexed info's indexers, each with its indexed prefix (its prologue); the boot record names the new
    /// system core, and the application reopens its views on the new cores (JS reboots the apply state).
    fn premigrate(&mut self) -> Result<()> {
        let length = self.state.indexed_length;
        let info = self.state.system.indexed_info(length)?;
        let sys_core = self.state.system.db().core().clone();
        let keys = ViewKeys {
            bootstrap: self.key,
            signers: indexer_signers(&self.store, &self.local, &info.indexers)?,
            entropy: info.entropy,
            manifest_version: sys_core
                .manifest()
                .map_or(DEFAULT_MANIFEST_VERSION, |m| m.version),
            listed: Vec::new(),
            encryption_key: self.encryption_key,
        };
        self.signing = Some((
            sys_core.clone(),
            self.encryption.clone(),
            self.state.views.iter().map(|v| v.core.clone()).collect(),
        ));
        self.encryption = migrate_core(
            &self.store,
            &self.encryption,
            &keys,
            "_encryption",
            info.encryption_length,
        )?;
        for v in &mut self.state.views {
            let len = v
                .mapped_index
                .and_then(|i| info.views.get(i))
                .map_or(0, |c| c.length);
            v.core = migrate_core(&self.store, &v.core, &keys, &v.name, len)?;
            v.key = v.core.key();
        }
        let next = migrate_core(&self.store, &sys_core, &keys, "_system", length)?;
        self.state.system = SystemView::open(Hyperbee::new(next))?;
        self.state.stats.migrations += 1;
        let mut views = std::mem::take(&mut self.state.views);
        let keys = self.current_view_keys()?;
        self.view = self.handlers.open(&mut ViewStore {
            store: &self.store,
            keys: &keys,
            views: &mut views,
        })?;
        self.state.views = views;
        self.persist()
    }

    /// JS `localIndexer`: the local writer is an indexer of the info at the system core's signed length, and
    /// the system core has a quorum.
    fn refresh_local_indexer(&mut self) {
        let core = self.state.system.db().core();
        let quorum = core.manifest().map_or(0, |m| m.quorum);
        let me = self.local.key();
        self.local_indexer = quorum > 0
            && self
                .state
                .system
                .indexed_info(core.signed_length())
                .is_ok_and(|info| info.indexers.iter().any(|i| i.key == me));
    }

    /// The local indexer's signatures of the system core at the indexed length, the encryption core and each
    /// user view at the lengths the indexed info lists (JS `_signInternalViewCores`/`_signUserViewCores`).
    #[allow(clippy::type_complexity)]
    fn sign_views(
        &self,
    ) -> Result<(
        Option<([u8; 64], u64)>,
        Option<([u8; 64], u64)>,
        Vec<Option<([u8; 64], u64)>>,
    )> {
        let indexed = self.state.indexed_length;
        let info = self.state.system.indexed_info(indexed)?;
        let (system, encryption, views) = match &self.signing {
            Some((s, e, v)) => (s.clone(), e.clone(), v.clone()),
            None => (
                self.state.system.db().core().clone(),
                self.encryption.clone(),
                self.state.views.iter().map(|v| v.core.clone()).collect(),
            ),
        };
        let kp = self.store.create_key_pair("local");
        let sign = |core: &Hypercore, length: u64| -> Result<([u8; 64], u64)> {
            Ok((kp.sign(&core.signable(length, 0)?), length))
        };
        let mut user = vec![None; info.views.len()];
        for (v, core) in self.state.views.iter().zip(&views) {
            let Some(i) = v.mapped_index else { continue };
            let Some(listed) = info.views.get(i) else {
                continue;
            };
            if listed.length > 0 {
                user[i] = Some(sign(core, listed.length)?);
            }
        }
        Ok((
            Some(sign(&system, indexed)?),
            Some(sign(&encryption, info.encryption_length)?),
            user,
        ))
    }

    /// JS `shouldWrite`: the local indexer owes a checkpoint (a view the indexed info lists that it has not
    /// signed at that length, or a new view).
    fn should_write(&self) -> Result<bool> {
        if !self.local_indexer {
            return Ok(false);
        }
        let info = self.state.system.indexed_info(self.state.indexed_length)?;
        if info.views.is_empty() {
            return Ok(false);
        }
        let user = &self.digests.user;
        if info.views.len() > user.len() {
            return Ok(true);
        }
        for (i, v) in info.views.iter().enumerate() {
            if user[i].map_or(0, |s| s.length) < v.length {
                return Ok(true);
            }
        }
        if info.encryption_length != 0
            && self
                .digests
                .encryption
                .is_none_or(|e| e.length < info.encryption_length)
        {
            return Ok(true);
        }
        Ok(false)
    }

    /// The writer's block that made its core `length` long, decoded (`None` when missing or not decoding).
    fn block_at(&self, core: &Hypercore, length: u64) -> Option<OplogMessage> {
        let seq = length.checked_sub(1)?;
        let bytes = core.get(seq).ok()??;
        OplogMessage::decode(&bytes).ok()
    }

    /// Indexer `key`'s latest checkpoint, from the last block of its core (JS `updateCheckpoints`): `None`
    /// when it has no block, the block has no digest or a pointer leads nowhere.
    fn read_checkpoint(&self, key: &[u8; 32], signer: u64) -> Result<Option<IndexerCheckpoint>> {
        let Some(core) = self.writer_core(key)? else {
            return Ok(None);
        };
        let length = core.length();
        let Some(last) = self.block_at(&core, length) else {
            return Ok(None);
        };
        let Some(digest) = &last.digest else {
            return Ok(None);
        };
        let prev = (digest.pointer > 0)
            .then(|| self.block_at(&core, length.saturating_sub(digest.pointer)))
            .flatten();
        let Some(digest) = inflate_digest(length, digest, |_| prev.as_ref()) else {
            return Ok(None);
        };
        let mut out = IndexerCheckpoint {
            signer,
            digest: Some(digest),
            ..IndexerCheckpoint::default()
        };
        let Some(chk) = &last.checkpoint else {
            return Ok(Some(out));
        };
        let resolve = |c: &super::messages::Checkpointer, slot: Slot| {
            let target = (c.checkpoint.is_none() && c.checkpointer > 0)
                .then(|| self.block_at(&core, length.saturating_sub(c.checkpointer)))
                .flatten();
            inflate_checkpoint(length, c, slot, |_| target.as_ref())
        };
        out.system = chk.system.as_ref().and_then(|c| resolve(c, Slot::System));
        out.encryption = chk
            .encryption
            .as_ref()
            .and_then(|c| resolve(c, Slot::Encryption));
        out.user = chk
            .user
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| resolve(c, Slot::User(i)))
            .collect();
        Ok(Some(out))
    }

    /// JS `maybeSigned` + `_assembleMultisig` + the commit in `_flush`: once a quorum of the indexers (of the
    /// info at the system core's signed length) have signed the system core (naming this system core) at a
    /// length up to the indexed length, their partial signatures of the system, encryption and user view cores
    /// are assembled into multi-signatures and the cores' signed lengths move to what was signed. A signature
    /// that does not verify is refused and nothing after it is committed; the views themselves are not
    /// touched.
    fn maybe_signed(&mut self) -> Result<()> {
        let sys_core = self.state.system.db().core().clone();
        let quorum = sys_core.manifest().map_or(0, |m| m.quorum);
        let Ok(quorum) = usize::try_from(quorum) else {
            return Ok(());
        };
        if quorum == 0 {
            return Ok(());
        }
        let Ok(mut info) = self.state.system.indexed_info(sys_core.signed_length()) else {
            return Ok(());
        };
        if info.indexers.is_empty() {
            // A system core signed only to the prologue (nothing committed yet, or a kept signature that no
            // longer verifies) has an info that can predate the indexers: take the indexers of the indexed
            // state, the ones the system core's signers are (a checkpoint of others fails to verify and is
            // refused below).
            match self.state.system.indexed_info(self.state.indexed_length) {
                Ok(i) => info = i,
                Err(_) => return Ok(()),
            }
        }
        let mut chks = Vec::with_capacity(info.indexers.len());
        for (i, idx) in info.indexers.iter().enumerate() {
            let signer = i as u64;
            chks.push(
                self.read_checkpoint(&idx.key, signer)?
                    .unwrap_or(IndexerCheckpoint {
                        signer,
                        ..IndexerCheckpoint::default()
                    }),
            );
        }
        let Some(thres) = chks.len().checked_sub(quorum) else {
            return Ok(());
        };
        chks.sort_by_key(IndexerCheckpoint::signed_length);
        let signable = chks[thres].signed_length();
        if signable <= sys_core.signed_length() || signable > self.state.indexed_length {
            return Ok(());
        }
        let chks = &chks[thres..];
        for c in chks {
            if c.digest.map(|d| d.key) != Some(sys_core.key()) {
                return Ok(());
            }
        }
        let Ok(sys_info) = self.state.system.indexed_info(signable) else {
            return Ok(());
        };
        // (core, length, which signature of each checkpoint); system first, as JS lists them
        let mut pending: Vec<(Hypercore, u64, Slot)> =
            vec![(sys_core.clone(), signable, Slot::System)];
        if sys_info.encryption_length > 0 {
            pending.push((
                self.encryption.clone(),
                sys_info.encryption_length,
                Slot::Encryption,
            ));
        }
        for v in &self.state.views {
            let Some(i) = v.mapped_index else { continue };
            let length = sys_info.views.get(i).map_or(0, |c| c.length);
            if length > v.core.signed_length() {
                pending.push((v.core.clone(), length, Slot::User(i)));
            }
        }
        let mut assembled = Vec::with_capacity(pending.len());
        for (core, length, slot) in pending {
            let mut partials = Vec::with_capacity(chks.len());
            for c in chks {
                let sig = match slot {
                    Slot::System => c.system,
                    Slot::Encryption => c.encryption,
                    Slot::User(i) => c.user.get(i).copied().flatten(),
                };
                let Some(sig) = sig else { return Ok(()) };
                let partial = core
                    .partial_signature(c.signer, length, Some(sig.length), Some(&sig.signature))
                    .ok()
                    .flatten();
                let Some(p) = partial else { return Ok(()) };
                partials.push(p);
            }
            assembled.push((
                core,
                length,
                crate::hypercore::multisig::assemble(&partials),
            ));
        }
        // the user views first, the system last (JS commits in reverse), stopping at a bad signature
        for (core, length, signature) in assembled.into_iter().rev() {
            if core.set_signed_length(length, &signature).is_err() {
                self.state.stats.bad_signatures += 1;
                break;
            }
            self.state.stats.signed += 1;
        }
        Ok(())
    }

    fn flush_local(&mut self, local_nodes: &[(NodeId, OplogMessage)]) -> Result<()> {
        if !local_nodes.is_empty() {
            let system_key = self.state.system.db().core().key();
            let start = self.local.length();
            let end = start + local_nodes.len() as u64;
            // an indexer signs the views when the indexed length moved past what it signed; the last block of
            // the append carries the signatures, every block a checkpoint (the signatures or pointers to them)
            let signed =
                if self.local_indexer && self.state.indexed_length > self.digests.signed_length() {
                    Some(self.sign_views()?)
                } else {
                    None
                };
            self.signing = None;
            let mut blocks = Vec::with_capacity(local_nodes.len());
            for (i, (_, msg)) in local_nodes.iter().enumerate() {
                let length = start + i as u64 + 1;
                let mut msg = msg.clone();
                if self.local_indexer {
                    if length == end {
                        if let Some((system, encryption, user)) = &signed {
                            self.digests
                                .update_internal_signatures(length, *system, *encryption);
                            self.digests.update_user_signatures(length, user);
                        }
                    }
                    msg.checkpoint = Some(self.digests.make_checkpoint(length));
                }
                msg.digest = Some(self.digests.make_digest(length, system_key));
                blocks.push(
                    msg.to_bytes()
                        .map_err(|e| AutobaseError::Apply(e.to_string()))?,
                );
            }
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            self.local.append(&refs)?;
        }
        self.signing = None;
        if self.state.stats.batches >= self.persisted_at + PERSIST_EVERY {
            self.persist()?;
        }
        Ok(())
    }

    /// Syncs the system and view cores, then writes the boot record (the indexed system length) and the update
    /// records to the local writer's user data, which a reopen starts from. Done every [`PERSIST_EVERY`]
    /// applied batches, by [`Autobase::flush`] and on drop. The system and views are derived state written
    /// without a sync per append ([`Durability::Process`]); a reopen truncates them to the boot record's
    /// indexed length, which this sync made durable, and re-applies the rest from the writers. A stale pair is
    /// correct, it only makes a reopen re-apply more.
    fn persist(&mut self) -> Result<()> {
        self.persisted_at = self.state.stats.batches;
        // the system and views up to the indexed length must be on disk before a boot record names it
        self.state.system.db().core().flush()?;
        for v in &self.state.views {
            v.core.flush()?;
        }
        let boot = BootRecord {
            version: BOOT_RECORD_VERSION,
            key: self.state.system.db().core().key(),
            system_length: self.state.indexed_length,
            fast_forwarding: std::mem::take(&mut self.fast_forwarded),
            ..BootRecord::default()
        };
        let boot = boot
            .to_bytes()
            .map_err(|e| AutobaseError::Apply(e.to_string()))?;
        self.local.set_user_data("autobase/boot", Some(&boot))?;
        self.local
            .set_user_data(UPDATES_KEY, Some(&encode_updates(&self.state.updates)))?;
        let signed = self.signed_heads();
        self.local
            .set_user_data(SIGNED_KEY, Some(&encode_signed(&signed)))?;
        Ok(())
    }

    /// The system, encryption and view cores' signed heads whose signature is known.
    fn signed_heads(&self) -> Vec<SignedHead> {
        let mut cores = vec![
            self.state.system.db().core().clone(),
            self.encryption.clone(),
        ];
        cores.extend(self.state.views.iter().map(|v| v.core.clone()));
        cores
            .into_iter()
            .filter_map(|c| {
                let sig = c.signed_signature()?;
                let length = c.signed_length();
                (length > 0).then(|| (c.key(), length, sig))
            })
            .collect()
    }

    /// Commits again the multi-signatures the last flush kept (those that still verify against what the
    /// cores hold), so a reopen keeps the signed lengths.
    fn restore_signed(&mut self) {
        let Some(signed) = self
            .local
            .get_user_data(SIGNED_KEY)
            .and_then(|b| decode_signed(&b).ok())
        else {
            return;
        };
        let mut cores = vec![
            self.state.system.db().core().clone(),
            self.encryption.clone(),
        ];
        cores.extend(self.state.views.iter().map(|v| v.core.clone()));
        for (key, length, sig) in signed {
            if let Some(core) = cores.iter().find(|c| c.key() == key) {
                if length <= core.length() && length > core.signed_length() {
                    let _ = core.set_signed_length(length, &sig);
                }
            }
        }
    }

    /// Whether a fast-forward is under way (updates wait until it ends).
    pub fn is_fast_forwarding(&self) -> bool {
        self.fast_forwarding
    }

    /// Starts a fast-forward (JS `FastForward`): the system core drops its unsigned tail (back to its signed
    /// length, on fork 0) and takes upgrades from peers, and updates wait. Returns the system core, for the
    /// caller to replicate until a peer's signed head is there, then [`Autobase::finish_fast_forward`] (or
    /// [`Autobase::abort_fast_forward`]).
    pub fn begin_fast_forward(&mut self) -> Result<Hypercore> {
        if self.failed {
            return Err(AutobaseError::Failed);
        }
        let core = self.state.system.db().core().clone();
        self.persist()?;
        self.fast_forwarding = true;
        prepare_fast_forward(&core)?;
        Ok(core)
    }

    /// Ends a fast-forward whose system core now holds a signed head (its blocks up to it local), the views'
    /// cores (by the keys it lists) theirs and the indexers' cores their manifests (JS `_applyFastForward`):
    /// the indexed state becomes the system at its signed length, the application's views are opened again
    /// on those cores at the lengths it lists, and the linearizer starts from the system's heads and each
    /// writer's indexed length (a reboot), so no earlier node is read or applied. The next boot record says
    /// so (`fastForwarding`).
    pub fn finish_fast_forward(&mut self) -> Result<()> {
        let core = self.state.system.db().core().clone();
        core.set_upgrades_allowed(false);
        let length = core.signed_length();
        let system = SystemView::open(Hyperbee::new(view_core(core.clone())))?;
        if length != system.core_length() || system.indexed_info(length).is_err() {
            return Err(AutobaseError::Apply(format!(
                "fast-forward: the system core's signed length {length} is not a flush point"
            )));
        }
        self.state.system = system;
        self.state.indexed_length = length;
        self.state.updates.clear();
        let keys = view_keys(
            &self.store,
            &self.local,
            self.key,
            &self.state.system,
            length,
            self.encryption_key,
        )?;
        let mut views = Vec::new();
        self.view = self.handlers.open(&mut ViewStore {
            store: &self.store,
            keys: &keys,
            views: &mut views,
        })?;
        for v in &mut views {
            v.core.set_upgrades_allowed(false);
            v.mapped_index = self
                .state
                .system
                .views
                .iter()
                .position(|s| s.key == v.core.key());
        }
        self.state.views = views;
        self.encryption = keys.open_view(&self.store, "_encryption")?;
        self.reboot()?;
        self.refresh_local_indexer();
        self.fast_forwarding = false;
        self.fast_forwarded = true;
        self.state.stats.fast_forwards += 1;
        self.persist()
    }

    /// Gives a fast-forward up (no peer served a signed head, or its views, in time; or its signature did
    /// not verify): the base reopens from what it kept, re-applying from its boot record (or the start).
    pub fn abort_fast_forward(&mut self) -> Result<()> {
        if !self.fast_forwarding {
            return Ok(());
        }
        self.fast_forwarding = false;
        self.state.system.db().core().set_upgrades_allowed(false);
        for v in &self.state.views {
            v.core.set_upgrades_allowed(false);
        }
        self.state.system = SystemView::open(Hyperbee::new(self.state.system.db().core().clone()))?;
        self.reopen()
    }

    /// Where the base reads writer `key` from next (its next block not fed to the linearizer): what a
    /// replicator downloads from.
    pub fn writer_position(&self, key: &[u8; 32]) -> u64 {
        if let Some(w) = self.writers.get(key) {
            return w.fed;
        }
        self.state
            .system
            .get_member(key)
            .ok()
            .flatten()
            .map_or(0, |m| m.length)
    }

    /// The system core and the view cores (what peers fast-forward from).
    pub fn served_cores(&self) -> Vec<Hypercore> {
        let mut cores = vec![self.state.system.db().core().clone()];
        cores.extend(self.state.views.iter().map(|v| v.core.clone()));
        cores
    }

    /// Writes what a reopen starts from now (see [`PERSIST_EVERY`]).
    pub fn flush(&mut self) -> Result<()> {
        self.persist()
    }

    /// Reopens from what the last flush kept: the boot record's indexed system length and the update records
    /// (a missing or damaged one only costs re-applying more: from the indexed length, or from the start),
    /// then rebuilds the linearizer as a reboot does and re-applies the un-indexed tail.
    fn reopen(&mut self) -> Result<()> {
        let system_key = self.state.system.db().core().key();
        let length = self.state.system.core_length();
        let boot = self
            .local
            .get_user_data("autobase/boot")
            .and_then(|b| BootRecord::decode(&b).ok())
            .filter(|b| b.key == system_key && b.system_length <= length);
        let mut indexed = boot.map_or(0, |b| b.system_length);
        // the indexed length must be a flush point (an `info` block), else start over
        match self.state.system.indexed_info(indexed) {
            // and every view must hold what it names (a power loss after the last sync can cut them shorter)
            Ok(info) => {
                let short = self.state.views.iter().any(|v| {
                    info.views
                        .iter()
                        .any(|c| c.key == v.core.key() && c.length > v.core.length())
                });
                if short {
                    indexed = 0;
                }
            }
            Err(_) => indexed = 0,
        }
        self.state.indexed_length = indexed;
        self.state.updates = self
            .local
            .get_user_data(UPDATES_KEY)
            .and_then(|b| decode_updates(&b).ok())
            .unwrap_or_default();
        self.reboot()
    }

    /// JS `_reboot` after an indexer change: a linearizer for the indexed system state, the un-indexed nodes
    /// of the update records re-added in order (`catchup`), and the system and views truncated to the indexed
    /// length with the records dropped, so the next round re-applies the tail under the new indexers.
    fn reboot(&mut self) -> Result<()> {
        self.state.stats.reboots += 1;
        let indexed = self.state.indexed_length;
        let sys = self.state.system.checkout(indexed)?;
        let indexers = heads_of(&sys.indexers);
        let heads = heads_of(&sys.heads);
        // nothing indexed yet: the bootstrap linearizer, as a new base has
        let indexers = if indexers.is_empty() {
            vec![Head {
                key: self.key,
                length: 0,
            }]
        } else {
            indexers
        };
        self.lin = Linearizer::new(&indexers, &heads);
        self.writers.clear();
        self.order.clear();
        let member = |k: &[u8; 32]| -> Result<Option<Member>> { Ok(sys.get_member(k)?) };
        for h in indexers.iter().chain(&heads) {
            self.track(h.key, h.length);
        }
        let me = self.local.key();
        if let Some(m) = member(&me)? {
            if self.lin.writer_id(&me).is_none() {
                self.lin.add_writer(me, m.length, m.is_removed);
            }
            self.track(me, m.length);
        }
        let records = std::mem::take(&mut self.state.updates);
        self.state.truncate(indexed)?;
        self.rollback_views()?;
        for rec in &records {
            if self.lin.writer_id(&rec.key).is_none() {
                let m = member(&rec.key)?;
                let len = m.map_or(0, |m| m.length);
                self.lin
                    .add_writer(rec.key, len, m.is_none_or(|m| m.is_removed));
                self.track(rec.key, len);
            }
            while self
                .writers
                .get(&rec.key)
                .is_some_and(|s| s.fed < rec.length && !s.frozen)
            {
                let n = self.feed_batch(rec.key)?;
                if n == 0 {
                    break;
                }
                self.state.stats.readded += n as u64;
            }
        }
        // the members with no node in the records (JS finds them again through wakeup)
        for (k, m) in sys.list()? {
            if !m.is_removed {
                self.ensure_writer(k)?;
            }
        }
        self.ensure_local_writer()?;
        self.refresh_writers()?;
        self.refresh_local_indexer();
        Ok(())
    }
}

/// A clock's entries as the linearizer's heads.
fn heads_of(clock: &[Checkout]) -> Vec<Head> {
    clock
        .iter()
        .map(|c| Head {
            key: c.key,
            length: c.length,
        })
        .collect()
}

/// Copies the blocks `dst` lacks from `src` (the same core in two stores), through proofs that `dst` verifies:
/// replication without a network, for tests and tools. `dst` is opened (created as a reader) in `dst_store`.
pub fn copy_core(src: &Hypercore, dst_store: &Corestore) -> Result<u64> {
    let dst = dst_store.get_by_key(src.key(), src.manifest())?;
    let from = dst.length();
    let to = src.length();
    if to <= from {
        return Ok(0);
    }
    // One fdatasync for the whole copy, not one per block (6111 syncs for 3000 puts of the bench before); the
    // blocks reach disk before this returns all the same.
    dst.set_durability(Durability::Process);
    let copied = copy_blocks(src, &dst, from, to);
    dst.set_durability(Durability::Sync);
    copied?;
    dst.flush()?;
    Ok(to - from)
}

fn copy_blocks(src: &Hypercore, dst: &Hypercore, from: u64, to: u64) -> Result<()> {
    for i in from..to {
        let req = Request {
            id: i + 1,
            fork: src.fork(),
            block: Some(RequestBlock {
                index: i,
                nodes: dst.missing_nodes(2 * i),
            }),
            upgrade: (i == from).then_some(RequestUpgrade {
                start: from,
                length: to - from,
            }),
            manifest: dst.manifest().is_none(),
            ..Request::default()
        };
        let data = src.proof(&req)?;
        dst.apply_proof(&data)?;
    }
    Ok(())
}

/// Copies every writer core `from` has that `to` reads (or that `to` does not have at all) from `from`'s
/// store to `to`'s: one direction of a simulated replication.
pub fn sync_writers<A: Handlers, B: Handlers>(from: &Autobase<A>, to: &Autobase<B>) -> Result<()> {
    let mut keys: Vec<[u8; 32]> = from.writers().to_vec();
    keys.push(from.local_key());
    for key in keys {
        if key == to.local_key() {
            continue;
        }
        let Some(src) = from.writer_core(&key)? else {
            continue;
        };
        if src.length() == 0 {
            continue;
        }
        copy_core(&src, to.store())?;
    }
    Ok(())
}

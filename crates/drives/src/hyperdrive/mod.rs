//! Hyperdrive 13: a versioned, signed, sparsely replicable file system, laid out exactly as JS `hyperdrive`
//! 13.3 does so a Rust drive and a JS drive replicate with each other.
//!
//! # Layout (facts of hyperdrive 13.3.4, hyperbee 2.27, hyperblobs 2.12, corestore 7)
//!
//! - **db core**: corestore core `name: "db"` (a manifest core, key = hash of the default single-signer
//!   manifest of the derived key pair). It holds a [`Hyperbee`] whose header carries `metadata:
//!   { contentFeed: null }` (encoded as an empty `Metadata`, so the header ends `12 00`).
//! - **entries**: key `"files\0" ++ path` (a `sub-encoder` prefix `files` + separator 0, the same bytes as
//!   hyperbee `sub("files")`), path normalized as [`path::normalize`] (`unix-path-resolve('/', name)`: absolute,
//!   no `.`/`..`/empty parts, `..` above the root is an error). The value is JSON
//!   `{"executable","linkname","blob","metadata"}` ([`EntryValue`]), blob ids as hyperblobs writes them.
//! - **blobs core**: a manifest core whose manifest is the db's with each signer namespace replaced by
//!   `BLAKE2b-256(BLOBS || dbKey || signer.namespace)` where `BLOBS = namespace("hyperdrive", 1)[0]`, hash
//!   `blake2b`, no prologue ([`content_manifest`]); signed with the db's key pair. A reader derives it from the
//!   db's manifest (learned from the first proof) unless the bee header names a `contentFeed` (old, compat
//!   drives), which then wins, as in JS.
//! - **content**: [`Hyperblobs`] in the blobs core: 64 KiB blocks, except streamed files over 1 MiB, which are
//!   cut with content-defined chunking (64-256 KiB blocks); a changed one is written as a hyperblobs 2.12
//!   block map re-using the blocks its previous version has (`chunked`, [`DriveOptions::chunking`]). A
//!   block-map entry's content length is the sum of its map, which [`Drive::entry`] and [`Drive::list`] read.
//! - **folders** are key ranges: `list(folder)` is `gt: folder + "/"`, `lt: folder + "0"` ('0' is '/' + 1);
//!   `readdir` walks that range one child name at a time as JS's `shallowReadStream`.
//!
//! # API
//!
//! - Open: [`Hyperdrive::open`] (the store's writable default drive), [`Hyperdrive::open_key`] (a replica by
//!   key, or our own drive again), both with [`DriveOptions`] (waiting for peers, durability).
//! - Identity: [`key`](Hyperdrive::key), [`discovery_key`](Hyperdrive::discovery_key),
//!   [`content_key`](Hyperdrive::content_key), [`version`](Hyperdrive::version).
//! - Files, as a [`Drive`] (the trait, implemented in `drive_impl`): [`entry`](Drive::entry),
//!   [`get`](Drive::get), [`put`](Drive::put), [`list`](Drive::list) (recursive, invalid entries
//!   skipped), [`readdir`](Drive::readdir), [`read`](Drive::read) (an entry's content in chunks),
//!   [`write`](Drive::write), [`symlink`](Drive::symlink), [`del`](Drive::del),
//!   [`put_entry`](Drive::put_entry) (new executable bit and metadata, same blob), [`batch`](Drive::batch),
//!   [`writable`](Drive::writable). Entries are [`drive::Entry`](crate::drive::Entry)s (key, seq and the
//!   decoded [`EntryValue`] fields), errors [`DriveError`]s.
//! - More writes: [`put_reader`](Hyperdrive::put_reader) (streamed from an `AsyncRead`),
//!   [`writer`](Hyperdrive::writer) (push chunks, then [`DriveWriter::finish`]),
//!   [`symlink_with`](Hyperdrive::symlink_with) (with metadata), [`put_value`](Hyperdrive::put_value) (JS
//!   `putEntry`: a value as given), [`remove`](Hyperdrive::remove) (says whether the entry existed), and
//!   [`new_batch`](Hyperdrive::new_batch) for many files in one bee append ([`DriveBatch`]: small files'
//!   content gathered into 4 MiB blobs appends, big files streamed with [`DriveBatch::writer`] /
//!   [`DriveBatch::finish_writer`]; what an importer should use).
//! - More reads: [`entry_follow`](Hyperdrive::entry_follow) (symlinks, at most 16),
//!   [`exists`](Hyperdrive::exists), [`read_range`](Hyperdrive::read_range) (a byte range in memory),
//!   [`reader`](Hyperdrive::reader) (a hyperblobs [`BlobReader`] yielding chunks),
//!   [`list_with`](Hyperdrive::list_with) ([`ListOptions`]: recursive or not, invalid entries an error or
//!   skipped).
//! - Versions: [`checkout`](Hyperdrive::checkout) (read-only view), [`diff`](Hyperdrive::diff).
//! - Replication: [`replicate`](Hyperdrive::replicate) on a protomux, [`replicate_stream`](Hyperdrive::replicate_stream)
//!   on a secret stream (both cores; a replica's blobs core joins every connection once its key is known),
//!   [`update`](Hyperdrive::update), [`download`](Hyperdrive::download) (every blob block under a folder),
//!   [`replicators`](Hyperdrive::replicators), [`watch`](Hyperdrive::watch).
//!
//! # Sparse replicas
//!
//! [`Hyperbee`] reads synchronously from local blocks. On a replica each lookup runs, and when the bee reports
//! a missing block that block is fetched through the db core's [`Replicator`] and the lookup runs again (blocks
//! are cached, so a `get` costs one round trip per missing tree level). Listings, diffs and downloads first
//! download the db core up to the version read (it is small next to the content), then walk it locally. Blob
//! reads fetch only their own blocks (the range is prefetched in parallel). Waiting is governed by
//! [`WaitOptions`]: with `wait: false` a missing block is an error at once.
//!
//! # Hostile drives
//!
//! Entry keys are checked on every read: a key that is not valid UTF-8 or not its own normalized form
//! (`../x`, `/a/../b`, `a`, `//a`, backslashes) is [`DriveError::InvalidKey`] (listings can skip them instead,
//! [`ListOptions::skip_invalid`]); values that are not the expected JSON are [`DriveError::Entry`]; blob ids
//! past the blobs core are [`BlobError::OutOfBounds`]. Nothing panics on remote data.
//!
//! [`clear`](Hyperdrive::clear) and [`clear_all`](Hyperdrive::clear_all) drop local content blocks as JS
//! `clear(path)`/`clearAll()` do (the entries stay; the content reads again from peers).
//!
//! # Encryption
//!
//! [`DriveOptions::encryption_key`] is JS `encryptionKey`: both cores' blocks are encrypted with hypercore's
//! default block encryption (details in [`encryption`]). The key is not stored: pass it on every open.
//! [`DriveOptions::blind`] opens a drive to replicate it without the key (a blind seeder): nothing is
//! decoded, the blobs core is derived from the db manifest.
//!
//! Differences from the JS: no
//! monitors, no `truncate`/`purge`, no watch streams (use [`watch`](Hyperdrive::watch)),
//! and a [`DriveBatch`] cannot read its own pending writes.

mod chunked;
mod drive_impl;
pub mod encryption;
pub mod entry;
mod folders;
pub mod path;

use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::corestore::Corestore;
use crate::crypto;
use crate::drive::{Drive, DriveError, Entry, Result, WriteOptions};
use crate::hyperbee::messages::{Header, Metadata};
use crate::hyperbee::{Hyperbee, HyperbeeError, RangeOptions};
use crate::hyperblobs::{
    decode_block_map, fetch_block, BlobError, BlobId, BlobReader, BlobWriter, Hyperblobs,
    ReadRange, WaitOptions,
};
use crate::hypercore::messages::Manifest;
use crate::hypercore::replicator::Replicator;
use crate::hypercore::{Cleared, Durability, Hypercore};
use crate::protomux::Mux;
use crate::secret_stream::SecretStream;

pub use encryption::{BadEncryptionKey, EncryptionKey};
pub use entry::{EntryError, EntryValue};
pub use path::PathError;

/// The corestore name of a drive's db core.
pub const DB_NAME: &str = "db";
/// The sub-encoder prefix of entry keys.
pub const FILES_PREFIX: &[u8] = b"files";
/// Symlinks followed by [`Hyperdrive::entry_follow`] before giving up (as JS).
pub const MAX_SYMLINKS: usize = 16;

/// `BLOBS = namespace("hyperdrive", 1)[0]`.
pub fn blobs_namespace() -> [u8; 32] {
    crypto::namespace(b"hyperdrive", &[0])[0]
}

/// The blobs core manifest of a drive (JS `generateContentManifest(m, key)`): `None` for version-0 manifests.
pub fn content_manifest(db_manifest: &Manifest, db_key: &[u8; 32]) -> Option<Manifest> {
    if db_manifest.version < 1 {
        return None;
    }
    let ns = blobs_namespace();
    let mut m = db_manifest.clone();
    for s in &mut m.signers {
        s.namespace = crypto::hash(&[&ns, db_key, &s.namespace]);
    }
    m.prologue = None;
    Some(Manifest {
        version: m.version,
        allow_patch: m.allow_patch,
        quorum: m.quorum,
        signers: m.signers,
        prologue: None,
        linked: None,
        user_data: None,
    })
}

/// The blobs core key of a drive (JS `Hyperdrive.getContentKey(manifest, key)`).
pub fn content_key(db_manifest: &Manifest, db_key: &[u8; 32]) -> Option<[u8; 32]> {
    content_manifest(db_manifest, db_key).map(|m| crate::hypercore::caps::manifest_hash(&m))
}

/// How a drive is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveOptions {
    /// Whether reads wait for blocks from peers, and how long.
    pub wait: WaitOptions,
    /// When appends are durable; default [`Durability::Process`] (what JS hypercore guarantees: survives a
    /// crash of the process, not a power loss).
    pub durability: Durability,
    /// The drive's encryption key (JS `encryptionKey`): blocks of both cores are encrypted with it on write
    /// and decrypted on read. Not stored: give it on every open.
    pub encryption_key: Option<EncryptionKey>,
    /// Open without decoding anything (a blind seeder of an encrypted drive): a db header that does not
    /// decode is not an error, and the blobs core is derived from the db manifest. Reads of entries then
    /// fail; replication works.
    pub blind: bool,
    /// Streamed file writes are cut with content-defined chunking, and a changed file re-uses its previous
    /// version's blocks through a block map (default on; see [`crate::hyperblobs::cdc`]; never for compat
    /// drives, whose JS readers may predate block maps).
    pub chunking: bool,
}

impl Default for DriveOptions {
    fn default() -> Self {
        Self {
            wait: WaitOptions::default(),
            durability: Durability::Process,
            encryption_key: None,
            blind: false,
            chunking: true,
        }
    }
}

/// Options of [`Hyperdrive::list_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Every entry below the folder (default); false lists one entry per direct child as JS
    /// `list(folder, { recursive: false })` (for a subfolder, its first entry).
    pub recursive: bool,
    /// Leave out entries whose key is not a normalized path (instead of failing with
    /// [`DriveError::InvalidKey`]).
    pub skip_invalid: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            recursive: true,
            skip_invalid: false,
        }
    }
}

/// One difference of [`Hyperdrive::diff`]: the entry in this version (`left`) and in the other (`right`).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffEntry {
    /// In this version.
    pub left: Option<Entry>,
    /// In the other version.
    pub right: Option<Entry>,
}

/// What [`Hyperdrive::download`] fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadStats {
    /// Entries under the folder.
    pub entries: u64,
    /// Blob blocks under the folder (all stored now).
    pub blocks: u64,
}

struct MuxSlot {
    id: u64,
    mux: Mux,
    is_initiator: bool,
    handshake_hash: Vec<u8>,
    remote_public_key: Option<[u8; 32]>,
}

#[derive(Default)]
struct State {
    blobs: Option<Hyperblobs>,
    muxes: Vec<MuxSlot>,
    next_mux: u64,
}

struct Shared {
    store: Corestore,
    db: Hypercore,
    db_rep: Replicator,
    files: Hyperbee,
    opts: DriveOptions,
    state: Mutex<State>,
    opening_blobs: tokio::sync::Mutex<()>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hyperdrive. Cheap to clone; clones and checkouts share the cores.
#[derive(Clone)]
pub struct Hyperdrive {
    shared: Arc<Shared>,
    checkout: Option<u64>,
}

impl std::fmt::Debug for Hyperdrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hyperdrive")
            .field("key", &hex::encode(self.key()))
            .field("version", &self.version())
            .field("checkout", &self.checkout)
            .finish_non_exhaustive()
    }
}

fn add_cleared(total: &mut Cleared, c: Cleared) {
    total.blocks += c.blocks;
    total.bytes += c.bytes;
    total.freed += c.freed;
}

fn entry_from(e: crate::hyperbee::Entry) -> Result<Entry> {
    let key = String::from_utf8(e.key)
        .map_err(|k| DriveError::InvalidKey(String::from_utf8_lossy(k.as_bytes()).into_owned()))?;
    if !path::is_normalized(&key) {
        return Err(DriveError::InvalidKey(key));
    }
    let value = e
        .value
        .as_deref()
        .ok_or(EntryError::Field("entry"))
        .and_then(EntryValue::decode)
        .map_err(|err| DriveError::Entry {
            key: key.clone(),
            err,
        })?;
    Ok(Entry::from_value(key, e.seq, value))
}

fn folder_range(folder: &str, after: &str) -> RangeOptions {
    RangeOptions {
        gt: Some(format!("{folder}{after}").into_bytes()),
        lt: Some(format!("{folder}0").into_bytes()),
        ..RangeOptions::default()
    }
}

/// True for a compat core (key = the signer's public key), as corestore 6 makes them.
fn is_compat(core: &Hypercore) -> bool {
    core.manifest().is_none_or(|m| {
        m.signers.len() == 1
            && m.signers
                .first()
                .is_some_and(|s| s.public_key == core.key())
    })
}

/// JS hyperdrive 11's name for a compat drive's blobs core: `<db id>/blobs`.
fn compat_blobs_name(db: &Hypercore) -> String {
    format!("{}/blobs", holepunch_wire::id_encoding::encode(&db.key()))
}

impl Hyperdrive {
    /// The store's own writable drive (JS `new Hyperdrive(store)`): db core `"db"` of the store's namespace,
    /// blobs core derived from it; both created if missing.
    pub fn open(store: &Corestore, opts: DriveOptions) -> Result<Self> {
        let db = store.get(DB_NAME)?;
        Self::from_db(store, db, opts)
    }

    /// The drive with db core `key` (JS `new Hyperdrive(store, key)`): a replica filled from peers, or our own
    /// drive if the store holds its key pair. A replica's blobs core is opened once the db's manifest or
    /// header is known (at once if it was stored before).
    pub fn open_key(store: &Corestore, key: [u8; 32], opts: DriveOptions) -> Result<Self> {
        let db = store.get_by_key(key, None)?;
        Self::from_db(store, db, opts)
    }

    fn from_db(store: &Corestore, db: Hypercore, opts: DriveOptions) -> Result<Self> {
        db.set_durability(opts.durability);
        if let Some(k) = &opts.encryption_key {
            db.set_encryption_key(&k.0, false);
        }
        // A compat db (JS hyperdrive 11 on corestore 6, as JS `drives` 2.9.1 makes them) names its blobs core in
        // the header: the core `<db id>/blobs` of the same store.
        let mut metadata = Metadata::default();
        if is_compat(&db) && db.writable() {
            metadata.content_feed = Some(
                store
                    .create_key_pair(compat_blobs_name(&db))
                    .public
                    .to_vec(),
            );
        }
        let bee = Hyperbee::new(db.clone()).with_metadata(metadata);
        let files = bee.sub(FILES_PREFIX);
        let drive = Self {
            shared: Arc::new(Shared {
                store: store.clone(),
                db_rep: Replicator::new(db.clone()),
                db,
                files,
                opts,
                state: Mutex::default(),
                opening_blobs: tokio::sync::Mutex::new(()),
            }),
            checkout: None,
        };
        drive.open_blobs_local()?;
        Ok(drive)
    }

    /// Opens the blobs core from what is stored locally (header and manifest), if possible.
    fn open_blobs_local(&self) -> Result<Option<Hyperblobs>> {
        if let Some(b) = self.shared.state().blobs.clone() {
            return Ok(Some(b));
        }
        let db = &self.shared.db;
        let header = match db.get(0)? {
            Some(block) => Some(block),
            None if db.writable() => None,
            None => return Ok(None),
        };
        self.open_blobs_from(header.as_deref()).map(Some)
    }

    /// Opens the blobs core named by the header (its `contentFeed`) or derived from the db manifest.
    fn open_blobs_from(&self, header: Option<&[u8]>) -> Result<Hyperblobs> {
        let db = &self.shared.db;
        let have_key = self.shared.opts.encryption_key.is_some();
        let decoded = header.map(|h| match Header::decode(h) {
            Ok(h) if h.protocol == "hyperbee" => Ok(h.metadata.and_then(|m| m.content_feed)),
            Ok(h) => Err(format!("protocol {:?}", h.protocol)),
            Err(e) => Err(e.to_string()),
        });
        let content_feed = match decoded {
            Some(Ok(feed)) => feed,
            // A blind seeder: the header is ciphertext to it; the manifest names the blobs core.
            Some(Err(_)) | None if self.shared.opts.blind => None,
            Some(Err(e)) => {
                return Err(DriveError::Header(encryption::header_error(e, have_key)));
            }
            None => None,
        };
        let store = &self.shared.store;
        let core = match content_feed {
            Some(k) => {
                let key: [u8; 32] =
                    k.get(..32).and_then(|k| k.try_into().ok()).ok_or_else(|| {
                        DriveError::Header("content feed key shorter than 32 bytes".into())
                    })?;
                store.get_by_key(key, None)?
            }
            None if is_compat(db) && db.writable() => store.get(compat_blobs_name(db))?,
            None => {
                let manifest = db
                    .manifest()
                    .ok_or_else(|| DriveError::Header("db manifest not known yet".into()))?;
                let m = content_manifest(&manifest, &db.key()).ok_or_else(|| {
                    DriveError::Header("version 0 manifest and no contentFeed".into())
                })?;
                let kp = if db.writable() {
                    Some(store.create_key_pair(DB_NAME))
                        .filter(|kp| m.signers.iter().any(|s| s.public_key == kp.public))
                } else {
                    None
                };
                store.get_with_manifest(m, kp)?
            }
        };
        core.set_durability(self.shared.opts.durability);
        if let Some(k) = &self.shared.opts.encryption_key {
            core.set_encryption_key(&k.0, false);
        }
        let blobs = Hyperblobs::new(core.clone(), Some(Replicator::new(core)))
            .with_wait(self.shared.opts.wait);
        let mut st = self.shared.state();
        if let Some(b) = &st.blobs {
            return Ok(b.clone());
        }
        if let Some(rep) = blobs.replicator() {
            for slot in &st.muxes {
                rep.attach_remote(
                    &slot.mux,
                    slot.is_initiator,
                    &slot.handshake_hash,
                    slot.remote_public_key,
                );
            }
        }
        st.blobs = Some(blobs.clone());
        Ok(blobs)
    }

    /// The blobs, opening them (fetching the db header from peers on a replica) if needed.
    pub async fn blobs(&self) -> Result<Hyperblobs> {
        if let Some(b) = self.open_blobs_local()? {
            return Ok(b);
        }
        let _g = self.shared.opening_blobs.lock().await;
        if let Some(b) = self.shared.state().blobs.clone() {
            return Ok(b);
        }
        let header = fetch_block(
            &self.shared.db,
            Some(&self.shared.db_rep),
            self.shared.opts.wait,
            0,
        )
        .await?;
        self.open_blobs_from(Some(&header))
    }

    /// The blobs if already open.
    pub fn blobs_if_open(&self) -> Option<Hyperblobs> {
        self.shared.state().blobs.clone()
    }

    /// The corestore.
    pub fn store(&self) -> &Corestore {
        &self.shared.store
    }

    /// The db core.
    pub fn core(&self) -> &Hypercore {
        &self.shared.db
    }

    /// The db bee (the whole bee: entries are in its `files` sub).
    pub fn db(&self) -> Hyperbee {
        let bee = Hyperbee::new(self.shared.db.clone()).with_metadata(Metadata::default());
        match self.checkout {
            Some(v) => bee.checkout(v),
            None => bee,
        }
    }

    fn files(&self) -> Hyperbee {
        match self.checkout {
            Some(v) => self.shared.files.checkout(v),
            None => self.shared.files.clone(),
        }
    }

    /// The drive key (the db core's key).
    pub fn key(&self) -> [u8; 32] {
        self.shared.db.key()
    }

    /// The discovery key (the db core's; the topic to join on a swarm).
    pub fn discovery_key(&self) -> [u8; 32] {
        self.shared.db.discovery_key()
    }

    /// The blobs core key, once known.
    pub fn content_key(&self) -> Option<[u8; 32]> {
        self.blobs_if_open().map(|b| b.core().key())
    }

    /// The version: the checkout's, else the db length (at least 1).
    pub fn version(&self) -> u64 {
        self.files().version()
    }

    /// The options the drive was opened with.
    pub fn options(&self) -> DriveOptions {
        self.shared.opts
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable() {
            Ok(())
        } else {
            Err(DriveError::ReadOnly)
        }
    }

    /// Runs a bee read, fetching each block it misses from peers (when allowed) and running it again.
    async fn bee_read<T>(&self, f: impl Fn(&Hyperbee) -> crate::hyperbee::Result<T>) -> Result<T> {
        let bee = self.files();
        let mut last = None;
        loop {
            match f(&bee) {
                Err(HyperbeeError::BlockNotAvailable(seq)) if last != Some(seq) => {
                    fetch_block(
                        &self.shared.db,
                        Some(&self.shared.db_rep),
                        self.shared.opts.wait,
                        seq,
                    )
                    .await?;
                    last = Some(seq);
                }
                r => return r.map_err(DriveError::from),
            }
        }
    }

    /// Makes sure every db block up to the version read is stored (before walking ranges on a replica).
    async fn download_db(&self) -> Result<()> {
        let version = self.version();
        let db = &self.shared.db;
        let length = version.min(db.length());
        if db.stored_runs(0, length, 2) == [(0, length)] || !self.shared.opts.wait.wait {
            return Ok(());
        }
        let fut = self.shared.db_rep.download(0, length);
        match self.shared.opts.wait.timeout {
            None => fut.await,
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| DriveError::Timeout)?,
        }
        Ok(())
    }

    /// The entry at `path`, following symlinks (JS `entry(path, { follow: true })`).
    pub async fn entry_follow(&self, path: &str) -> Result<Option<Entry>> {
        let mut name = path.to_owned();
        for _ in 0..MAX_SYMLINKS {
            let Some(e) = self.entry(&name).await? else {
                return Ok(None);
            };
            match &e.linkname {
                Some(link) => name = path::resolve_from(&e.key, link)?,
                None => return Ok(Some(e)),
            }
        }
        Err(DriveError::RecursiveSymlink)
    }

    /// Drops the locally stored content blocks of the file at `path` (JS `clear(path)`): the entry stays, its
    /// content is fetched again from peers when read. Nothing happens for a missing entry, a symlink or a
    /// drive whose blobs are not known yet. The entry is looked up without waiting for peers. For a
    /// block-map blob (JS dedup writes) the blocks it lists are dropped too, then the map blocks.
    pub async fn clear(&self, path: &str) -> Result<Cleared> {
        let key = path::normalize(path)?;
        let entry = self
            .files()
            .get(key.as_bytes())
            .ok()
            .flatten()
            .and_then(|n| entry_from(n).ok());
        let (Some(blob), Some(blobs)) = (entry.and_then(|e| e.blob), self.blobs_if_open()) else {
            return Ok(Cleared::default());
        };
        let core = blobs.core();
        let mut total = Cleared::default();
        if blob.block_map {
            for i in blob.block_offset..blob.block_end() {
                let Some(map) = core.get(i)? else { continue };
                for (index, _) in decode_block_map(&map).unwrap_or_default() {
                    add_cleared(&mut total, core.clear(index, index.saturating_add(1))?);
                }
            }
        }
        add_cleared(&mut total, core.clear(blob.block_offset, blob.block_end())?);
        Ok(total)
    }

    /// Drops every locally stored content block (JS `clearAll()`); the db (entries) stays.
    pub async fn clear_all(&self) -> Result<Cleared> {
        let Some(blobs) = self.blobs_if_open() else {
            return Ok(Cleared::default());
        };
        let core = blobs.core();
        Ok(core.clear(0, core.length())?)
    }

    /// Whether an entry exists at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.entry(path).await?.is_some())
    }

    /// A byte range of the file at `path`, in memory (`None` when there is no entry or it has no blob).
    pub async fn read_range(&self, path: &str, range: ReadRange) -> Result<Option<Vec<u8>>> {
        let Some(e) = self.entry(path).await? else {
            return Ok(None);
        };
        let Some(blob) = e.blob else {
            return Ok(None);
        };
        Ok(Some(self.blobs().await?.read(&blob, range).await?))
    }

    /// A reader of a byte range of the file at `path` (JS `createReadStream(path, range)`); `None` when
    /// there is no such entry. A symlink or an entry without blob reads as empty.
    pub async fn reader(&self, path: &str, range: ReadRange) -> Result<Option<BlobReader>> {
        let Some(e) = self.entry(path).await? else {
            return Ok(None);
        };
        let blob = e.blob.unwrap_or(BlobId {
            block_offset: 0,
            byte_offset: 0,
            block_length: 0,
            byte_length: 0,
            block_map: false,
        });
        Ok(Some(self.blob_reader(&blob, range).await?))
    }

    /// A reader of a blob (as found in an [`Entry`]).
    pub async fn blob_reader(&self, blob: &BlobId, range: ReadRange) -> Result<BlobReader> {
        Ok(self.blobs().await?.reader(blob, range).await?)
    }

    /// Writes a file from a stream, never holding more than a few MiB in memory.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &self,
        path: &str,
        src: R,
        opts: WriteOptions,
    ) -> Result<()> {
        self.check_writable()?;
        let key = path::normalize(path)?;
        let blobs = self.blobs().await?;
        let blob = put_reader(self.blob_writer(&blobs, &key).await, src).await?;
        self.write_value(
            &key,
            &EntryValue::file(blob, opts.executable, opts.metadata),
        )
    }

    /// A writer for a file (JS `createWriteStream(path, opts)`): write chunks, then
    /// [`finish`](DriveWriter::finish) to add the entry. Holds the blobs write lock until finished or dropped.
    pub async fn writer(&self, path: &str, opts: WriteOptions) -> Result<DriveWriter> {
        self.check_writable()?;
        let key = path::normalize(path)?;
        let blobs = self.blobs().await?;
        let blob = self.blob_writer(&blobs, &key).await;
        Ok(DriveWriter {
            drive: self.clone(),
            key,
            opts,
            blob,
        })
    }

    /// Writes an entry's value as given (JS `putEntry`; [`Drive::put_entry`] keeps an entry's blob).
    pub fn put_value(&self, path: &str, value: &EntryValue) -> Result<()> {
        self.check_writable()?;
        let key = path::normalize(path)?;
        self.write_value(&key, value)
    }

    fn write_value(&self, key: &str, value: &EntryValue) -> Result<()> {
        self.shared
            .files
            .put(key.as_bytes(), Some(&value.encode()))?;
        Ok(())
    }

    /// A symlink at `path` to `target` (stored as given; JS `symlink`).
    /// ([`Drive::symlink`] without metadata.)
    pub fn symlink_with(&self, path: &str, target: &str, metadata: Option<Value>) -> Result<()> {
        self.check_writable()?;
        let key = path::normalize(path)?;
        self.write_value(&key, &EntryValue::symlink(target, metadata))
    }

    /// Deletes the entry at `path` (JS `del`); its blob stays in the blobs core. Returns whether it existed.
    /// ([`Drive::del`] without the answer.)
    pub fn remove(&self, path: &str) -> Result<bool> {
        self.check_writable()?;
        let key = path::normalize(path)?;
        Ok(self.shared.files.del(key.as_bytes())?)
    }

    /// A batch of writes appended to the db together on [`DriveBatch::flush`] (content is appended to the
    /// blobs core as it is put).
    /// (The mirror writes through [`Drive::batch`], a [`WriteBatch`](crate::drive::WriteBatch) over this.)
    pub fn new_batch(&self) -> Result<DriveBatch> {
        self.check_writable()?;
        Ok(DriveBatch {
            drive: self.clone(),
            ops: Vec::new(),
            blocks: Vec::new(),
            bytes: 0,
            guard: None,
            behind: None,
        })
    }

    /// Entries under `folder` in key order (JS `list(folder, { recursive })`).
    /// ([`Drive::list`] is recursive, skips invalid entries and takes an ignore predicate.)
    pub async fn list_with(&self, folder: &str, opts: ListOptions) -> Result<Vec<Entry>> {
        let folder = path::normalize_folder(folder)?;
        self.download_db().await?;
        if !opts.recursive {
            return self
                .shallow(&folder, opts.skip_invalid)
                .await
                .map(|v| v.into_iter().map(|(_, e)| e).collect());
        }
        let raw = self
            .bee_read(|b| b.range_vec(&folder_range(&folder, "/")))
            .await?;
        let mut out = Vec::with_capacity(raw.len());
        for e in raw {
            match entry_from(e) {
                Ok(e) => out.push(e),
                Err(DriveError::InvalidKey(_) | DriveError::Entry { .. }) if opts.skip_invalid => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// JS `shallowReadStream`: one `(name, first entry)` per direct child of `folder`.
    async fn shallow(&self, folder: &str, skip_invalid: bool) -> Result<Vec<(String, Entry)>> {
        let mut out: Vec<(String, Entry)> = Vec::new();
        let mut gt = format!("{folder}/").into_bytes();
        let lt = format!("{folder}0").into_bytes();
        loop {
            let range = RangeOptions {
                gt: Some(gt.clone()),
                lt: Some(lt.clone()),
                limit: Some(1),
                ..RangeOptions::default()
            };
            let Some(raw) = self.bee_read(|b| b.range_vec(&range)).await?.pop() else {
                return Ok(out);
            };
            let raw_key = raw.key.clone();
            let e = match entry_from(raw) {
                Ok(e) => e,
                Err(DriveError::InvalidKey(_) | DriveError::Entry { .. }) if skip_invalid => {
                    // Step past the bad key alone.
                    gt = raw_key;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let suffix = e.key.get(folder.len() + 1..).unwrap_or_default();
            let (name, is_dir) = match suffix.find('/') {
                Some(i) => (suffix.get(..i).unwrap_or_default(), true),
                None => (suffix, false),
            };
            let name = name.to_owned();
            gt = format!("{folder}/{name}{}", if is_dir { "0" } else { "" }).into_bytes();
            if out.last().is_some_and(|(n, _)| *n == name) {
                continue;
            }
            out.push((name, e));
        }
    }

    /// A read-only view of the drive at `version` (JS `checkout`).
    pub fn checkout(&self, version: u64) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            checkout: Some(version.max(1)),
        }
    }

    /// Differences between this version (`left`) and `version` (`right`) under `folder`, in key order (JS
    /// `diff(version, folder)`).
    pub async fn diff(&self, version: u64, folder: &str) -> Result<Vec<DiffEntry>> {
        let folder = path::normalize_folder(folder)?;
        self.download_db().await?;
        let raw = self
            .bee_read(|b| b.diff(version, &folder_range(&folder, "/")))
            .await?;
        raw.into_iter()
            .map(|d| {
                Ok(DiffEntry {
                    left: d.left.map(entry_from).transpose()?,
                    right: d.right.map(entry_from).transpose()?,
                })
            })
            .collect()
    }

    /// Downloads every blob block of every entry under `folder` (JS `download(folder)`), after the db.
    pub async fn download(&self, folder: &str) -> Result<DownloadStats> {
        let entries = self
            .list_with(
                folder,
                ListOptions {
                    recursive: true,
                    skip_invalid: true,
                },
            )
            .await?;
        let blobs = self.blobs().await?;
        tracing::debug!(entries = entries.len(), "download: db listed");
        let ranges: Vec<(u64, u64)> = entries
            .iter()
            .filter_map(|e| e.blob)
            .filter(|b| b.block_length > 0)
            .map(|b| (b.block_offset, b.block_end()))
            .collect();
        let mut blocks = self.download_runs(&blobs, ranges).await?;
        // Block maps (downloaded above): the blocks they list.
        let mapped = self
            .mapped_runs(&blobs, entries.iter().filter_map(|e| e.blob))
            .await?;
        if !mapped.is_empty() {
            blocks += self.download_runs(&blobs, mapped).await?;
        }
        Ok(DownloadStats {
            entries: entries.len() as u64,
            blocks,
        })
    }

    /// Downloads the blobs blocks of `ranges` (merged); returns how many blocks they cover.
    async fn download_runs(&self, blobs: &Hyperblobs, mut ranges: Vec<(u64, u64)>) -> Result<u64> {
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let core = blobs.core().clone();
        let wait = self.shared.opts.wait;
        let mut blocks = 0;
        for &(s, e) in &merged {
            blocks += e - s;
            if core.stored_runs(s, e, 2) == [(s, e)] {
                continue;
            }
            if !crate::hyperblobs::wait_for_length(&core, blobs.replicator(), wait, e).await {
                return Err(BlobError::OutOfBounds {
                    start: s,
                    end: e,
                    length: core.length(),
                }
                .into());
            }
            let Some(rep) = blobs.replicator().filter(|_| wait.wait) else {
                return Err(BlobError::BlockNotAvailable(s).into());
            };
            let fut = rep.download(s, e);
            match wait.timeout {
                None => fut.await,
                Some(t) => tokio::time::timeout(t.saturating_mul(64), fut)
                    .await
                    .map_err(|_| DriveError::Timeout)?,
            }
        }
        Ok(blocks)
    }

    /// The replicators of the db core and (once open) the blobs core.
    pub fn replicators(&self) -> Vec<Replicator> {
        let mut v = vec![self.shared.db_rep.clone()];
        if let Some(rep) = self.blobs_if_open().and_then(|b| b.replicator().cloned()) {
            v.push(rep);
        }
        v
    }

    /// Replicates both cores over `mux` (JS `drive.replicate(stream)` / `store.replicate`): the db now, the
    /// blobs now or as soon as a replica learns their key (its opening starts in the background).
    pub fn replicate(&self, mux: &Mux, is_initiator: bool, handshake_hash: &[u8]) {
        self.replicate_remote(mux, is_initiator, handshake_hash, None);
    }

    /// [`replicate`](Self::replicate) on a connection whose remote public key is known (a secret stream):
    /// the replicators' [`peer_stats`](Replicator::peer_stats) then name the peer.
    pub fn replicate_remote(
        &self,
        mux: &Mux,
        is_initiator: bool,
        handshake_hash: &[u8],
        remote_public_key: Option<[u8; 32]>,
    ) {
        self.shared
            .db_rep
            .attach_remote(mux, is_initiator, handshake_hash, remote_public_key);
        let id = {
            let mut st = self.shared.state();
            if let Some(rep) = st.blobs.as_ref().and_then(|b| b.replicator().cloned()) {
                rep.attach_remote(mux, is_initiator, handshake_hash, remote_public_key);
            }
            let id = st.next_mux;
            st.next_mux += 1;
            st.muxes.push(MuxSlot {
                id,
                mux: mux.clone(),
                is_initiator,
                handshake_hash: handshake_hash.to_vec(),
                remote_public_key,
            });
            id
        };
        let weak = Arc::downgrade(&self.shared);
        let m = mux.clone();
        tokio::spawn(async move {
            m.closed().await;
            if let Some(shared) = weak.upgrade() {
                shared.state().muxes.retain(|s| s.id != id);
            }
        });
        if self.blobs_if_open().is_none() {
            let d = self.clone();
            tokio::spawn(async move {
                let _ = d.blobs().await;
            });
        }
    }

    /// [`replicate`](Self::replicate) on a new protomux over a secret stream; returns the mux.
    pub fn replicate_stream<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        stream: SecretStream<IO>,
    ) -> Mux {
        let is_initiator = stream.is_initiator();
        let hh = *stream.handshake_hash();
        Mux::new_with(stream, |mux| self.replicate(mux, is_initiator, &hh)).0
    }

    /// Waits until a connected peer told us the db head and we took it (JS `update()`); returns the version.
    /// Returns at once without peers.
    pub async fn update(&self) -> Result<u64> {
        if self.shared.db_rep.peers() == 0 {
            return Ok(self.version());
        }
        let fut = self.shared.db_rep.update();
        match self.shared.opts.wait.timeout {
            None => {
                fut.await;
            }
            Some(t) => {
                tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| DriveError::Timeout)?;
            }
        }
        Ok(self.version())
    }

    /// Waits until at least `n` peers replicate the db core.
    pub async fn wait_for_peers(&self, n: usize) {
        self.shared.db_rep.wait_for_peers(n).await;
    }

    /// A receiver that changes whenever the db core changes (a write here, or an append seen from a peer).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.db.subscribe()
    }

    /// Waits until the drive's version is at least `version` (an append on the writer reaching a replica).
    pub async fn wait_for_version(&self, version: u64) -> Result<u64> {
        let mut rx = self.watch();
        let fut = async {
            while self.version() < version {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        match self.shared.opts.wait.timeout {
            None => fut.await,
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| DriveError::Timeout)?,
        }
        Ok(self.version())
    }

    /// Closes the drive: ends the connections it replicates on and lets the store drop its cores (they close
    /// once every other handle is gone).
    pub fn close(self) {
        let (muxes, blobs) = {
            let mut st = self.shared.state();
            (std::mem::take(&mut st.muxes), st.blobs.take())
        };
        for m in muxes {
            m.mux.destroy();
        }
        if let Some(b) = blobs {
            self.shared.store.close_core(&b.core().discovery_key());
        }
        self.shared
            .store
            .close_core(&self.shared.db.discovery_key());
    }
}

/// Writes everything `src` yields through `w` (a few MiB in memory at a time).
async fn put_reader<R: AsyncRead + Unpin>(mut w: BlobWriter, mut src: R) -> Result<BlobId> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 2 << 20];
    loop {
        let n = src.read(&mut buf).await.map_err(BlobError::from)?;
        if n == 0 {
            break;
        }
        w.write(buf.get(..n).unwrap_or_default())?;
    }
    Ok(w.finish()?)
}

/// Writes one file in chunks (see [`Hyperdrive::writer`]).
#[derive(Debug)]
pub struct DriveWriter {
    drive: Hyperdrive,
    key: String,
    opts: WriteOptions,
    blob: BlobWriter,
}

impl DriveWriter {
    /// Adds bytes to the file.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        Ok(self.blob.write(data)?)
    }

    /// Appends the rest of the content and writes the entry.
    pub fn finish(self) -> Result<()> {
        let Self {
            drive,
            key,
            opts,
            blob,
        } = self;
        let id = blob.finish()?;
        drive.write_value(&key, &EntryValue::file(id, opts.executable, opts.metadata))
    }
}

/// Writes appended to the db together (JS `drive.batch()`): content goes to the blobs core as it is put, the
/// entries go in one db append on [`flush`](Self::flush). Dropping it unflushed loses the entries.
///
/// Small files' content is gathered and appended a few MiB at a time; while some is gathered the batch holds
/// the blobs write lock, so other writers of the drive wait until [`flush`](Self::flush) (do not write to the
/// drive outside the batch from the same task meanwhile).
pub struct DriveBatch {
    drive: Hyperdrive,
    ops: Vec<(String, Option<Vec<u8>>)>,
    /// Content of small puts not appended yet (appended [`BATCH_BLOB_BYTES`] at a time, and before the entries).
    blocks: Vec<Vec<u8>>,
    bytes: u64,
    /// The blobs write lock, held while `blocks` is not empty (their ids count on the core's current end).
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The flush [`flush_behind`](Self::flush_behind) started, still being written.
    behind: Option<tokio::task::JoinHandle<Result<usize>>>,
}

/// Content a [`DriveBatch`] gathers from small puts before one blobs append.
pub const BATCH_BLOB_BYTES: u64 = 4 << 20;

impl std::fmt::Debug for DriveBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveBatch")
            .field("ops", &self.ops.len())
            .field("pending_blocks", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

impl DriveBatch {
    /// Writes a file. Its content is gathered with other small files' and appended to the blobs core in
    /// [`BATCH_BLOB_BYTES`] runs (one signature each), before the entries.
    pub async fn put(&mut self, path: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        let key = path::normalize(path)?;
        let blobs = self.drive.blobs().await?;
        if self.guard.is_none() {
            self.guard = Some(blobs.lock().await);
        }
        let core = blobs.core();
        let size = blobs.block_size();
        let mut id = BlobId {
            block_offset: core.length() + self.blocks.len() as u64,
            byte_offset: core.byte_length() + self.bytes,
            block_length: 0,
            byte_length: data.len() as u64,
            block_map: false,
        };
        for chunk in data.chunks(size) {
            self.blocks.push(chunk.to_vec());
            id.block_length += 1;
        }
        self.bytes += data.len() as u64;
        self.ops.push((
            key,
            Some(EntryValue::file(id, opts.executable, opts.metadata).encode()),
        ));
        if self.bytes >= BATCH_BLOB_BYTES {
            self.append_blobs()?;
        }
        Ok(())
    }

    /// Appends the gathered content; the write lock is kept until [`release_blobs`](Self::release_blobs).
    fn append_blobs(&mut self) -> Result<()> {
        if self.blocks.is_empty() {
            return Ok(());
        }
        if let Some(blobs) = self.drive.blobs_if_open() {
            let refs: Vec<&[u8]> = self.blocks.iter().map(Vec::as_slice).collect();
            blobs.core().append(&refs).map_err(BlobError::from)?;
        }
        self.blocks.clear();
        self.bytes = 0;
        Ok(())
    }

    fn release_blobs(&mut self) -> Result<()> {
        self.append_blobs()?;
        self.guard = None;
        Ok(())
    }

    /// Writes a file from a stream.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        src: R,
        opts: WriteOptions,
    ) -> Result<()> {
        let key = path::normalize(path)?;
        self.release_blobs()?;
        let blobs = self.drive.blobs().await?;
        let blob = put_reader(self.drive.blob_writer(&blobs, &key).await, src).await?;
        self.ops.push((
            key,
            Some(EntryValue::file(blob, opts.executable, opts.metadata).encode()),
        ));
        Ok(())
    }

    /// A writer for a file of the batch (content streamed into the blobs core in chunks); hand it back to
    /// [`finish_writer`](Self::finish_writer) to add its entry to the batch.
    pub async fn writer(&mut self, path: &str, opts: WriteOptions) -> Result<DriveWriter> {
        self.release_blobs()?;
        self.drive.writer(path, opts).await
    }

    /// Appends the rest of a [`writer`](Self::writer)'s content and adds its entry to the batch.
    pub fn finish_writer(&mut self, writer: DriveWriter) -> Result<()> {
        let DriveWriter {
            key, opts, blob, ..
        } = writer;
        let id = blob.finish()?;
        self.ops.push((
            key,
            Some(EntryValue::file(id, opts.executable, opts.metadata).encode()),
        ));
        Ok(())
    }

    /// Writes an entry as given.
    pub fn put_entry(&mut self, path: &str, value: &EntryValue) -> Result<()> {
        let key = path::normalize(path)?;
        self.ops.push((key, Some(value.encode())));
        Ok(())
    }

    /// A symlink.
    pub fn symlink(&mut self, path: &str, target: &str, metadata: Option<Value>) -> Result<()> {
        self.put_entry(path, &EntryValue::symlink(target, metadata))
    }

    /// Deletes an entry.
    pub fn del(&mut self, path: &str) -> Result<()> {
        let key = path::normalize(path)?;
        self.ops.push((key, None));
        Ok(())
    }

    /// The key and encoded value (`None`: a delete) of the last pending entry write.
    pub fn last_value(&self) -> Option<(&str, Option<&[u8]>)> {
        self.ops.last().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Number of pending entry writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no entry write is pending.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends the pending entries to the db in one append; returns how many blocks were written. (After a
    /// [`flush_behind`](Self::flush_behind), call [`settle`](Self::settle) first: this does not wait for it.)
    pub fn flush(&mut self) -> Result<usize> {
        self.release_blobs()?;
        let ops = std::mem::take(&mut self.ops);
        write_entries(&self.drive, &ops)
    }

    /// Starts a [`flush`](Self::flush) that is written on tokio's blocking pool while the caller goes on
    /// putting: the gathered content is appended to the blobs core, then the entries to the db, as a flush
    /// does (a crash in between leaves content no entry names, never an entry without its content). Puts of
    /// small files wait until that content is appended (it holds the blobs write lock until then); the next
    /// `flush_behind` waits for the whole flush and returns its error, and so does [`settle`](Self::settle).
    pub async fn flush_behind(&mut self) -> Result<()> {
        self.settle().await?;
        if self.ops.is_empty() && self.blocks.is_empty() {
            self.guard = None;
            return Ok(());
        }
        let blocks = std::mem::take(&mut self.blocks);
        self.bytes = 0;
        let guard = self.guard.take();
        let ops = std::mem::take(&mut self.ops);
        let drive = self.drive.clone();
        self.behind = Some(tokio::task::spawn_blocking(move || {
            if !blocks.is_empty() {
                if let Some(blobs) = drive.blobs_if_open() {
                    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                    blobs.core().append(&refs).map_err(BlobError::from)?;
                }
            }
            drop(guard);
            write_entries(&drive, &ops)
        }));
        Ok(())
    }

    /// Waits for the flush [`flush_behind`](Self::flush_behind) started, if any; its error.
    pub async fn settle(&mut self) -> Result<()> {
        let Some(behind) = self.behind.take() else {
            return Ok(());
        };
        match behind.await {
            Ok(res) => res.map(drop),
            Err(e) => Err(DriveError::io(
                "flush task",
                std::io::Error::other(e.to_string()),
            )),
        }
    }
}

/// Appends `ops` (key, encoded value or `None` to delete) to the drive's db in one append.
fn write_entries(drive: &Hyperdrive, ops: &[(String, Option<Vec<u8>>)]) -> Result<usize> {
    let mut b = drive.shared.files.batch()?;
    for (key, value) in ops {
        match value {
            Some(v) => {
                b.put(key.as_bytes(), Some(v))?;
            }
            None => {
                b.del(key.as_bytes())?;
            }
        }
    }
    Ok(b.flush()?)
}

#[cfg(test)]
mod tests;

//! Compatibility with JS `corestore` 7: named hypercores whose key pairs derive from one primary key, in
//! namespaces, with one handle per open core.
//!
//! Key derivation, as corestore 7.12.5 does it (the part peers can observe, since it fixes the cores' keys):
//!
//! - `NS = namespace("corestore", 1)[0]` (hypercore-crypto's namespace, see [`crate::crypto::namespace`]).
//! - The root store's namespace is 32 zero bytes ([`DEFAULT_NAMESPACE`]); `store.namespace(name)` makes a
//!   store whose namespace is `BLAKE2b-256(parent namespace || name)` ([`generate_namespace`]), so namespaces
//!   compose left to right.
//! - The seed of core `name` is `BLAKE2b-256(NS || namespace || name)` keyed with the primary key
//!   ([`derive_seed`]); the key pair is the Ed25519 key pair of that seed ([`create_key_pair`]).
//! - The core is a manifest core (corestore passes `compat: false`): its key is the hash of the version-1
//!   single-signer manifest of that public key, its discovery key the usual `discoveryKey(key)`.
//!
//! On disk, JS corestore 7 keeps everything (the primary key included) in hypercore-storage's RocksDB, whose
//! format is not a wire protocol; this implementation uses its own layout, the one corestore 6 had for the
//! primary key:
//!
//! ```text
//! <dir>/primary-key            the 32-byte primary key, written once, atomically
//! <dir>/cores/<discovery key hex>/   one Hypercore each (see crate::hypercore)
//! ```
//!
//! A directory in corestore 6's layout (what JS `drives` 2.9.1 keeps: `primary-key` beside
//! `cores/<2 hex>/<2 hex>/<discovery key hex>/` holding hypercore 10's `oplog`, `tree`, `bitfield` and
//! `data`) is detected on open and used in place ([`Layout::Corestore6`]): its cores are read and written in
//! hypercore 10's format ([`crate::hypercore::js_storage`]), named cores are compat cores (key = public key) as
//! corestore 6 makes them, and the JS tools keep reading the store. A directory in a layout this crate cannot
//! read (corestore 7's RocksDB, or anything else) is refused with [`CorestoreError::UnknownLayout`], and
//! nothing is written into it.
//!
//! [`Corestore`] keeps every core it opened in a map by discovery key, so a replicator can attach all open
//! cores to a new connection ([`Corestore::cores`]), find the core a remote asks for
//! ([`Corestore::get_by_discovery_key`]) and hear of cores opened later ([`Corestore::subscribe`]), as JS
//! `store.replicate(stream)` does.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::crypto::{self, KeyPair};
use crate::hypercore::messages::Manifest;
use crate::hypercore::{caps, storage, CreateOptions, Hypercore, HypercoreError};

/// The root store's namespace: 32 zero bytes.
pub const DEFAULT_NAMESPACE: [u8; 32] = [0; 32];

const PRIMARY_KEY_FILE: &str = "primary-key";
const CORES_DIR: &str = "cores";

/// Errors of the corestore.
#[derive(Debug, thiserror::Error)]
pub enum CorestoreError {
    /// File system error.
    #[error("corestore storage: {0}")]
    Io(#[from] io::Error),
    /// A core failed to open or to be created.
    #[error(transparent)]
    Hypercore(#[from] HypercoreError),
    /// The stored primary key is not 32 bytes.
    #[error("corrupt primary key file {0}: not 32 bytes (left as it is: the store's drives derive from it)")]
    CorruptPrimaryKey(PathBuf),
    /// The primary key file is missing from a store that holds cores (ours or JS corestore 6's): a new key would
    /// silently make its writable cores read-only.
    #[error(
        "the primary key file {0} is missing but the store holds cores; not writing a new one"
    )]
    MissingPrimaryKey(PathBuf),
    /// The directory holds a store with another primary key than the one given.
    #[error("another corestore is stored in {0}")]
    AnotherCorestore(PathBuf),
    /// The directory holds something this implementation cannot read as a corestore.
    #[error("{dir} is {what}: this version of the tools cannot read it, and left it untouched")]
    UnknownLayout {
        /// The store directory.
        dir: PathBuf,
        /// What it looks like.
        what: String,
    },
    /// Another process (a JS `drives`, or another `drives`) has the store open.
    #[error("the store {0} is in use by another process (JS or Rust drives); close it first")]
    InUse(PathBuf),
    /// The core stored under a discovery key has another key than expected.
    #[error("the core stored for discovery key {0} has another key")]
    KeyMismatch(String),
}

/// Result of corestore operations.
pub type Result<T, E = CorestoreError> = std::result::Result<T, E>;

/// corestore's `NS`: `namespace("corestore", 1)[0]`.
pub fn corestore_ns() -> [u8; 32] {
    crypto::namespace(b"corestore", &[0])[0]
}

/// `generateNamespace(namespace, name)`: the namespace of `store.namespace(name)` for a store in `namespace`.
pub fn generate_namespace(namespace: &[u8; 32], name: &[u8]) -> [u8; 32] {
    crypto::hash(&[namespace, name])
}

/// `deriveSeed(primaryKey, namespace, name)`: BLAKE2b-256 of `NS || namespace || name` keyed with the primary
/// key.
pub fn derive_seed(primary_key: &[u8; 32], namespace: &[u8; 32], name: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A 32-byte output with a 32-byte key is always within BLAKE2b's limits.
    if crypto::blake2b_into(&mut out, primary_key, &[&corestore_ns(), namespace, name]).is_err() {
        unreachable!("32-byte BLAKE2b keyed with 32 bytes");
    }
    out
}

/// `createKeyPair(primaryKey, namespace, name)`: the key pair of core `name` in `namespace`.
pub fn create_key_pair(primary_key: &[u8; 32], namespace: &[u8; 32], name: &[u8]) -> KeyPair {
    KeyPair::from_seed(&derive_seed(primary_key, namespace, name))
}

/// The key of the manifest core corestore makes for `public_key` (version-1 single-signer manifest).
pub fn core_key(public_key: &[u8; 32]) -> [u8; 32] {
    caps::manifest_hash(&Manifest::default_signer(*public_key))
}

/// How a store directory keeps its cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// This implementation's own format: `cores/<discovery key hex>/{meta,log}`.
    Native,
    /// JS corestore 6 / hypercore 10 (JS `drives` 2.9.1): `cores/ab/cd/<discovery key hex>/{oplog,tree,bitfield,data}`.
    Corestore6,
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn rocksdb_marker(dir: &Path) -> Option<String> {
    let entries = fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "CURRENT"
            || name.starts_with("MANIFEST-")
            || name.starts_with("OPTIONS-")
            || name.ends_with(".sst")
        {
            return Some(name);
        }
    }
    None
}

/// What kind of store `dir` holds: None when it is missing or empty (a new store), an error when it holds
/// something this implementation cannot read.
pub fn detect_layout(dir: &Path) -> Result<Option<Layout>> {
    let unknown = |what: String| CorestoreError::UnknownLayout {
        dir: dir.to_path_buf(),
        what,
    };
    let entries: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if entries.is_empty() {
        return Ok(None);
    }
    if entries.iter().any(|e| e == "CORESTORE") {
        return Err(unknown(
            "a JS corestore 7 store (hypercore-storage, RocksDB: a CORESTORE file)".into(),
        ));
    }
    if let Some(m) = rocksdb_marker(dir).or_else(|| rocksdb_marker(&dir.join("db"))) {
        return Err(unknown(format!("a RocksDB database (found {m})")));
    }
    let has_pk = entries.iter().any(|e| e == PRIMARY_KEY_FILE);
    let cores = dir.join(CORES_DIR);
    let core_entries: Option<Vec<String>> = fs::read_dir(&cores).ok().map(|rd| {
        rd.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    });
    match core_entries {
        None if has_pk => Ok(Some(Layout::Corestore6)),
        None => Err(unknown(format!(
            "not a corestore (no {PRIMARY_KEY_FILE} file and no {CORES_DIR} folder)"
        ))),
        Some(list) => {
            if list.iter().any(|n| is_hex(n, 2)) {
                Ok(Some(Layout::Corestore6))
            } else if list.is_empty() || list.iter().any(|n| is_hex(n, 64)) {
                Ok(Some(Layout::Native))
            } else {
                Err(unknown(format!(
                    "a store whose {CORES_DIR} folder holds neither this implementation's cores nor corestore 6's"
                )))
            }
        }
    }
}

/// The lock JS corestore 6 takes on `primary-key` (random-access-file's `lock` through fs-native-extensions: an
/// exclusive open-file-description lock, `fcntl(F_OFD_SETLK)`, over the whole file on Linux), so JS and Rust
/// never use one store at the same time; held until the file is closed.
#[cfg(target_os = "linux")]
fn lock_like_js(file: &fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut data: libc::flock = unsafe { std::mem::zeroed() };
    data.l_type = libc::F_WRLCK as libc::c_short;
    data.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `fcntl` reads the descriptor (kept open by `file`) and the struct, both valid for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &data) };
    if rc == -1 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, e));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lock_like_js(file: &fs::File) -> io::Result<()> {
    crate::hypercore::storage::lock_file(file)
}

struct Root {
    dir: PathBuf,
    layout: Layout,
    /// corestore 6 stores: the lock JS corestore 6 also takes (on `primary-key`), held while open.
    _lock: Option<fs::File>,
    primary_key: [u8; 32],
    cores: Mutex<HashMap<[u8; 32], Hypercore>>,
    opened: broadcast::Sender<Hypercore>,
}

impl Root {
    fn cores(&self) -> MutexGuard<'_, HashMap<[u8; 32], Hypercore>> {
        // The map is only ever inserted into or removed from whole: a poisoned lock is still consistent.
        self.cores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A store of hypercores in one directory (JS `new Corestore(dir)`), seen through one namespace. Cheap to
/// clone; namespaces of one store share its open cores.
#[derive(Clone)]
pub struct Corestore {
    root: Arc<Root>,
    namespace: [u8; 32],
}

impl std::fmt::Debug for Corestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corestore")
            .field("dir", &self.root.dir)
            .field("namespace", &hex::encode(self.namespace))
            .field("open_cores", &self.root.cores().len())
            .finish()
    }
}

impl Corestore {
    /// Opens the store in `dir` (created if missing), generating and persisting a random primary key on first
    /// use.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_inner(dir.as_ref(), None)
    }

    /// Opens the store in `dir` with a given primary key (JS `{ primaryKey, unsafe: true }`): persisted when the
    /// directory is new, else it must equal the stored one ([`CorestoreError::AnotherCorestore`]).
    pub fn open_with_primary_key(dir: impl AsRef<Path>, primary_key: [u8; 32]) -> Result<Self> {
        Self::open_inner(dir.as_ref(), Some(primary_key))
    }

    fn open_inner(dir: &Path, wanted: Option<[u8; 32]>) -> Result<Self> {
        let layout = detect_layout(dir)?;
        if layout == Some(Layout::Corestore6) {
            return Self::open_corestore6(dir, wanted);
        }
        fs::create_dir_all(dir.join(CORES_DIR))?;
        let path = dir.join(PRIMARY_KEY_FILE);
        let primary_key = match fs::read(&path) {
            Ok(bytes) => {
                let stored: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| CorestoreError::CorruptPrimaryKey(path.clone()))?;
                if wanted.is_some_and(|w| w != stored) {
                    return Err(CorestoreError::AnotherCorestore(dir.to_path_buf()));
                }
                stored
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if wanted.is_none() && fs::read_dir(dir.join(CORES_DIR))?.next().is_some() {
                    return Err(CorestoreError::MissingPrimaryKey(path));
                }
                let key = wanted.unwrap_or_else(|| {
                    let mut k = [0u8; 32];
                    k.copy_from_slice(&crypto::random_bytes(32));
                    k
                });
                storage::write_atomic(&path, &key)?;
                key
            }
            Err(e) => return Err(e.into()),
        };
        let (opened, _) = broadcast::channel(64);
        Ok(Self {
            root: Arc::new(Root {
                dir: dir.to_path_buf(),
                layout: Layout::Native,
                _lock: None,
                primary_key,
                cores: Mutex::new(HashMap::new()),
                opened,
            }),
            namespace: DEFAULT_NAMESPACE,
        })
    }

    /// Opens a JS corestore 6 store in place: its primary key must be there (never replaced), and it is locked
    /// while open, as JS locks it.
    fn open_corestore6(dir: &Path, wanted: Option<[u8; 32]>) -> Result<Self> {
        let path = dir.join(PRIMARY_KEY_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CorestoreError::MissingPrimaryKey(path))
            }
            Err(e) => return Err(e.into()),
        };
        let primary_key: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| CorestoreError::CorruptPrimaryKey(path.clone()))?;
        if wanted.is_some_and(|w| w != primary_key) {
            return Err(CorestoreError::AnotherCorestore(dir.to_path_buf()));
        }
        let lock = fs::OpenOptions::new().read(true).write(true).open(&path)?;
        lock_like_js(&lock).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                CorestoreError::InUse(dir.to_path_buf())
            } else {
                e.into()
            }
        })?;
        let (opened, _) = broadcast::channel(64);
        Ok(Self {
            root: Arc::new(Root {
                dir: dir.to_path_buf(),
                layout: Layout::Corestore6,
                _lock: Some(lock),
                primary_key,
                cores: Mutex::new(HashMap::new()),
                opened,
            }),
            namespace: DEFAULT_NAMESPACE,
        })
    }

    /// How this store keeps its cores.
    pub fn layout(&self) -> Layout {
        self.root.layout
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.root.dir
    }

    /// The primary key every named core derives from.
    pub fn primary_key(&self) -> &[u8; 32] {
        &self.root.primary_key
    }

    /// This view's namespace (JS `store.ns`).
    pub fn namespace_key(&self) -> &[u8; 32] {
        &self.namespace
    }

    /// A view of the same store in the sub-namespace `name` (JS `store.namespace(name)`).
    pub fn namespace(&self, name: impl AsRef<[u8]>) -> Self {
        Self {
            root: self.root.clone(),
            namespace: generate_namespace(&self.namespace, name.as_ref()),
        }
    }

    /// The key pair of core `name` in this namespace (JS `store.createKeyPair(name)`).
    pub fn create_key_pair(&self, name: impl AsRef<[u8]>) -> KeyPair {
        create_key_pair(&self.root.primary_key, &self.namespace, name.as_ref())
    }

    fn core_dir(&self, discovery_key: &[u8; 32]) -> PathBuf {
        let id = hex::encode(discovery_key);
        match self.root.layout {
            Layout::Native => self.root.dir.join(CORES_DIR).join(id),
            Layout::Corestore6 => self
                .root
                .dir
                .join(CORES_DIR)
                .join(&id[..2])
                .join(&id[2..4])
                .join(&id),
        }
    }

    fn stored(&self, dir: &Path) -> bool {
        match self.root.layout {
            Layout::Native => dir.join("meta").exists(),
            Layout::Corestore6 => crate::hypercore::js_storage::JsCore::exists(dir),
        }
    }

    fn open_stored(&self, dir: &Path) -> Result<Hypercore, HypercoreError> {
        match self.root.layout {
            Layout::Native => Hypercore::open(dir),
            Layout::Corestore6 => Hypercore::open_js(dir, Some(&self.root.primary_key)),
        }
    }

    fn open_or_create(
        &self,
        key: [u8; 32],
        create: impl FnOnce(&Path) -> Result<Hypercore, HypercoreError>,
    ) -> Result<Hypercore> {
        self.open_or_create_with(key, create, |_| {})
    }

    /// [`Self::open_or_create`], `init` run on the core before any other caller of the store can get it (with
    /// the map held), and on an open one too.
    fn open_or_create_with(
        &self,
        key: [u8; 32],
        create: impl FnOnce(&Path) -> Result<Hypercore, HypercoreError>,
        init: impl FnOnce(&Hypercore),
    ) -> Result<Hypercore> {
        let dk = crypto::discovery_key(&key);
        // Hold the map while opening so two callers never open the same core twice (a core's log is locked
        // exclusively while open).
        let mut cores = self.root.cores();
        if let Some(core) = cores.get(&dk) {
            init(core);
            return Ok(core.clone());
        }
        let dir = self.core_dir(&dk);
        let core = if self.stored(&dir) {
            self.open_stored(&dir)?
        } else {
            create(&dir)?
        };
        if core.key() != key {
            return Err(CorestoreError::KeyMismatch(hex::encode(dk)));
        }
        init(&core);
        cores.insert(dk, core.clone());
        drop(cores);
        let _ = self.root.opened.send(core.clone());
        Ok(core)
    }

    /// The writable core `name` of this namespace (JS `store.get({ name })`), created if missing.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Result<Hypercore> {
        if self.root.layout == Layout::Corestore6 {
            // corestore 6 makes compat cores (key = public key) and notes the name for reopening by key.
            let key_pair = self.create_key_pair(name.as_ref());
            let key = key_pair.public;
            let user_data = vec![
                ("corestore/name".to_string(), name.as_ref().to_vec()),
                ("corestore/namespace".to_string(), self.namespace.to_vec()),
            ];
            let pk = self.root.primary_key;
            return self.open_or_create(key, |dir| {
                Hypercore::create_js(
                    dir,
                    key,
                    Some(&Manifest::default_signer(key)),
                    Some(&key_pair),
                    user_data,
                    Some(&pk),
                )
            });
        }
        let key_pair = self.create_key_pair(name);
        let key = core_key(&key_pair.public);
        self.open_or_create(key, |dir| {
            Hypercore::create_with(dir, key_pair, CreateOptions { compat: false })
        })
    }

    /// The core with `key` (JS `store.get({ key })`): opened when stored, else created empty as a reader (a
    /// manifest core needs its `manifest`; `None` makes a compat core, whose key is the writer's public key).
    pub fn get_by_key(&self, key: [u8; 32], manifest: Option<Manifest>) -> Result<Hypercore> {
        if self.root.layout == Layout::Corestore6 {
            let pk = self.root.primary_key;
            return self.open_or_create(key, |dir| {
                Hypercore::create_js(dir, key, manifest.as_ref(), None, Vec::new(), Some(&pk))
            });
        }
        self.open_or_create(key, |dir| Hypercore::create_reader(dir, key, manifest))
    }

    /// The core of `manifest` (key = the manifest's hash), created if missing: writable with `key_pair` (one of
    /// the manifest's signers), else as a reader. JS `store.get({ manifest, keyPair })`.
    pub fn get_with_manifest(
        &self,
        manifest: Manifest,
        key_pair: Option<KeyPair>,
    ) -> Result<Hypercore> {
        self.get_with_manifest_init(manifest, key_pair, |_| {})
    }

    /// [`Self::get_with_manifest`], `init` run on the core before anything else can reach it through the store
    /// (a replicator answering a peer's open of it, say): what must hold before a peer is heard, such as
    /// autobase's [`Hypercore::set_unsigned_writes`] (a core that took a peer's signed head before it was
    /// set would hold a length without its blocks).
    pub fn get_with_manifest_init(
        &self,
        manifest: Manifest,
        key_pair: Option<KeyPair>,
        init: impl FnOnce(&Hypercore),
    ) -> Result<Hypercore> {
        let key = caps::manifest_hash(&manifest);
        if self.root.layout == Layout::Corestore6 {
            let pk = self.root.primary_key;
            return self.open_or_create_with(
                key,
                |dir| {
                    Hypercore::create_js(
                        dir,
                        key,
                        Some(&manifest),
                        key_pair.as_ref(),
                        Vec::new(),
                        Some(&pk),
                    )
                },
                init,
            );
        }
        self.open_or_create_with(
            key,
            |dir| match key_pair {
                Some(kp) => Hypercore::create_with_manifest(dir, kp, manifest),
                None => Hypercore::create_reader(dir, key, Some(manifest)),
            },
            init,
        )
    }

    /// The open or stored core with this discovery key, `None` when the store has none (what a replicator
    /// asks when a remote opens a channel for a core: JS `ondiscoverykey`).
    pub fn get_by_discovery_key(&self, discovery_key: &[u8; 32]) -> Result<Option<Hypercore>> {
        self.get_by_discovery_key_init(discovery_key, |_| {})
    }

    /// [`Self::get_by_discovery_key`], `init` run on the core first (see [`Self::get_with_manifest_init`]).
    pub fn get_by_discovery_key_init(
        &self,
        discovery_key: &[u8; 32],
        init: impl FnOnce(&Hypercore),
    ) -> Result<Option<Hypercore>> {
        let mut cores = self.root.cores();
        if let Some(core) = cores.get(discovery_key) {
            init(core);
            return Ok(Some(core.clone()));
        }
        let dir = self.core_dir(discovery_key);
        if !self.stored(&dir) {
            return Ok(None);
        }
        let core = self.open_stored(&dir)?;
        if core.discovery_key() != *discovery_key {
            return Err(CorestoreError::KeyMismatch(hex::encode(discovery_key)));
        }
        init(&core);
        cores.insert(*discovery_key, core.clone());
        drop(cores);
        let _ = self.root.opened.send(core.clone());
        Ok(Some(core))
    }

    /// Every open core of the store (all namespaces).
    pub fn cores(&self) -> Vec<Hypercore> {
        self.root.cores().values().cloned().collect()
    }

    /// The open core with this discovery key, without touching the disk.
    pub fn get_open(&self, discovery_key: &[u8; 32]) -> Option<Hypercore> {
        self.root.cores().get(discovery_key).cloned()
    }

    /// Cores opened from now on, in every namespace (JS `store.watch(fn)`). A receiver that lags loses the
    /// oldest (see [`broadcast`]); [`Self::cores`] lists them all.
    pub fn subscribe(&self) -> broadcast::Receiver<Hypercore> {
        self.root.opened.subscribe()
    }

    /// The discovery keys of every core stored in the directory (JS `store.list()`), open or not.
    pub fn list(&self) -> Result<Vec<[u8; 32]>> {
        if self.root.layout == Layout::Corestore6 {
            return self.list_corestore6();
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.dir.join(CORES_DIR))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(dk) = name
                .to_str()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            if entry.path().join("meta").exists() {
                out.push(dk);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn list_corestore6(&self) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        let subdirs = |p: &Path| -> Vec<(String, PathBuf)> {
            fs::read_dir(p)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (a, pa) in subdirs(&self.root.dir.join(CORES_DIR)) {
            if !is_hex(&a, 2) {
                continue;
            }
            for (b, pb) in subdirs(&pa) {
                if !is_hex(&b, 2) {
                    continue;
                }
                for (id, pc) in subdirs(&pb) {
                    let Some(dk) = hex::decode(&id)
                        .ok()
                        .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    else {
                        continue;
                    };
                    if crate::hypercore::js_storage::JsCore::exists(&pc) {
                        out.push(dk);
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Gets the store ready for the machine to sleep or the process to be frozen (`store.suspend()`): every
    /// open core's writes so far are put on disk, so none is lost if it never wakes up. The store stays
    /// usable; [`Self::resume`] undoes nothing more.
    pub fn suspend(&self) -> Result<()> {
        for core in self.cores() {
            core.flush()?;
        }
        Ok(())
    }

    /// The other half of [`Self::suspend`] (`store.resume()`): the store's files stay open across a
    /// suspend, so there is nothing to reopen.
    pub fn resume(&self) -> Result<()> {
        Ok(())
    }

    /// Forgets the store's handle on a core (the core closes once every other clone is dropped).
    pub fn close_core(&self, discovery_key: &[u8; 32]) -> Option<Hypercore> {
        self.root.cores().remove(discovery_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "corestore-unit-{}-{name}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn primary_key_persists_and_guards_the_directory() -> Result<()> {
        let dir = tmp("pk");
        let a = Corestore::open(&dir)?;
        let pk = *a.primary_key();
        drop(a);
        let b = Corestore::open(&dir)?;
        assert_eq!(*b.primary_key(), pk);
        assert!(matches!(
            Corestore::open_with_primary_key(&dir, [9; 32]),
            Err(CorestoreError::AnotherCorestore(_))
        ));
        assert_eq!(
            *Corestore::open_with_primary_key(&dir, pk)?.primary_key(),
            pk
        );
        fs::write(dir.join(PRIMARY_KEY_FILE), [1u8; 5])?;
        assert!(matches!(
            Corestore::open(&dir),
            Err(CorestoreError::CorruptPrimaryKey(_))
        ));
        assert_eq!(
            fs::read(dir.join(PRIMARY_KEY_FILE))?,
            [1u8; 5],
            "left as it was"
        );
        // Missing, in a store with cores: refused, nothing written.
        fs::remove_file(dir.join(PRIMARY_KEY_FILE))?;
        fs::create_dir_all(dir.join(CORES_DIR).join("ab"))?;
        assert!(matches!(
            Corestore::open(&dir),
            Err(CorestoreError::MissingPrimaryKey(_))
        ));
        assert!(!dir.join(PRIMARY_KEY_FILE).exists());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            }
            out.push(p);
        }
        out.sort();
        out
    }

    #[test]
    fn unknown_layouts_are_refused_and_left_untouched() {
        // corestore 7 (hypercore-storage's RocksDB), a bare RocksDB, something else entirely.
        let layouts: [&[(&str, &[u8])]; 3] = [
            &[("CORESTORE", b""), ("db/CURRENT", b"MANIFEST-000004\n")],
            &[("000007.sst", b"x"), ("MANIFEST-000004", b"x")],
            &[("notes.txt", b"not a store")],
        ];
        for files_in in layouts {
            let dir = tmp("unknown");
            for (name, bytes) in files_in {
                let p = dir.join(name);
                fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                fs::write(&p, bytes).expect("write");
            }
            let before = files(&dir);
            let err = Corestore::open(&dir).expect_err("must refuse");
            assert!(matches!(err, CorestoreError::UnknownLayout { .. }), "{err}");
            assert!(
                err.to_string().contains(&dir.display().to_string()),
                "{err}"
            );
            assert_eq!(files(&dir), before, "nothing written");
            let _ = fs::remove_dir_all(&dir);
        }
        let dir = tmp("c7");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("CORESTORE"), b"").expect("write");
        let msg = Corestore::open(&dir).expect_err("refuse").to_string();
        assert!(msg.contains("corestore 7"), "{msg}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corestore6_stores_open_in_place_with_compat_named_cores() -> Result<()> {
        let dir = tmp("c6");
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(PRIMARY_KEY_FILE), [5u8; 32])?;
        assert_eq!(detect_layout(&dir)?, Some(Layout::Corestore6));
        let store = Corestore::open(&dir)?;
        assert_eq!(store.layout(), Layout::Corestore6);
        let ns = store.namespace("drive");
        let core = ns.get("db")?;
        // corestore 6: a compat core, key = the derived public key, under cores/ab/cd/<dkey>/.
        assert_eq!(core.key(), ns.create_key_pair("db").public);
        assert!(core.is_js_format());
        core.append(&[b"a", b"bc"])?;
        let id = hex::encode(core.discovery_key());
        let core_dir = dir.join(CORES_DIR).join(&id[..2]).join(&id[2..4]).join(&id);
        assert_eq!(core.dir(), core_dir);
        for f in ["oplog", "tree", "bitfield", "data"] {
            assert!(core_dir.join(f).exists(), "{f}");
        }
        assert_eq!(fs::read(core_dir.join("data"))?, b"abc");
        let (key, dk) = (core.key(), core.discovery_key());
        drop((core, ns));
        // A second open while the first holds the store's lock is refused.
        assert!(matches!(
            Corestore::open(&dir),
            Err(CorestoreError::InUse(_))
        ));
        drop(store);
        // Reopened by key from the root store: writable again (key pair from the name in its user data).
        let store = Corestore::open(&dir)?;
        assert_eq!(store.list()?, vec![dk]);
        let core = store.get_by_key(key, None)?;
        assert!(core.writable());
        assert_eq!(core.length(), 2);
        assert_eq!(core.get(1)?.as_deref(), Some(&b"bc"[..]));
        core.append(&[b"d"])?;
        drop(core);
        drop(store);
        let store = Corestore::open(&dir)?;
        let core = store.get_by_discovery_key(&dk)?.expect("stored");
        assert_eq!(core.length(), 3);
        assert_eq!(core.get(2)?.as_deref(), Some(&b"d"[..]));
        assert_eq!(
            fs::read(dir.join(PRIMARY_KEY_FILE))?,
            [5u8; 32],
            "primary key kept"
        );
        drop((core, store));
        // A short primary key is an error, never replaced (JS would write a new one).
        fs::write(dir.join(PRIMARY_KEY_FILE), [5u8; 8])?;
        assert!(matches!(
            Corestore::open(&dir),
            Err(CorestoreError::CorruptPrimaryKey(_))
        ));
        assert_eq!(fs::read(dir.join(PRIMARY_KEY_FILE))?, [5u8; 8]);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn concurrent_gets_share_one_handle() -> Result<()> {
        let dir = tmp("race");
        let store = Corestore::open(&dir)?;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || s.get("same").map(|c| c.key()))
            })
            .collect();
        let mut keys = Vec::new();
        for h in handles {
            match h.join() {
                Ok(k) => keys.push(k?),
                Err(_) => panic!("thread panicked"),
            }
        }
        keys.dedup();
        assert_eq!(
            keys.len(),
            1,
            "one core, opened once (its log lock would refuse a second open)"
        );
        assert_eq!(store.cores().len(), 1);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn named_cores_are_shared_reopened_and_listed() -> Result<()> {
        let dir = tmp("named");
        let store = Corestore::open_with_primary_key(&dir, [7; 32])?;
        let mut watch = store.subscribe();
        let a = store.get("a")?;
        assert!(a.writable());
        a.append(&[b"one", b"two"])?;
        // The same name gives the same core (one handle), another namespace another core.
        let again = store.get("a")?;
        assert_eq!(again.length(), 2);
        let other = store.namespace("ns").get("a")?;
        assert_ne!(other.key(), a.key());
        assert_eq!(store.cores().len(), 2);
        assert_eq!(
            watch.try_recv().map(|c| c.key()).ok(),
            Some(a.key()),
            "subscribers hear of opened cores"
        );
        let dk = a.discovery_key();
        assert_eq!(store.get_open(&dk).map(|c| c.key()), Some(a.key()));
        drop((a, again, other));
        drop(store);

        let store = Corestore::open(&dir)?;
        assert!(store.cores().is_empty());
        let mut listed = store.list()?;
        listed.sort_unstable();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&dk));
        let found = store.get_by_discovery_key(&dk)?;
        assert_eq!(found.as_ref().map(Hypercore::length), Some(2));
        assert!(store.get_by_discovery_key(&[0; 32])?.is_none());
        // A reader core by key.
        let remote = KeyPair::from_seed(&[3; 32]);
        let key = core_key(&remote.public);
        let reader = store.get_by_key(key, Some(Manifest::default_signer(remote.public)))?;
        assert!(!reader.writable());
        assert_eq!(reader.key(), key);
        assert!(store.close_core(&reader.discovery_key()).is_some());
        drop(reader);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn suspend_flushes_and_the_store_stays_usable() -> Result<()> {
        let dir = tmp("suspend");
        let store = Corestore::open_with_primary_key(&dir, [9; 32])?;
        let a = store.get("a")?;
        a.set_durability(crate::hypercore::storage::Durability::Process);
        a.append(&[b"before"])?;
        store.suspend()?;
        store.resume()?;
        a.append(&[b"after"])?;
        let dk = a.discovery_key();
        drop(a);
        drop(store);
        let store = Corestore::open(&dir)?;
        let a = store.get_by_discovery_key(&dk)?.expect("stored");
        assert_eq!(a.get(0)?.as_deref(), Some(&b"before"[..]));
        assert_eq!(a.get(1)?.as_deref(), Some(&b"after"[..]));
        drop(a);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

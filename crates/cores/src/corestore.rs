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
    /// The primary key file is missing from a store that holds cores: a new key would silently make its
    /// writable cores read-only.
    #[error(
        "the primary key file {0} is missing but the store holds cores; not writing a new one"
    )]
    MissingPrimaryKey(PathBuf),
    /// The directory holds a store with another primary key than the one given.
    #[error("another corestore is stored in {0}")]
    AnotherCorestore(PathBuf),
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

struct Root {
    dir: PathBuf,
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
                primary_key,
                cores: Mutex::new(HashMap::new()),
                opened,
            }),
            namespace: DEFAULT_NAMESPACE,
        })
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
        self.root
            .dir
            .join(CORES_DIR)
            .join(hex::encode(discovery_key))
    }

    fn open_or_create(
        &self,
        key: [u8; 32],
        create: impl FnOnce(&Path) -> Result<Hypercore, HypercoreError>,
    ) -> Result<Hypercore> {
        let dk = crypto::discovery_key(&key);
        // Hold the map while opening so two callers never open the same core twice (a core's log is locked
        // exclusively while open).
        let mut cores = self.root.cores();
        if let Some(core) = cores.get(&dk) {
            return Ok(core.clone());
        }
        let dir = self.core_dir(&dk);
        let core = if dir.join("meta").exists() {
            Hypercore::open(&dir)?
        } else {
            create(&dir)?
        };
        if core.key() != key {
            return Err(CorestoreError::KeyMismatch(hex::encode(dk)));
        }
        cores.insert(dk, core.clone());
        drop(cores);
        let _ = self.root.opened.send(core.clone());
        Ok(core)
    }

    /// The writable core `name` of this namespace (JS `store.get({ name })`), created if missing.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Result<Hypercore> {
        let key_pair = self.create_key_pair(name);
        let key = core_key(&key_pair.public);
        self.open_or_create(key, |dir| {
            Hypercore::create_with(dir, key_pair, CreateOptions { compat: false })
        })
    }

    /// The core with `key` (JS `store.get({ key })`): opened when stored, else created empty as a reader (a
    /// manifest core needs its `manifest`; `None` makes a compat core, whose key is the writer's public key).
    pub fn get_by_key(&self, key: [u8; 32], manifest: Option<Manifest>) -> Result<Hypercore> {
        self.open_or_create(key, |dir| Hypercore::create_reader(dir, key, manifest))
    }

    /// The core of `manifest` (key = the manifest's hash), created if missing: writable with `key_pair` (one of
    /// the manifest's signers), else as a reader. JS `store.get({ manifest, keyPair })`.
    pub fn get_with_manifest(
        &self,
        manifest: Manifest,
        key_pair: Option<KeyPair>,
    ) -> Result<Hypercore> {
        let key = caps::manifest_hash(&manifest);
        self.open_or_create(key, |dir| match key_pair {
            Some(kp) => Hypercore::create_with_manifest(dir, kp, manifest),
            None => Hypercore::create_reader(dir, key, Some(manifest)),
        })
    }

    /// The open or stored core with this discovery key, `None` when the store has none (what a replicator
    /// asks when a remote opens a channel for a core: JS `ondiscoverykey`).
    pub fn get_by_discovery_key(&self, discovery_key: &[u8; 32]) -> Result<Option<Hypercore>> {
        let mut cores = self.root.cores();
        if let Some(core) = cores.get(discovery_key) {
            return Ok(Some(core.clone()));
        }
        let dir = self.core_dir(discovery_key);
        if !dir.join("meta").exists() {
            return Ok(None);
        }
        let core = Hypercore::open(&dir)?;
        if core.discovery_key() != *discovery_key {
            return Err(CorestoreError::KeyMismatch(hex::encode(discovery_key)));
        }
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
}

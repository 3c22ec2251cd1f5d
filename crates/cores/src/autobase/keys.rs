//! How autobase 7 names its cores (`lib/store.js`, `lib/system.js`, `lib/caps.js`): the system core and every
//! view core are manifest cores whose keys follow from the bootstrap key, the view's name and the indexers, so
//! every peer derives the same keys without asking anyone.
//!
//! - Before the base has indexers (a fresh base), a view core (the system core is the view `_system`) has no
//!   signers: manifest `{ version: 1, allowPatch: true, quorum: 0, signers: [], prologue: { hash:
//!   hash(bootstrap || name), length: 0 } }` ([`bootstrap_manifest`]).
//! - With indexers, each indexer contributes a signer with its own public key (its writer core's first signer)
//!   in the namespace `hash(NS_SIGNER_NAMESPACE || uint(1) || bootstrap || hash(encryptionKey or empty) ||
//!   entropy || name)` ([`view_namespace`]); quorum is a majority (`min(n, n/2 + 1)`), `allowPatch` true, and
//!   the prologue is the tree hash and length the view had when the indexer set changed (none when empty).
//!   `entropy` is the system's (version 2), else the first indexer's first signer namespace.
//! - Version 2 systems refresh their entropy when the indexers change: `hash(NS_ENTROPY || uint64(length) ||
//!   previous entropy (or GENESIS_ENTROPY) || indexer keys)` ([`generate_entropy`]).
//!
//! The key of a manifest core is `hypercore::caps::manifest_hash`.

use crate::crypto::{hash, namespace};
use crate::hypercore::caps::manifest_hash;
use crate::hypercore::messages::{Manifest, Prologue, Signer};

/// The manifest version autobase creates view cores with (`DEFAULT_MANIFEST_VERSION`).
pub const DEFAULT_MANIFEST_VERSION: u64 = 1;
/// The index version mixed into namespaces (`INDEX_VERSION`).
pub const INDEX_VERSION: u64 = 1;

fn autobase_ns(i: u8) -> [u8; 32] {
    namespace(b"autobase", &[i])[0]
}

/// `NS_SIGNER_NAMESPACE`: `crypto.namespace('autobase', 4)[0]`.
pub fn ns_signer_namespace() -> [u8; 32] {
    autobase_ns(0)
}

/// `NS_VIEW_BLOCK_KEY`: `crypto.namespace('autobase', 4)[1]`.
pub fn ns_view_block_key() -> [u8; 32] {
    autobase_ns(1)
}

/// `NS_HASH_KEY`: `crypto.namespace('autobase', 4)[2]`.
pub fn ns_hash_key() -> [u8; 32] {
    autobase_ns(2)
}

/// `NS_ENCRYPTION`: `crypto.namespace('autobase', 4)[3]`.
pub fn ns_encryption() -> [u8; 32] {
    autobase_ns(3)
}

/// `GENESIS_ENTROPY` and `NS_ENTROPY`: `crypto.namespace('autobase/entropy', 2)`.
pub fn entropy_namespaces() -> ([u8; 32], [u8; 32]) {
    let ns = namespace(b"autobase/entropy", &[0, 1]);
    (ns[0], ns[1])
}

/// `_deriveStaticHash(name)`: the prologue hash of a view core before the base has indexers.
pub fn static_hash(bootstrap: &[u8; 32], name: &str) -> [u8; 32] {
    hash(&[bootstrap, name.as_bytes()])
}

/// `_deriveNamespace(name, entropy)`: the signing namespace of the indexers on view `name`.
pub fn view_namespace(
    bootstrap: &[u8; 32],
    encryption_key: Option<&[u8]>,
    entropy: &[u8; 32],
    name: &str,
) -> [u8; 32] {
    let encryption_id = hash(&[encryption_key.unwrap_or_default()]);
    // c.encode(c.uint, INDEX_VERSION): one byte
    let version = [INDEX_VERSION as u8];
    hash(&[
        &ns_signer_namespace(),
        &version,
        bootstrap,
        &encryption_id,
        entropy,
        name.as_bytes(),
    ])
}

/// An indexer as view manifests use it: its writer core's first signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexerSigner {
    /// The signer's public key.
    pub public_key: [u8; 32],
    /// The signer's namespace in the writer core's manifest (the entropy stand-in of version 1 systems).
    pub namespace: [u8; 32],
}

impl IndexerSigner {
    /// The first signer of an indexer's writer-core manifest (`None` for a manifest without signers).
    pub fn from_manifest(m: &Manifest) -> Option<Self> {
        let s = m.signers.first()?;
        Some(Self {
            public_key: s.public_key,
            namespace: s.namespace,
        })
    }
}

/// What [`view_manifest`] needs besides the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewKeyInputs<'a> {
    /// The base's bootstrap key.
    pub bootstrap: [u8; 32],
    /// The base's encryption key, when encrypted.
    pub encryption_key: Option<&'a [u8]>,
    /// The indexers, in the system's order.
    pub indexers: &'a [IndexerSigner],
    /// The system's entropy (version 2); `None` uses the first indexer's namespace.
    pub entropy: Option<[u8; 32]>,
    /// The manifest version (the system core's; [`DEFAULT_MANIFEST_VERSION`] for new cores).
    pub manifest_version: u64,
}

/// `_createManifest`: the manifest of view `name` (`prologue`: the tree hash and length carried over when the
/// indexers changed; ignored before there are indexers, dropped when its length is 0).
pub fn view_manifest(
    inputs: &ViewKeyInputs<'_>,
    name: &str,
    prologue: Option<Prologue>,
    linked: Option<Vec<[u8; 32]>>,
    user_data: Option<Vec<u8>>,
) -> Manifest {
    if inputs.indexers.is_empty() {
        return Manifest {
            version: inputs.manifest_version,
            allow_patch: true,
            quorum: 0,
            signers: Vec::new(),
            prologue: Some(Prologue {
                hash: static_hash(&inputs.bootstrap, name),
                length: 0,
            }),
            linked: (inputs.manifest_version > 1).then(|| linked.unwrap_or_default()),
            user_data,
        };
    }
    let entropy = inputs.entropy.unwrap_or(inputs.indexers[0].namespace);
    let ns = view_namespace(&inputs.bootstrap, inputs.encryption_key, &entropy, name);
    let signers: Vec<Signer> = inputs
        .indexers
        .iter()
        .map(|i| Signer {
            namespace: ns,
            public_key: i.public_key,
        })
        .collect();
    let n = signers.len() as u64;
    Manifest {
        version: inputs.manifest_version,
        allow_patch: true,
        quorum: n.min(n / 2 + 1),
        signers,
        prologue: prologue.filter(|p| p.length > 0),
        linked: (inputs.manifest_version > 1).then(|| linked.unwrap_or_default()),
        user_data,
    }
}

/// The key of view `name` (see [`view_manifest`]).
pub fn view_key(inputs: &ViewKeyInputs<'_>, name: &str, prologue: Option<Prologue>) -> [u8; 32] {
    manifest_hash(&view_manifest(inputs, name, prologue, None, None))
}

/// `getBootstrapSystemKey()`: the system core's key before the base has indexers.
pub fn bootstrap_system_key(bootstrap: &[u8; 32]) -> [u8; 32] {
    manifest_hash(&bootstrap_manifest(bootstrap, "_system"))
}

/// The manifest of view `name` before the base has indexers (manifest version 1).
pub fn bootstrap_manifest(bootstrap: &[u8; 32], name: &str) -> Manifest {
    view_manifest(
        &ViewKeyInputs {
            bootstrap: *bootstrap,
            encryption_key: None,
            indexers: &[],
            entropy: None,
            manifest_version: DEFAULT_MANIFEST_VERSION,
        },
        name,
        None,
        None,
        None,
    )
}

/// `generateEntropy(indexers, length, entropy)`: a version 2 system's new entropy when its indexers change.
pub fn generate_entropy(
    indexer_keys: &[[u8; 32]],
    length: u64,
    previous: Option<&[u8; 32]>,
) -> [u8; 32] {
    let (genesis, ns_entropy) = entropy_namespaces();
    let mut buf = Vec::with_capacity(40 + 32 * indexer_keys.len());
    buf.extend_from_slice(&length.to_le_bytes());
    buf.extend_from_slice(previous.unwrap_or(&genesis));
    for k in indexer_keys {
        buf.extend_from_slice(k);
    }
    hash(&[&ns_entropy, &buf])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_distinct_and_stable() {
        let all = [
            ns_signer_namespace(),
            ns_view_block_key(),
            ns_hash_key(),
            ns_encryption(),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(all[0], namespace(b"autobase", &[0, 1, 2, 3])[0]);
    }

    #[test]
    fn quorum_is_a_majority() {
        let signers: Vec<_> = (0..5)
            .map(|i| IndexerSigner {
                public_key: [i; 32],
                namespace: [9; 32],
            })
            .collect();
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
            let inputs = ViewKeyInputs {
                bootstrap: [1; 32],
                encryption_key: None,
                indexers: &signers[..n],
                entropy: None,
                manifest_version: 1,
            };
            let m = view_manifest(&inputs, "view", None, None, None);
            assert_eq!(m.quorum, q);
            assert_eq!(m.signers.len(), n);
            assert!(m.allow_patch);
            assert_eq!(m.prologue, None);
        }
    }

    #[test]
    fn names_and_entropy_change_keys() {
        let b = [3; 32];
        assert_ne!(
            bootstrap_system_key(&b),
            manifest_hash(&bootstrap_manifest(&b, "view"))
        );
        assert_ne!(bootstrap_system_key(&b), bootstrap_system_key(&[4; 32]));
        let e1 = generate_entropy(&[[1; 32]], 5, None);
        assert_ne!(e1, generate_entropy(&[[1; 32]], 6, None));
        assert_ne!(e1, generate_entropy(&[[1; 32]], 5, Some(&e1)));
        assert_ne!(
            view_namespace(&b, None, &e1, "a"),
            view_namespace(&b, Some(b"k"), &e1, "a")
        );
    }
}

//! JS autobase 7.28.1 builds a base (`js/autobase_fixture.js`: two indexer writers and a non-indexer that
//! writes once and is removed, a hyperbee view, puts, a deletion, acks until the views are signed) and prints
//! every block of every core. The Rust decoders must read every writer block, boot record and system-view value
//! and re-encode each to the same bytes; the Rust key derivations must give the keys JS gave its cores; a Rust
//! writer replaying the JS writers' keys and signatures must write the same digest and checkpoint pointers; and
//! the indexers' checkpoints must verify as signatures of the system and view cores.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use holepunch::autobase::checkpoints::{
    inflate_checkpoint, inflate_digest, LocalCheckpoints, Slot,
};
use holepunch::autobase::keys::{
    bootstrap_system_key, entropy_namespaces, generate_entropy, ns_encryption, ns_hash_key,
    ns_signer_namespace, ns_view_block_key, static_hash, view_manifest, view_namespace,
    IndexerSigner, ViewKeyInputs,
};
use holepunch::autobase::messages::{
    BootRecord, Checkout, Checkpointer, Info, Member, OplogMessage, SystemKey, BOOT_RECORD_VERSION,
};
use holepunch::autobase::system::SystemView;
use holepunch::compact_encoding::{Decode, Encode};
use holepunch::crypto::verify;
use holepunch::crypto::KeyPair;
use holepunch::hyperbee::messages::{Header, Node as BeeNode};
use holepunch::hyperbee::Hyperbee;
use holepunch::hypercore::caps::{manifest_hash, tree_signable};
use holepunch::hypercore::messages::{Manifest, Prologue, Signer};
use holepunch::hypercore::tree::{Batch, TreeState};
use holepunch::hypercore::Hypercore;
use serde_json::Value;

/// The writer cores the fixture dumps: two indexers, and a non-indexer that wrote once and was removed.
const WRITERS: [&str; 3] = ["writer-a", "writer-b", "writer-c"];

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("hex string"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn manifest(v: &Value) -> Manifest {
    Manifest {
        version: v["version"].as_u64().unwrap(),
        allow_patch: v["allowPatch"].as_bool().unwrap(),
        quorum: v["quorum"].as_u64().unwrap(),
        signers: v["signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Signer {
                namespace: h32(&s["namespace"]),
                public_key: h32(&s["publicKey"]),
            })
            .collect(),
        prologue: (!v["prologue"].is_null()).then(|| Prologue {
            hash: h32(&v["prologue"]["hash"]),
            length: v["prologue"]["length"].as_u64().unwrap(),
        }),
        linked: None,
        user_data: None,
    }
}

/// The tree hash of a core's first blocks, as a prologue names it.
fn tree_hash(blocks: &[Vec<u8>]) -> [u8; 32] {
    let mut batch = Batch::new(&TreeState::default());
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    batch.append_all(&refs);
    batch.hash()
}

struct Core {
    key: [u8; 32],
    manifest: Manifest,
    blocks: Vec<Vec<u8>>,
}

fn cores(out: &Value) -> HashMap<String, Core> {
    out["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let blocks = c["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| hex::decode(b.as_str().expect("every block is stored")).unwrap())
                .collect::<Vec<_>>();
            assert_eq!(blocks.len() as u64, c["length"].as_u64().unwrap());
            let core = Core {
                key: h32(&c["key"]),
                manifest: manifest(&c["manifest"]),
                blocks,
            };
            // the manifest we read is the one the key commits to
            assert_eq!(manifest_hash(&core.manifest), core.key);
            (c["role"].as_str().unwrap().to_string(), core)
        })
        .collect()
}

#[test]
fn rust_reads_and_reencodes_every_record_of_a_js_autobase() {
    let dir = interop::scratch_dir("autobase-fixture");
    let raw = interop::run_with_stdin(
        "autobase_fixture.js",
        &[dir.to_str().unwrap()],
        b"",
        Duration::from_secs(120),
    );
    let out: Value = serde_json::from_str(&raw).expect("JSON from autobase_fixture.js");
    let cores = cores(&out);
    let base = &out["bases"][0];
    let bootstrap = h32(&base["key"]);
    let system_key = h32(&base["systemKey"]);
    let view_key = h32(&base["viewKey"]);

    // writer blocks: every one decodes, re-encodes to its bytes, and names only known writers
    let writer_keys: HashSet<[u8; 32]> = WRITERS.iter().map(|r| cores[*r].key).collect();
    let mut system_keys_seen = Vec::new();
    let mut checkpoints = 0;
    for role in WRITERS {
        let core = &cores[role];
        let msgs: Vec<OplogMessage> = core
            .blocks
            .iter()
            .map(|b| OplogMessage::decode(b).expect("writer block decodes"))
            .collect();
        let mut sim = LocalCheckpoints::default();
        for (i, (m, bytes)) in msgs.iter().zip(&core.blocks).enumerate() {
            assert_eq!(&m.to_bytes().unwrap(), bytes, "{role} block {i} re-encodes");
            assert_eq!(m.version, 2);
            assert!(m.node.batch >= 1);
            for h in &m.node.heads {
                assert!(
                    writer_keys.contains(&h.key),
                    "{role} block {i}: head of an unknown writer"
                );
                assert!(h.length >= 1);
            }
            if let Some(v) = &m.node.value {
                let op: Value = serde_json::from_slice(v).expect("json value");
                assert!(op["op"].is_string());
            }
            // digests and checkpoints resolve, and a Rust writer replaying the same keys and signatures
            // writes the same pointers
            let length = i as u64 + 1;
            let block = |l: u64| msgs.get(usize::try_from(l).ok()?.checked_sub(1)?);
            let digest = m.digest.expect("every block has a digest");
            let key = inflate_digest(length, &digest, block)
                .expect("digest resolves")
                .key;
            assert_eq!(
                sim.make_digest(length, key),
                digest,
                "{role} block {i} digest"
            );
            if !system_keys_seen.contains(&key) {
                system_keys_seen.push(key);
            }
            if let Some(c) = &m.checkpoint {
                checkpoints += 1;
                let sys = c.system.expect("a checkpoint always has the system core's");
                let enc = c.encryption.expect("and the encryption core's");
                let user = c.user.as_deref().expect("and the user views'");
                for (slot, chk) in [(Slot::System, &sys), (Slot::Encryption, &enc)]
                    .into_iter()
                    .chain(user.iter().enumerate().map(|(j, u)| (Slot::User(j), u)))
                {
                    inflate_checkpoint(length, chk, slot, block).expect("checkpoint resolves");
                }
                let new = |c: &Checkpointer| c.checkpoint.map(|k| (k.signature, k.length));
                sim.update_internal_signatures(length, new(&sys), new(&enc));
                let users: Vec<_> = user.iter().map(new).collect();
                sim.update_user_signatures(length, &users);
                assert_eq!(
                    &sim.make_checkpoint(length),
                    c,
                    "{role} block {i} checkpoint"
                );
                assert_eq!(c.user.as_ref().map(Vec::len), Some(1), "one user view");
            }
        }
    }
    assert!(checkpoints > 0, "the indexers signed checkpoints");
    assert_eq!(
        system_keys_seen.last(),
        Some(&system_key),
        "writers end on the current system core"
    );

    // boot records
    for b in out["bases"].as_array().unwrap() {
        let bytes = hex::decode(b["bootRecord"].as_str().unwrap()).unwrap();
        let boot = BootRecord::decode(&bytes).unwrap();
        assert_eq!(boot.to_bytes().unwrap(), bytes);
        assert_eq!(boot.version, BOOT_RECORD_VERSION);
        assert_eq!(boot.key, system_key);
        assert!(boot.system_length <= b["systemLength"].as_u64().unwrap());
    }

    // the system view: a hyperbee of Info and Member records
    let system = &cores["system"];
    let header = Header::decode(&system.blocks[0]).unwrap();
    assert_eq!(header.protocol, "hyperbee");
    let mut last_info = None;
    let mut members = HashMap::new();
    for (i, block) in system.blocks.iter().enumerate().skip(1) {
        let node = BeeNode::decode(block).unwrap();
        let value = node
            .value
            .as_deref()
            .expect("the system view never deletes");
        match SystemKey::decode(&node.key)
            .unwrap_or_else(|| panic!("system block {i}: unknown key"))
        {
            SystemKey::Info => {
                let info = Info::decode(value).unwrap();
                assert_eq!(
                    info.to_bytes().unwrap(),
                    value,
                    "system block {i} info re-encodes"
                );
                last_info = Some(info);
            }
            SystemKey::Member(k) => {
                assert!(writer_keys.contains(&k));
                let m = Member::from_bytes(value).unwrap();
                assert_eq!(m.to_bytes(), value, "system block {i} member re-encodes");
                members.insert(k, m);
            }
        }
    }
    let info = last_info.expect("an info record");
    // the removed writer no longer counts
    assert_eq!(info.members, 2);
    assert!(info.pending_indexers.is_empty());
    let indexer_keys: HashSet<_> = info.indexers.iter().map(|c| c.key).collect();
    let indexer_roles: HashSet<[u8; 32]> = ["writer-a", "writer-b"]
        .iter()
        .map(|r| cores[*r].key)
        .collect();
    assert_eq!(indexer_keys, indexer_roles);
    assert_eq!(info.views.len(), 1);
    assert_eq!(info.views[0].key, view_key);
    assert!(info.views[0].length <= cores["view"].blocks.len() as u64);
    assert_eq!(members.len(), 3);
    for (k, m) in &members {
        let role = WRITERS.into_iter().find(|r| cores[*r].key == *k).unwrap();
        if role == "writer-c" {
            assert!(
                !m.is_indexer && m.is_removed,
                "the non-indexer was removed: {m:?}"
            );
        } else {
            assert!(m.is_indexer && !m.is_removed, "{role}: {m:?}");
        }
        assert!(m.length <= cores[role].blocks.len() as u64);
    }

    // key derivations
    let derived = &out["derived"];
    assert_eq!(
        bootstrap_system_key(&bootstrap),
        h32(&derived["bootstrapSystemKey"])
    );
    assert_eq!(
        static_hash(&bootstrap, "_system"),
        h32(&derived["staticHash"]["_system"])
    );
    assert_eq!(
        static_hash(&bootstrap, "view"),
        h32(&derived["staticHash"]["view"])
    );
    assert_eq!(ns_signer_namespace(), h32(&derived["caps"]["signer"]));
    assert_eq!(ns_view_block_key(), h32(&derived["caps"]["viewBlockKey"]));
    assert_eq!(ns_hash_key(), h32(&derived["caps"]["hashKey"]));
    assert_eq!(ns_encryption(), h32(&derived["caps"]["encryption"]));
    assert_eq!(entropy_namespaces().0, h32(&derived["genesisEntropy"]));
    let indexer_order: Vec<[u8; 32]> = derived["indexers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| h32(&i["key"]))
        .collect();
    assert_eq!(
        generate_entropy(&indexer_order, 7, None),
        h32(&derived["entropyAt7"])
    );
    let signer_of = |key: &[u8; 32]| {
        let role = if *key == cores["writer-a"].key {
            "writer-a"
        } else {
            "writer-b"
        };
        IndexerSigner::from_manifest(&cores[role].manifest).unwrap()
    };
    let indexers: Vec<IndexerSigner> = info.indexers.iter().map(|c| signer_of(&c.key)).collect();
    let entropy = info.entropy.unwrap_or(indexers[0].namespace);
    for name in ["_system", "view"] {
        assert_eq!(
            view_namespace(&bootstrap, None, &entropy, name),
            h32(&derived["namespaces"][name]),
            "{name} namespace"
        );
    }
    let inputs = ViewKeyInputs {
        bootstrap,
        encryption_key: None,
        indexers: &indexers,
        entropy: info.entropy,
        manifest_version: 1,
    };
    // the current system and view cores: signed by both indexers, with the prologue they moved with, whose hash
    // is that of their own first blocks
    for (role, name, key) in [
        ("system", "_system", system_key),
        ("view", "view", view_key),
    ] {
        let core = &cores[role];
        let p = core
            .manifest
            .prologue
            .expect("a core that moved has a prologue");
        assert_eq!(
            p.hash,
            tree_hash(&core.blocks[..p.length as usize]),
            "{role} prologue"
        );
        let m = view_manifest(&inputs, name, Some(p), None, None);
        assert_eq!(m, core.manifest, "{role} manifest");
        assert_eq!(manifest_hash(&m), key, "{role} key");
    }
    // and every system core the writers named on the way: the bootstrap one (no indexers), then one per indexer
    // set, each starting from a prefix of the system core's blocks
    for key in &system_keys_seen {
        let explained = *key == bootstrap_system_key(&bootstrap)
            || (1..=indexers.len()).any(|n| {
                let inputs = ViewKeyInputs {
                    indexers: &indexers[..n],
                    ..inputs.clone()
                };
                (0..=system.blocks.len()).any(|len| {
                    let prologue = Prologue {
                        hash: tree_hash(&system.blocks[..len]),
                        length: len as u64,
                    };
                    holepunch::autobase::keys::view_key(&inputs, "_system", Some(prologue)) == *key
                })
            });
        assert!(explained, "system key {} is derived", hex::encode(key));
    }
    assert!(
        system_keys_seen.len() >= 2,
        "the system core moved when the second indexer joined"
    );

    // checkpoints: each indexer's latest system and view checkpoints are its signatures (partials of the
    // multisig) over `treeSignable(manifestHash, treeHash, length, fork 0)` of the current cores
    for role in ["writer-a", "writer-b"] {
        let signer = IndexerSigner::from_manifest(&cores[role].manifest).unwrap();
        let msgs: Vec<OplogMessage> = cores[role]
            .blocks
            .iter()
            .map(|b| OplogMessage::decode(b).unwrap())
            .collect();
        let last = msgs
            .iter()
            .rev()
            .find_map(|m| m.checkpoint.as_ref())
            .expect("an indexer's checkpoint");
        let sys = last
            .system
            .and_then(|c| c.checkpoint)
            .expect("system checkpoint");
        let user = last.user.as_ref().unwrap()[0]
            .checkpoint
            .expect("view checkpoint");
        for (what, core, chk) in [
            ("system", &cores["system"], sys),
            ("view", &cores["view"], user),
        ] {
            let len = usize::try_from(chk.length).unwrap();
            assert!(len <= core.blocks.len());
            let msg = tree_signable(&core.key, &tree_hash(&core.blocks[..len]), chk.length, 0);
            assert!(
                verify(&msg, &chk.signature, &signer.public_key),
                "{role}'s {what} checkpoint at {len} verifies"
            );
            let mut bad = chk.signature;
            bad[0] ^= 1;
            assert!(!verify(&msg, &bad, &signer.public_key));
        }
    }

    system_view_reads_what_js_reports(&out, &system.blocks, &dir);

    // decode-doesn't-panic over real blocks: every prefix and every single-byte corruption of a JS block;
    // whatever decodes re-encodes to something that decodes to the same message
    for role in WRITERS {
        for block in &cores[role].blocks {
            for n in 0..block.len() {
                let _ = OplogMessage::decode(&block[..n]);
                let mut bad = block.clone();
                bad[n] ^= 0xff;
                if let Ok(m) = OplogMessage::decode(&bad) {
                    if let Ok(b) = m.to_bytes() {
                        assert_eq!(OplogMessage::decode(&b).unwrap(), m);
                    }
                }
            }
        }
    }
}

fn checkouts(v: &Value) -> Vec<Checkout> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| Checkout {
            key: h32(&c["key"]),
            length: c["length"].as_u64().unwrap(),
        })
        .collect()
}

/// The JS system core's blocks appended to a Rust core: the Rust [`SystemView`] reads the members, heads,
/// views and lengths JS reported, at the end and at every flush point.
fn system_view_reads_what_js_reports(out: &Value, blocks: &[Vec<u8>], dir: &std::path::Path) {
    let core = Hypercore::create(dir.join("rust-system"), KeyPair::generate()).unwrap();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    core.append(&refs).unwrap();
    let sys = SystemView::open(Hyperbee::new(core)).unwrap();
    let js = &out["bases"][0]["system"];
    assert_eq!(sys.core_length(), js["length"].as_u64().unwrap());
    assert_eq!(sys.version, js["version"].as_u64().unwrap());
    assert_eq!(sys.members, js["members"].as_u64().unwrap());
    assert!(js["pendingIndexers"].as_array().unwrap().is_empty());
    assert!(sys.pending_indexers.is_empty());
    assert_eq!(sys.indexers, checkouts(&js["indexers"]));
    assert_eq!(sys.heads, checkouts(&js["heads"]));
    assert_eq!(sys.views, checkouts(&js["views"]));
    let list: Vec<([u8; 32], Member)> = js["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                h32(&m["key"]),
                Member {
                    is_indexer: m["isIndexer"].as_bool().unwrap(),
                    is_removed: m["isRemoved"].as_bool().unwrap(),
                    length: m["length"].as_u64().unwrap(),
                },
            )
        })
        .collect();
    assert_eq!(sys.list().unwrap(), list);
    for (k, m) in &list {
        assert_eq!(sys.get_member(k).unwrap(), Some(*m));
        assert!(!sys.linkable(k, m.length).unwrap());
        assert!(sys.linkable(k, m.length + 1).unwrap());
    }
    // every flush point JS lists, newest first, with the state a checkout at that length reads
    let flushes = sys.flushes(sys.core_length()).unwrap();
    let js_flushes = out["systemFlushes"].as_array().unwrap();
    assert_eq!(flushes.len(), js_flushes.len(), "flush points");
    assert!(flushes.len() > 3);
    for (f, j) in flushes.iter().zip(js_flushes) {
        assert_eq!(f.length, j["length"].as_u64().unwrap());
        assert_eq!(f.info.members, j["members"].as_u64().unwrap());
        assert_eq!(f.info.indexers, checkouts(&j["indexers"]));
        assert_eq!(f.info.heads, checkouts(&j["heads"]));
        let co = sys.checkout(f.length).unwrap();
        assert_eq!(co.info(), f.info, "checkout at {}", f.length);
        assert_eq!(sys.indexed_info(f.length).unwrap(), f.info);
        // a member's record at a checkout is never newer than the head the info names
        for h in &f.info.heads {
            let m = co
                .get_member(&h.key)
                .unwrap()
                .expect("a head's writer is a member");
            assert_eq!(m.length, h.length, "head length at {}", f.length);
        }
    }
    let empty = sys.checkout(0).unwrap();
    assert_eq!(empty.members, 0);
    assert!(empty.bootstrapping());
    assert!(empty.list().unwrap().is_empty());
}

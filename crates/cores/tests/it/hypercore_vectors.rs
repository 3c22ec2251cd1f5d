//! Checks flat-tree math and hypercore trees, signatures and proofs byte for byte against vectors made by the
//! pinned JS packages (`tests/interop/js/gen-hypercore-vectors.js`), and verifies JS-made proofs with Rust
//! reader cores.

use std::path::PathBuf;

use holepunch_cores::hypercore::messages::{Data, Manifest, Request};
use holepunch_cores::hypercore::tree::ProofError;
use holepunch_cores::hypercore::{caps, CreateOptions, Hypercore, HypercoreError};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::{KeyPair, TreeNode};
use holepunch_wire::flat_tree::{self, TreeIterator};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("vector file");
    serde_json::from_str(&text).expect("json")
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn h32(v: &Value) -> [u8; 32] {
    h(v).try_into().expect("32 bytes")
}

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hc-vec-{name}"))
}

#[test]
fn flat_tree_matches_js() {
    let v = vectors("flat_tree.json");
    for n in v["nodes"].as_array().expect("nodes") {
        let i = u(&n["index"]);
        assert_eq!(u64::from(flat_tree::depth(i)), u(&n["depth"]), "depth {i}");
        assert_eq!(flat_tree::offset(i), u(&n["offset"]), "offset {i}");
        assert_eq!(flat_tree::parent(i), u(&n["parent"]), "parent {i}");
        assert_eq!(flat_tree::sibling(i), u(&n["sibling"]), "sibling {i}");
        let children = flat_tree::children(i).map(|(a, b)| vec![a, b]);
        let js: Option<Vec<u64>> = n["children"].as_array().map(|a| a.iter().map(u).collect());
        assert_eq!(children, js, "children {i}");
        assert_eq!(flat_tree::left_span(i), u(&n["leftSpan"]), "leftSpan {i}");
        assert_eq!(
            flat_tree::right_span(i),
            u(&n["rightSpan"]),
            "rightSpan {i}"
        );
        assert_eq!(flat_tree::count(i), u(&n["count"]), "count {i}");
        assert_eq!(
            flat_tree::count_leaves(i),
            u(&n["countLeaves"]),
            "countLeaves {i}"
        );
        assert_eq!(flat_tree::next_leaf(i), u(&n["nextLeaf"]), "nextLeaf {i}");
    }
    for r in v["fullRoots"].as_array().expect("fullRoots") {
        let roots: Vec<u64> = r["roots"]
            .as_array()
            .expect("roots")
            .iter()
            .map(u)
            .collect();
        assert_eq!(flat_tree::full_roots(u(&r["index"])), Some(roots));
    }
    for w in v["walks"].as_array().expect("walks") {
        let start = u(&w["start"]);
        let mut ite = TreeIterator::new(start);
        for step in w["steps"].as_array().expect("steps") {
            let s = step.as_array().expect("step");
            match s[0].as_str().expect("move") {
                "parent" => ite.parent(),
                "sibling" => ite.sibling(),
                "leftChild" => ite.left_child(),
                "rightChild" => ite.right_child(),
                "nextTree" => ite.next_tree(),
                "prevTree" => ite.prev_tree(),
                "prev" => ite.prev(),
                "next" => ite.next(),
                "leftSpan" => ite.left_span(),
                "rightSpan" => ite.right_span(),
                other => panic!("unknown move {other}"),
            };
            assert_eq!(
                (ite.index, ite.offset, ite.factor),
                (u(&s[1]), u(&s[2]), u(&s[3])),
                "walk from {start}, {}",
                s[0]
            );
            assert_eq!(ite.contains(start), s[4].as_bool().expect("bool"));
            assert_eq!(ite.count_leaves(), u(&s[5]));
        }
    }
    for w in v["fullRootWalks"].as_array().expect("fullRootWalks") {
        let len = u(&w["length"]);
        let mut seen = Vec::new();
        let mut ite = TreeIterator::new(0);
        while ite.full_root(2 * len) {
            seen.push(ite.index);
            ite.next_tree();
        }
        let js: Vec<u64> = w["roots"]
            .as_array()
            .expect("roots")
            .iter()
            .map(u)
            .collect();
        assert_eq!(seen, js, "fullRoot walk for length {len}");
    }
}

#[test]
fn caps_match_js() {
    let v = vectors("hypercore.json");
    assert_eq!(caps::tree().to_vec(), h(&v["caps"]["tree"]));
    assert_eq!(caps::manifest().to_vec(), h(&v["caps"]["manifest"]));
    assert_eq!(
        caps::default_namespace().to_vec(),
        h(&v["caps"]["defaultNamespace"])
    );
    assert_eq!(
        caps::default_encryption().to_vec(),
        h(&v["caps"]["defaultEncryption"])
    );
}

fn roots(v: &Value) -> Vec<TreeNode> {
    v.as_array()
        .expect("roots")
        .iter()
        .map(|n| TreeNode {
            index: u(&n["index"]),
            size: u(&n["size"]),
            hash: h32(&n["hash"]),
        })
        .collect()
}

/// Replays a JS core's history in Rust, checking every head, then returns the core.
fn replay(core_v: &Value, dir: &PathBuf) -> Hypercore {
    let compat = core_v["compat"].as_bool().expect("compat");
    let seed = h32(&core_v["seed"]);
    let core = Hypercore::create_with(dir, KeyPair::from_seed(&seed), CreateOptions { compat })
        .expect("create");
    assert_eq!(core.key().to_vec(), h(&core_v["key"]));
    assert_eq!(core.discovery_key().to_vec(), h(&core_v["discoveryKey"]));
    let manifest = core.manifest().expect("manifest");
    assert_eq!(manifest.to_bytes(), h(&core_v["manifest"]));
    assert_eq!(
        caps::manifest_hash(&manifest).to_vec(),
        h(&core_v["manifestHash"])
    );
    for step in core_v["steps"].as_array().expect("steps") {
        match step["op"].as_str().expect("op") {
            "append" => {
                let blocks: Vec<Vec<u8>> = step["blocks"]
                    .as_array()
                    .expect("blocks")
                    .iter()
                    .map(h)
                    .collect();
                let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                core.append(&refs).expect("append");
            }
            "truncate" => core.truncate(u(&step["truncate"])).expect("truncate"),
            other => panic!("unknown op {other}"),
        }
        let tree = core.tree();
        assert_eq!(core.length(), u(&step["length"]));
        assert_eq!(core.byte_length(), u(&step["byteLength"]));
        assert_eq!(core.fork(), u(&step["fork"]));
        assert_eq!(tree.roots, roots(&step["roots"]));
        assert_eq!(core.tree_hash().to_vec(), h(&step["treeHash"]));
        assert_eq!(core.signature(), Some(h(&step["signature"])), "signature");
        let verifier = holepunch_cores::hypercore::Verifier::new(&core.key(), Some(&manifest))
            .expect("verifier");
        assert_eq!(
            verifier.signable(&core.tree_hash(), core.length(), core.fork()),
            h(&step["signable"])
        );
    }
    core
}

#[test]
fn trees_signatures_and_proofs_match_js() {
    let v = vectors("hypercore.json");
    for core_v in v["cores"].as_array().expect("cores") {
        let dir = tmp("replay");
        let core = replay(core_v, &dir);
        // Reopening gives the same head.
        let tree = core.tree();
        drop(core);
        let core = Hypercore::open(&dir).expect("reopen");
        assert_eq!(core.tree(), tree);

        for p in core_v["proofs"].as_array().expect("proofs") {
            let req = Request::from_bytes_exact(&h(&p["request"])).expect("request");
            let ours = core.proof(&req);
            if let Some(err) = p.get("error") {
                assert!(ours.is_err(), "JS refused {req:?} ({err}), Rust answered");
                continue;
            }
            let ours = ours.unwrap_or_else(|e| panic!("proof for {req:?}: {e}"));
            assert_eq!(
                hex::encode(ours.to_bytes()),
                p["data"].as_str().expect("data"),
                "proof for {req:?}"
            );
        }

        for s in core_v["seeks"].as_array().expect("seeks") {
            let js = s["result"].as_array().map(|a| (u(&a[0]), u(&a[1])));
            assert_eq!(core.seek(u(&s["bytes"])).expect("seek"), js, "seek {s}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn reader_for(core_v: &Value, name: &str) -> (Hypercore, PathBuf) {
    let dir = tmp(name);
    let key = h32(&core_v["key"]);
    let manifest = Manifest::from_bytes_exact(&h(&core_v["manifest"])).expect("manifest");
    let compat = core_v["compat"].as_bool().expect("compat");
    let reader =
        Hypercore::create_reader(&dir, key, (!compat).then_some(manifest)).expect("reader");
    (reader, dir)
}

#[test]
fn js_proofs_verify_in_rust_readers() {
    let v = vectors("hypercore.json");
    for core_v in v["cores"].as_array().expect("cores") {
        let steps = core_v["steps"].as_array().expect("steps");
        let last = steps.last().expect("a step");
        let blocks: Vec<Vec<u8>> = {
            // The final blocks: replay the appends with truncation.
            let mut out: Vec<Vec<u8>> = Vec::new();
            for s in steps {
                if let Some(t) = s.get("truncate") {
                    out.truncate(u(t) as usize);
                }
                if let Some(b) = s.get("blocks") {
                    out.extend(b.as_array().expect("blocks").iter().map(h));
                }
            }
            out
        };
        for p in core_v["proofs"].as_array().expect("proofs") {
            if p.get("error").is_some() {
                continue;
            }
            let data = Data::from_bytes_exact(&h(&p["data"])).expect("data");
            let Some(up) = &data.upgrade else { continue };
            if up.start != 0 {
                continue;
            }
            let (reader, dir) = reader_for(core_v, "reader");
            reader.apply_proof(&data).expect("JS proof verifies");
            // The signature covers the writer's whole head; `additionalNodes` carry the rest of it.
            assert_eq!(reader.length(), u(&last["length"]));
            assert_eq!(reader.fork(), u(&last["fork"]));
            assert_eq!(reader.tree_hash().to_vec(), h(&last["treeHash"]));
            assert_eq!(reader.signature(), Some(h(&last["signature"])));
            assert!(up.start + up.length <= reader.length());
            if let Some(b) = &data.block {
                assert_eq!(
                    reader.get(b.index).expect("get"),
                    Some(blocks[b.index as usize].clone())
                );
            }
            // Reopen: the verified state was stored.
            let len = reader.length();
            drop(reader);
            let reader = Hypercore::open(&dir).expect("reopen");
            assert_eq!(reader.length(), len);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn log_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("log"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn tampered_js_proofs_are_rejected_and_nothing_is_stored() {
    let v = vectors("hypercore.json");
    for core_v in v["cores"].as_array().expect("cores") {
        // The first proof: block 0 with an upgrade to the full length.
        let good = Data::from_bytes_exact(&h(&core_v["proofs"][0]["data"])).expect("data");
        let (reader, dir) = reader_for(core_v, "tamper");
        let before = log_len(&dir);

        let check = |bad: &Data, what: &str| -> HypercoreError {
            let err = reader.apply_proof(bad).expect_err(what);
            assert_eq!(reader.length(), 0, "{what}: nothing stored");
            assert_eq!(reader.get(0).expect("get"), None, "{what}: no block stored");
            assert_eq!(log_len(&dir), before, "{what}: nothing written");
            err
        };

        let mut bad = good.clone();
        if let Some(b) = bad.block.as_mut() {
            b.value[0] ^= 1;
        }
        let err = check(&bad, "bad block");
        assert!(
            matches!(
                err,
                HypercoreError::Proof(ProofError::InvalidSignature { .. })
            ),
            "{err}"
        );

        let mut bad = good.clone();
        if let Some(u) = bad.upgrade.as_mut() {
            if let Some(sig) = u.signature.as_mut() {
                let last = sig.len() - 1;
                sig[last] ^= 0x40;
            }
        }
        let err = check(&bad, "bad signature");
        assert!(
            matches!(
                err,
                HypercoreError::Proof(ProofError::InvalidSignature { .. })
            ),
            "{err}"
        );

        let mut bad = good.clone();
        if let Some(u) = bad.upgrade.as_mut() {
            u.signature = None;
        }
        let err = check(&bad, "missing signature");
        assert!(
            matches!(err, HypercoreError::Proof(ProofError::MissingSignature)),
            "{err}"
        );

        let mut bad = good.clone();
        if let Some(u) = bad.upgrade.as_mut() {
            u.nodes[0].hash[3] ^= 1;
        }
        let err = check(&bad, "bad node hash");
        assert!(
            matches!(
                err,
                HypercoreError::Proof(ProofError::InvalidSignature { .. })
            ),
            "{err}"
        );

        // Wrong length: claim one block less, dropping the last root.
        let mut bad = good.clone();
        if let Some(u) = bad.upgrade.as_mut() {
            u.length -= 4;
            u.nodes.pop();
        }
        let err = check(&bad, "wrong length");
        assert!(matches!(err, HypercoreError::Proof(_)), "{err}");

        // A signed upgrade claiming another fork: the signature does not cover it.
        let mut bad = good.clone();
        bad.fork = 7;
        let err = check(&bad, "wrong fork");
        assert!(
            matches!(
                err,
                HypercoreError::Proof(ProofError::InvalidSignature { fork: 7, .. })
            ),
            "{err}"
        );

        // Without an upgrade, a proof on another fork is refused outright.
        let mut bad = good.clone();
        bad.upgrade = None;
        let err = check(&bad, "other fork, no upgrade");
        assert!(
            matches!(err, HypercoreError::Proof(ProofError::ForkMismatch { .. })),
            "{err}"
        );

        let mut bad = good.clone();
        if let Some(b) = bad.block.as_mut() {
            b.nodes.swap(0, 1);
        }
        let err = check(&bad, "reordered nodes");
        assert!(
            matches!(
                err,
                HypercoreError::Proof(ProofError::UnexpectedNode { .. })
            ),
            "{err}"
        );

        // The untouched proof still applies afterwards.
        reader.apply_proof(&good).expect("good proof");
        assert!(reader.length() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn encrypted_cores_match_js() {
    let v = vectors("hypercore.json");
    for e in v["encrypted"].as_array().expect("encrypted") {
        let compat = e["compat"].as_bool().expect("compat");
        let block_key = e["block"].as_bool().expect("block");
        let dir = tmp("enc");
        let core = Hypercore::create_with(
            &dir,
            KeyPair::from_seed(&h32(&e["seed"])),
            CreateOptions { compat },
        )
        .expect("create");
        assert_eq!(core.key().to_vec(), h(&e["key"]));
        let key = h32(&e["encryptionKey"]);
        core.set_encryption_key(&key, block_key);
        let blocks: Vec<Vec<u8>> = e["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(h)
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        // Same history as the JS core: append 2, truncate to 1 (fork 1), append the rest.
        core.append(&refs[..2]).expect("append");
        core.truncate(1).expect("truncate");
        core.append(&refs[1..]).expect("append");
        assert_eq!(core.length(), u(&e["length"]));
        assert_eq!(core.fork(), u(&e["fork"]));
        assert_eq!(core.byte_length(), u(&e["byteLength"]));
        for (i, stored) in e["stored"].as_array().expect("stored").iter().enumerate() {
            let i = i as u64;
            assert_eq!(
                core.get_raw(i).expect("raw"),
                Some(h(stored)),
                "stored block {i}"
            );
            assert_eq!(core.get(i).expect("get"), Some(blocks[i as usize].clone()));
        }
        assert_eq!(core.tree_hash().to_vec(), h(&e["treeHash"]));
        assert_eq!(core.signature(), Some(h(&e["signature"])));
        for s in e["seeks"].as_array().expect("seeks") {
            let js = s["result"].as_array().map(|a| (u(&a[0]), u(&a[1])));
            assert_eq!(core.seek(u(&s["bytes"])).expect("seek"), js, "seek {s}");
        }
        // Reopened with the key, the blocks read back; without it, they stay encrypted.
        drop(core);
        let core = Hypercore::open(&dir).expect("reopen");
        assert_eq!(core.get(3).expect("get"), core.get_raw(3).expect("raw"));
        core.set_encryption_key(&key, block_key);
        assert_eq!(core.get(3).expect("get"), Some(blocks[3].clone()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

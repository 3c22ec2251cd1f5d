//! Rust-made proofs verified by JS hypercore (`tests/interop/js/hypercore-verify.js`, which applies them to an
//! empty JS reader core the way the replicator does): a signed upgrade with a block, then block and hash proofs
//! against what the upgrade stored, and a tampered proof that JS must refuse. For compat and manifest cores,
//! after a truncation (fork 1).

use std::time::Duration;

use holepunch::compact_encoding::Encode;
use holepunch::crypto::KeyPair;
use holepunch::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
use holepunch::hypercore::{CreateOptions, Hypercore};
use serde_json::Value;

fn block(i: u64) -> Vec<u8> {
    (0..(i * 37 % 700) + 1).map(|j| (i + j * 3) as u8).collect()
}

/// Runs the JS verifier on `input`, returning one JSON value per proof. Bounded in time.
fn run_js(input: &Value) -> Vec<Value> {
    let out = interop::run_with_stdin(
        "hypercore-verify.js",
        &[],
        input.to_string().as_bytes(),
        Duration::from_secs(60),
    );
    out.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn check(compat: bool) {
    let dir = interop::scratch_dir(&format!("hc-interop-{compat}"));
    let core = Hypercore::create_with(&dir, KeyPair::from_seed(&[9; 32]), CreateOptions { compat })
        .expect("create");
    let blocks: Vec<Vec<u8>> = (0..30).map(block).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    core.append(&refs[..10]).expect("append");
    core.truncate(7).expect("truncate");
    core.append(&refs[7..30]).expect("append");
    let len = core.length();
    assert_eq!((len, core.fork()), (30, 1));

    // A Rust reader models what the JS reader holds, to compute each request's `nodes` (the nodes the requester
    // misses up to one it has), as the JS replicator does with `missingNodes`.
    let reader_dir = dir.with_extension("reader");
    let _ = std::fs::remove_dir_all(&reader_dir);
    let reader = Hypercore::create_reader(&reader_dir, core.key(), None).expect("reader");
    let req = |block: Option<u64>, hash: Option<u64>, upgrade: bool| Request {
        id: 1,
        fork: 1,
        block: block.map(|index| RequestBlock {
            index,
            nodes: reader.missing_nodes(2 * index),
        }),
        hash: hash.map(|index| RequestBlock {
            index,
            nodes: reader.missing_nodes(index),
        }),
        upgrade: upgrade.then_some(RequestUpgrade {
            start: 0,
            length: len,
        }),
        manifest: upgrade,
        ..Request::default()
    };
    let upgrade = core.proof(&req(Some(3), None, true)).expect("proof");
    reader
        .apply_proof(&upgrade)
        .expect("Rust reader takes the upgrade");
    let b17 = core.proof(&req(Some(17), None, false)).expect("proof");
    assert_eq!(b17.block.as_ref().map(|b| b.nodes.len()), Some(3));
    reader
        .apply_proof(&b17)
        .expect("Rust reader takes block 17");
    let b29 = core.proof(&req(Some(29), None, false)).expect("proof");
    reader
        .apply_proof(&b29)
        .expect("Rust reader takes block 29");
    let h = core.proof(&req(None, Some(9), false)).expect("proof");
    reader
        .apply_proof(&h)
        .expect("Rust reader takes the hash proof");
    let mut bad = core.proof(&req(Some(11), None, false)).expect("proof");
    if let Some(b) = bad.block.as_mut() {
        b.value[0] ^= 1;
    }
    assert!(
        reader.apply_proof(&bad).is_err(),
        "Rust reader refuses a tampered block"
    );
    let good11 = core.proof(&req(Some(11), None, false)).expect("proof");
    reader
        .apply_proof(&good11)
        .expect("Rust reader takes block 11");
    for i in [3, 11, 17, 29] {
        assert_eq!(
            reader.get(i).expect("get"),
            Some(blocks[i as usize].clone())
        );
    }
    assert_eq!(reader.tree_hash(), core.tree_hash());
    drop(reader);
    let _ = std::fs::remove_dir_all(&reader_dir);

    let proofs: Vec<String> = [&upgrade, &b17, &b29, &h, &bad, &good11]
        .iter()
        .map(|d| hex::encode(d.to_bytes()))
        .collect();
    let results = run_js(&serde_json::json!({
        "key": hex::encode(core.key()),
        "proofs": proofs,
    }));
    assert_eq!(results.len(), 6, "{results:?}");
    let ok = |i: usize| results[i]["ok"].as_bool() == Some(true);
    assert!(ok(0), "JS refused the upgrade proof: {}", results[0]);
    assert_eq!(results[0]["length"], 30);
    assert_eq!(results[0]["fork"], 1);
    assert_eq!(results[0]["block"], hex::encode(&blocks[3]));
    assert!(ok(1), "{}", results[1]);
    assert_eq!(results[1]["block"], hex::encode(&blocks[17]));
    assert!(ok(2), "{}", results[2]);
    assert_eq!(results[2]["block"], hex::encode(&blocks[29]));
    assert!(ok(3), "JS refused the hash proof: {}", results[3]);
    assert!(!ok(4), "JS accepted a tampered block: {}", results[4]);
    assert!(ok(5), "{}", results[5]);
    assert_eq!(results[5]["block"], hex::encode(&blocks[11]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn js_verifies_rust_proofs_compat_core() {
    check(true);
}

#[test]
fn js_verifies_rust_proofs_manifest_core() {
    check(false);
}

//! The block encryption of an encrypted autobase against JS autobase 7.28.1: `vectors/autobase_encryption.json`
//! is the output of `tests/interop/js/autobase_encryption_vectors.js` (fixed bootstrap, encryption and core
//! keys); `tests/interop`'s `vectors_fresh` re-runs the script so the file cannot drift from the pinned
//! packages.

use holepunch_cores::autobase::encryption::{
    decrypt_v2, encrypt_v2, encryption_namespace, genesis_entropy, v2_block_key, v2_hash_key,
    view_block_key, view_encryption, writer_encryption,
};
use holepunch_cores::hypercore::encryption::BlockEncryption;
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/autobase_encryption.json");

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn h32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn check_blocks(e: &BlockEncryption, blocks: &Value) {
    let blocks = blocks.as_array().expect("blocks");
    assert!(blocks.len() >= 12);
    for b in blocks {
        let index = b["index"].as_u64().expect("index");
        let fork = b["fork"].as_u64().expect("fork");
        let plain = bytes(&b["plaintext"]);
        let stored = bytes(&b["stored"]);
        assert_eq!(e.encrypt(index, fork, &plain), stored, "{b}");
        assert_eq!(e.decrypt(index, &stored).expect("decrypt"), plain, "{b}");
    }
}

#[test]
fn writer_system_and_view_blocks_match_js() {
    let doc: Value = serde_json::from_str(VECTORS).expect("json");
    let bootstrap = h32(&doc["bootstrap"]);
    let ek = h32(&doc["encryptionKey"]);
    let w = &doc["writer"];
    check_blocks(&writer_encryption(&ek, &h32(&w["key"])), &w["blocks"]);
    let views = doc["views"].as_array().expect("views");
    assert_eq!(views.len(), 3);
    for v in views {
        let name = v["name"].as_str().expect("name");
        assert_eq!(view_block_key(&bootstrap, &ek, name), h32(&v["blockKey"]));
        check_blocks(&view_encryption(&bootstrap, &ek, name), &v["blocks"]);
    }
    // another key gives other blocks
    let other = view_encryption(&bootstrap, &[0; 32], "_system");
    let b = &views[0]["blocks"][1];
    assert_ne!(
        other.encrypt(0, 0, &bytes(&b["plaintext"])),
        bytes(&b["stored"])
    );
}

#[test]
fn version_2_blocks_match_js() {
    let doc: Value = serde_json::from_str(VECTORS).expect("json");
    let bootstrap = h32(&doc["bootstrap"]);
    let ek = h32(&doc["encryptionKey"]);
    let v2 = &doc["v2"];
    let core_key = h32(&v2["coreKey"]);
    let keys = v2["keys"].as_array().expect("keys");
    assert_eq!(h32(&keys[0]["entropy"]), genesis_entropy());
    let mut block_keys = Vec::new();
    for (k, ns) in keys.iter().zip(doc["namespace"].as_array().expect("ns")) {
        let entropy = h32(&k["entropy"]);
        let block = v2_block_key(&bootstrap, &ek, &entropy, &core_key);
        assert_eq!(block, h32(&k["blockKey"]));
        assert_eq!(v2_hash_key(&block), h32(&k["hashKey"]));
        assert_eq!(encryption_namespace(&entropy), h32(ns));
        block_keys.push(block);
    }
    let blocks = v2["blocks"].as_array().expect("blocks");
    assert!(blocks.len() >= 24);
    for b in blocks {
        let id = b["id"].as_u64().expect("id") as u32;
        let index = b["index"].as_u64().expect("index");
        let plain = bytes(&b["plaintext"]);
        let stored = bytes(&b["stored"]);
        let key = block_keys[id as usize];
        assert_eq!(
            encrypt_v2(index, &plain, id, &key, &v2_hash_key(&key)),
            stored,
            "{b}"
        );
        assert_eq!(
            decrypt_v2(index, &stored, |i| block_keys[i as usize]).expect("decrypt"),
            plain,
            "{b}"
        );
    }
}

//! A base applying a hostile writer's blocks: the creator adds a non-indexer writer, which then appends
//! arbitrary blocks (raw bytes, or decodable writer blocks whose heads name any writer at any length, with any
//! batch counts, values and optimistic flags); the base reads them after a simulated replication. No panic, the apply never
//! fails, and the creator's own later write is applied (a hostile writer cannot stop the base).
#![no_main]

use holepunch::autobase::base::sync_writers;
use holepunch::autobase::kv::KvOp;
use holepunch::autobase::messages::{Checkout, Node, OplogMessage, OPLOG_VERSION};
use libfuzzer_sys::fuzz_target;

#[path = "support/autobase_pair.rs"]
mod support;

fn blocks(mut bytes: &[u8], keys: &[[u8; 32]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = bytes {
        let n = (*len as usize).min(rest.len());
        let (body, tail) = rest.split_at(n);
        bytes = tail;
        if kind & 1 == 0 || body.len() < 3 {
            out.push(body.to_vec());
            continue;
        }
        // a decodable block: heads from the body's first bytes, the rest as the value
        let heads = body[..2]
            .iter()
            .map(|b| Checkout {
                key: keys[(*b as usize) % keys.len()],
                length: u64::from(b >> 2),
            })
            .take(usize::from(kind >> 6))
            .collect();
        let msg = OplogMessage {
            version: OPLOG_VERSION,
            node: Node {
                heads,
                batch: u64::from((kind >> 1) & 3),
                value: (kind & 8 == 0).then(|| body[2..].to_vec()),
            },
            optimistic: kind & 16 != 0,
            ..OplogMessage::default()
        };
        if let Ok(b) = msg.to_bytes() {
            out.push(b);
        }
        if out.len() >= 32 {
            break;
        }
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let (dir, mut a, mut w) = support::pair("autobase-apply-fuzz", false);
    sync_writers(&a, &w).unwrap();
    w.update().unwrap();
    let keys = [a.key(), w.local_key(), [9; 32]];
    for b in blocks(bytes, &keys) {
        w.local().append(&[&b]).unwrap();
    }
    sync_writers(&w, &a).unwrap();
    a.update().unwrap();
    let put = KvOp::Put {
        key: "mine".into(),
        value: "ok".into(),
    };
    a.append(Some(&put.to_json())).unwrap();
    assert!(a.view().get(b"mine").unwrap().is_some());
    let _ = std::fs::remove_dir_all(&dir);
});

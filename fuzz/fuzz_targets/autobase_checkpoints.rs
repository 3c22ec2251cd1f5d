//! A base reading a hostile indexer's checkpoints: the creator adds a second indexer, which then appends
//! arbitrary blocks (raw bytes, or writer blocks with any digest and any checkpoints: signatures, lengths and
//! pointers from the input, some naming the real system core); the creator reads them after a simulated
//! replication, acks and assembles what it can. No panic, the apply never fails, no signed length goes past
//! the indexed length, and the creator's own later write is applied.
#![no_main]

use holepunch::autobase::base::sync_writers;
use holepunch::autobase::kv::KvOp;
use holepunch::autobase::messages::{
    Checkout, Checkpoint, Checkpointer, Digest, IndexCheckpoint, Node, OplogMessage, OPLOG_VERSION,
};
use libfuzzer_sys::fuzz_target;

#[path = "support/autobase_pair.rs"]
mod support;

fn checkpointer(b: &[u8], here: bool) -> Checkpointer {
    let mut signature = [0u8; 64];
    for (i, s) in signature.iter_mut().enumerate() {
        *s = b[i % b.len()].wrapping_add(i as u8);
    }
    Checkpointer {
        checkpointer: u64::from(b[0] & 3),
        checkpoint: here.then_some(IndexCheckpoint {
            signature,
            length: u64::from(b[1 % b.len()]),
        }),
    }
}

fn blocks(mut bytes: &[u8], w: [u8; 32], sys: [u8; 32], start: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = bytes {
        let n = (*len as usize).min(rest.len());
        let (body, tail) = rest.split_at(n);
        bytes = tail;
        if kind & 1 == 0 || body.len() < 3 {
            out.push(body.to_vec());
            continue;
        }
        let length = start + out.len() as u64;
        let msg = OplogMessage {
            version: OPLOG_VERSION,
            node: Node {
                heads: (length > 0)
                    .then_some(Checkout { key: w, length })
                    .into_iter()
                    .collect(),
                batch: 1,
                value: None,
            },
            digest: Some(if kind & 2 != 0 {
                Digest {
                    pointer: 0,
                    key: Some(sys),
                }
            } else {
                Digest {
                    pointer: u64::from(body[0] & 3),
                    key: None,
                }
            }),
            checkpoint: Some(Checkpoint {
                system: Some(checkpointer(body, kind & 4 != 0)),
                encryption: (kind & 8 != 0).then(|| checkpointer(&body[1..], true)),
                user: (kind & 16 != 0).then(|| vec![checkpointer(&body[2..], kind & 32 != 0)]),
            }),
            ..OplogMessage::default()
        };
        if let Ok(b) = msg.to_bytes() {
            out.push(b);
        }
        if out.len() >= 16 {
            break;
        }
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let (dir, mut a, mut w) = support::pair("autobase-chk-fuzz", true);
    let put = |k: &str| {
        KvOp::Put {
            key: k.into(),
            value: "ok".into(),
        }
        .to_json()
    };
    for _ in 0..3 {
        sync_writers(&a, &w).unwrap();
        w.update().unwrap();
        sync_writers(&w, &a).unwrap();
        a.update().unwrap();
    }
    a.append(Some(&put("first"))).unwrap();
    sync_writers(&a, &w).unwrap();
    w.update().unwrap();
    let sys = a.system().db().core().key();
    let start = w.local().length();
    for b in blocks(bytes, w.local_key(), sys, start) {
        w.local().append(&[&b]).unwrap();
    }
    sync_writers(&w, &a).unwrap();
    a.update().unwrap();
    a.append(None).unwrap();
    a.append(Some(&put("mine"))).unwrap();
    assert!(a.view().get(b"mine").unwrap().is_some());
    let core = a.system().db().core();
    assert!(core.signed_length() <= a.state().indexed_length());
    let _ = std::fs::remove_dir_all(&dir);
});

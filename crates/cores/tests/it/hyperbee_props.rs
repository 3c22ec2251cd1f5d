//! Hyperbee properties: block decoders never panic on truncated or mutated input; a bee matches a `BTreeMap`
//! model under random puts, deletions and batches (get_strict, batch get, ranges, reverse, limits, checkouts); and
//! a bee made of
//! corrupt blocks returns errors, never panics or loops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use holepunch_cores::hyperbee::messages::{Header, Level, Node, YoloIndex};
use holepunch_cores::hyperbee::{Hyperbee, RangeOptions};
use holepunch_cores::hypercore::Hypercore;
use holepunch_wire::crypto::KeyPair;
use proptest::prelude::*;

static DIRS: AtomicU64 = AtomicU64::new(0);

fn fresh_core() -> (Hypercore, std::path::PathBuf) {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = testkit::scratch_dir(&format!("hyperbee-props-{n}"));
    let core = Hypercore::create(&dir, KeyPair::from_seed(&[3; 32])).expect("create");
    (core, dir)
}

fn sample_node() -> Vec<u8> {
    let index = YoloIndex {
        levels: vec![
            Level {
                keys: vec![1, 2, 300],
                children: vec![(4, 0), (5, 1), (6, 0), (7, 2)],
            },
            Level::default(),
        ],
    };
    Node {
        index: index.encode(),
        key: b"key".to_vec(),
        value: Some(b"value".to_vec()),
    }
    .encode()
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Del(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..4)).prop_map(|(k, v)| Op::Put(k, v)),
        2 => any::<u8>().prop_map(Op::Del),
        1 => prop::collection::vec((any::<u8>(), prop::option::of(prop::collection::vec(any::<u8>(), 0..3))), 1..20)
            .prop_map(Op::Batch),
    ]
}

fn k(b: u8) -> Vec<u8> {
    vec![b'k', b / 16, b]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Header::decode(&bytes);
        let _ = Node::decode(&bytes);
        let _ = YoloIndex::decode(&bytes);
    }

    #[test]
    fn truncated_and_mutated_blocks(cut in 0usize..60, pos in 0usize..60, byte in any::<u8>()) {
        let good = sample_node();
        let cut = cut.min(good.len());
        // Every strict prefix that cuts a field fails; none panics.
        let _ = Node::decode(&good[..cut]);
        if cut < good.len() {
            let n = Node::decode(&good[..cut]);
            if let Ok(n) = n {
                prop_assert!(n.encode().len() <= cut);
            }
        }
        let mut bad = good.clone();
        let pos = pos % bad.len();
        bad[pos] ^= byte | 1;
        if let Ok(n) = Node::decode(&bad) {
            let _ = YoloIndex::decode(&n.index);
        }
    }

    #[test]
    fn matches_btreemap(ops in prop::collection::vec(op(), 1..80)) {
        let (core, dir) = fresh_core();
        let bee = Hyperbee::new(core.clone());
        let mut model: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                Op::Put(key, v) => {
                    prop_assert!(bee.put(&k(key), Some(&v)).expect("bee"));
                    model.insert(k(key), Some(v));
                }
                Op::Del(key) => {
                    let existed = model.remove(&k(key)).is_some();
                    prop_assert_eq!(bee.del(&k(key)).expect("bee"), existed);
                }
                Op::Batch(items) => {
                    let mut b = bee.batch().expect("bee");
                    for (key, v) in items {
                        match v {
                            Some(v) => { b.put(&k(key), Some(&v)).expect("bee"); model.insert(k(key), Some(v)); }
                            None => { b.del(&k(key)).expect("bee"); model.remove(&k(key)); }
                        }
                        // Reads through the batch see its pending writes.
                        prop_assert_eq!(b.get(&k(key)).expect("bee").map(|e| e.value), model.get(&k(key)).cloned());
                    }
                    b.flush().expect("bee");
                }
            }
            snapshots.push((core.length(), model.clone()));
        }
        for key in 0..=255u8 {
            // `get` copies a JS shortcut that can return deleted keys (see its docs); `get_strict` must not.
            let got = bee.get_strict(&k(key)).expect("bee").map(|e| e.value);
            prop_assert_eq!(got, model.get(&k(key)).cloned());
        }
        let all: Vec<_> = bee.range_vec(&RangeOptions::default()).expect("bee").into_iter().map(|e| (e.key, e.value)).collect();
        let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(&all, &expected);
        let rev: Vec<_> = bee.range_vec(&RangeOptions { reverse: true, limit: Some(5), ..Default::default() })
            .expect("bee").into_iter().map(|e| e.key).collect();
        let exp_rev: Vec<_> = model.keys().rev().take(5).cloned().collect();
        prop_assert_eq!(rev, exp_rev);
        let lo = k(60);
        let hi = k(200);
        let mid: Vec<_> = bee.range_vec(&RangeOptions { gt: Some(lo.clone()), lte: Some(hi.clone()), ..Default::default() })
            .expect("bee").into_iter().map(|e| e.key).collect();
        let exp_mid: Vec<_> = model.range(lo.clone()..=hi.clone()).filter(|(x, _)| **x != lo).map(|(x, _)| x.clone()).collect();
        prop_assert_eq!(mid, exp_mid);
        // Checkouts see the state as of their version.
        for (version, snap) in snapshots.iter().step_by(7) {
            let view = bee.checkout(*version);
            let got: Vec<_> = view.range_vec(&RangeOptions::default()).expect("bee").into_iter().map(|e| (e.key, e.value)).collect();
            let exp: Vec<_> = snap.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, exp);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn corrupt_blocks_error_not_panic(blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
                                      levels in prop::collection::vec((prop::collection::vec(0u64..8, 0..4), prop::collection::vec((0u64..8, 0u64..3), 0..5)), 1..3)) {
        let (core, dir) = fresh_core();
        let header = Header::hyperbee(None).encode();
        core.append(&[&header]).expect("append");
        // Half random bytes, half well-formed nodes with arbitrary (often cyclic or dangling) pointers.
        for b in &blocks {
            core.append(&[b]).expect("bee");
            let index = YoloIndex { levels: levels.iter().map(|(keys, children)| Level { keys: keys.clone(), children: children.clone() }).collect() };
            let node = Node { index: index.encode(), key: b.clone(), value: Some(vec![1]) }.encode();
            core.append(&[&node]).expect("bee");
        }
        let bee = Hyperbee::new(core);
        let _ = bee.get(b"x");
        let _ = bee.get(&blocks[0]);
        if let Ok(it) = bee.range(&RangeOptions::default()) {
            for e in it.take(1000) { let _ = e; }
        }
        if let Ok(it) = bee.range(&RangeOptions { reverse: true, gte: Some(vec![0]), ..Default::default() }) {
            for e in it.take(1000) { let _ = e; }
        }
        let _ = bee.history(&Default::default());
        let _ = bee.put(b"x", Some(b"y"));
        let _ = bee.del(&blocks[0]);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Writers on two threads (a batch and single puts) are serialised by the write lock: every key lands.
#[test]
fn concurrent_writers_serialise() {
    let (core, dir) = fresh_core();
    let bee = Hyperbee::new(core);
    std::thread::scope(|s| {
        let a = bee.clone();
        s.spawn(move || {
            for round in 0..5u8 {
                let mut b = a.batch().expect("batch");
                for i in 0..20u8 {
                    b.put(&[b'a', round, i], Some(b"x")).expect("put");
                }
                b.flush().expect("flush");
            }
        });
        let c = bee.sub(b"sub");
        s.spawn(move || {
            for i in 0..100u8 {
                c.put(&[b'b', i], Some(b"y")).expect("put");
            }
        });
    });
    let all = bee.range_vec(&RangeOptions::default()).expect("range");
    assert_eq!(all.len(), 200);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(
        bee.sub(b"sub")
            .range_vec(&RangeOptions::default())
            .expect("range")
            .len(),
        100
    );
    let _ = std::fs::remove_dir_all(dir);
}

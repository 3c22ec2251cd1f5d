//! The minimal `Autobase` in one process: bases over their own corestores exchange writer cores by copying
//! blocks (verified proofs) and must converge to the same view and system state.

use holepunch_cores::autobase::base::{sync_writers, Autobase, AutobaseError, AutobaseOptions};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::{Checkout, Node, OplogMessage, OPLOG_VERSION};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::RangeOptions;

type Base = Autobase<Kv>;

fn store(dir: &tempfile::TempDir, name: &str, seed: u8) -> Corestore {
    Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap()
}

fn put(b: &mut Base, k: &str, v: &str) {
    let op = KvOp::Put {
        key: k.into(),
        value: v.into(),
    };
    b.append(Some(&op.to_json())).unwrap();
}

fn list(b: &Base) -> Vec<(String, String)> {
    b.view()
        .range_vec(&RangeOptions::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                String::from_utf8(e.key).unwrap(),
                String::from_utf8(e.value.unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

/// Every base gets every other's writer cores, then updates; twice, so writers added by the first round's
/// apply are copied too.
fn sync(bases: &mut [&mut Base]) {
    for _ in 0..3 {
        for i in 0..bases.len() {
            for j in 0..bases.len() {
                if i != j {
                    sync_writers(bases[i], bases[j]).unwrap();
                }
            }
        }
        for b in bases.iter_mut() {
            b.update().unwrap();
        }
    }
}

fn state(b: &Base) -> (u64, Vec<Checkout>, Vec<Checkout>, Vec<[u8; 32]>) {
    let s = b.system();
    let mut heads = s.heads.clone();
    heads.sort_by_key(|h| h.key);
    (
        s.members,
        s.indexers.clone(),
        heads,
        s.pending_indexers.clone(),
    )
}

fn open(st: Corestore, bootstrap: Option<[u8; 32]>) -> Base {
    Autobase::open(st, Kv, AutobaseOptions { bootstrap }).unwrap()
}

#[test]
fn one_writer_applies_its_own_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    assert_eq!(a.key(), a.local_key());
    assert!(a.writable().unwrap());
    put(&mut a, "x", "1");
    put(&mut a, "y", "2");
    a.append(Some(&KvOp::Del { key: "x".into() }.to_json()))
        .unwrap();
    put(&mut a, "z", "3");
    assert_eq!(
        list(&a),
        vec![("y".into(), "2".into()), ("z".into(), "3".into())]
    );
    let s = a.system();
    assert_eq!(s.members, 1);
    assert_eq!(
        s.indexers,
        vec![Checkout {
            key: a.key(),
            length: 4
        }]
    );
    assert_eq!(s.heads, s.indexers);
    // a single indexer indexes everything at once
    assert!(a.state().updates().is_empty());
    assert_eq!(a.state().indexed_length(), s.core_length());
    assert_eq!(a.local().length(), 4);
    assert_eq!(s.views.len(), 1);
    // a reader that joins gets the same
    let mut r = open(store(&dir, "r", 2), Some(a.key()));
    assert!(!r.writable().unwrap());
    assert!(matches!(
        r.append(Some(b"{}")),
        Err(AutobaseError::NotWritable)
    ));
    sync(&mut [&mut a, &mut r]);
    assert_eq!(list(&r), list(&a));
    assert_eq!(state(&r), state(&a));
}

#[test]
fn two_indexers_write_concurrently_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    let mut b = open(store(&dir, "b", 2), Some(a.key()));
    let add = KvOp::AddWriter {
        key: b.local_key(),
        indexer: true,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut b]);
    assert!(b.writable().unwrap());
    assert_eq!(b.system().indexers.len(), 2, "{:?}", b.system().info());
    for i in 0..4 {
        put(&mut a, &format!("a{i}"), "from a");
        put(&mut b, &format!("b{i}"), "from b");
        put(&mut a, "shared", &format!("a{i}"));
        put(&mut b, "shared", &format!("b{i}"));
        sync(&mut [&mut a, &mut b]);
        a.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        b.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        assert_eq!(list(&a), list(&b), "round {i}");
        assert_eq!(state(&a), state(&b), "round {i}");
    }
    let l = list(&a);
    assert_eq!(l.len(), 9);
    assert!(a.state().indexed_length() > 0);
    assert_eq!(a.state().indexed_length(), b.state().indexed_length());
}

#[test]
fn a_removed_writer_is_not_applied_after_its_removal() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    let mut c = open(store(&dir, "c", 3), Some(a.key()));
    let add = KvOp::AddWriter {
        key: c.local_key(),
        indexer: false,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut c]);
    assert!(c.writable().unwrap());
    put(&mut c, "c0", "from c");
    sync(&mut [&mut a, &mut c]);
    assert_eq!(list(&a), vec![("c0".into(), "from c".into())]);
    let rm = KvOp::RemoveWriter { key: c.local_key() };
    a.append(Some(&rm.to_json())).unwrap();
    sync(&mut [&mut a, &mut c]);
    assert!(!c.writable().unwrap());
    assert!(c.append(Some(b"{}")).is_err());
    // a removed writer's block written anyway (by hand, linking the current heads) is not applied
    let heads = c.linearizer().heads();
    let msg = OplogMessage {
        version: OPLOG_VERSION,
        node: Node {
            heads: heads
                .iter()
                .map(|h| Checkout {
                    key: h.key,
                    length: h.length,
                })
                .collect(),
            batch: 1,
            value: Some(
                KvOp::Put {
                    key: "c1".into(),
                    value: "late".into(),
                }
                .to_json(),
            ),
        },
        ..OplogMessage::default()
    };
    c.local().append(&[&msg.to_bytes().unwrap()]).unwrap();
    sync(&mut [&mut a, &mut c]);
    put(&mut a, "a0", "after");
    sync(&mut [&mut a, &mut c]);
    assert_eq!(
        list(&a),
        vec![
            ("a0".into(), "after".into()),
            ("c0".into(), "from c".into())
        ]
    );
    assert_eq!(list(&c), list(&a));
    assert_eq!(state(&c), state(&a));
    assert_eq!(a.system().members, 1);
    let m = a.system().get_member(&c.local_key()).unwrap().unwrap();
    assert!(m.is_removed);
}

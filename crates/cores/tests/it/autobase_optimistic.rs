//! Optimistic appends (JS autobase 7.28.1 `append(value, { optimistic: true })`): a writer that is not a
//! member writes a one-node batch with the optimistic flag; bases whose apply takes optimistic nodes apply it,
//! and keep it only if the apply acks (or adds) its writer. Writer cores travel by copying (`sync_writers`)
//! and the non-member's core is found through its wakeup entry, as over the network.

#![allow(clippy::unwrap_used)]

use holepunch_cores::autobase::base::{
    sync_writers, ApplyNode, Autobase, AutobaseError, AutobaseOptions, Handlers, Host, ViewStore,
};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::{Checkout, Member, Node, OplogMessage, OPLOG_VERSION};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::Hyperbee;

use super::autobase_base::list;

fn store(dir: &tempfile::TempDir, name: &str, seed: u8) -> Corestore {
    Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap()
}

fn open<H: Handlers>(st: Corestore, h: H, bootstrap: Option<[u8; 32]>) -> Autobase<H> {
    Autobase::open(
        st,
        h,
        AutobaseOptions {
            bootstrap,
            ..Default::default()
        },
    )
    .unwrap()
}

fn put_json(k: &str, v: &str) -> Vec<u8> {
    KvOp::Put {
        key: k.into(),
        value: v.into(),
    }
    .to_json()
}

/// Every base gets every other's writer cores and wakeup entries, then updates; three rounds.
fn sync<H: Handlers>(bases: &mut [&mut Autobase<H>]) {
    for _ in 0..3 {
        for i in 0..bases.len() {
            for j in 0..bases.len() {
                if i != j {
                    sync_writers(bases[i], bases[j]).unwrap();
                    for (k, l) in bases[i].wakeup() {
                        bases[j].hint_writer(k, l).unwrap();
                    }
                }
            }
        }
        for b in bases.iter_mut() {
            b.update().unwrap();
        }
    }
}

fn sys_state<H: Handlers>(b: &Autobase<H>) -> (u64, Vec<Checkout>, Vec<Checkout>, u64) {
    let s = b.system();
    let mut heads = s.heads.clone();
    heads.sort_by_key(|h| h.key);
    (
        s.members,
        s.indexers.clone(),
        heads,
        b.system().core_length(),
    )
}

#[test]
fn an_acked_optimistic_put_is_applied_on_every_peer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), Kv, None);
    let mut o = open(store(&dir, "o", 2), Kv, Some(a.key()));
    a.append(Some(&put_json("a0", "x"))).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert!(!o.writable().unwrap());
    assert!(matches!(
        o.append(Some(&put_json("no", "no"))),
        Err(AutobaseError::NotWritable)
    ));
    o.append_optimistic(&put_json("o0", "hi")).unwrap();
    // the writer applies its own optimistic node at once
    assert_eq!(
        list(&o),
        vec![("a0".into(), "x".into()), ("o0".into(), "hi".into())]
    );
    let block = OplogMessage::decode(&o.local().get(0).unwrap().unwrap()).unwrap();
    assert!(block.optimistic);
    assert_eq!(block.node.batch, 1);
    sync(&mut [&mut a, &mut o]);
    assert_eq!(list(&a), list(&o));
    assert_eq!(list(&a).len(), 2);
    // acked, not added: a member record marked removed at the node's length, still not writable
    let m = a.system().get_member(&o.local_key()).unwrap();
    assert_eq!(
        m,
        Some(Member {
            is_indexer: false,
            is_removed: true,
            length: 1
        })
    );
    assert!(!o.writable().unwrap());
    // the base goes on over it, and a second optimistic put is acked again
    a.append(Some(&put_json("a1", "y"))).unwrap();
    o.append_optimistic(&put_json("o1", "again")).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert_eq!(list(&a).len(), 4);
    assert_eq!(list(&a), list(&o));
    assert_eq!(sys_state(&a), sys_state(&o));
    assert_eq!(a.state().indexed_length(), o.state().indexed_length());
    assert_eq!(
        a.system()
            .get_member(&o.local_key())
            .unwrap()
            .unwrap()
            .length,
        2
    );
    // added as a writer later, its plain appends are applied as any member's
    let add = KvOp::AddWriter {
        key: o.local_key(),
        indexer: false,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert!(o.writable().unwrap());
    o.append(Some(&put_json("o2", "plain"))).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert_eq!(list(&a).len(), 5);
    assert_eq!(list(&a), list(&o));
}

#[test]
fn an_optimistic_node_the_apply_does_not_ack_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), Kv, None);
    let mut o = open(store(&dir, "o", 2), Kv, Some(a.key()));
    a.append(Some(&put_json("a0", "x"))).unwrap();
    sync(&mut [&mut a, &mut o]);
    // the kv apply acks only optimistic puts: a non-member adding itself is not applied
    let add_self = KvOp::AddWriter {
        key: o.local_key(),
        indexer: true,
    };
    o.append_optimistic(&add_self.to_json()).unwrap();
    o.append_optimistic(&KvOp::Del { key: "a0".into() }.to_json())
        .unwrap();
    sync(&mut [&mut a, &mut o]);
    for b in [&a, &o] {
        assert_eq!(list(b), vec![("a0".into(), "x".into())]);
        assert_eq!(b.system().get_member(&o.local_key()).unwrap(), None);
        assert_eq!(b.system().members, 1);
        assert_eq!(b.system().indexers.len(), 1);
    }
    assert_eq!(sys_state(&a), sys_state(&o));
    assert!(!o.writable().unwrap());
    // the base goes on, and a later put of the same writer is kept
    a.append(Some(&put_json("a1", "y"))).unwrap();
    // the dropped nodes stay in the DAG (not applied, never indexed into the view): the next block names
    // the last one as a head, as JS's does once it has read them
    let last = a.local().get(a.local().length() - 1).unwrap().unwrap();
    let last = OplogMessage::decode(&last).unwrap();
    assert!(last.node.heads.contains(&Checkout {
        key: o.local_key(),
        length: 2
    }));
    o.append_optimistic(&put_json("o0", "kept")).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert_eq!(list(&a).len(), 3);
    assert_eq!(list(&a), list(&o));
}

/// Kv without optimistic applies (JS without `optimistic: true`), or one whose apply fails on them.
struct Strict {
    optimistic: bool,
}

impl Handlers for Strict {
    type View = Hyperbee;

    fn open(&mut self, store: &mut ViewStore<'_>) -> Result<Hyperbee, AutobaseError> {
        Kv.open(store)
    }

    fn apply(
        &mut self,
        nodes: &[ApplyNode],
        view: &Hyperbee,
        host: &mut Host<'_>,
    ) -> Result<(), AutobaseError> {
        Kv.apply(nodes, view, host)?;
        if nodes.iter().any(|n| n.optimistic) {
            // written and acked, then refused: all of it is undone
            return Err(AutobaseError::Apply("no optimistic nodes here".into()));
        }
        Ok(())
    }

    fn optimistic(&self) -> bool {
        self.optimistic
    }
}

#[test]
fn an_optimistic_node_is_skipped_without_an_optimistic_apply_or_when_it_fails() {
    for optimistic in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(store(&dir, "a", 1), Strict { optimistic }, None);
        let mut o = open(store(&dir, "o", 2), Strict { optimistic }, Some(a.key()));
        a.append(Some(&put_json("a0", "x"))).unwrap();
        sync(&mut [&mut a, &mut o]);
        let view_len = a.view().core().length();
        o.append_optimistic(&put_json("o0", "no")).unwrap();
        sync(&mut [&mut a, &mut o]);
        for b in [&a, &o] {
            assert_eq!(list(b), vec![("a0".into(), "x".into())]);
            assert_eq!(b.system().get_member(&o.local_key()).unwrap(), None);
            assert_eq!(b.view().core().length(), view_len);
        }
        a.append(Some(&put_json("a1", "y"))).unwrap();
        sync(&mut [&mut a, &mut o]);
        assert_eq!(list(&a), list(&o));
        assert_eq!(list(&a).len(), 2);
        assert_eq!(sys_state(&a), sys_state(&o));
    }
}

fn raw_block(heads: Vec<Checkout>, batch: u64, value: &[u8]) -> Vec<u8> {
    OplogMessage {
        version: OPLOG_VERSION,
        node: Node {
            heads,
            batch,
            value: Some(value.to_vec()),
        },
        optimistic: true,
        ..OplogMessage::default()
    }
    .to_bytes()
    .unwrap()
}

#[test]
fn hostile_optimistic_blocks_are_refused_without_touching_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), Kv, None);
    a.append(Some(&put_json("a0", "x"))).unwrap();
    let a_head = Checkout {
        key: a.key(),
        length: 1,
    };
    // an optimistic batch of two: JS applies optimistically only a batch of one, so both are skipped
    let mut o = open(store(&dir, "o", 2), Kv, Some(a.key()));
    sync(&mut [&mut a, &mut o]);
    let b0 = raw_block(vec![a_head], 2, &put_json("batch0", "no"));
    let b1 = raw_block(
        vec![Checkout {
            key: o.local_key(),
            length: 1,
        }],
        1,
        &put_json("batch1", "no"),
    );
    o.local().append(&[&b0, &b1]).unwrap();
    // an optimistic block naming a head that does not exist: its writer waits, nothing of it applied
    let mut g = open(store(&dir, "g", 3), Kv, Some(a.key()));
    sync(&mut [&mut a, &mut g]);
    let ghost = raw_block(
        vec![Checkout {
            key: [7; 32],
            length: 3,
        }],
        1,
        &put_json("ghost", "no"),
    );
    g.local().append(&[&ghost]).unwrap();
    // an optimistic block naming a length of its own writer it does not have
    let mut s = open(store(&dir, "s", 4), Kv, Some(a.key()));
    sync(&mut [&mut a, &mut s]);
    let own = raw_block(
        vec![Checkout {
            key: s.local_key(),
            length: 5,
        }],
        1,
        &put_json("self", "no"),
    );
    s.local().append(&[&own, b"\x07garbage"]).unwrap();
    for _ in 0..2 {
        sync(&mut [&mut a, &mut o]);
        sync(&mut [&mut a, &mut g]);
        sync(&mut [&mut a, &mut s]);
    }
    a.append(Some(&put_json("a1", "y"))).unwrap();
    sync(&mut [&mut a, &mut o]);
    assert_eq!(
        list(&a),
        vec![("a0".into(), "x".into()), ("a1".into(), "y".into())]
    );
    assert_eq!(list(&a), list(&o));
    for k in [o.local_key(), g.local_key(), s.local_key()] {
        assert_eq!(a.system().get_member(&k).unwrap(), None);
    }
    assert_eq!(a.system().members, 1);
}

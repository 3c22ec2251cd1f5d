//! The minimal `Autobase` in one process: bases over their own corestores exchange writer cores by copying
//! blocks (verified proofs) and must converge to the same view and system state.

#![allow(clippy::unwrap_used)]

use holepunch_cores::autobase::base::{
    copy_core, sync_writers, Autobase, AutobaseError, AutobaseOptions,
};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::{Checkout, Node, OplogMessage, OPLOG_VERSION};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::RangeOptions;

type Base = Autobase<Kv>;

fn store(dir: &tempfile::TempDir, name: &str, seed: u8) -> Corestore {
    Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap()
}

pub(crate) fn put(b: &mut Base, k: &str, v: &str) {
    let op = KvOp::Put {
        key: k.into(),
        value: v.into(),
    };
    b.append(Some(&op.to_json())).unwrap();
}

/// The view's entries as utf-8 pairs, for any base whose view is one hyperbee.
pub(crate) fn list<
    H: holepunch_cores::autobase::base::Handlers<View = holepunch_cores::hyperbee::Hyperbee>,
>(
    b: &Autobase<H>,
) -> Vec<(String, String)> {
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
pub(crate) fn sync(bases: &mut [&mut Base]) {
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
    Autobase::open(
        st,
        Kv,
        AutobaseOptions {
            bootstrap,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A creates the base, B joins it and A adds B as an indexer; both have synced, B is writable.
fn two_indexers(dir: &tempfile::TempDir) -> (Base, Base) {
    let mut a = open(store(dir, "a", 1), None);
    let mut b = open(store(dir, "b", 2), Some(a.key()));
    let add = KvOp::AddWriter {
        key: b.local_key(),
        indexer: true,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut b]);
    assert!(b.writable().unwrap());
    (a, b)
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
    let (mut a, mut b) = two_indexers(&dir);
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

#[test]
fn a_base_reopens_with_an_unindexed_tail_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = two_indexers(&dir);
    put(&mut a, "a0", "x");
    put(&mut b, "b0", "y");
    sync(&mut [&mut a, &mut b]);
    put(&mut a, "a1", "tail");
    put(&mut b, "b1", "tail");
    sync(&mut [&mut a, &mut b]);
    assert!(
        !a.state().updates().is_empty(),
        "a has an un-indexed tail when it closes"
    );
    let (view, st, sys_len, indexed) = (
        list(&a),
        state(&a),
        a.system().core_length(),
        a.state().indexed_length(),
    );
    let key = a.key();
    drop(a);
    let mut a = open(store(&dir, "a", 1), None);
    assert_eq!(a.key(), key);
    a.update().unwrap();
    assert_eq!(list(&a), view);
    assert_eq!(state(&a), st);
    assert_eq!(a.system().core_length(), sys_len);
    assert_eq!(a.state().indexed_length(), indexed);
    put(&mut a, "a2", "after reopen");
    sync(&mut [&mut a, &mut b]);
    b.append(None).unwrap();
    a.append(None).unwrap();
    sync(&mut [&mut a, &mut b]);
    assert_eq!(list(&a), list(&b));
    assert_eq!(state(&a), state(&b));
    assert_eq!(list(&a).len(), 5);
}

#[test]
fn a_damaged_boot_record_only_costs_a_full_reapply() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    for i in 0..5 {
        put(&mut a, &format!("k{i}"), "v");
    }
    let (view, st) = (list(&a), state(&a));
    drop(a);
    let st_a = store(&dir, "a", 1);
    let local = st_a.get("local").unwrap();
    local
        .set_user_data("autobase/boot", Some(b"\xff\xff garbage"))
        .unwrap();
    local
        .set_user_data("autobase/updates", Some(b"\x05\x01"))
        .unwrap();
    drop(local);
    let mut a = open(st_a, None);
    a.update().unwrap();
    assert_eq!(list(&a), view);
    assert_eq!(state(&a), st);
    put(&mut a, "k5", "v");
    assert_eq!(list(&a).len(), 6);
}

#[test]
fn hostile_writer_blocks_do_not_corrupt_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    let mut w = open(store(&dir, "w", 4), Some(a.key()));
    let add = KvOp::AddWriter {
        key: w.local_key(),
        indexer: false,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut w]);
    put(&mut w, "w0", "fine");
    sync(&mut [&mut a, &mut w]);
    // a block naming a head that does not exist: the writer waits for it (nothing of it is applied), the
    // others go on
    let ghost = Node {
        heads: vec![Checkout {
            key: [7; 32],
            length: 3,
        }],
        batch: 1,
        value: Some(b"{\"op\":\"put\",\"key\":\"ghost\",\"value\":\"x\"}".to_vec()),
    };
    let msg = OplogMessage {
        version: OPLOG_VERSION,
        node: ghost,
        ..OplogMessage::default()
    };
    w.local().append(&[&msg.to_bytes().unwrap()]).unwrap();
    sync(&mut [&mut a, &mut w]);
    put(&mut a, "a0", "goes on");
    sync(&mut [&mut a, &mut w]);
    assert_eq!(
        list(&a),
        vec![
            ("a0".into(), "goes on".into()),
            ("w0".into(), "fine".into())
        ]
    );
    // bytes that are no writer block at all: the writer is frozen, nothing else changes
    let mut v = open(store(&dir, "v", 5), Some(a.key()));
    let add = KvOp::AddWriter {
        key: v.local_key(),
        indexer: false,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut v]);
    v.local().append(&[b"\x07garbage"]).unwrap();
    put(&mut a, "a1", "still");
    sync(&mut [&mut a, &mut v]);
    assert_eq!(list(&a).len(), 3);
    // values that are not ops are skipped
    put(&mut a, "a2", "x");
    a.append(Some(b"not json")).unwrap();
    a.append(Some(b"{\"op\":\"add-writer\",\"key\":\"zz\"}"))
        .unwrap();
    a.append(Some(&KvOp::RemoveWriter { key: a.key() }.to_json()))
        .unwrap();
    assert_eq!(list(&a).len(), 4);
    assert_eq!(a.system().indexers.len(), 1, "the last indexer stays");
}

/// Kv, but its apply fails on the value `"boom"` while `fail` is set.
struct Fragile {
    fail: bool,
}

impl holepunch_cores::autobase::base::Handlers for Fragile {
    type View = holepunch_cores::hyperbee::Hyperbee;

    fn open(
        &mut self,
        store: &mut holepunch_cores::autobase::base::ViewStore<'_>,
    ) -> Result<Self::View, AutobaseError> {
        Kv.open(store)
    }

    fn apply(
        &mut self,
        nodes: &[holepunch_cores::autobase::base::ApplyNode],
        view: &Self::View,
        host: &mut holepunch_cores::autobase::base::Host<'_>,
    ) -> Result<(), AutobaseError> {
        for n in nodes {
            if self.fail
                && KvOp::from_json(&n.value).is_some_and(|op| {
                    op == KvOp::Put {
                        key: "k".into(),
                        value: "boom".into(),
                    }
                })
            {
                return Err(AutobaseError::Apply("boom".into()));
            }
        }
        Kv.apply(nodes, view, host)
    }
}

#[test]
fn a_failed_apply_stops_the_base_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir, "a", 1);
    let mut a = Autobase::open(st, Fragile { fail: true }, AutobaseOptions::default()).unwrap();
    let op = |v: &str| {
        KvOp::Put {
            key: "k".into(),
            value: v.into(),
        }
        .to_json()
    };
    a.append(Some(&op("fine"))).unwrap();
    assert!(matches!(
        a.append(Some(&op("boom"))),
        Err(AutobaseError::Apply(_))
    ));
    assert!(matches!(
        a.append(Some(&op("more"))),
        Err(AutobaseError::Failed)
    ));
    assert!(matches!(a.update(), Err(AutobaseError::Failed)));
    drop(a);
    // reopened with an apply that accepts it, the base re-applies from the indexed length: the block that
    // made the apply fail was never written (its node was not flushed), so the view holds what came before
    let mut a = Autobase::open(
        store(&dir, "a", 1),
        Fragile { fail: false },
        AutobaseOptions::default(),
    )
    .unwrap();
    a.update().unwrap();
    assert_eq!(
        a.view().get(b"k").unwrap().and_then(|e| e.value),
        Some(b"fine".to_vec())
    );
    a.append(Some(&op("again"))).unwrap();
    assert_eq!(
        a.view().get(b"k").unwrap().and_then(|e| e.value),
        Some(b"again".to_vec())
    );
    assert_eq!(a.local().length(), 2);
}

#[test]
fn a_view_shorter_than_the_boot_record_says_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    for i in 0..5 {
        put(&mut a, &format!("k{i}"), "v");
    }
    let (view, st) = (list(&a), state(&a));
    let view_core = a.view().core().clone();
    drop(a);
    // what a power loss after the boot record could leave if the view had not been synced: a shorter view
    view_core.truncate(2).unwrap();
    drop(view_core);
    let mut a = open(store(&dir, "a", 1), None);
    a.update().unwrap();
    assert_eq!(list(&a), view);
    assert_eq!(state(&a), st);
}

#[test]
fn batches_from_two_writers_link_each_other_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = two_indexers(&dir);
    for round in 0..3 {
        for (w, base) in [&mut a, &mut b].into_iter().enumerate() {
            let values: Vec<Vec<u8>> = (0..2)
                .map(|i| {
                    KvOp::Put {
                        key: format!("{w}/{round}/{i}"),
                        value: "v".into(),
                    }
                    .to_json()
                })
                .collect();
            let refs: Vec<Option<&[u8]>> = values.iter().map(|v| Some(&v[..])).collect();
            base.append_batch(&refs).unwrap();
        }
        sync(&mut [&mut a, &mut b]);
        assert_eq!(list(&a), list(&b), "round {round}");
    }
    assert_eq!(list(&a).len(), 12);
}

#[test]
fn views_move_to_the_indexers_keys_and_are_appended_unsigned() {
    use holepunch_cores::autobase::keys::{
        bootstrap_system_key, view_key, IndexerSigner, ViewKeyInputs,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None);
    // before anything is applied: the signer-less bootstrap system core every peer derives
    assert_eq!(a.system().db().core().key(), bootstrap_system_key(&a.key()));
    put(&mut a, "x", "1");
    // the first batch made the creator the indexer: the system and the view moved to one-signer cores, with
    // what was indexed as their prologue
    assert_eq!(a.state().stats().migrations, 1);
    let signer = IndexerSigner::from_manifest(&a.local().manifest().unwrap()).unwrap();
    let m = a.system().db().core().manifest().unwrap();
    assert_eq!(m.signers.len(), 1);
    assert_eq!(m.signers[0].public_key, signer.public_key);
    assert_eq!(m.quorum, 1);
    assert!(m.allow_patch);
    let inputs = ViewKeyInputs {
        bootstrap: a.key(),
        encryption_key: None,
        indexers: &[signer],
        entropy: None,
        manifest_version: 1,
    };
    let view_prologue = a.view().core().manifest().unwrap().prologue;
    assert_eq!(view_prologue.map(|p| p.length), Some(2)); // the bee header and the put
    assert_eq!(
        a.view().core().key(),
        view_key(&inputs, "view", view_prologue)
    );
    assert_eq!(a.system().views[0].key, a.view().core().key());
    // appends after the move carry no signature: the signed length stays at the prologue
    put(&mut a, "y", "2");
    let sys = a.system().db().core().clone();
    assert!(sys.signature().is_none());
    assert!(sys.signed_length() <= a.state().indexed_length());
    assert!(!sys.writable());
    // a reopen finds the moved cores again (the boot record names the system core)
    let key = sys.key();
    let view_key_now = a.view().core().key();
    let expected = list(&a);
    drop(sys);
    drop(a);
    let mut a = open(store(&dir, "a", 1), None);
    assert_eq!(a.system().db().core().key(), key);
    assert_eq!(a.view().core().key(), view_key_now);
    assert_eq!(list(&a), expected);
    put(&mut a, "z", "3");
    assert_eq!(list(&a).len(), 3);
    // a second indexer moves them again, to two-signer cores
    let mut b = open(store(&dir, "b", 2), Some(a.key()));
    a.append(Some(
        &KvOp::AddWriter {
            key: b.local_key(),
            indexer: true,
        }
        .to_json(),
    ))
    .unwrap();
    sync(&mut [&mut a, &mut b]);
    b.ack().unwrap();
    a.ack().unwrap();
    sync(&mut [&mut a, &mut b]);
    assert_eq!(a.system().indexers.len(), 2);
    for base in [&a, &b] {
        let m = base.system().db().core().manifest().unwrap();
        assert_eq!(m.signers.len(), 2);
        assert_eq!(m.quorum, 2);
        assert!(m.prologue.is_some());
    }
    assert_eq!(a.system().db().core().key(), b.system().db().core().key());
    assert_eq!(a.view().core().key(), b.view().core().key());
    assert_eq!(list(&a), list(&b));
}

/// Rounds of puts and acks of both indexers until both have signed checkpoints and one multi-signature was
/// assembled.
fn sign_rounds(a: &mut Base, b: &mut Base) {
    for i in 0..10 {
        put(a, &format!("k{i}"), "v");
        sync(&mut [&mut *a, &mut *b]);
        a.append(None).unwrap();
        sync(&mut [&mut *a, &mut *b]);
        b.append(None).unwrap();
        sync(&mut [&mut *a, &mut *b]);
        if a.state().stats().signed > 0 && b.state().stats().signed > 0 {
            return;
        }
    }
    panic!("no multi-signature was assembled");
}

#[test]
fn indexers_checkpoints_assemble_into_signed_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = two_indexers(&dir);
    sign_rounds(&mut a, &mut b);
    for base in [&a, &b] {
        let sys = base.system().db().core();
        assert!(sys.signed_length() > 0);
        assert!(sys.signed_length() <= base.state().indexed_length());
        assert!(base.view().core().signed_length() > 0);
        assert_eq!(base.state().stats().bad_signatures, 0);
    }
    assert_eq!(
        a.system().db().core().signed_length(),
        b.system().db().core().signed_length()
    );
}

#[test]
fn a_bad_checkpoint_signature_is_refused_without_touching_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = two_indexers(&dir);
    sign_rounds(&mut a, &mut b);
    let mut signed = (0, 0);
    // b's next ack carries fresh signatures; b's core then gets that block again with every signature
    // flipped (b is the hostile indexer), before a has seen it
    let mut tampered = false;
    for i in 0..10 {
        put(&mut a, &format!("t{i}"), "v");
        sync(&mut [&mut a, &mut b]);
        a.append(None).unwrap();
        // only a -> b, so b's ack below is new to a
        sync_writers(&a, &b).unwrap();
        b.update().unwrap();
        b.append(None).unwrap();
        let local = b.local().clone();
        let len = local.length();
        let mut msg = OplogMessage::decode(&local.get(len - 1).unwrap().unwrap()).unwrap();
        let Some(chk) = msg.checkpoint.as_mut() else {
            continue;
        };
        let mut fresh = false;
        let slots = chk.system.iter_mut().chain(chk.user.iter_mut().flatten());
        for c in slots {
            if let Some(s) = c.checkpoint.as_mut() {
                s.signature[0] ^= 1;
                fresh = true;
            }
        }
        if !fresh {
            sync(&mut [&mut a, &mut b]);
            continue;
        }
        // the same writer core (b's key pair) with the flipped block in its place, as a's replica gets it
        let fake = store(&dir, "fake", 2).get("local").unwrap();
        assert_eq!(fake.key(), local.key());
        for i in 0..len - 1 {
            fake.append(&[&local.get(i).unwrap().unwrap()]).unwrap();
        }
        fake.append(&[&msg.to_bytes().unwrap()]).unwrap();
        signed = (
            a.system().db().core().signed_length(),
            a.view().core().signed_length(),
        );
        copy_core(&fake, a.store()).unwrap();
        tampered = true;
        break;
    }
    assert!(tampered, "b wrote a block with fresh signatures");
    a.update().unwrap();
    a.append(None).unwrap();
    a.update().unwrap();
    assert!(
        a.state().stats().bad_signatures > 0,
        "a tried b's signatures"
    );
    // nothing was committed from them, and the view is whole and the same as b's
    assert_eq!(
        (
            a.system().db().core().signed_length(),
            a.view().core().signed_length()
        ),
        signed
    );
    assert_eq!(list(&a), list(&b));
    assert!(list(&a).iter().any(|(k, _)| k == "t0"));
}

#[test]
fn a_reopened_indexer_writes_the_same_checkpoints_as_one_that_was_not() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, reopen: bool| -> Vec<Vec<u8>> {
        let mut a = open(store(&dir, name, 1), None);
        put(&mut a, "x", "1");
        put(&mut a, "y", "2");
        if reopen {
            drop(a);
            a = open(store(&dir, name, 1), None);
        }
        put(&mut a, "z", "3");
        a.append(None).unwrap();
        put(&mut a, "w", "4");
        (0..a.local().length())
            .map(|i| a.local().get(i).unwrap().unwrap())
            .collect()
    };
    let straight = run("straight", false);
    let reopened = run("reopened", true);
    // the blocks after the reopen point at the digest and signatures written before it, as JS's do
    assert_eq!(reopened, straight);
    let last = OplogMessage::decode(straight.last().unwrap()).unwrap();
    assert!(last.digest.unwrap().pointer > 0);
}

//! An encrypted base (JS `encryptionKey`) in one process: every writer, system and view block is stored
//! encrypted, bases with the key converge as plain ones do (through an indexer change, which moves the views
//! to the indexers' cores by copying encrypted blocks), a reopen needs no key, and a wrong key is an error
//! that leaves the store as it was.

#![allow(clippy::unwrap_used)]

use holepunch_cores::autobase::base::{sync_writers, Autobase, AutobaseError, AutobaseOptions};
use holepunch_cores::autobase::encryption::view_encryption;
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::OplogMessage;
use holepunch_cores::corestore::Corestore;

type Base = Autobase<Kv>;

use super::autobase_base::{list, put, sync};

const KEY: [u8; 32] = [0x5a; 32];

fn store(dir: &tempfile::TempDir, name: &str, seed: u8) -> Corestore {
    Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap()
}

fn open(
    st: Corestore,
    bootstrap: Option<[u8; 32]>,
    encryption_key: Option<[u8; 32]>,
) -> Result<Base, AutobaseError> {
    Autobase::open(
        st,
        Kv,
        AutobaseOptions {
            bootstrap,
            encryption_key,
        },
    )
}

#[test]
fn an_encrypted_base_converges_stores_ciphertext_and_reopens_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None, Some(KEY)).unwrap();
    assert_eq!(a.encryption_key(), Some(&KEY));
    let mut b = open(store(&dir, "b", 2), Some(a.key()), Some(KEY)).unwrap();
    put(&mut a, "x", "1");
    let add = KvOp::AddWriter {
        key: b.local_key(),
        indexer: true,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut b]);
    assert!(b.writable().unwrap());
    put(&mut b, "y", "2");
    put(&mut a, "z", "3");
    sync(&mut [&mut a, &mut b]);
    let want: Vec<(String, String)> = [("x", "1"), ("y", "2"), ("z", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(list(&a), want);
    assert_eq!(list(&b), want);
    // the indexer change moved the views to the indexers' cores
    assert!(a.state().stats().migrations > 0);

    // stored blocks are ciphertext: a writer block read raw does not decode, read through the core it does
    {
        let local = a.local();
        assert!(local.encrypted());
        let raw = local.get_raw(0).unwrap().unwrap();
        let plain = local.get(0).unwrap().unwrap();
        assert!(OplogMessage::decode(&plain).is_ok());
        assert_eq!(raw.len(), plain.len() + 8);
        assert_ne!(&raw[8..], &plain[..]);
        // the system core is encrypted with the `_system` name key
        let sys = a.system().db().core().clone();
        assert!(sys.encrypted());
        let e = view_encryption(&a.key(), &KEY, "_system");
        for i in 0..sys.length() {
            let raw = sys.get_raw(i).unwrap().unwrap();
            assert_eq!(e.decrypt(i, &raw).unwrap(), sys.get(i).unwrap().unwrap());
        }
        let view = a.view().core().clone();
        assert!(view.encrypted());
        let e = view_encryption(&a.key(), &KEY, "view");
        let raw = view.get_raw(0).unwrap().unwrap();
        assert_eq!(e.decrypt(0, &raw).unwrap(), view.get(0).unwrap().unwrap());
    }

    // a reopen needs no key: the local writer keeps it
    let key = a.key();
    drop(a);
    let mut a = open(store(&dir, "a", 1), None, None).unwrap();
    assert_eq!(a.encryption_key(), Some(&KEY));
    a.update().unwrap();
    assert_eq!(list(&a), want);
    put(&mut a, "w", "4");
    sync(&mut [&mut a, &mut b]);
    assert_eq!(list(&a), list(&b));
    assert_eq!(list(&b).len(), 4);
    drop(a);
    let mut a = open(store(&dir, "a", 1), Some(key), Some(KEY)).unwrap();
    a.update().unwrap();
    assert_eq!(list(&a).len(), 4);
}

#[test]
fn a_wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None, Some(KEY)).unwrap();
    put(&mut a, "x", "1");
    put(&mut a, "y", "2");
    let key = a.key();
    drop(a);
    // another key than the one kept
    match open(store(&dir, "a", 1), None, Some([1; 32])) {
        Err(AutobaseError::WrongEncryptionKey(_)) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong key opened the base"),
    }
    let mut a = open(store(&dir, "a", 1), None, None).unwrap();
    assert_eq!(list(&a).len(), 2);

    // a reader with the wrong key: its update fails, its view stays empty, it never panics
    let mut r = open(store(&dir, "r", 2), Some(key), Some([1; 32])).unwrap();
    sync_writers(&a, &r).unwrap();
    match r.update() {
        Err(AutobaseError::WrongEncryptionKey(_)) => {}
        other => panic!("expected a wrong-key error, got {:?}", other.err()),
    }
    assert!(list(&r).is_empty());
    drop(r);
    // reopened, it says so at once
    match open(store(&dir, "r", 2), Some(key), None) {
        Err(AutobaseError::WrongEncryptionKey(_)) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong key opened the base"),
    }
    // a reader without a key cannot read it either, and one with the right key can
    let mut p = open(store(&dir, "p", 3), Some(key), None).unwrap();
    sync_writers(&a, &p).unwrap();
    let _ = p.update();
    assert!(list(&p).is_empty());
    let mut g = open(store(&dir, "g", 4), Some(key), Some(KEY)).unwrap();
    sync_writers(&a, &g).unwrap();
    g.update().unwrap();
    assert_eq!(list(&g), list(&a));
    put(&mut a, "z", "3");
    sync_writers(&a, &g).unwrap();
    g.update().unwrap();
    assert_eq!(list(&g).len(), 3);
}

/// Two Rust indexers of an encrypted base assemble each other's checkpoints into signed lengths.
#[test]
fn encrypted_indexers_sign_their_cores() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None, Some(KEY)).unwrap();
    let mut b = open(store(&dir, "b", 2), Some(a.key()), Some(KEY)).unwrap();
    let add = KvOp::AddWriter {
        key: b.local_key(),
        indexer: true,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut b]);
    for i in 0..10 {
        put(&mut a, &format!("k{i}"), "v");
        sync(&mut [&mut a, &mut b]);
        a.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        b.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        if a.state().stats().signed > 0 && b.state().stats().signed > 0 {
            break;
        }
    }
    for base in [&a, &b] {
        assert_eq!(base.state().stats().bad_signatures, 0);
        assert!(base.system().db().core().signed_length() > 0);
        assert!(base.view().core().signed_length() > 0);
    }
}

/// Two indexers writing concurrently: the apply undoes and reapplies (the system core's local fork moves
/// past 0 on at least one), and the system and view blocks are still stored byte for byte alike on both,
/// so each one's checkpoints verify on the other's trees and the signed lengths agree. Encrypted blocks
/// carry the core head's fork (0 for the system and views, as JS writes them) in their header, not the
/// apply's local fork: before, the undo made the two sides' ciphertexts differ from the undone block on.
#[test]
fn encrypted_indexers_agree_after_undoing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(store(&dir, "a", 1), None, Some(KEY)).unwrap();
    let mut b = open(store(&dir, "b", 2), Some(a.key()), Some(KEY)).unwrap();
    let add = KvOp::AddWriter {
        key: b.local_key(),
        indexer: true,
    };
    a.append(Some(&add.to_json())).unwrap();
    sync(&mut [&mut a, &mut b]);
    for i in 0..3 {
        // unsynced: each applies its own put first, and one of them reorders on the sync
        put(&mut a, &format!("a{i}"), "a");
        put(&mut b, &format!("b{i}"), "b");
        sync(&mut [&mut a, &mut b]);
    }
    // then acks in turn until both assembled a checkpoint (concurrent writes keep the tails unconfirmed)
    for _ in 0..10 {
        a.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        b.append(None).unwrap();
        sync(&mut [&mut a, &mut b]);
        if a.state().stats().signed > 0 && b.state().stats().signed > 0 {
            break;
        }
    }
    let cores = |x: &Base| [x.system().db().core().clone(), x.view().core().clone()];
    assert!(
        cores(&a).iter().chain(&cores(&b)).any(|c| c.fork() > 0),
        "no undo happened"
    );
    assert_eq!(list(&a), list(&b));
    for (ca, cb) in cores(&a).iter().zip(&cores(&b)) {
        assert_eq!(ca.length(), cb.length());
        for i in 0..ca.length() {
            assert_eq!(ca.get_raw(i).unwrap(), cb.get_raw(i).unwrap(), "block {i}");
        }
        assert!(ca.signed_length() > 0);
        assert_eq!(ca.signed_length(), cb.signed_length());
    }
    for base in [&a, &b] {
        assert_eq!(base.state().stats().bad_signatures, 0);
    }
}

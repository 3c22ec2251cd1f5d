//! The index checkpoint (`index` beside a native core's `log`): an open that replayed many bytes writes it, the
//! next opens load it and replay only what was appended after it, and a checkpoint the log no longer matches
//! (the log cut back, another core's file, a damaged file) is ignored: every reopen gives what a full replay
//! gives.

use std::path::Path;

use holepunch_cores::hypercore::messages::{Manifest, Signer};
use holepunch_cores::hypercore::multisig;
use holepunch_cores::hypercore::storage::Durability;
use holepunch_cores::hypercore::{caps, checkpoint, Hypercore};
use holepunch_wire::crypto::KeyPair;

use crate::crash_blocks::key_pair;

/// 64 KiB blocks: 80 of them (5 MiB of log) make an open write a checkpoint.
fn big(i: u64) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8; 64 << 10];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

fn append(core: &Hypercore, from: u64, n: u64) {
    for i in from..from + n {
        core.append(&[&big(i)]).expect("append");
    }
}

/// Length, tree hash, signature, byte offsets and which blocks are stored.
type State = (u64, [u8; 32], Option<Vec<u8>>, Vec<Option<u64>>, Vec<bool>);

/// The [`State`] of a freshly opened core (every stored block checked).
fn state(dir: &Path) -> State {
    let core = Hypercore::open(dir).expect("open");
    let len = core.length();
    let blocks = (0..len)
        .map(|i| match core.get(i).expect("get") {
            Some(b) => {
                assert_eq!(b, big(i), "block {i}");
                true
            }
            None => false,
        })
        .collect();
    let offsets = (0..=len).map(|i| core.byte_offset(i)).collect();
    (len, core.tree_hash(), core.signature(), offsets, blocks)
}

/// The state a full replay gives: the same core without its checkpoint.
fn replayed(dir: &Path) -> State {
    let copy = dir.with_extension("replay");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).expect("copy dir");
    for f in ["meta", "log"] {
        std::fs::copy(dir.join(f), copy.join(f)).expect("copy");
    }
    let s = state(&copy);
    let _ = std::fs::remove_dir_all(&copy);
    s
}

#[test]
fn a_checkpoint_is_written_used_and_extended_by_later_records() {
    let dir = testkit::scratch_dir("hc-checkpoint");
    let core = Hypercore::create(&dir, key_pair()).expect("create");
    core.set_durability(Durability::Process);
    append(&core, 0, 80);
    drop(core);
    assert!(!dir.join(checkpoint::FILE).exists());
    let full = state(&dir);
    assert_eq!(full.0, 80);
    let written =
        std::fs::read(dir.join(checkpoint::FILE)).expect("checkpoint written by the open");
    checkpoint::validate(&written).expect("valid checkpoint");
    // Opened from the checkpoint: the same core.
    assert_eq!(state(&dir), full);
    // Appends, a truncation and a clear after the checkpoint are replayed on top of it.
    let core = Hypercore::open(&dir).expect("open");
    core.set_durability(Durability::Process);
    append(&core, 80, 5);
    core.truncate(83).expect("truncate");
    append(&core, 83, 2);
    core.clear(10, 20).expect("clear");
    drop(core);
    assert_eq!(
        std::fs::read(dir.join(checkpoint::FILE)).expect("same file"),
        written
    );
    let after = state(&dir);
    assert_eq!(after.0, 85);
    assert!(after.4[..10].iter().all(|b| *b) && after.4[10..20].iter().all(|b| !*b));
    assert_eq!(after, replayed(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_foreign_or_damaged_checkpoint_is_ignored() {
    let dir = testkit::scratch_dir("hc-checkpoint-stale");
    let core = Hypercore::create(&dir, key_pair()).expect("create");
    core.set_durability(Durability::Process);
    append(&core, 0, 80);
    drop(core);
    let full = state(&dir);
    let cp = std::fs::read(dir.join(checkpoint::FILE)).expect("checkpoint");
    // The log cut back before the checkpoint's mark (and appended to differently): a full replay.
    let log = std::fs::read(dir.join("log")).expect("log");
    std::fs::write(dir.join("log"), &log[..log.len() / 2]).expect("cut");
    let cut = state(&dir);
    assert!(cut.0 < 80);
    assert_eq!(cut, replayed(&dir));
    let core = Hypercore::open(&dir).expect("open");
    core.set_durability(Durability::Process);
    append(&core, cut.0, 80 - cut.0);
    drop(core);
    std::fs::write(dir.join(checkpoint::FILE), &cp).expect("put the old checkpoint back");
    assert_eq!(state(&dir), replayed(&dir));
    // Another core's checkpoint.
    let other = testkit::scratch_dir("hc-checkpoint-other");
    let core = Hypercore::create(&other, key_pair()).expect("create");
    core.set_durability(Durability::Process);
    append(&core, 0, 3);
    drop(core);
    std::fs::write(other.join(checkpoint::FILE), &cp).expect("foreign checkpoint");
    let s = state(&other);
    assert_eq!(s.0, 3);
    assert_eq!(s, replayed(&other));
    // Damaged: ignored, and the state is the full replay's.
    let mut bad = cp.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert!(checkpoint::validate(&bad).is_err());
    std::fs::write(dir.join(checkpoint::FILE), &bad).expect("damaged checkpoint");
    assert_eq!(state(&dir).0, 80);
    assert_eq!(state(&dir), replayed(&dir));
    assert_eq!(full.0, 80);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// Signers 0 (`a`) and 1 (`b`)'s multi-signature of their (equal) trees at `from`.
fn quorum(a: &Hypercore, b: &Hypercore, from: u64) -> Vec<u8> {
    let part = |core: &Hypercore, signer| {
        core.partial_signature(signer, from, None, None)
            .expect("partial signature")
            .expect("in range")
    };
    multisig::assemble(&[part(a, 0), part(b, 1)])
}

/// A core of two signers with a quorum of two: its own appends carry only its partial signature, so its signed
/// length is found on open from the heads replayed (with a checkpoint: its head and those after it).
#[test]
fn signed_length_of_a_multi_signer_core_survives_the_checkpoint() {
    let kps: Vec<KeyPair> = (1..=2).map(|i| KeyPair::from_seed(&[i; 32])).collect();
    let manifest = Manifest {
        version: 1,
        allow_patch: false,
        quorum: 2,
        signers: kps
            .iter()
            .map(|kp| Signer {
                namespace: caps::default_namespace(),
                public_key: kp.public,
            })
            .collect(),
        prologue: None,
        linked: None,
        user_data: None,
    };
    let dir = testkit::scratch_dir("hc-checkpoint-multisig");
    let other = testkit::scratch_dir("hc-checkpoint-multisig-b");
    let a = Hypercore::create_with_manifest(&dir, kps[0].clone(), manifest.clone()).expect("a");
    let b = Hypercore::create_with_manifest(&other, kps[1].clone(), manifest).expect("b");
    for core in [&a, &b] {
        core.set_durability(Durability::Process);
        append(core, 0, 80);
        assert_eq!(core.signed_length(), 0, "a partial signature only");
    }
    a.set_signature(quorum(&a, &b, 80))
        .expect("quorum signature");
    assert_eq!(a.signed_length(), 80);
    drop(a);
    // A full replay (which writes the checkpoint), then an open from the checkpoint, whose head is signed.
    for _ in 0..2 {
        let a = Hypercore::open(&dir).expect("open");
        assert_eq!((a.length(), a.signed_length()), (80, 80));
    }
    assert!(dir.join(checkpoint::FILE).exists());
    // Partially signed heads after the checkpoint's: the signed length stays the checkpoint head's.
    let a = Hypercore::open(&dir).expect("open");
    a.set_durability(Durability::Process);
    append(&a, 80, 2);
    assert_eq!(a.signed_length(), 80);
    drop(a);
    let a = Hypercore::open(&dir).expect("open");
    assert_eq!((a.length(), a.signed_length()), (82, 80));
    // A quorum signature after the checkpoint moves it on.
    append(&b, 80, 2);
    a.set_signature(quorum(&a, &b, 82))
        .expect("quorum signature");
    drop(a);
    let a = Hypercore::open(&dir).expect("open");
    assert_eq!((a.length(), a.signed_length()), (82, 82));
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn checkpoint_decoding_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..2000usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let _ = checkpoint::validate(&bytes);
        let mut body = b"HCX1".to_vec();
        body.extend_from_slice(&bytes);
        let _ = checkpoint::validate(&checkpoint::seal(body));
    }
}

//! The `Hypercore` API: create/open, append/get, truncate and forks, snapshots, seek, readers, errors.

use std::path::PathBuf;

use holepunch_cores::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
use holepunch_cores::hypercore::{Hypercore, HypercoreError};
use holepunch_wire::crypto::{discovery_key, KeyPair};

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hc-api-{name}"))
}

#[test]
fn append_get_reopen() {
    let dir = tmp("basic");
    let kp = KeyPair::from_seed(&[1; 32]);
    let core = Hypercore::create(&dir, kp.clone()).expect("create");
    assert_eq!(core.key(), kp.public);
    assert_eq!(core.discovery_key(), discovery_key(&kp.public));
    assert!(core.writable());
    assert_eq!((core.length(), core.byte_length(), core.fork()), (0, 0, 0));
    assert_eq!(core.signature(), None);
    let out = core.append(&[b"hello", b"", b"world!"]).expect("append");
    assert_eq!((out.length, out.byte_length), (3, 11));
    let out = core.append(&[b"x"]).expect("append");
    assert_eq!(out.length, 4);
    assert_eq!(core.get(0).expect("get"), Some(b"hello".to_vec()));
    assert_eq!(core.get(1).expect("get"), Some(Vec::new()));
    assert_eq!(core.get(3).expect("get"), Some(b"x".to_vec()));
    assert_eq!(core.get(4).expect("get"), None);
    let tree = core.tree();
    // An empty append changes nothing; a second open of a live core is refused (the log is locked).
    assert_eq!(core.append(&[]).expect("empty append").length, 4);
    assert_eq!(core.tree(), tree);
    match Hypercore::open(&dir) {
        Err(HypercoreError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
        other => panic!("second open: {other:?}"),
    }
    drop(core);
    assert!(matches!(
        Hypercore::create(&dir, kp.clone()),
        Err(HypercoreError::AlreadyExists(_))
    ));
    let core = Hypercore::open(&dir).expect("open");
    assert_eq!(core.tree(), tree);
    assert_eq!(core.get(2).expect("get"), Some(b"world!".to_vec()));
    core.append(&[b"after reopen"]).expect("append");
    assert_eq!(core.length(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncate_forks_and_snapshots() {
    let dir = tmp("trunc");
    let core = Hypercore::create(&dir, KeyPair::from_seed(&[2; 32])).expect("create");
    let blocks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; usize::from(i) + 1]).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    core.append(&refs).expect("append");
    let snap = core.snapshot();
    let before = core.tree_hash();
    assert_eq!(snap.length(), 10);

    core.append(&[b"more"]).expect("append");
    assert_eq!(snap.length(), 10, "a snapshot does not grow");
    assert_eq!(snap.tree_hash(), before);
    assert_eq!(snap.get(9).expect("get"), Some(blocks[9].clone()));
    assert_eq!(snap.get(10).expect("get"), None);

    assert!(matches!(
        core.truncate(20),
        Err(HypercoreError::BadTruncate { .. })
    ));
    core.truncate(4).expect("truncate");
    assert_eq!((core.length(), core.fork()), (4, 1));
    assert_eq!(core.byte_length(), 1 + 2 + 3 + 4);
    assert_eq!(core.get(4).expect("get"), None);
    assert_eq!(snap.get(3).expect("get"), Some(blocks[3].clone()));
    assert!(matches!(
        snap.get(5),
        Err(HypercoreError::SnapshotInvalidated(4))
    ));

    // Truncating back to a length re-creates the same tree as before (fork aside).
    core.append(&refs[4..]).expect("append");
    assert_eq!(core.tree_hash(), before);
    assert_eq!(core.fork(), 1);
    // The snapshot shares the open core: both must go before the core can be opened again.
    drop(core);
    drop(snap);
    let core = Hypercore::open(&dir).expect("open");
    assert_eq!(
        (core.length(), core.fork(), core.tree_hash()),
        (10, 1, before)
    );
    assert_eq!(core.get(7).expect("get"), Some(blocks[7].clone()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seek_finds_blocks() {
    let dir = tmp("seek");
    let core = Hypercore::create(&dir, KeyPair::from_seed(&[3; 32])).expect("create");
    core.append(&[b"aaaa", b"bb", b"", b"cccccc"])
        .expect("append");
    assert_eq!(core.seek(0).expect("seek"), Some((0, 0)));
    assert_eq!(core.seek(3).expect("seek"), Some((0, 3)));
    assert_eq!(core.seek(4).expect("seek"), Some((1, 0)));
    assert_eq!(core.seek(5).expect("seek"), Some((1, 1)));
    assert_eq!(core.seek(7).expect("seek"), Some((3, 1)));
    assert_eq!(core.seek(12).expect("seek"), Some((4, 0)));
    assert_eq!(core.seek(13).expect("seek"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readers_are_filled_by_proofs_and_are_not_writable() {
    let wdir = tmp("writer");
    let rdir = tmp("reader");
    let writer = Hypercore::create(&wdir, KeyPair::from_seed(&[4; 32])).expect("create");
    let blocks: Vec<Vec<u8>> = (0..40u32).map(|i| i.to_le_bytes().repeat(10)).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    writer.append(&refs).expect("append");

    let reader = Hypercore::create_reader(&rdir, writer.key(), None).expect("reader");
    assert!(!reader.writable());
    assert!(matches!(
        reader.append(&[b"no"]),
        Err(HypercoreError::NotWritable)
    ));
    // Upgrade with block 0, then fetch every other block with exactly the nodes the reader lacks.
    let up = writer
        .proof(&Request {
            block: Some(RequestBlock { index: 0, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 40,
            }),
            ..Request::default()
        })
        .expect("proof");
    reader.apply_proof(&up).expect("upgrade");
    assert_eq!(reader.length(), 40);
    for i in (2..40).step_by(3) {
        let req = Request {
            block: Some(RequestBlock {
                index: i,
                nodes: reader.missing_nodes(2 * i),
            }),
            ..Request::default()
        };
        let proof = writer.proof(&req).expect("proof");
        reader.apply_proof(&proof).expect("block proof");
        assert_eq!(
            reader.get(i).expect("get"),
            Some(blocks[i as usize].clone())
        );
    }
    assert_eq!(reader.get(1).expect("get"), None);
    // The writer grows; the reader upgrades from its length.
    writer.append(&[b"41", b"42"]).expect("append");
    let up = writer
        .proof(&Request {
            upgrade: Some(RequestUpgrade {
                start: 40,
                length: 2,
            }),
            ..Request::default()
        })
        .expect("proof");
    reader.apply_proof(&up).expect("upgrade 40 -> 42");
    assert_eq!(reader.length(), 42);
    assert_eq!(reader.tree_hash(), writer.tree_hash());
    // And after a reopen.
    drop(reader);
    let reader = Hypercore::open(&rdir).expect("open");
    assert_eq!(reader.length(), 42);
    assert_eq!(reader.get(38).expect("get"), Some(blocks[38].clone()));
    let _ = std::fs::remove_dir_all(&wdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[test]
fn readers_follow_a_truncation_to_a_new_fork_without_serving_stale_blocks() {
    let wdir = tmp("fork-writer");
    let rdir = tmp("fork-reader");
    let writer = Hypercore::create(&wdir, KeyPair::from_seed(&[5; 32])).expect("create");
    let old: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 9]).collect();
    let refs: Vec<&[u8]> = old.iter().map(Vec::as_slice).collect();
    writer.append(&refs).expect("append");
    let reader = Hypercore::create_reader(&rdir, writer.key(), None).expect("reader");
    let full = |w: &Hypercore, block: u64| Request {
        block: Some(RequestBlock {
            index: block,
            nodes: 0,
        }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: w.length(),
        }),
        ..Request::default()
    };
    reader
        .apply_proof(&writer.proof(&full(&writer, 0)).expect("proof"))
        .expect("sync");
    for i in 1..12 {
        let req = Request {
            block: Some(RequestBlock {
                index: i,
                nodes: reader.missing_nodes(2 * i),
            }),
            ..Request::default()
        };
        reader
            .apply_proof(&writer.proof(&req).expect("proof"))
            .expect("block");
    }
    assert_eq!(reader.get(10).expect("get"), Some(old[10].clone()));

    // The writer rewrites history from block 9 on: fork 1.
    writer.truncate(9).expect("truncate");
    writer.append(&[b"new 9", b"new 10"]).expect("append");
    // A block proof on the new fork without an upgrade is refused.
    let stale = Request {
        fork: 1,
        block: Some(RequestBlock {
            index: 10,
            nodes: 0,
        }),
        ..Request::default()
    };
    assert!(reader
        .apply_proof(&writer.proof(&stale).expect("proof"))
        .is_err());
    // A signed upgrade proving the whole new tree moves the reader to fork 1.
    reader
        .apply_proof(&writer.proof(&full(&writer, 10)).expect("proof"))
        .expect("reorg");
    assert_eq!((reader.length(), reader.fork()), (11, 1));
    assert_eq!(reader.tree_hash(), writer.tree_hash());
    assert_eq!(reader.get(10).expect("get"), Some(b"new 10".to_vec()));
    assert_eq!(reader.get(11).expect("get"), None, "block 11 is gone");
    for i in 0..11 {
        // Every block still held is the writer's current one.
        if let Some(b) = reader.get(i).expect("get") {
            assert_eq!(Some(b), writer.get(i).expect("get"), "block {i}");
        }
    }
    let _ = std::fs::remove_dir_all(&wdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

/// The fork an encrypted block's header carries is the core's head fork (JS `state.encryptionFork`,
/// `core.header.tree.fork`): a core with unsigned writes (autobase's system and views, JS's `batch` session
/// over a head on fork 0) encrypts on fork 0 whatever its own truncations did, so a core that undid a block
/// and wrote another stores the same bytes, and the same tree, as one that wrote the other block directly
/// (an encrypted base's JS and Rust peers once disagreed here: the Rust apply's undos moved the fork, the
/// JS indexers' signatures did not verify on its trees, and its signed lengths stayed at 0). A signing
/// core's truncation moves the fork its later blocks carry, as JS's does.
#[test]
fn encryption_fork_is_the_head_fork() {
    use holepunch_cores::hypercore::encryption::BlockEncryption;
    let key = [9u8; 32];
    let core_key = KeyPair::from_seed(&[8; 32]).public;
    let unsigned = |name: &str| {
        let c = Hypercore::create_reader(tmp(name), core_key, None).expect("reader");
        c.set_unsigned_writes(true);
        c.set_encryption_key(&key, true);
        c
    };
    let undone = unsigned("enc-fork-undone");
    undone.append(&[b"a", b"b", b"c"]).expect("append");
    undone.truncate(2).expect("undo");
    undone.append(&[b"d"]).expect("append");
    assert_eq!(undone.fork(), 1);
    let direct = unsigned("enc-fork-direct");
    direct.append(&[b"a", b"b", b"d"]).expect("append");
    let enc = BlockEncryption::new(&key, &core_key, false, true);
    for i in 0..3 {
        assert_eq!(
            undone.get_raw(i).expect("raw"),
            direct.get_raw(i).expect("raw")
        );
    }
    assert_eq!(
        undone.get_raw(2).expect("raw"),
        Some(enc.encrypt(2, 0, b"d"))
    );
    assert_eq!(
        undone.tree_hash_at(3).expect("hash"),
        direct.tree_hash_at(3).expect("hash")
    );
    assert_eq!(undone.get(2).expect("get"), Some(b"d".to_vec()));

    let kp = KeyPair::from_seed(&[7; 32]);
    let signing = Hypercore::create(tmp("enc-fork-signing"), kp.clone()).expect("create");
    signing.set_encryption_key(&key, true);
    signing.append(&[b"a", b"b"]).expect("append");
    signing.truncate(1).expect("truncate");
    signing.append(&[b"c"]).expect("append");
    assert_eq!(
        signing.get_raw(1).expect("raw"),
        Some(BlockEncryption::new(&key, &kp.public, false, true).encrypt(1, 1, b"c"))
    );
    assert_eq!(signing.get(1).expect("get"), Some(b"c".to_vec()));
}

//! `Hypercore::clear` and `Hyperdrive::clear`/`clear_all`: cleared blocks read as absent, stay absent after a
//! reopen, the space comes back (hole punching), the log stays replayable (also with a torn tail after a
//! clear), and a replicating peer is told with a `range` message with `drop` (and what follows again).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use holepunch_cores::corestore::Corestore;
use holepunch_cores::hypercore::caps;
use holepunch_cores::hypercore::messages::{Handshake, NoData, Range, Request, RequestBlock};
use holepunch_cores::hypercore::replicator::{kind, replicate, Replicator, PROTOCOL};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_drives::drive::{Drive, WriteOptions};
use holepunch_drives::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch_streams::protomux::{memory_pair, ChannelOptions, Mux};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
const HH: [u8; 64] = [3; 64];

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hc-clear-{name}"))
}

fn block(i: u64) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8; 64 * 1024];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

fn writer(dir: &PathBuf, n: u64) -> Hypercore {
    let core = Hypercore::create(dir, KeyPair::from_seed(&[9; 32])).unwrap();
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    core.append(&refs).unwrap();
    core
}

fn allocated(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("log")).unwrap().blocks() * 512
}

#[test]
fn cleared_blocks_are_absent_survive_reopen_and_free_space() {
    let dir = tmp("basic");
    let core = writer(&dir, 20);
    let before = allocated(&dir);
    let c = core.clear(5, 12).unwrap();
    assert_eq!(c.blocks, 7);
    assert_eq!(c.bytes, 7 * 64 * 1024);
    for i in 0..20 {
        assert_eq!(core.has(i), !(5..12).contains(&i), "block {i}");
    }
    assert_eq!(core.get(7).unwrap(), None);
    assert_eq!(core.get(12).unwrap(), Some(block(12)));
    assert_eq!(core.stored_blocks(), 13);
    assert_eq!(core.stored_runs(0, 20, 10), [(0, 5), (12, 20)]);
    // Clearing again, or past the length, drops nothing.
    assert_eq!(core.clear(5, 12).unwrap().blocks, 0);
    assert_eq!(core.clear(30, 40).unwrap().blocks, 0);
    assert_eq!(core.clear(3, 3).unwrap().blocks, 0);
    assert_eq!(core.length(), 20, "clear does not truncate");
    if c.freed > 0 {
        // The file system punched the holes: the log holds fewer allocated blocks.
        assert!(allocated(&dir) < before, "{} >= {before}", allocated(&dir));
    }
    // Appending after a clear, then reopening: the clear is replayed, everything else is intact.
    let tail = block(20);
    core.append(&[&tail]).unwrap();
    let hash = core.tree_hash();
    drop(core);
    let core = Hypercore::open(&dir).unwrap();
    assert_eq!(core.length(), 21);
    assert_eq!(core.tree_hash(), hash);
    assert_eq!(core.stored_runs(0, 21, 10), [(0, 5), (12, 21)]);
    for i in (0..5).chain(12..21) {
        assert_eq!(core.get(i).unwrap(), Some(block(i)), "block {i}");
    }
    // The tree nodes stay: the core still proves blocks it holds, and an upgrade.
    let data = core
        .proof(&Request {
            block: Some(RequestBlock {
                index: 15,
                nodes: 0,
            }),
            ..Request::default()
        })
        .unwrap();
    assert!(data.block.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_record_after_a_clear_is_cut_and_the_clear_kept() {
    let dir = tmp("torn");
    let core = writer(&dir, 10);
    core.clear(2, 4).unwrap();
    let good = std::fs::metadata(dir.join("log")).unwrap().len();
    core.append(&[&block(10)]).unwrap();
    drop(core);
    // Tear the last append: its bytes no longer match its checksum and nothing explains it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("log"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 100).unwrap();
    drop(f);
    let core = Hypercore::open(&dir).unwrap();
    assert_eq!(core.length(), 10);
    assert_eq!(std::fs::metadata(dir.join("log")).unwrap().len(), good);
    assert_eq!(core.stored_runs(0, 10, 10), [(0, 2), (4, 10)]);
    assert_eq!(core.get(9).unwrap(), Some(block(9)));
    // Bit rot in a record without holes still ends the log there. (A record with punched holes is no longer
    // checksummed as a whole: its remaining bytes are trusted.)
    core.append(&[&block(10), &block(11)]).unwrap();
    let good = std::fs::metadata(dir.join("log")).unwrap().len();
    core.append(&[&block(12)]).unwrap();
    drop(core);
    let mut raw = std::fs::read(dir.join("log")).unwrap();
    let mut needle = 11u64.to_le_bytes().to_vec();
    needle.extend_from_slice(&[11; 8]);
    let pos = raw
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("block 11 in the log");
    raw[pos + 100] ^= 1;
    std::fs::write(dir.join("log"), &raw).unwrap();
    let core = Hypercore::open(&dir).unwrap();
    assert_eq!(
        core.length(),
        10,
        "the damaged record and all after it are gone"
    );
    assert!(std::fs::metadata(dir.join("log")).unwrap().len() < good);
    assert_eq!(core.stored_runs(0, 10, 10), [(0, 2), (4, 10)]);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn next_range(ch: &holepunch_streams::protomux::Channel) -> Range {
    loop {
        let (k, payload) = timeout(T, ch.recv()).await.unwrap().unwrap();
        if k == kind::RANGE {
            return Range::from_bytes(&payload).unwrap();
        }
    }
}

#[tokio::test]
async fn a_reader_clears_downloaded_blocks_and_tells_its_peer() {
    let wdir = tmp("repl-w");
    let w = writer(&wdir, 30);
    let rdir = tmp("repl-r");
    let r = Hypercore::create_reader(&rdir, w.key(), None).unwrap();
    r.set_durability(Durability::Process);
    let rr = Replicator::new(r.clone());
    let (ta, tb) = memory_pair();
    let _a = replicate(ta, true, &HH, &[Replicator::new(w.clone())]);
    let _b = replicate(tb, false, &HH, std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.unwrap(), 30);
    timeout(T, rr.download(0, 30)).await.unwrap();
    assert_eq!(r.stored_blocks(), 30);

    // A hand-written peer of the reader: it sees the reader's full range, then the drop, then the rest again.
    let (tc, td) = memory_pair();
    let _c = replicate(tc, true, &HH, std::slice::from_ref(&rr));
    let mux = Mux::new(td);
    let ch = mux
        .create_channel(ChannelOptions::new(PROTOCOL).id(r.discovery_key().to_vec()))
        .unwrap();
    let cap = caps::replicate(false, &r.key(), &HH).unwrap();
    ch.open(
        &Handshake {
            seeks: false,
            capability: cap,
        }
        .to_bytes(),
    )
    .unwrap();
    timeout(T, ch.opened()).await.unwrap().unwrap();
    let mut ranges = Vec::new();
    ranges.push(next_range(&ch).await);
    assert_eq!(
        ranges[0],
        Range {
            drop: false,
            start: 0,
            length: 30
        }
    );
    let cleared = r.clear(10, 20).unwrap();
    assert_eq!(cleared.blocks, 10);
    ranges.push(next_range(&ch).await);
    ranges.push(next_range(&ch).await);
    assert_eq!(
        ranges[1..],
        [
            Range {
                drop: true,
                start: 10,
                length: 10
            },
            Range {
                drop: false,
                start: 20,
                length: 10
            }
        ]
    );
    // Asking for a cleared block gets a no-data answer.
    let req = Request {
        id: 77,
        fork: 0,
        block: Some(RequestBlock {
            index: 15,
            nodes: 0,
        }),
        ..Request::default()
    };
    ch.send(kind::REQUEST, &req.to_bytes()).await.unwrap();
    loop {
        let (k, payload) = timeout(T, ch.recv()).await.unwrap().unwrap();
        if k == kind::NO_DATA {
            assert_eq!(NoData::from_bytes(&payload).unwrap().request, 77);
            break;
        }
        assert_ne!(k, kind::DATA, "a cleared block must not be served");
    }
    // Reading it again downloads it again from the writer.
    assert_eq!(timeout(T, rr.get(15)).await.unwrap().unwrap(), block(15));
    let _ = std::fs::remove_dir_all(&wdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[tokio::test]
async fn drive_clear_drops_one_file_and_clear_all_the_rest() {
    let dir = tmp("drive");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open(&store, DriveOptions::default()).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    drive
        .put("/a.txt", b"first", WriteOptions::default())
        .await
        .unwrap();
    drive
        .put("/big.bin", &big, WriteOptions::default())
        .await
        .unwrap();
    drive
        .put("/c.txt", b"last", WriteOptions::default())
        .await
        .unwrap();
    drive.symlink_with("/link", "/a.txt", None).unwrap();
    let blobs = drive.blobs().await.unwrap();
    let total = blobs.core().stored_blocks();
    let c = drive.clear("/big.bin").await.unwrap();
    assert_eq!(c.blocks, 5, "300 000 bytes in 64 KiB blocks");
    assert_eq!(c.bytes, 300_000);
    assert_eq!(blobs.core().stored_blocks(), total - 5);
    // The entry stays; the other files still read.
    assert!(drive.entry("/big.bin").await.unwrap().is_some());
    assert_eq!(drive.get("/a.txt").await.unwrap().unwrap(), b"first");
    assert_eq!(drive.get("/c.txt").await.unwrap().unwrap(), b"last");
    // Missing entries and symlinks clear nothing.
    assert_eq!(drive.clear("/nope").await.unwrap().blocks, 0);
    assert_eq!(drive.clear("/link").await.unwrap().blocks, 0);
    assert_eq!(drive.clear("/big.bin").await.unwrap().blocks, 0);
    let all = drive.clear_all().await.unwrap();
    assert_eq!(all.blocks, total - 5);
    assert_eq!(blobs.core().stored_blocks(), 0);
    assert!(drive.entry("/c.txt").await.unwrap().is_some());
    drop((blobs, drive, store));
    // Still cleared after a reopen.
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open(&store, DriveOptions::default()).unwrap();
    assert_eq!(drive.blobs().await.unwrap().core().stored_blocks(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

mod props {
    use super::*;
    use holepunch_cores::hypercore::storage::{Clear, RecordView};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn clear_records_round_trip_and_truncations_fail(
            start in 0u64..1 << 40,
            len in 0u64..1 << 20,
            punched in proptest::collection::vec((0u64..1 << 40, 0u64..1 << 20), 0..8),
        ) {
            let clear = Clear { start, end: start + len, punched };
            let bytes = clear.to_bytes();
            let view = RecordView::decode(&bytes).unwrap();
            prop_assert_eq!(view.clear.as_ref(), Some(&clear));
            prop_assert!(view.blocks.is_empty() && view.nodes.is_empty() && view.head.is_none());
            for cut in 0..bytes.len() {
                prop_assert!(RecordView::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn mutated_clear_records_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut with_flag = bytes.clone();
            with_flag.insert(0, 4);
            for b in [&bytes, &with_flag] {
                if let Ok(v) = RecordView::decode(b) {
                    if let Some(c) = v.clear {
                        prop_assert!(c.start <= c.end);
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Random appends, clears and reopens against a model of which blocks are stored.
        #[test]
        fn clears_match_a_model_across_reopens(
            ops in proptest::collection::vec((0u8..3, 0u64..40, 1u64..12), 1..25),
        ) {
            let dir = tmp("model");
            let mut core = Hypercore::create(&dir, KeyPair::from_seed(&[5; 32])).unwrap();
            core.set_durability(Durability::Process);
            let mut stored: Vec<bool> = Vec::new();
            let blk = |i: u64| format!("block {i} ").repeat(700).into_bytes();
            for (op, a, n) in ops {
                match op {
                    0 => {
                        let len = stored.len() as u64;
                        let blocks: Vec<Vec<u8>> = (len..len + n).map(blk).collect();
                        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                        core.append(&refs).unwrap();
                        stored.extend(std::iter::repeat_n(true, n as usize));
                    }
                    1 => {
                        let c = core.clear(a, a + n).unwrap();
                        let mut expect = 0;
                        for i in a..(a + n).min(stored.len() as u64) {
                            if std::mem::replace(&mut stored[i as usize], false) {
                                expect += 1;
                            }
                        }
                        prop_assert_eq!(c.blocks, expect);
                    }
                    _ => {
                        drop(core);
                        core = Hypercore::open(&dir).unwrap();
                    }
                }
                prop_assert_eq!(core.length(), stored.len() as u64);
                for (i, s) in stored.iter().enumerate() {
                    let got = core.get(i as u64).unwrap();
                    prop_assert_eq!(got.is_some(), *s, "block {}", i);
                    if let Some(b) = got {
                        prop_assert_eq!(b, blk(i as u64));
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

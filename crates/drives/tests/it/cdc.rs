//! "Diffable" files: a changed big file imported again appends only the chunks around the change (content-
//! defined chunking, a block map re-using the previous version's blocks), a replica that had the old version
//! downloads only those, and everything reads back byte-exact; with chunking off the file is written whole.

use std::time::Duration;

use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperblobs::WaitOptions;
use holepunch_cores::hypercore::Hypercore;
use holepunch_drives::drive::{Drive, WriteOptions};
use holepunch_drives::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch_drives::localdrive::Localdrive;
use holepunch_drives::mirror::{Mirror, MirrorOptions, MirrorSummary};
use holepunch_streams::protomux::{memory_pair, Mux};

const SIZE: usize = 6 << 20;

/// Deterministic pseudo-random bytes.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn import(folder: &std::path::Path, drive: &Hyperdrive) -> MirrorSummary {
    let src = Localdrive::new(folder);
    Mirror::new(&src, drive, MirrorOptions::default())
        .run(|_| {})
        .await
        .expect("mirror")
}

fn bytes(drive: &Hyperdrive) -> u64 {
    drive.blobs_if_open().expect("blobs").core().byte_length()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimport_appends_only_the_changed_chunks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("src");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let file = folder.join("big.bin");
    let v1 = data(1, SIZE);
    std::fs::write(&file, &v1).expect("write");
    let store = Corestore::open(tmp.path().join("store")).expect("store");
    let drive = Hyperdrive::open(&store, DriveOptions::default()).expect("drive");
    import(&folder, &drive).await;
    let e1 = drive.entry("/big.bin").await.expect("entry").expect("some");
    let b1 = e1.blob.expect("blob");
    assert!(!b1.block_map, "a new file is a plain blob: {b1:?}");
    assert_eq!(e1.byte_length, Some(SIZE as u64));

    // 512 KiB changed in the middle.
    let mut v2 = v1.clone();
    v2[3 << 20..(3 << 20) + (512 << 10)].copy_from_slice(&data(2, 512 << 10));
    std::fs::write(&file, &v2).expect("write");
    let before = bytes(&drive);
    let sum = import(&folder, &drive).await;
    assert_eq!(sum.count.change, 1);
    let grew = bytes(&drive) - before;
    assert!(grew < 3 << 19, "appended {grew} bytes for a 512 KiB change");
    let e2 = drive.entry("/big.bin").await.expect("entry").expect("some");
    assert!(e2.blob.expect("blob").block_map);
    assert_eq!(e2.byte_length, Some(SIZE as u64));
    assert_eq!(drive.get("/big.bin").await.expect("get").expect("some"), v2);

    // 100 KiB inserted at the start.
    let mut v3 = data(3, 100 << 10);
    v3.extend_from_slice(&v2);
    std::fs::write(&file, &v3).expect("write");
    let before = bytes(&drive);
    import(&folder, &drive).await;
    let grew = bytes(&drive) - before;
    assert!(
        grew < 3 << 19,
        "appended {grew} bytes for a 100 KiB insertion"
    );
    assert_eq!(drive.get("/big.bin").await.expect("get").expect("some"), v3);

    // Unchanged: compares equal, nothing written.
    let before = (bytes(&drive), drive.version());
    let sum = import(&folder, &drive).await;
    assert_eq!((sum.count.add, sum.count.change), (0, 0));
    assert_eq!((bytes(&drive), drive.version()), before);

    // Out to a folder again, through the block map.
    let out = tmp.path().join("out");
    let dst = Localdrive::new(&out);
    Mirror::new(&drive, &dst, MirrorOptions::default())
        .run(|_| {})
        .await
        .expect("export");
    assert_eq!(std::fs::read(out.join("big.bin")).expect("read"), v3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_chunking_a_change_rewrites_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("src");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut v = data(4, 3 << 20);
    std::fs::write(folder.join("f.bin"), &v).expect("write");
    let store = Corestore::open(tmp.path().join("store")).expect("store");
    let opts = DriveOptions {
        chunking: false,
        ..DriveOptions::default()
    };
    let drive = Hyperdrive::open(&store, opts).expect("drive");
    import(&folder, &drive).await;
    v[1 << 20] ^= 1;
    std::fs::write(folder.join("f.bin"), &v).expect("write");
    let before = bytes(&drive);
    import(&folder, &drive).await;
    assert_eq!(bytes(&drive) - before, v.len() as u64);
    let blob = drive
        .entry("/f.bin")
        .await
        .expect("entry")
        .expect("some")
        .blob;
    assert_eq!(
        blob.map(|b| (b.block_map, b.block_length)),
        Some((false, 48))
    );
}

const HH: [u8; 64] = [9; 64];

fn connect(writer: &Hyperdrive, reader: &Hyperdrive) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    let (a, ()) = Mux::new_with(ta, |m| writer.replicate(m, true, &HH));
    let (b, ()) = Mux::new_with(tb, |m| reader.replicate(m, false, &HH));
    (a, b)
}

/// Bytes of the blocks of `core` stored now that `had` did not list.
fn new_bytes(core: &Hypercore, had: &[bool]) -> u64 {
    (0..core.length())
        .filter(|&i| core.has(i) && !had.get(i as usize).copied().unwrap_or(false))
        .map(|i| core.get(i).ok().flatten().map_or(0, |b| b.len() as u64))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_the_old_version_downloads_only_the_changed_chunks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Corestore::open(tmp.path().join("w")).expect("store");
    let writer = Hyperdrive::open(&store, DriveOptions::default()).expect("drive");
    let v1 = data(5, SIZE);
    writer
        .put_reader("/big.bin", &v1[..], WriteOptions::default())
        .await
        .expect("put v1");

    let reader_store = Corestore::open(tmp.path().join("r")).expect("store");
    let opts = DriveOptions {
        wait: WaitOptions {
            wait: true,
            timeout: Some(Duration::from_secs(60)),
        },
        ..DriveOptions::default()
    };
    let reader = Hyperdrive::open_key(&reader_store, writer.key(), opts).expect("replica");
    let (_m1, _m2) = connect(&writer, &reader);
    reader.wait_for_peers(1).await;
    reader.update().await.expect("update");
    reader.download("/").await.expect("download v1");
    assert_eq!(reader.get("/big.bin").await.expect("get").expect("v1"), v1);

    // A new version: 1 MiB inserted in the middle.
    let mut v2 = v1[..SIZE / 2].to_vec();
    v2.extend_from_slice(&data(6, 1 << 20));
    v2.extend_from_slice(&v1[SIZE / 2..]);
    writer
        .put_reader("/big.bin", &v2[..], WriteOptions::default())
        .await
        .expect("put v2");
    let version = writer.version();
    reader.wait_for_version(version).await.expect("v2");
    let core = reader.blobs().await.expect("blobs").core().clone();
    let had: Vec<bool> = (0..core.length()).map(|i| core.has(i)).collect();
    let entry = reader
        .entry("/big.bin")
        .await
        .expect("entry")
        .expect("some");
    assert_eq!(entry.byte_length, Some(v2.len() as u64));
    assert!(entry.blob.expect("blob").block_map);
    assert_eq!(reader.get("/big.bin").await.expect("get").expect("v2"), v2);
    let got = new_bytes(&core, &had);
    assert!(
        got < (1 << 20) + (768 << 10),
        "downloaded {got} bytes for a 1 MiB insertion"
    );
    // A download of the folder fetches nothing more, and a folder copy is byte-exact.
    let stats = reader.download("/").await.expect("download v2");
    assert!(stats.blocks > 0);
    assert_eq!(new_bytes(&core, &had), got);
    let out = tmp.path().join("out");
    Mirror::new(&reader, &Localdrive::new(&out), MirrorOptions::default())
        .run(|_| {})
        .await
        .expect("export");
    assert_eq!(std::fs::read(out.join("big.bin")).expect("read"), v2);
}

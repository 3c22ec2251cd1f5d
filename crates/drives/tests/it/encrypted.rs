//! Encrypted drives (hyperdrive 13 `encryptionKey`): a replica with the key reads them; a blind replica
//! without it stores every block, serves them to a keyed reader, and holds no plaintext; reopening without
//! the key (or with another one) fails clearly.

use std::path::Path;
use std::time::Duration;

use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperblobs::WaitOptions;
use holepunch_drives::drive::{Drive, DriveError, WriteOptions};
use holepunch_drives::hyperdrive::{DriveOptions, EncryptionKey, Hyperdrive};
use holepunch_streams::protomux::{memory_pair, Mux};

const HH: [u8; 64] = [9; 64];
const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a";

fn opts(key: Option<EncryptionKey>, blind: bool) -> DriveOptions {
    DriveOptions {
        wait: WaitOptions {
            wait: true,
            timeout: Some(Duration::from_secs(60)),
        },
        encryption_key: key,
        blind,
        ..DriveOptions::default()
    }
}

fn connect(a: &Hyperdrive, b: &Hyperdrive) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    let (ma, ()) = Mux::new_with(ta, |m| a.replicate(m, true, &HH));
    let (mb, ()) = Mux::new_with(tb, |m| b.replicate(m, false, &HH));
    (ma, mb)
}

/// A file with the marker repeated over several 64 KiB blocks.
fn big_file() -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u32;
    while v.len() < 200_000 {
        v.extend_from_slice(MARKER);
        v.extend_from_slice(format!(" line {i}\n").as_bytes());
        i += 1;
    }
    v
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_reader_reads_blind_seeder_stores_only_ciphertext() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = EncryptionKey([0x42; 32]);
    let big = big_file();

    let writer_store = Corestore::open(tmp.path().join("w")).expect("store");
    let writer = Hyperdrive::open(&writer_store, opts(Some(key), false)).expect("writer");
    writer
        .put("/secret.txt", &big, WriteOptions::default())
        .await
        .expect("put");
    writer
        .put(
            "/dir/small-PLAINTEXT-MARKER-7f3a.txt",
            MARKER,
            WriteOptions::default(),
        )
        .await
        .expect("put");
    assert_eq!(
        writer.get("/secret.txt").await.expect("get"),
        Some(big.clone())
    );
    // Even the writer's own store holds ciphertext only (entries, file names and content).
    assert_eq!(
        files_containing(&tmp.path().join("w"), MARKER),
        Vec::<String>::new()
    );

    // A blind replica downloads every block of both cores without decoding any.
    let blind_store = Corestore::open(tmp.path().join("blind")).expect("store");
    let blind = Hyperdrive::open_key(&blind_store, writer.key(), opts(None, true)).expect("blind");
    let (_m1, _m2) = connect(&writer, &blind);
    blind.wait_for_peers(1).await;
    let got = blind.download_blocks().await.expect("download blocks");
    assert_eq!(got.files, writer.core().length());
    let wblobs = writer.blobs().await.expect("blobs");
    assert_eq!(got.blobs, wblobs.core().length());
    assert!(got.blobs >= 4, "several blob blocks: {got:?}");
    assert!(!blind.header_decodes().await.expect("header"));
    assert_eq!(blind.content_key(), writer.content_key());
    // Reading an entry fails (the db is ciphertext to it), without panicking.
    assert!(blind.get("/secret.txt").await.is_err());
    assert_eq!(
        files_containing(&tmp.path().join("blind"), MARKER),
        Vec::<String>::new()
    );

    // Kept whole (a blind seeder): a later write reaches its store, still as ciphertext.
    let _keep = blind.keep_all();
    writer
        .put("/later.txt", &big[..100_000], WriteOptions::default())
        .await
        .expect("put");
    let (want_db, want_blobs) = (writer.core().length(), wblobs.core().length());
    let bblobs = blind.blobs().await.expect("blobs");
    let whole = |c: &holepunch_cores::hypercore::Hypercore, len: u64| {
        c.length() == len && c.stored_runs(0, len, 2) == [(0, len)]
    };
    let (mut rx_db, mut rx_blobs) = (blind.core().subscribe(), bblobs.core().subscribe());
    tokio::time::timeout(Duration::from_secs(60), async {
        while !(whole(blind.core(), want_db) && whole(bblobs.core(), want_blobs)) {
            tokio::select! {
                _ = rx_db.changed() => {}
                _ = rx_blobs.changed() => {}
            }
        }
    })
    .await
    .expect("the blind replica follows the writer");
    assert_eq!(
        files_containing(&tmp.path().join("blind"), MARKER),
        Vec::<String>::new()
    );

    // A reader with the key, connected to the blind replica only, reads everything back.
    let reader_store = Corestore::open(tmp.path().join("r")).expect("store");
    let reader =
        Hyperdrive::open_key(&reader_store, writer.key(), opts(Some(key), false)).expect("reader");
    let (_m3, _m4) = connect(&blind, &reader);
    reader.wait_for_peers(1).await;
    reader.update().await.expect("update");
    assert_eq!(
        reader.get("/secret.txt").await.expect("get"),
        Some(big.clone())
    );
    let list: Vec<String> = reader
        .list("/", None)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        list,
        [
            "/dir/small-PLAINTEXT-MARKER-7f3a.txt",
            "/later.txt",
            "/secret.txt"
        ]
    );
    assert_eq!(
        reader.get("/later.txt").await.expect("get").as_deref(),
        Some(&big[..100_000])
    );

    // A replica without the key that is not blind: a clear header error, not garbage.
    let nokey_store = Corestore::open(tmp.path().join("n")).expect("store");
    let nokey = Hyperdrive::open_key(&nokey_store, writer.key(), opts(None, false)).expect("nokey");
    let (_m5, _m6) = connect(&writer, &nokey);
    nokey.wait_for_peers(1).await;
    nokey.update().await.expect("update");
    let err = nokey.blobs().await.expect_err("no key");
    assert!(
        matches!(&err, DriveError::Header(m) if m.contains("encryption key")),
        "{err}"
    );
}

#[tokio::test]
async fn reopen_needs_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = EncryptionKey::generate();
    {
        let store = Corestore::open(tmp.path()).expect("store");
        let d = Hyperdrive::open(&store, opts(Some(key), false)).expect("drive");
        d.write_header().expect("header");
        assert_eq!(d.version(), 1);
        d.put("/a", b"hello", WriteOptions::default())
            .await
            .expect("put");
        d.close();
    }
    let store = Corestore::open(tmp.path()).expect("store");
    // The key is not stored (as JS): without it, or with another one, the drive does not open.
    let err = Hyperdrive::open(&store, opts(None, false)).expect_err("no key");
    assert!(
        matches!(&err, DriveError::Header(m) if m.contains("pass its encryption key")),
        "{err}"
    );
    let other = EncryptionKey([1; 32]);
    let err = Hyperdrive::open(&store, opts(Some(other), false)).expect_err("wrong key");
    assert!(
        matches!(&err, DriveError::Header(m) if m.contains("wrong encryption key")),
        "{err}"
    );
    let d = Hyperdrive::open(&store, opts(Some(key), false)).expect("right key");
    assert_eq!(d.get("/a").await.expect("get"), Some(b"hello".to_vec()));
    // Opened blind, it still opens (to seed it) and finds its blobs core.
    let blind = Hyperdrive::open(&store, opts(None, true)).expect("blind");
    assert_eq!(blind.content_key(), d.content_key());
}

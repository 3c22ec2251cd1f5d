//! Hyperdrive 13 interop with JS hyperdrive 13.3.4 / corestore 7 (`tests/interop/js/hyperdrive_peer.js`), over
//! @hyperswarm/secret-stream on loopback TCP:
//!
//! - the fixed vectors (`tests/vectors/hyperdrive_vectors.json`, produced by the JS for primary key 0..31): the
//!   same operations in Rust give the same drive key, content key and byte-identical db blocks and blob blocks;
//! - JS writes a drive (nested folders, unicode names, an empty file, an executable, a symlink, metadata, a
//!   deletion, a 3 MB file, a file written by a stream in 50000-byte blocks): a Rust replica reads one small
//!   file sparsely (fetching only its block), then every entry byte-exact with the same metadata, range reads
//!   equal to the JS ones, a checkout before the deletion, and a live append;
//! - Rust writes the same drive: JS reads every entry, ranges, and a live append.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use holepunch::corestore::Corestore;
use holepunch::crypto::hash;
use holepunch::drive::{Drive, WriteOptions};
use holepunch::hyperblobs::ReadRange;
use holepunch::hyperdrive::{DriveOptions, Hyperdrive, ListOptions};
use holepunch::noise::Keypair;
use holepunch::protomux::Mux;
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hyperdrive-js-{name}"))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

fn opts() -> DriveOptions {
    let mut o = DriveOptions::default();
    o.wait.timeout = Some(T);
    o
}

/// The script's small fixture, in Rust; returns the version before the deletion.
async fn small_fixture(drive: &Hyperdrive) -> u64 {
    let p = WriteOptions::default();
    drive
        .put("/README.md", b"hello drive\n", p.clone())
        .await
        .unwrap();
    drive
        .put(
            "docs/guide/intro.txt",
            "intro\n".repeat(100).as_bytes(),
            p.clone(),
        )
        .await
        .unwrap();
    drive
        .put(
            "/ünïcödé/日本語 ファイル.txt",
            "unicode ✓\n".as_bytes(),
            p.clone(),
        )
        .await
        .unwrap();
    drive.put("/empty", b"", p.clone()).await.unwrap();
    drive
        .put(
            "/bin/run.sh",
            b"#!/bin/sh\necho hi\n",
            WriteOptions {
                executable: true,
                metadata: None,
            },
        )
        .await
        .unwrap();
    drive.symlink_with("/link", "/README.md", None).unwrap();
    drive
        .put(
            "/meta.json",
            b"{}",
            WriteOptions {
                executable: false,
                metadata: Some(
                    json!({"mtime": 1_700_000_000_000u64, "tags": ["a", "b"], "n": null}),
                ),
            },
        )
        .await
        .unwrap();
    drive
        .put("/tmp.txt", b"temporary", p.clone())
        .await
        .unwrap();
    let before = drive.version();
    drive.remove("/tmp.txt").unwrap();
    drive.put("/big.bin", &pattern(200_000), p).await.unwrap();
    before
}

async fn full_fixture(drive: &Hyperdrive) -> u64 {
    let before = small_fixture(drive).await;
    drive
        .put(
            "/multi/mb.bin",
            &pattern(3 * 1024 * 1024 + 12345),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let mut w = drive
        .writer("/streamed.bin", WriteOptions::default())
        .await
        .unwrap();
    for chunk in pattern(300_000).chunks(50_000) {
        w.write(chunk).unwrap();
    }
    w.finish().unwrap();
    before
}

/// Files written through a drive batch (content gathered into few blobs appends, one db append).
async fn batch_fixture(drive: &Hyperdrive) {
    let mut b = drive.new_batch().unwrap();
    for i in 0..30u32 {
        let data = pattern(1000 + 3000 * i as usize);
        b.put(&format!("/batch/f{i:02}"), &data, WriteOptions::default())
            .await
            .unwrap();
    }
    let mut w = b
        .writer("/batch/streamed", WriteOptions::default())
        .await
        .unwrap();
    w.write(&pattern(150_000)).unwrap();
    b.finish_writer(w).unwrap();
    b.put("/batch/after", b"after the writer", WriteOptions::default())
        .await
        .unwrap();
    b.flush().unwrap();
}

/// The same JSON as the script's `dump`.
async fn dump(drive: &Hyperdrive) -> Value {
    let mut entries = Vec::new();
    for e in drive.list_with("/", ListOptions::default()).await.unwrap() {
        let content = match e.blob {
            Some(_) => drive.get(&e.key).await.unwrap(),
            None => None,
        };
        let blob = e.blob.map(|b| {
            json!({"blockOffset": b.block_offset, "byteOffset": b.byte_offset,
                   "blockLength": b.block_length, "byteLength": b.byte_length})
        });
        entries.push(json!({
            "key": e.key,
            "seq": e.seq,
            "executable": e.executable,
            "linkname": e.linkname,
            "blob": blob,
            "metadata": e.metadata,
            "size": content.as_ref().map(Vec::len),
            "hash": content.as_ref().map(|c| hex::encode(hash(&[c]))),
        }));
    }
    json!({"entries": entries, "version": drive.version()})
}

async fn ask(js: &mut JsProcess, cmd: Value) -> Value {
    json_line(&js.ask(&cmd.to_string(), T).await)
}

async fn secret(tcp: TcpStream, initiator: bool) -> SecretStream<TcpStream> {
    tcp.set_nodelay(true).unwrap();
    let kp = Keypair::generate();
    let s = if initiator {
        SecretStream::connect(tcp, &kp).await
    } else {
        SecretStream::accept(tcp, &kp).await
    };
    s.expect("secret stream")
}

#[test]
fn same_operations_give_the_js_drive_byte_for_byte() {
    let v: Value = serde_json::from_str(include_str!("vectors/hyperdrive_vectors.json")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tmp("vectors");
        let pk: [u8; 32] = std::array::from_fn(|i| i as u8);
        let store = Corestore::open_with_primary_key(&dir, pk).unwrap();
        let drive = Hyperdrive::open(&store, DriveOptions::default()).unwrap();
        small_fixture(&drive).await;
        assert_eq!(hex::encode(drive.key()), v["key"]);
        assert_eq!(hex::encode(drive.discovery_key()), v["discoveryKey"]);
        assert_eq!(
            drive.content_key().map(hex::encode),
            v["contentKey"].as_str().map(String::from)
        );
        let db: Vec<String> = (0..drive.core().length())
            .map(|i| hex::encode(drive.core().get(i).unwrap().unwrap()))
            .collect();
        let want_db: Vec<String> = serde_json::from_value(v["db"].clone()).unwrap();
        assert_eq!(db.len(), want_db.len());
        for (i, (a, b)) in db.iter().zip(&want_db).enumerate() {
            assert_eq!(a, b, "db block {i}");
        }
        let blobs = drive.blobs().await.unwrap();
        let got: Vec<String> = (0..blobs.core().length())
            .map(|i| hex::encode(hash(&[&blobs.core().get(i).unwrap().unwrap()])))
            .collect();
        let want: Vec<String> = serde_json::from_value(v["blobs"].clone()).unwrap();
        assert_eq!(got, want, "blob blocks");
        // The signed heads match too: same keys, same blocks, same tree.
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writes_rust_replicates_sparse_ranges_checkout_live() {
    interop::require_js();
    let mut js = node(
        "hyperdrive_peer.js",
        &["writer", tmp("js-w").to_str().unwrap(), "listen"],
    );
    let port = json_line(&js.line(T).await)["port"].as_u64().unwrap() as u16;
    let hello = json_line(&js.line(T).await);
    let key: [u8; 32] = hex::decode(hello["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let js_version = hello["version"].as_u64().unwrap();
    let before_del = hello["beforeDel"].as_u64().unwrap();

    let dir = tmp("rust-r");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open_key(&store, key, opts()).unwrap();
    assert!(!drive.writable());
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _mux: Mux = drive.replicate_stream(secret(tcp, true).await);
    timeout(T, drive.wait_for_peers(1)).await.unwrap();
    assert_eq!(
        timeout(T, drive.wait_for_version(js_version))
            .await
            .unwrap()
            .unwrap(),
        js_version
    );

    // Sparse: one small file fetches its one blob block, not the 3 MB file.
    assert_eq!(
        timeout(T, drive.get("/README.md"))
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some(&b"hello drive\n"[..])
    );
    assert_eq!(
        drive.content_key().map(hex::encode),
        hello["contentKey"].as_str().map(String::from)
    );
    let blobs = drive.blobs().await.unwrap();
    let stored = blobs.core().stored_blocks();
    assert!(stored <= 2, "a sparse read stored {stored} blob blocks");

    // Ranges, compared with the JS reading its own drive (the streamed file has 50000-byte blocks).
    for (path, start, len) in [
        ("/streamed.bin", 49_990u64, 20u64),
        ("/streamed.bin", 123_456, 100_000),
        ("/multi/mb.bin", 1_000_000, 70_000),
        ("/multi/mb.bin", 3 * 1024 * 1024, 12_345),
        ("/big.bin", 0, 1),
    ] {
        let want = ask(
            &mut js,
            json!({"cmd": "range", "path": path, "start": start, "length": len}),
        )
        .await;
        let got = drive
            .read_range(
                path,
                ReadRange {
                    start: Some(start),
                    end: None,
                    length: Some(len),
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(
            hex::encode(&got) == want["hex"].as_str().unwrap(),
            "{path} {start}+{len}"
        );
    }
    let want = ask(
        &mut js,
        json!({"cmd": "range", "path": "/big.bin", "start": 65_530, "end": 65_545}),
    )
    .await;
    let got = drive
        .read_range(
            "/big.bin",
            ReadRange {
                start: Some(65_530),
                end: Some(65_545),
                length: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hex::encode(got), want["hex"].as_str().unwrap());

    // Every entry, byte-exact, with the same values.
    let js_dump = ask(&mut js, json!({"cmd": "dump"})).await;
    let ours = timeout(T, dump(&drive)).await.unwrap();
    assert_eq!(ours, js_dump);
    assert_eq!(
        drive.readdir("/").await.unwrap(),
        ask(&mut js, json!({"cmd": "readdir", "path": "/"})).await["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    );

    // A checkout before the deletion still has the file; the diff shows it.
    let old = drive.checkout(before_del);
    assert_eq!(
        old.get("/tmp.txt").await.unwrap().as_deref(),
        Some(&b"temporary"[..])
    );
    assert!(drive.get("/tmp.txt").await.unwrap().is_none());
    let diff = drive.diff(before_del, "/").await.unwrap();
    assert!(diff
        .iter()
        .any(|d| d.left.is_none() && d.right.as_ref().is_some_and(|e| e.key == "/tmp.txt")));

    // Live: an append on the JS writer reaches the connected Rust reader.
    let v = ask(
        &mut js,
        json!({"cmd": "put", "path": "/live/ñew.txt", "text": "live data"}),
    )
    .await;
    let v = v["version"].as_u64().unwrap();
    timeout(T, drive.wait_for_version(v))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        timeout(T, drive.get("/live/ñew.txt"))
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some(&b"live data"[..])
    );
    js.close_stdin();
    let _ = js.finish(T).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_writes_js_replicates_everything_and_live() {
    interop::require_js();
    let dir = tmp("rust-w");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open(&store, opts()).unwrap();
    full_fixture(&drive).await;
    batch_fixture(&drive).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = hex::encode(drive.key());
    let mut js = node(
        "hyperdrive_peer.js",
        &[
            "reader",
            tmp("js-r").to_str().unwrap(),
            &key,
            "connect",
            &port.to_string(),
        ],
    );
    let (tcp, _) = timeout(T, listener.accept()).await.unwrap().unwrap();
    let _mux = drive.replicate_stream(secret(tcp, false).await);
    assert_eq!(json_line(&js.line(T).await)["ready"], true);
    let w = ask(&mut js, json!({"cmd": "wait", "version": drive.version()})).await;
    assert_eq!(w["version"], drive.version());

    let got = ask(&mut js, json!({"cmd": "get", "path": "/README.md"})).await;
    assert_eq!(got["size"], 12);
    let js_dump = ask(&mut js, json!({"cmd": "dump"})).await;
    assert_eq!(js_dump, dump(&drive).await);
    let want = pattern(300_000);
    let r = ask(
        &mut js,
        json!({"cmd": "range", "path": "/streamed.bin", "start": 65_000, "length": 70_000}),
    )
    .await;
    assert!(r["hex"].as_str().unwrap() == hex::encode(&want[65_000..135_000]));

    let v0 = drive.version();
    drive
        .put("/live.txt", b"from rust", WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(drive.version(), v0 + 1);
    let w = ask(&mut js, json!({"cmd": "wait", "version": v0 + 1})).await;
    assert_eq!(w["version"], v0 + 1);
    let got = ask(&mut js, json!({"cmd": "get", "path": "/live.txt"})).await;
    assert_eq!(
        got["hash"].as_str().unwrap(),
        hex::encode(hash(&[b"from rust"]))
    );
    js.close_stdin();
    let _ = js.finish(T).await;
    let _ = std::fs::remove_dir_all(&dir);
}

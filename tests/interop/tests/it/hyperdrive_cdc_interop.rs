//! Block-map ("diffable") files between Rust and JS hyperdrive 13.3.4 (`tests/interop/js/hyperdrive_peer.js`)
//! over @hyperswarm/secret-stream on loopback TCP:
//!
//! - Rust writes a file, then a version with bytes inserted in the middle (content-defined chunks, a block
//!   map re-using the first version's blocks): the JS reader reads it byte-exact, whole and by range;
//! - JS writes a file twice with `createWriteStream(path, { dedup: true })` (its block maps), the second time
//!   with a block inserted: the Rust replica reads it byte-exact, with its content length.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use holepunch::corestore::Corestore;
use holepunch::crypto::hash;
use holepunch::drive::{Drive, WriteOptions};
use holepunch::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch::noise::Keypair;
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hyperdrive-cdc-js-{name}"))
}

/// The JS peer's `pattern(n)`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Pseudo-random bytes (a pattern repeating every 256 bytes would chunk into identical pieces).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn opts() -> DriveOptions {
    let mut o = DriveOptions::default();
    o.wait.timeout = Some(T);
    o
}

async fn ask(js: &mut JsProcess, cmd: Value) -> Value {
    let line = js.ask(&cmd.to_string(), T).await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_reads_a_rust_block_mapped_file() {
    interop::require_js();
    let dir = tmp("rust-w");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open(&store, opts()).unwrap();
    let v1 = noise(3 << 20, 1);
    drive
        .put_reader("/big.bin", &v1[..], WriteOptions::default())
        .await
        .unwrap();
    let mut v2 = v1[..1_500_000].to_vec();
    v2.extend_from_slice(&noise(300_000, 2));
    v2.extend_from_slice(&v1[1_500_000..]);
    let blobs = drive.blobs().await.unwrap();
    let before = blobs.core().byte_length();
    drive
        .put_reader("/big.bin", &v2[..], WriteOptions::default())
        .await
        .unwrap();
    let grew = blobs.core().byte_length() - before;
    assert!(grew < 1 << 20, "appended {grew}");
    let entry = drive.entry("/big.bin").await.unwrap().unwrap();
    assert!(entry.blob.unwrap().block_map);
    assert_eq!(entry.byte_length, Some(v2.len() as u64));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut js = node(
        "hyperdrive_peer.js",
        &[
            "reader",
            tmp("js-r").to_str().unwrap(),
            &hex::encode(drive.key()),
            "connect",
            &port.to_string(),
        ],
    );
    let (tcp, _) = timeout(T, listener.accept()).await.unwrap().unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream = SecretStream::accept(tcp, &Keypair::generate())
        .await
        .unwrap();
    let _mux = drive.replicate_stream(stream);
    let ready = js.line(T).await;
    assert!(ready.contains("ready"), "{ready}");
    let w = ask(&mut js, json!({"cmd": "wait", "version": drive.version()})).await;
    assert_eq!(w["version"], drive.version());
    let got = ask(&mut js, json!({"cmd": "get", "path": "/big.bin"})).await;
    assert_eq!(got["size"], v2.len());
    assert_eq!(got["hash"].as_str().unwrap(), hex::encode(hash(&[&v2])));
    // Ranges across the inserted bytes' edges.
    for (start, length) in [(1_499_000usize, 2_000usize), (1_799_990, 20), (0, 70_000)] {
        let r = ask(
            &mut js,
            json!({"cmd": "range", "path": "/big.bin", "start": start, "length": length}),
        )
        .await;
        assert_eq!(
            r["hex"].as_str().unwrap(),
            hex::encode(&v2[start..start + length]),
            "range {start}+{length}"
        );
    }
    js.close_stdin();
    let _ = js.finish(T).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_reads_a_js_block_mapped_file() {
    interop::require_js();
    let mut js = node(
        "hyperdrive_peer.js",
        &["writer", tmp("js-w").to_str().unwrap(), "listen"],
    );
    let port = serde_json::from_str::<Value>(&js.line(T).await).unwrap()["port"]
        .as_u64()
        .unwrap() as u16;
    let hello: Value = serde_json::from_str(&js.line(T).await).unwrap();
    let key: [u8; 32] = hex::decode(hello["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    const SIZE: usize = 1 << 20;
    let first = ask(
        &mut js,
        json!({"cmd": "dedup", "path": "/dedup.bin", "size": SIZE, "insertAt": 0, "insertLen": 0}),
    )
    .await;
    assert_eq!(first["blob"]["blockMap"], true, "{first}");
    let second = ask(
        &mut js,
        json!({"cmd": "dedup", "path": "/dedup.bin", "size": SIZE, "insertAt": 5 * 65536, "insertLen": 1000}),
    )
    .await;
    assert_eq!(second["blob"]["blockMap"], true, "{second}");
    // JS stored only the inserted piece and the map again.
    let grew = second["blobsLength"].as_u64().unwrap() - first["blobsLength"].as_u64().unwrap();
    assert_eq!(grew, 2, "{first} {second}");
    let mut want = pattern(SIZE);
    let inserted: Vec<u8> = pattern(1000).iter().map(|b| b ^ 0x5a).collect();
    want.splice(5 * 65536..5 * 65536, inserted);

    let dir = tmp("rust-r");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open_key(&store, key, opts()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream = SecretStream::connect(tcp, &Keypair::generate())
        .await
        .unwrap();
    let _mux = drive.replicate_stream(stream);
    timeout(T, drive.wait_for_peers(1)).await.unwrap();
    let version = second["version"].as_u64().unwrap();
    timeout(T, drive.wait_for_version(version))
        .await
        .unwrap()
        .unwrap();
    let entry = timeout(T, drive.entry("/dedup.bin"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(entry.blob.unwrap().block_map);
    assert_eq!(entry.byte_length, Some(want.len() as u64));
    let got = timeout(T, drive.get("/dedup.bin"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "content differs");
    js.close_stdin();
    let _ = js.finish(T).await;
    let _ = std::fs::remove_dir_all(&dir);
}

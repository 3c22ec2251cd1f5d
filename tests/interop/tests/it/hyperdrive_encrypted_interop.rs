//! Encrypted hyperdrives (`encryptionKey`) with JS hyperdrive 13.3.4 (`tests/interop/js/hyperdrive_encrypted_peer.js`),
//! over @hyperswarm/secret-stream on loopback TCP, both ways:
//!
//! - JS writes an encrypted drive: a Rust reader with the key reads every file byte-exact; a Rust blind replica
//!   (no key) downloads every block of both cores, holds no plaintext, and serves a JS reader with the key, which
//!   reads everything; a JS reader without the key cannot.
//! - Rust writes an encrypted drive: a JS reader with the key reads every file byte-exact; without it, it
//!   cannot.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use holepunch::corestore::Corestore;
use holepunch::crypto::hash;
use holepunch::drive::{Drive, WriteOptions};
use holepunch::hyperdrive::{DriveOptions, EncryptionKey, Hyperdrive, ListOptions};
use holepunch::noise::Keypair;
use holepunch::protomux::Mux;
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(60);
/// What the JS writer's `/secret.txt` repeats.
const JS_MARKER: &[u8] = b"PLAINTEXT-MARKER-js-5c1d";
/// What the Rust writer's files contain.
const RUST_MARKER: &[u8] = b"PLAINTEXT-MARKER-rust-9e02";

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hyperdrive-enc-{name}"))
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

async fn ask(js: &mut JsProcess, cmd: Value) -> Value {
    json_line(&js.ask(&cmd.to_string(), T).await)
}

fn opts(key: Option<EncryptionKey>, blind: bool) -> DriveOptions {
    let mut o = DriveOptions {
        encryption_key: key,
        blind,
        ..DriveOptions::default()
    };
    o.wait.timeout = Some(T);
    o
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

/// The script's `dump`: key, size and BLAKE2b-256 of every file.
async fn dump(drive: &Hyperdrive) -> Value {
    let mut entries = Vec::new();
    for e in drive.list_with("/", ListOptions::default()).await.unwrap() {
        let content = drive.get(&e.key).await.unwrap();
        entries.push(json!({
            "key": e.key,
            "size": content.as_ref().map(Vec::len),
            "hash": content.as_ref().map(|c| hex::encode(hash(&[c]))),
        }));
    }
    json!({"entries": entries, "version": drive.version()})
}

/// Files under `dir` containing `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// Serves `drive` to every TCP connection on a new loopback listener; returns its port.
async fn serve(drive: &Hyperdrive) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = drive.clone();
    tokio::spawn(async move {
        let mut muxes: Vec<Mux> = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            muxes.push(d.replicate_stream(secret(tcp, false).await));
        }
    });
    port
}

/// Connects `drive` to a JS peer listening on `port`.
async fn connect(drive: &Hyperdrive, port: u16) -> Mux {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    drive.replicate_stream(secret(tcp, true).await)
}

/// A JS reader of `key` (with `enc` or none) connected to `port`; returns it once it says ready.
async fn js_reader(name: &str, key: &[u8; 32], enc: Option<EncryptionKey>, port: u16) -> JsProcess {
    let enc = enc.map_or("none".to_string(), |k| hex::encode(k.0));
    let mut js = node(
        "hyperdrive_encrypted_peer.js",
        &[
            "reader",
            tmp(name).to_str().unwrap(),
            &hex::encode(key),
            &enc,
            "connect",
            &port.to_string(),
        ],
    );
    assert_eq!(json_line(&js.line(T).await)["ready"], true);
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_encrypted_drive_rust_reads_and_blind_seeds_to_js() {
    interop::require_js();
    let enc = EncryptionKey::generate();
    let mut writer = node(
        "hyperdrive_encrypted_peer.js",
        &[
            "writer",
            tmp("js-w").to_str().unwrap(),
            &hex::encode(enc.0),
            "listen",
        ],
    );
    let port = json_line(&writer.line(T).await)["port"].as_u64().unwrap() as u16;
    let info = json_line(&writer.line(T).await);
    let key: [u8; 32] = hex::decode(info["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let js_dump = ask(&mut writer, json!({"cmd": "dump"})).await;
    assert_eq!(js_dump["entries"].as_array().unwrap().len(), 2);

    // A Rust reader with the key reads the JS drive byte-exact.
    let rdir = tmp("rust-r");
    let rstore = Corestore::open(&rdir).unwrap();
    let reader = Hyperdrive::open_key(&rstore, key, opts(Some(enc), false)).unwrap();
    let _m1 = connect(&reader, port).await;
    reader.wait_for_peers(1).await;
    reader.update().await.unwrap();
    assert_eq!(dump(&reader).await, js_dump);
    assert_eq!(
        reader.content_key().map(hex::encode).as_deref(),
        info["contentKey"].as_str()
    );

    // A Rust blind replica downloads every block, holding no plaintext.
    let bdir = tmp("rust-blind");
    let bstore = Corestore::open(&bdir).unwrap();
    let blind = Hyperdrive::open_key(&bstore, key, opts(None, true)).unwrap();
    let _m2 = connect(&blind, port).await;
    blind.wait_for_peers(1).await;
    let got = blind.download_blocks().await.unwrap();
    assert_eq!(got.files, info["dbLength"].as_u64().unwrap());
    assert_eq!(got.blobs, info["blobsLength"].as_u64().unwrap());
    assert!(!blind.header_decodes().await.unwrap());
    assert_eq!(files_containing(&bdir, JS_MARKER), Vec::<String>::new());
    // The plaintext is in the keyed reader's reads, not in its store either (blocks stay encrypted at rest).
    assert_eq!(files_containing(&rdir, JS_MARKER), Vec::<String>::new());

    // The JS writer goes away; the blind replica serves a JS reader with the key, which reads everything.
    writer.close_stdin();
    let _ = writer.finish(T).await;
    let bport = serve(&blind).await;
    let mut js = js_reader("js-r-key", &key, Some(enc), bport).await;
    assert_eq!(ask(&mut js, json!({"cmd": "dump"})).await, js_dump);
    js.close_stdin();
    let _ = js.finish(T).await;
    // Without the key, the JS reader cannot read it.
    let mut js = js_reader("js-r-nokey", &key, None, bport).await;
    let d = ask(&mut js, json!({"cmd": "dump"})).await;
    assert!(d["error"].is_string(), "{d}");
    js.close_stdin();
    let _ = js.finish(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_encrypted_drive_js_reads_with_the_key_only() {
    interop::require_js();
    let enc = EncryptionKey::generate();
    let dir = tmp("rust-w");
    let store = Corestore::open(&dir).unwrap();
    let drive = Hyperdrive::open(&store, opts(Some(enc), false)).unwrap();
    let mut big = Vec::new();
    while big.len() < 300_000 {
        big.extend_from_slice(RUST_MARKER);
        big.push(b'\n');
    }
    let w = WriteOptions::default();
    drive.put("/big.txt", &big, w.clone()).await.unwrap();
    drive
        .put("/docs/small.txt", RUST_MARKER, w.clone())
        .await
        .unwrap();
    drive.put("/empty", b"", w).await.unwrap();
    assert_eq!(files_containing(&dir, RUST_MARKER), Vec::<String>::new());
    let port = serve(&drive).await;

    let mut js = js_reader("js-r2-key", &drive.key(), Some(enc), port).await;
    assert_eq!(
        ask(&mut js, json!({"cmd": "dump"})).await,
        dump(&drive).await
    );
    // A live append reaches it too.
    drive
        .put("/live.txt", b"live", WriteOptions::default())
        .await
        .unwrap();
    let v = ask(&mut js, json!({"cmd": "wait", "version": drive.version()})).await;
    assert_eq!(v["version"], drive.version());
    assert_eq!(
        ask(&mut js, json!({"cmd": "dump"})).await,
        dump(&drive).await
    );
    js.close_stdin();
    let _ = js.finish(T).await;

    let mut js = js_reader("js-r2-nokey", &drive.key(), None, port).await;
    let d = ask(&mut js, json!({"cmd": "dump"})).await;
    assert!(d["error"].is_string(), "{d}");
    js.close_stdin();
    let _ = js.finish(T).await;
}

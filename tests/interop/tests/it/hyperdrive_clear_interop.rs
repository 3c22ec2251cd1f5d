//! `Hyperdrive::clear` seen by a JS hyperdrive 13 reader (`tests/interop/js/hyperdrive_peer.js`) replicating
//! from the Rust writer over @hyperswarm/secret-stream on loopback TCP: the JS peer learns from the `range`
//! drop that the cleared file's blocks are gone (and that what follows is still there), cannot get that file
//! any more, and still reads every other file.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use holepunch::corestore::Corestore;
use holepunch::crypto::hash;
use holepunch::drive::{Drive, WriteOptions};
use holepunch::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch::noise::Keypair;
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hyperdrive-clear-js-{name}"))
}

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ salt)
        .collect()
}

async fn ask(js: &mut JsProcess, cmd: Value) -> Value {
    let line = js.ask(&cmd.to_string(), T).await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_reader_sees_a_rust_clear_and_reads_the_rest() {
    interop::require_js();
    let dir = tmp("rust-w");
    let store = Corestore::open(&dir).unwrap();
    let mut opts = DriveOptions::default();
    opts.wait.timeout = Some(T);
    let drive = Hyperdrive::open(&store, opts).unwrap();
    drive
        .put("/first.bin", &pattern(200_000, 1), WriteOptions::default())
        .await
        .unwrap();
    drive
        .put(
            "/cleared.bin",
            &pattern(300_000, 2),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    drive
        .put("/last.bin", &pattern(150_000, 3), WriteOptions::default())
        .await
        .unwrap();

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
    // JS reads one file (opening its blobs core and learning what the Rust peer has).
    let got = ask(&mut js, json!({"cmd": "get", "path": "/first.bin"})).await;
    assert_eq!(
        got["hash"].as_str().unwrap(),
        hex::encode(hash(&[&pattern(200_000, 1)]))
    );
    let has = ask(&mut js, json!({"cmd": "remoteHas", "path": "/cleared.bin"})).await;
    assert_eq!(has, json!({"has": 5, "blocks": 5}));

    let cleared = drive.clear("/cleared.bin").await.unwrap();
    assert_eq!((cleared.blocks, cleared.bytes), (5, 300_000));

    // The drop reaches the JS peer: it no longer counts on those blocks, and still counts on the later ones.
    let deadline = Instant::now() + T;
    loop {
        let has = ask(&mut js, json!({"cmd": "remoteHas", "path": "/cleared.bin"})).await;
        if has["has"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "JS never saw the drop: {has}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let has = ask(&mut js, json!({"cmd": "remoteHas", "path": "/last.bin"})).await;
    assert_eq!(has, json!({"has": 3, "blocks": 3}));
    let got = ask(&mut js, json!({"cmd": "get", "path": "/last.bin"})).await;
    assert_eq!(
        got["hash"].as_str().unwrap(),
        hex::encode(hash(&[&pattern(150_000, 3)]))
    );
    // Last: JS cannot get the cleared file from this peer any more (it does not even ask). (JS hyperdrive
    // 13 does not answer reads after such a timed-out get, so nothing follows it.)
    let gone = ask(
        &mut js,
        json!({"cmd": "tryget", "path": "/cleared.bin", "timeout": 1500}),
    )
    .await;
    assert!(gone["error"].is_string(), "cleared file was read: {gone}");
    js.close_stdin();
    let _ = js.finish(T).await;
    let _ = std::fs::remove_dir_all(&dir);
}

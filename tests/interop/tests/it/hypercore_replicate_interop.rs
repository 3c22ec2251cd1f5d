//! Hypercore replication between Rust and JS hypercore 11.37.1, over @hyperswarm/secret-stream on TCP
//! (`js/hypercore_replicate.js`): JS writer -> Rust reader and Rust writer -> JS reader with either side
//! listening, byte-exact full downloads, a sparse read of a 100k-block JS core that fetches only the blocks
//! read, and live appends seen by the other side.

use std::path::PathBuf;
use std::time::Duration;

use holepunch::crypto::{hash, KeyPair};
use holepunch::hypercore::replicator::{replicate_stream, Replicator};
use holepunch::hypercore::{Durability, Hypercore};
use holepunch::noise::Keypair;
use holepunch::protomux::Mux;
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hc-repl-js-{name}"))
}

/// The script's block `i`.
fn block(i: u64) -> Vec<u8> {
    format!("block number {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
}

fn key_of(v: &serde_json::Value) -> [u8; 32] {
    let hex = v["key"].as_str().expect("key");
    hex::decode(hex).expect("hex").try_into().expect("32 bytes")
}

fn blocks_hash(core: &Hypercore) -> String {
    let blocks: Vec<Vec<u8>> = (0..core.length())
        .map(|i| core.get(i).expect("get").expect("block present"))
        .collect();
    let parts: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    hex::encode(hash(&[&parts.concat()]))
}

async fn connect(port: u16, cores: &[Replicator]) -> Mux {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let stream = SecretStream::connect(tcp, &Keypair::generate())
        .await
        .expect("secret stream");
    replicate_stream(stream, cores)
}

async fn accept(listener: &TcpListener, cores: &[Replicator]) -> Mux {
    let (tcp, _) = listener.accept().await.expect("accept");
    tcp.set_nodelay(true).expect("nodelay");
    let stream = SecretStream::accept(tcp, &Keypair::generate())
        .await
        .expect("secret stream");
    replicate_stream(stream, cores)
}

async fn js_writer(n: u64, listen: Option<u16>) -> (JsProcess, [u8; 32], Option<u16>) {
    let dir = tmp("js-writer");
    let dir = dir.to_str().expect("utf8");
    let n = n.to_string();
    let mut js = match listen {
        None => node("hypercore_replicate.js", &["writer", dir, &n, "listen"]),
        Some(p) => node(
            "hypercore_replicate.js",
            &["writer", dir, &n, "connect", &p.to_string()],
        ),
    };
    let port = if listen.is_none() {
        let v = json(&js.line(T).await);
        Some(v["port"].as_u64().expect("port") as u16)
    } else {
        None
    };
    let v = json(&js.line(T).await);
    (js, key_of(&v), port)
}

fn rust_reader(key: [u8; 32]) -> (Hypercore, Replicator) {
    let core = Hypercore::create_reader(tmp("rust-reader"), key, None).expect("reader");
    core.set_durability(Durability::Process);
    let rep = Replicator::new(core.clone());
    (core, rep)
}

fn rust_writer(n: u64) -> (Hypercore, Replicator) {
    let core = Hypercore::create(tmp("rust-writer"), KeyPair::generate()).expect("create");
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    for chunk in blocks.chunks(500) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
    }
    let rep = Replicator::new(core.clone());
    (core, rep)
}

async fn full_js_to_rust(rust_listens: bool) {
    let (mut js, key, _mux);
    let (core, rep);
    if rust_listens {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let p = listener.local_addr().expect("addr").port();
        let (j, k, _) = js_writer(1000, Some(p)).await;
        (js, key) = (j, k);
        (core, rep) = rust_reader(key);
        _mux = timeout(T, accept(&listener, std::slice::from_ref(&rep)))
            .await
            .expect("accept");
    } else {
        let (j, k, port) = js_writer(1000, None).await;
        (js, key) = (j, k);
        (core, rep) = rust_reader(key);
        _mux = connect(port.expect("port"), std::slice::from_ref(&rep)).await;
    }
    let len = timeout(T, rep.update()).await.expect("update");
    assert_eq!(len, 1000);
    timeout(T, rep.download(0, len)).await.expect("download");
    for i in 0..len {
        assert_eq!(core.get(i).expect("get"), Some(block(i)), "block {i}");
    }
    // Live: the JS writer appends, the Rust reader sees the new length and blocks.
    let _all = rep.download_all();
    let v = json(&js.ask("append 5", T).await);
    assert_eq!(v["length"], 1005);
    let mut rx = core.subscribe();
    timeout(T, async {
        while !(core.length() == 1005 && (1000..1005).all(|i| core.has(i))) {
            rx.changed().await.expect("changed");
        }
    })
    .await
    .expect("live append from JS");
    assert_eq!(core.get(1004).expect("get"), Some(block(1004)));
    let stats = json(&js.ask("stats", T).await);
    assert_eq!(stats["uploads"], 1005);
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn js_writer_to_rust_reader_rust_connects() {
    full_js_to_rust(false).await;
}

#[tokio::test]
async fn js_writer_to_rust_reader_js_connects() {
    full_js_to_rust(true).await;
}

async fn full_rust_to_js(rust_listens: bool) {
    let (core, rep) = rust_writer(1000);
    let key = hex::encode(core.key());
    let dir = tmp("js-reader");
    let dir = dir.to_str().expect("utf8");
    let (mut js, _mux);
    if rust_listens {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let p = listener.local_addr().expect("addr").port().to_string();
        js = node(
            "hypercore_replicate.js",
            &["reader", dir, &key, "connect", &p],
        );
        _mux = timeout(T, accept(&listener, std::slice::from_ref(&rep)))
            .await
            .expect("accept");
    } else {
        js = node("hypercore_replicate.js", &["reader", dir, &key, "listen"]);
        let v = json(&js.line(T).await);
        let port = v["port"].as_u64().expect("port") as u16;
        _mux = connect(port, std::slice::from_ref(&rep)).await;
    }
    let v = json(&js.line(T).await);
    assert_eq!(v["length"], 1000);
    assert_eq!(v["hash"].as_str(), Some(blocks_hash(&core).as_str()));
    // Live: the Rust writer appends, the JS reader sees it.
    core.append(&[&block(1000), &block(1001), &block(1002)])
        .expect("append");
    let v = json(&js.ask("wait 1003", T).await);
    assert_eq!(v["length"], 1003);
    assert_eq!(v["hash"].as_str(), Some(blocks_hash(&core).as_str()));
    assert_eq!(rep.stats().blocks_uploaded, 1003);
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn rust_writer_to_js_reader_rust_connects() {
    full_rust_to_js(false).await;
}

#[tokio::test]
async fn rust_writer_to_js_reader_js_connects() {
    full_rust_to_js(true).await;
}

#[tokio::test]
async fn sparse_reads_from_a_100k_js_core() {
    let (mut js, key, port) = js_writer(100_000, None).await;
    let (core, rep) = rust_reader(key);
    let _mux = connect(port.expect("port"), std::slice::from_ref(&rep)).await;
    assert_eq!(timeout(T, rep.update()).await.expect("update"), 100_000);
    let picks = [0u64, 99_999, 31_337, 65_536, 12];
    for &i in &picks {
        let got = timeout(T, rep.get(i))
            .await
            .expect("get in time")
            .expect("get");
        assert_eq!(got, block(i));
    }
    assert_eq!(core.stored_blocks(), picks.len() as u64);
    for &i in &picks {
        assert!(core.has(i));
    }
    let s = rep.stats();
    assert_eq!(s.blocks_downloaded, picks.len() as u64);
    // One upgrade, one request per block read.
    assert_eq!(s.requests_sent, picks.len() as u64 + 1);
    let stats = json(&js.ask("stats", T).await);
    assert_eq!(stats["uploads"], picks.len() as u64);
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn many_js_cores_on_one_connection() {
    let dir = tmp("js-many");
    let mut js = interop::tokio::command("hypercore_replicate.js")
        .args(["writer", dir.to_str().expect("utf8"), "100", "listen"])
        .env("CORES", "4")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = js.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut next = async || {
        let l = timeout(T, lines.next_line()).await.expect("line in time");
        json(&l.expect("read").expect("a line"))
    };
    let port = next().await["port"].as_u64().expect("port") as u16;
    let v = next().await;
    let keys: Vec<[u8; 32]> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            hex::decode(k.as_str().expect("hex"))
                .expect("hex")
                .try_into()
                .expect("32")
        })
        .collect();
    assert_eq!(keys.len(), 4);
    let readers: Vec<(Hypercore, Replicator)> = keys.iter().map(|k| rust_reader(*k)).collect();
    let reps: Vec<Replicator> = readers.iter().map(|(_, r)| r.clone()).collect();
    let _mux = connect(port, &reps).await;
    for (j, (core, rep)) in readers.iter().enumerate() {
        let len = timeout(T, rep.update()).await.expect("update");
        assert_eq!(len, 100 + j as u64);
        timeout(T, rep.download(0, len)).await.expect("download");
        for i in 0..len {
            assert_eq!(
                core.get(i).expect("get"),
                Some(block(i)),
                "core {j} block {i}"
            );
        }
    }
    drop(js.stdin.take());
    let status = timeout(T, js.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success());
}

#[tokio::test]
async fn js_reads_from_a_sparse_rust_replica() {
    // Rust writer -> Rust sparse replica (blocks 5 and 700 only) -> JS reader asking for block 700: the JS
    // asks with `want`, the replica answers with the ranges it has, then serves the block with its proof.
    let (w, rw) = rust_writer(1000);
    let (mid, rm) = rust_reader(w.key());
    let (ta, tb) = holepunch::protomux::memory_pair();
    let hh = [9u8; 64];
    let _m1 = holepunch::hypercore::replicator::replicate(ta, true, &hh, std::slice::from_ref(&rw));
    let _m2 =
        holepunch::hypercore::replicator::replicate(tb, false, &hh, std::slice::from_ref(&rm));
    assert_eq!(timeout(T, rm.update()).await.expect("update"), 1000);
    for i in [5, 700] {
        timeout(T, rm.get(i)).await.expect("get").expect("ok");
    }
    assert_eq!(mid.stored_blocks(), 2);
    drop(rw); // the writer's replicator is still attached to its mux; the JS peer only meets the replica

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let dir = tmp("js-sparse-reader");
    let key = hex::encode(w.key());
    let mut js = interop::tokio::command("hypercore_replicate.js")
        .args([
            "reader",
            dir.to_str().expect("utf8"),
            &key,
            "connect",
            &port,
        ])
        .env("GET", "700")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let _mux = timeout(T, accept(&listener, std::slice::from_ref(&rm)))
        .await
        .expect("accept");
    let stdout = js.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = timeout(T, lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("line");
    let v = json(&line);
    assert_eq!(v["index"], 700);
    assert_eq!(
        v["value"].as_str().map(str::as_bytes),
        Some(block(700).as_slice())
    );
    let line = timeout(T, lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("line");
    assert_eq!(json(&line)["length"], 1000);
    drop(js.stdin.take());
    let status = timeout(T, js.wait()).await.expect("exit").expect("wait");
    assert!(status.success());
}

#[tokio::test]
async fn rust_reader_follows_a_js_truncation() {
    let (mut js, key, port) = js_writer(200, None).await;
    let (core, rep) = rust_reader(key);
    let _mux = connect(port.expect("port"), std::slice::from_ref(&rep)).await;
    let _all = rep.download_all();
    assert_eq!(timeout(T, rep.update()).await.expect("update"), 200);
    timeout(T, rep.download(0, 200)).await.expect("download");
    let v = json(&js.ask("truncate 150", T).await);
    assert_eq!(
        (v["length"].as_u64(), v["fork"].as_u64()),
        (Some(150), Some(1))
    );
    let v = json(&js.ask("append 3", T).await);
    assert_eq!(v["length"], 153);
    let mut rx = core.subscribe();
    timeout(T, async {
        while !(core.fork() == 1 && core.length() == 153 && (150..153).all(|i| core.has(i))) {
            rx.changed().await.expect("changed");
        }
    })
    .await
    .expect("Rust reader moved to the JS writer's new fork");
    for i in [0, 149, 150, 152] {
        assert_eq!(core.get(i).expect("get"), Some(block(i)), "block {i}");
    }
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn js_reader_follows_a_rust_truncation() {
    let (core, rep) = rust_writer(200);
    let key = hex::encode(core.key());
    let dir = tmp("js-reader-fork");
    let mut js = node(
        "hypercore_replicate.js",
        &["reader", dir.to_str().expect("utf8"), &key, "listen"],
    );
    let v = json(&js.line(T).await);
    let port = v["port"].as_u64().expect("port") as u16;
    let _mux = connect(port, std::slice::from_ref(&rep)).await;
    let v = json(&js.line(T).await);
    assert_eq!(v["length"], 200);
    core.truncate(120).expect("truncate");
    core.append(&[&block(120), &block(121), &block(122), &block(123)])
        .expect("append");
    // The JS reader reorgs to fork 1 and downloads the new blocks.
    let v = json(&js.ask("wait 124", T).await);
    assert_eq!(v["length"], 124);
    assert_eq!(v["hash"].as_str(), Some(blocks_hash(&core).as_str()));
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

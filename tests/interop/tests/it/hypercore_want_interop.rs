//! `want` and extensions between Rust and JS hypercore 11.37.1 (`js/hypercore_want.js`), over
//! @hyperswarm/secret-stream on TCP: a JS sparse seeder that holds only block 50 000 of a 60 000-block core
//! serves it to a Rust reader (which finds it with one `want`), a Rust sparse seeder serves the same to a
//! JS reader, and extension messages go JS -> Rust -> JS.

use std::path::PathBuf;
use std::time::Duration;

use holepunch::crypto::KeyPair;
use holepunch::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
use holepunch::hypercore::replicator::{replicate_stream, Replicator};
use holepunch::hypercore::{Durability, Hypercore};
use holepunch::noise::Keypair;
use holepunch::protomux::Mux;
use holepunch::secret_stream::SecretStream;
use interop::tokio::node;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);
const LEN: u64 = 60_000;
const FAR: u64 = 50_000;

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hc-want-js-{name}"))
}

/// The script's block `i`.
fn block(i: u64) -> Vec<u8> {
    format!("block {i}").into_bytes()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
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
    let (tcp, _) = timeout(T, listener.accept())
        .await
        .expect("accept in time")
        .expect("accept");
    tcp.set_nodelay(true).expect("nodelay");
    let stream = SecretStream::accept(tcp, &Keypair::generate())
        .await
        .expect("secret stream");
    replicate_stream(stream, cores)
}

fn writer(n: u64) -> Hypercore {
    let core = Hypercore::create(tmp("writer"), KeyPair::generate()).expect("create");
    core.set_durability(Durability::Process);
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    for chunk in blocks.chunks(1000) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
    }
    core
}

#[tokio::test]
async fn js_sparse_seeder_serves_a_far_block_to_a_rust_reader() {
    let dir = tmp("js-seeder");
    let (n, far) = (LEN.to_string(), FAR.to_string());
    let mut js = node(
        "hypercore_want.js",
        &["seeder", dir.to_str().expect("utf8"), &n, &far],
    );
    let v = json(&js.line(T).await);
    assert_eq!(v["length"], LEN);
    assert_eq!(v["contiguous"], 0);
    assert_eq!(v["stored"], 1, "the JS seeder holds only block {FAR}");
    let key: [u8; 32] = hex::decode(v["key"].as_str().expect("key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let port = v["port"].as_u64().expect("port") as u16;

    let core = Hypercore::create_reader(tmp("rust-reader"), key, None).expect("reader");
    core.set_durability(Durability::Process);
    let rep = Replicator::new(core.clone());
    let _mux = connect(port, std::slice::from_ref(&rep)).await;
    assert_eq!(timeout(T, rep.update()).await.expect("update"), LEN);
    let got = timeout(T, rep.get(FAR)).await.expect("get in time");
    assert_eq!(got.expect("get"), block(FAR));
    assert_eq!(core.stored_blocks(), 1);
    let s = rep.stats();
    assert_eq!(s.wants_sent, 1, "one want for segment 0: {s:?}");
    assert_eq!(s.requests_sent, 2, "the upgrade and the block: {s:?}");
    assert_eq!(s.no_data_received, 0);
    let stats = json(&js.ask("stats", T).await);
    assert_eq!(stats["uploads"], 1);
    let status = js.finish(T).await;
    assert!(status.is_some_and(|s| s.success()), "JS exit: {status:?}");
}

#[tokio::test]
async fn rust_sparse_seeder_serves_a_far_block_to_a_js_reader() {
    let w = writer(LEN);
    // The seeder holds only block FAR (and the signed head), taken from the writer's proof.
    let s = Hypercore::create_reader(tmp("rust-seeder"), w.key(), None).expect("reader");
    s.set_durability(Durability::Process);
    let data = w
        .proof(&Request {
            id: 1,
            block: Some(RequestBlock {
                index: FAR,
                nodes: s.missing_nodes(2 * FAR),
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: LEN,
            }),
            manifest: true,
            ..Request::default()
        })
        .expect("proof");
    s.apply_proof(&data).expect("apply");
    assert_eq!((s.length(), s.stored_blocks()), (LEN, 1));
    let rep = Replicator::new(s.clone());

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let dir = tmp("js-reader");
    let key = hex::encode(w.key());
    let far = FAR.to_string();
    let mut js = node(
        "hypercore_want.js",
        &["reader", dir.to_str().expect("utf8"), &key, &far, &port],
    );
    let _mux = accept(&listener, std::slice::from_ref(&rep)).await;
    let v = json(&js.line(T).await);
    assert_eq!(v["index"], FAR);
    assert_eq!(v["value"].as_str(), Some(format!("block {FAR}").as_str()));
    assert_eq!(v["length"], LEN);
    assert_eq!(v["downloads"], 1);
    assert!(
        v["wantsSent"].as_u64().is_some_and(|n| n >= 1),
        "the JS reader found the block through a want: {v}"
    );
    let st = rep.stats();
    assert!(st.wants_received >= 1, "{st:?}");
    assert_eq!(st.blocks_uploaded, 1);
    js.close_stdin();
    let status = js.finish(T).await;
    assert!(status.is_some_and(|s| s.success()), "JS exit: {status:?}");
}

#[tokio::test]
async fn extension_round_trip_js_rust_js() {
    let w = writer(3);
    let rep = Replicator::new(w.clone());
    let ext = rep.register_extension("x");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let dir = tmp("js-ext");
    let key = hex::encode(w.key());
    let mut js = node(
        "hypercore_want.js",
        &["ext", dir.to_str().expect("utf8"), &key, &port],
    );
    let _mux = accept(&listener, std::slice::from_ref(&rep)).await;
    // JS sends "y" (not registered here: ignored), then "x" twice (the second with an empty name).
    for i in 1..=2 {
        let (peer, m) = timeout(T, ext.recv()).await.expect("extension message");
        assert_eq!(m, format!("ping {i}").into_bytes());
        let mut reply = b"rust got ".to_vec();
        reply.extend_from_slice(&m);
        assert!(ext.send(peer, &reply));
    }
    for i in 1..=2 {
        let v = json(&js.line(T).await);
        assert_eq!(
            v["got"].as_str(),
            Some(format!("rust got ping {i}").as_str())
        );
    }
    let status = js.finish(T).await;
    assert!(status.is_some_and(|s| s.success()), "JS exit: {status:?}");
    let st = rep.stats();
    assert_eq!((st.extensions_received, st.extensions_sent), (2, 2));
    assert_eq!(st.extensions_dropped, 0);
}

#[tokio::test]
async fn js_seeder_announces_a_block_it_gets_later_to_a_rust_reader_that_wants_it() {
    let dir = tmp("js-seeder-later");
    let n = LEN.to_string();
    let mut js = node(
        "hypercore_want.js",
        &["seeder", dir.to_str().expect("utf8"), &n, "10"],
    );
    let v = json(&js.line(T).await);
    assert_eq!(v["stored"], 1);
    let key: [u8; 32] = hex::decode(v["key"].as_str().expect("key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let port = v["port"].as_u64().expect("port") as u16;
    let core = Hypercore::create_reader(tmp("rust-reader-later"), key, None).expect("reader");
    core.set_durability(Durability::Process);
    let rep = Replicator::new(core.clone());
    let _mux = connect(port, std::slice::from_ref(&rep)).await;
    assert_eq!(timeout(T, rep.update()).await.expect("update"), LEN);
    // Block 10 is found through the want for segment 0: the seeder has that want once this returns.
    let got = timeout(T, rep.get(10)).await.expect("get in time");
    assert_eq!(got.expect("get"), block(10));
    let pending = tokio::spawn({
        let rep = rep.clone();
        async move { rep.get(FAR).await }
    });
    // The seeder gets the far block only now, and announces it to the reader that wants segment 0.
    let v = json(&js.ask(&format!("fetch {FAR}"), T).await);
    assert_eq!(v["fetched"], FAR);
    let got = timeout(T, pending)
        .await
        .expect("announced block read in time")
        .expect("task");
    assert_eq!(got.expect("get"), block(FAR));
    let s = rep.stats();
    assert_eq!(s.wants_sent, 1, "{s:?}");
    assert_eq!(s.blocks_downloaded, 2);
    assert_eq!(s.no_data_received, 0);
    let status = js.finish(T).await;
    assert!(status.is_some_and(|s| s.success()), "JS exit: {status:?}");
}

#[tokio::test]
async fn rust_seeder_announces_a_block_it_gets_later_to_a_js_reader_that_wants_it() {
    let w = writer(LEN);
    let s = Hypercore::create_reader(tmp("rust-seeder-later"), w.key(), None).expect("reader");
    s.set_durability(Durability::Process);
    let data = w
        .proof(&Request {
            id: 1,
            block: Some(RequestBlock {
                index: 10,
                nodes: s.missing_nodes(20),
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: LEN,
            }),
            manifest: true,
            ..Request::default()
        })
        .expect("proof");
    s.apply_proof(&data).expect("apply");
    let rs = Replicator::new(s.clone());

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let dir = tmp("js-reader-later");
    let key = hex::encode(w.key());
    let indices = format!("10,{FAR}");
    let mut js = node(
        "hypercore_want.js",
        &["reader", dir.to_str().expect("utf8"), &key, &indices, &port],
    );
    let _mux = accept(&listener, std::slice::from_ref(&rs)).await;
    // JS found block 10 through its want for segment 0; now it waits for the far block.
    let v = json(&js.line(T).await);
    assert_eq!(v["index"], 10);
    assert_eq!(rs.stats().wants_received, 1);
    // The seeder gets the far block from the writer and announces it to the JS reader.
    let rw = Replicator::new(w.clone());
    let (ta, tb) = holepunch::protomux::memory_pair();
    let _w_mux =
        holepunch::hypercore::replicator::replicate(ta, true, &[1; 64], std::slice::from_ref(&rw));
    let _s_mux =
        holepunch::hypercore::replicator::replicate(tb, false, &[1; 64], std::slice::from_ref(&rs));
    assert_eq!(
        timeout(T, rs.get(FAR)).await.expect("get").expect("ok"),
        block(FAR)
    );
    let v = json(&js.line(T).await);
    assert_eq!(v["index"], FAR);
    assert_eq!(v["value"].as_str(), Some(format!("block {FAR}").as_str()));
    assert_eq!(v["downloads"], 2);
    let st = rs.stats();
    assert_eq!(st.haves_sent, 1, "{st:?}");
    assert_eq!(st.blocks_uploaded, 2);
    js.close_stdin();
    let status = js.finish(T).await;
    assert!(status.is_some_and(|s| s.success()), "JS exit: {status:?}");
}

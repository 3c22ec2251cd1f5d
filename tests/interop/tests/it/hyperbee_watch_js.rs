//! A replica's `Hyperbee::watch` follows a JS hyperbee writer (`tests/interop/js/hyperbee_peer.js`) over
//! replication, fetching the blocks it needs (the local and Rust-writer cases are in the cores crate's tests).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use holepunch::hyperbee::{Hyperbee, RangeOptions};
use holepunch::hypercore::replicator::{replicate_stream, Replicator};
use holepunch::hypercore::Hypercore;
use holepunch::noise::Keypair;
use holepunch::secret_stream::SecretStream;
use interop::tokio::node;
use serde_json::{json, Value};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);
/// How long a watcher is given to (wrongly) report a change that is outside its range.
const QUIET: Duration = Duration::from_millis(300);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hyperbee-watch-js-{name}"))
}

fn range_b() -> RangeOptions {
    RangeOptions {
        gte: Some(b"b".to_vec()),
        lt: Some(b"c".to_vec()),
        ..RangeOptions::default()
    }
}

fn value(bee: &Hyperbee, key: &[u8]) -> Option<Vec<u8>> {
    bee.get(key).unwrap().and_then(|e| e.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_watcher_follows_a_js_writer() {
    interop::require_js();
    let mut js = node("hyperbee_peer.js", &[tmp("js-w").to_str().unwrap()]);
    let hello: Value = serde_json::from_str(&js.line(T).await).unwrap();
    let port = hello["port"].as_u64().unwrap();
    let key: [u8; 32] = hex::decode(hello["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let ask = |cmd: Value| cmd.to_string();
    let put = js
        .ask(&ask(json!({"cmd": "put", "key": "a", "value": "1"})), T)
        .await;
    assert!(put.contains("version"), "{put}");

    let reader = Hypercore::create_reader(tmp("js-r"), key, None).unwrap();
    let rr = Replicator::new(reader.clone());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream = SecretStream::connect(tcp, &Keypair::generate())
        .await
        .unwrap();
    let _mux = replicate_stream(stream, std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.unwrap(), 2);
    let replica = Hyperbee::new(reader);
    let mut w = replica.watch(range_b()).with_replicator(rr.clone());

    // Outside the range: nothing; inside: reported with the JS writer's entry readable.
    let put = js
        .ask(&ask(json!({"cmd": "put", "key": "a", "value": "2"})), T)
        .await;
    assert!(put.contains("\"version\":3"), "{put}");
    assert!(timeout(QUIET, w.next()).await.is_err());
    let put = js
        .ask(
            &ask(json!({"cmd": "put", "key": "b-js", "value": "from js"})),
            T,
        )
        .await;
    assert!(put.contains("\"version\":4"), "{put}");
    let (current, previous) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(current.version(), 4);
    assert!(previous.version() < 4);
    assert_eq!(value(&current, b"b-js").as_deref(), Some(&b"from js"[..]));
    let del = js.ask(&ask(json!({"cmd": "del", "key": "b-js"})), T).await;
    assert!(del.contains("\"version\":5"), "{del}");
    let (current, previous) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(value(&current, b"b-js"), None);
    assert_eq!(value(&previous, b"b-js").as_deref(), Some(&b"from js"[..]));
    js.close_stdin();
    let _ = js.finish(T).await;
}

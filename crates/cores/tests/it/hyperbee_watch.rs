//! `Hyperbee::watch` and `get_and_watch` (JS hyperbee 2.27 `watch(range)`, `getAndWatch(key)`): changes
//! within the range are reported as `(current, previous)` snapshots, changes outside it are not, truncations
//! always are; a replica's watcher follows a Rust writer and a JS writer (`tests/interop/js/hyperbee_peer.js`)
//! over replication, fetching the blocks it needs.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use holepunch_cores::hyperbee::{Hyperbee, RangeOptions};
use holepunch_cores::hypercore::replicator::{replicate, Replicator};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_streams::protomux::memory_pair;
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);
/// How long a watcher is given to (wrongly) report a change that is outside its range.
const QUIET: Duration = Duration::from_millis(300);

fn tmp(name: &str) -> PathBuf {
    testkit::scratch_dir(&format!("hyperbee-watch-{name}"))
}

fn writer(name: &str) -> Hyperbee {
    let core = Hypercore::create(tmp(name), KeyPair::generate()).unwrap();
    core.set_durability(Durability::Process);
    Hyperbee::new(core)
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

#[tokio::test]
async fn local_changes_within_the_range_are_reported() {
    let bee = writer("local");
    bee.put(b"a", Some(b"1")).unwrap();
    let mut w = bee.watch(range_b());
    let start = bee.version();
    assert_eq!(w.current().version(), start);
    // A change outside the range alone is not reported.
    bee.put(b"a", Some(b"2")).unwrap();
    assert!(timeout(QUIET, w.next()).await.is_err());
    // One inside is, with the snapshots around it.
    bee.put(b"b1", Some(b"x")).unwrap();
    let (current, previous) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(current.version(), bee.version());
    assert_eq!(
        previous.version(),
        start + 1,
        "the out-of-range change moved the watcher on"
    );
    assert_eq!(value(&current, b"b1").as_deref(), Some(&b"x"[..]));
    assert_eq!(value(&previous, b"b1"), None);
    // A change made while nobody waits is reported at the next call; deletions count.
    bee.del(b"b1").unwrap();
    let (current, previous) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(value(&current, b"b1"), None);
    assert_eq!(value(&previous, b"b1").as_deref(), Some(&b"x"[..]));
    // A waiting watcher wakes up for a write from another task.
    let writer = bee.clone();
    let task = tokio::spawn(async move {
        tokio::task::yield_now().await;
        writer.put(b"bb", Some(b"y")).unwrap();
    });
    let (current, _) = timeout(T, w.next()).await.unwrap().unwrap();
    task.await.unwrap();
    assert_eq!(value(&current, b"bb").as_deref(), Some(&b"y"[..]));
    assert_eq!(w.current().version(), current.version());
}

#[tokio::test]
async fn truncation_is_always_reported_and_eager_starts_from_the_beginning() {
    let bee = writer("trunc");
    bee.put(b"a", Some(b"1")).unwrap();
    bee.put(b"b", Some(b"2")).unwrap();
    let mut eager = bee.watch_eager(range_b());
    let (current, previous) = timeout(T, eager.next()).await.unwrap().unwrap();
    assert_eq!(previous.version(), 1);
    assert_eq!(value(&current, b"b").as_deref(), Some(&b"2"[..]));

    let mut w = bee.watch(RangeOptions {
        gte: Some(b"z".to_vec()),
        ..RangeOptions::default()
    });
    bee.core().truncate(2).unwrap();
    let (current, previous) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(current.version(), 2);
    assert_eq!(previous.version(), 3);
    assert_eq!(current.core().fork(), 1);
}

#[tokio::test]
async fn get_and_watch_follows_one_key() {
    let bee = writer("entry");
    bee.put(b"k", Some(b"1")).unwrap();
    let mut w = bee.get_and_watch(b"k", None).await.unwrap();
    assert_eq!(w.node().and_then(|e| e.value.as_deref()), Some(&b"1"[..]));
    bee.put(b"other", Some(b"x")).unwrap();
    assert!(timeout(QUIET, w.changed()).await.is_err());
    bee.put(b"k", Some(b"2")).unwrap();
    let node = timeout(T, w.changed()).await.unwrap().unwrap();
    assert_eq!(node.and_then(|e| e.value.as_deref()), Some(&b"2"[..]));
    bee.del(b"k").unwrap();
    assert!(timeout(T, w.changed()).await.unwrap().unwrap().is_none());
    assert!(w.node().is_none());
}

#[tokio::test]
async fn a_replica_watcher_follows_a_rust_writer() {
    let bee = writer("repl-w");
    bee.put(b"a", Some(b"1")).unwrap();
    let reader = Hypercore::create_reader(tmp("repl-r"), bee.core().key(), None).unwrap();
    let rr = Replicator::new(reader.clone());
    let (ta, tb) = memory_pair();
    let _a = replicate(ta, true, &[0; 64], &[Replicator::new(bee.core().clone())]);
    let _b = replicate(tb, false, &[0; 64], std::slice::from_ref(&rr));
    assert_eq!(timeout(T, rr.update()).await.unwrap(), bee.version());
    let replica = Hyperbee::new(reader);
    let mut w = replica.watch(range_b()).with_replicator(rr.clone());
    bee.put(b"a", Some(b"2")).unwrap();
    bee.put(b"b7", Some(b"seven")).unwrap();
    let (current, _) = timeout(T, w.next()).await.unwrap().unwrap();
    assert_eq!(current.version(), bee.version());
    // The diff fetched what it read: the new entry is local now.
    assert_eq!(value(&current, b"b7").as_deref(), Some(&b"seven"[..]));
    let mut e = replica
        .get_and_watch(b"b7", Some(rr.clone()))
        .await
        .unwrap();
    bee.put(b"b7", Some(b"eight")).unwrap();
    let node = timeout(T, e.changed()).await.unwrap().unwrap();
    assert_eq!(node.and_then(|e| e.value.as_deref()), Some(&b"eight"[..]));
}

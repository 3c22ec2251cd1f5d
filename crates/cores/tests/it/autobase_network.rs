//! Bases replicating over protomux streams in one process (in-memory transports): the writer cores through
//! per-core replicators, new writers found through the system and through wakeup announces; every base must
//! converge to the same view and system state.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use holepunch_cores::autobase::base::{Autobase, AutobaseOptions};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::autobase::messages::Checkout;
use holepunch_cores::autobase::replicate::{sync_base, BaseReplicator};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::RangeOptions;
use holepunch_streams::protomux::{memory_pair, Mux};

type Base = Autobase<Kv>;

const T: Duration = Duration::from_secs(60);

struct Peer {
    base: Base,
    repl: BaseReplicator,
}

fn peer(dir: &tempfile::TempDir, name: &str, seed: u8, bootstrap: Option<[u8; 32]>) -> Peer {
    let store = Corestore::open_with_primary_key(dir.path().join(name), [seed; 32]).unwrap();
    let mut base = Autobase::open(store.clone(), Kv, AutobaseOptions { bootstrap }).unwrap();
    let repl = BaseReplicator::new(store, base.key());
    sync_base(&mut base, &repl).unwrap();
    Peer { base, repl }
}

/// Connects two peers over an in-memory stream (the same handshake hash on both ends, as a Noise stream has).
fn connect(a: &Peer, b: &Peer) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    let hh = [9u8; 64];
    let (ma, ()) = Mux::new_with(ta, |m| a.repl.attach(m, true, &hh, None));
    let (mb, ()) = Mux::new_with(tb, |m| b.repl.attach(m, false, &hh, None));
    (ma, mb)
}

fn op(b: &mut Peer, o: &KvOp) {
    b.base.append(Some(&o.to_json())).unwrap();
    sync_base(&mut b.base, &b.repl).unwrap();
}

fn put(b: &mut Peer, k: &str, v: &str) {
    op(
        b,
        &KvOp::Put {
            key: k.into(),
            value: v.into(),
        },
    );
}

fn list(b: &Base) -> Vec<(String, String)> {
    b.view()
        .range_vec(&RangeOptions::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                String::from_utf8(e.key).unwrap(),
                String::from_utf8(e.value.unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

type State = (
    Vec<(String, String)>,
    u64,
    Vec<Checkout>,
    Vec<Checkout>,
    u64,
);

fn state(b: &Base) -> State {
    let s = b.system();
    let mut heads = s.heads.clone();
    heads.sort_by_key(|h| h.key);
    (
        list(b),
        s.members,
        s.indexers.clone(),
        heads,
        b.state().indexed_length(),
    )
}

/// Runs every peer's sync round until `done` holds, waking on the replicators' changes (no sleeps), at most
/// `T` in all.
async fn until(peers: &mut [&mut Peer], done: impl Fn(&[&mut Peer]) -> bool) {
    let mut rxs: Vec<_> = peers.iter().map(|p| p.repl.changed()).collect();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        for p in peers.iter_mut() {
            sync_base(&mut p.base, &p.repl).unwrap();
            // what JS's ack timer does: an indexer acks when the linearizer says one is due
            if p.base.is_indexer() && p.base.ack().unwrap() {
                sync_base(&mut p.base, &p.repl).unwrap();
            }
        }
        if done(peers) {
            return;
        }
        let any = futures_any(&mut rxs);
        assert!(
            tokio::time::timeout_at(deadline, any).await.is_ok(),
            "peers did not converge: {:?}",
            peers.iter().map(|p| state(&p.base)).collect::<Vec<_>>()
        );
    }
}

async fn futures_any(rxs: &mut [tokio::sync::watch::Receiver<u64>]) {
    let futs: Vec<_> = rxs
        .iter_mut()
        .map(|rx| Box::pin(async move { rx.changed().await.is_ok() }))
        .collect();
    let _ = futures_select(futs).await;
}

async fn futures_select<F: std::future::Future<Output = bool> + Unpin>(mut futs: Vec<F>) -> bool {
    std::future::poll_fn(|cx| {
        for f in &mut futs {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn same(peers: &[&mut Peer]) -> bool {
    let first = state(&peers[0].base);
    peers.iter().all(|p| state(&p.base) == first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bases_converge_over_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    // a line: a - b - c (c reaches a's blocks only through b's store)
    let _ab = connect(&a, &b);
    let _bc = connect(&b, &c);
    put(&mut a, "from-a", "1");
    let (bk, ck) = (b.base.local_key(), c.base.local_key());
    op(
        &mut a,
        &KvOp::AddWriter {
            key: bk,
            indexer: true,
        },
    );
    op(
        &mut a,
        &KvOp::AddWriter {
            key: ck,
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b, &mut c], |p| {
        p[1].base.writable().unwrap() && p[2].base.writable().unwrap() && same(p)
    })
    .await;
    // all three write without waiting for each other
    put(&mut a, "k", "a");
    put(&mut b, "k", "b");
    put(&mut c, "k", "c");
    put(&mut b, "from-b", "2");
    put(&mut c, "from-c", "3");
    until(&mut [&mut a, &mut b, &mut c], |p| {
        same(p) && list(&p[0].base).len() == 4
    })
    .await;
    let s = state(&a.base);
    assert_eq!(s.1, 3, "three members");
    assert_eq!(s.2.len(), 2, "two indexers");
    assert!(
        s.4 > 0,
        "the indexers acked: something is indexed, the same on every peer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_peer_catches_up_through_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    // a adds b, b writes; then c, which only knows the bootstrap key, connects to b alone
    let _ab = connect(&a, &b);
    op(
        &mut a,
        &KvOp::AddWriter {
            key: b.base.local_key(),
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b], |p| p[1].base.writable().unwrap()).await;
    put(&mut b, "from-b", "1");
    let _bc = connect(&b, &c);
    until(&mut [&mut a, &mut b, &mut c], |p| {
        same(p) && list(&p[2].base).len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announces_its_unindexed_writers_and_the_hint_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = peer(&dir, "a", 1, None);
    let key = a.base.key();
    let mut b = peer(&dir, "b", 2, Some(key));
    let mut c = peer(&dir, "c", 3, Some(key));
    let bk = b.base.local_key();
    let _ab = connect(&a, &b);
    op(
        &mut a,
        &KvOp::AddWriter {
            key: bk,
            indexer: false,
        },
    );
    until(&mut [&mut a, &mut b], |p| p[1].base.writable().unwrap()).await;
    put(&mut b, "from-b", "1");
    // not indexed yet (a has not acked it): b wakes peers up with its writer
    let wakeup = b.base.wakeup();
    assert!(wakeup.contains(&(bk, 1)), "{wakeup:?}");
    // c, which knows nothing but the base key, hears of b's writer from b's wakeup channel
    let _bc = connect(&b, &c);
    let mut rx = c.repl.changed();
    let deadline = tokio::time::Instant::now() + T;
    let hint = loop {
        if let Some(h) = c.repl.take_hints().into_iter().find(|h| h.key == bk) {
            break h;
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("no announce of b's writer")
            .unwrap();
    };
    assert_eq!(hint.length, 1);
    assert!(!c.base.writers().contains(&bk));
    c.base.hint_writer(hint.key, hint.length).unwrap();
    assert!(
        c.base.writers().contains(&bk),
        "the hint made c read b's writer"
    );
    until(&mut [&mut b, &mut c], same).await;
}

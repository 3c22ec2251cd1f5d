//! The tokio driver between Rust nodes on loopback: bootstrap, queries, and commands answered
//! asynchronously through a subscription.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use holepunch_dht::dht_rpc::driver::{DhtHandle, HandlerReply};
use holepunch_dht::dht_rpc::messages::ErrorCode;
use holepunch_dht::dht_rpc::node::{
    Config, QueryOpts, QuerySpec, Reply, ReplyOpts, RequestOpts, RequestSpec,
};
use holepunch_dht::dht_rpc::peer::node_id;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(30);

async fn bootstrapper() -> DhtHandle {
    let server = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let SocketAddr::V4(public) = server.local_addr().expect("addr") else {
        panic!("v4")
    };
    DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_nodes_over_udp() {
    let boot = bootstrapper().await;
    timeout(STEP, boot.bootstrapped())
        .await
        .expect("in time")
        .expect("running");
    let mut nodes = Vec::new();
    for _ in 0..6 {
        let config = Config {
            bootstrap: vec![boot.server_addr()],
            ephemeral: Some(false),
            firewalled: false,
            ..Config::default()
        };
        let n = DhtHandle::bind(Ipv4Addr::LOCALHOST, 0, config)
            .await
            .expect("bind");
        timeout(STEP, n.bootstrapped())
            .await
            .expect("in time")
            .expect("running");
        nodes.push(n);
    }
    // An adaptive node starting firewalled stays ephemeral (adaptive nodes wait for a stable period
    // before becoming persistent); it may or may not have proven itself reachable yet.
    let config = Config {
        bootstrap: vec![boot.server_addr()],
        ..Config::default()
    };
    let client = DhtHandle::bind(Ipv4Addr::LOCALHOST, 0, config)
        .await
        .expect("bind");
    timeout(STEP, client.bootstrapped())
        .await
        .expect("in time")
        .expect("running");
    let state = client.state().await.expect("state");
    assert!(state.ephemeral, "{state:?}");

    // Commands answered later, from another task.
    const LATER: u64 = 7;
    let mut subs = Vec::new();
    for n in &nodes {
        let mut rx = n.subscribe(LATER).await.expect("subscribe");
        let handle = n.clone();
        subs.push(tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                tokio::task::yield_now().await;
                let mut v = b"later:".to_vec();
                v.extend(req.value.as_deref().unwrap_or_default());
                handle
                    .reply(&req, Some(v), ReplyOpts::default())
                    .expect("reply");
            }
        }));
    }
    boot.on_command(LATER, |_| HandlerReply::Error(ErrorCode(99)))
        .await
        .expect("register");

    let target = node_id(&SocketAddrV4::new(Ipv4Addr::new(7, 7, 7, 7), 7));
    let spec = QuerySpec {
        target,
        command: LATER,
        value: Some(b"x".to_vec()),
    };
    let out = timeout(STEP, client.query(spec, QueryOpts::default()))
        .await
        .expect("in time")
        .expect("query");
    assert_eq!(out.result, Ok(()));
    assert_eq!(
        out.closest.len(),
        6,
        "the six subscribed nodes answered; the bootstrapper sent an error"
    );
    assert!(out
        .closest
        .iter()
        .all(|r| r.value.as_deref() == Some(&b"later:x"[..])));
    let mut ids: Vec<_> = out.closest.iter().filter_map(|r| r.from_id).collect();
    ids.sort();
    let mut want: Vec<_> = nodes.iter().map(|n| node_id(&n.server_addr())).collect();
    want.sort();
    assert_eq!(ids, want);

    // A query whose commit sends another command, with each node's token.
    const PUT: u64 = 9;
    let puts = Arc::new(AtomicUsize::new(0));
    for n in &nodes {
        let puts = puts.clone();
        n.on_command(PUT, move |req| {
            assert!(req.token.is_some());
            puts.fetch_add(1, Ordering::SeqCst);
            HandlerReply::Value(None)
        })
        .await
        .expect("register");
    }
    let spec = QuerySpec {
        target,
        command: LATER,
        value: None,
    };
    let commit = move |r: &Reply| {
        Some(RequestSpec {
            token: r.token,
            command: PUT,
            target: Some(target),
            value: Some(b"v".to_vec()),
        })
    };
    let out = timeout(
        STEP,
        client.query_with_commit(spec, QueryOpts::default(), commit),
    )
    .await
    .expect("in time")
    .expect("query");
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.closest.len(), 6);
    assert_eq!(
        puts.load(Ordering::SeqCst),
        6,
        "one commit request per closest node"
    );

    // A streamed query hands each reply over as it arrives: the test holds one node's answer back until
    // another node's reply came through the stream, so the held node is only in the outcome if replies
    // were streamed before the query ended.
    const SLOW: u64 = 11;
    for n in &nodes[1..] {
        n.on_command(SLOW, |_| HandlerReply::Value(Some(b"fast".to_vec())))
            .await
            .expect("register");
    }
    let release = Arc::new(tokio::sync::Notify::new());
    let mut held = nodes[0].subscribe(SLOW).await.expect("subscribe");
    let held_handle = nodes[0].clone();
    let held_release = release.clone();
    let holder = tokio::spawn(async move {
        let first = held.recv().await.expect("a request");
        held_release.notified().await;
        held_handle
            .reply(&first, Some(b"slow".to_vec()), ReplyOpts::default())
            .expect("reply");
        while let Some(req) = held.recv().await {
            held_handle
                .reply(&req, Some(b"slow".to_vec()), ReplyOpts::default())
                .expect("reply");
        }
    });
    let (stream_tx, mut stream_rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = QuerySpec {
        target,
        command: SLOW,
        value: None,
    };
    let streaming = client.clone();
    let query = tokio::spawn(async move {
        streaming
            .query_streaming(spec, QueryOpts::default(), None, stream_tx)
            .await
    });
    let early = timeout(STEP, stream_rx.recv())
        .await
        .expect("in time")
        .expect("a reply before the end");
    assert_eq!(early.value.as_deref(), Some(&b"fast"[..]));
    release.notify_one();
    let out = timeout(STEP, query)
        .await
        .expect("in time")
        .expect("joined")
        .expect("query");
    let mut streamed = vec![early];
    while let Some(r) = stream_rx.recv().await {
        streamed.push(r);
    }
    assert_eq!(
        streamed, out.replies,
        "every reply streamed, in arrival order"
    );
    assert!(
        out.replies
            .iter()
            .any(|r| r.value.as_deref() == Some(&b"slow"[..])),
        "the held node answered after the first streamed reply, before the query ended"
    );
    holder.abort();

    let spec = RequestSpec {
        command: LATER,
        ..RequestSpec::default()
    };
    let r = timeout(
        STEP,
        client.request(spec, boot.server_addr(), RequestOpts::default()),
    )
    .await
    .expect("in time");
    assert_eq!(r.expect("reply").error, ErrorCode(99));
    let spec = RequestSpec {
        command: 8,
        ..RequestSpec::default()
    };
    let r = timeout(
        STEP,
        client.request(spec, nodes[0].server_addr(), RequestOpts::default()),
    )
    .await
    .expect("in time");
    assert_eq!(r.expect("reply").error, ErrorCode::UNKNOWN_COMMAND);

    // A request to a closed port times out after the retries (four attempts, one second apart).
    let dead = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let SocketAddr::V4(dead_addr) = dead.local_addr().expect("addr") else {
        panic!("v4")
    };
    drop(dead);
    let opts = RequestOpts {
        timeout: Some(Duration::from_millis(100)),
        ..RequestOpts::default()
    };
    let spec = RequestSpec {
        command: 1,
        ..RequestSpec::default()
    };
    let r = timeout(STEP, client.request(spec, dead_addr, opts))
        .await
        .expect("in time");
    assert!(r.is_err());
    for s in subs {
        s.abort();
    }
}

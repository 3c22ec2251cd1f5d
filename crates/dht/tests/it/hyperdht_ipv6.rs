//! The direct IPv6 path between two Rust peers (`addresses6`), on loopback: `::1` stands for a global
//! address (`HyperDhtOpts::ipv6_addresses`), the DHT runs on 127.0.0.1. Two peers offering IPv6 carry
//! their connection over it, both ways; when one side offers none, the connection stays on IPv4. The
//! namespaces lab with real global addresses is `tests/ipv6/run` (tests/interop's `ipv6_lab`).

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holepunch_dht::hyperdht::{ConnectionPath, HyperDht, HyperDhtOpts};
use holepunch_wire::crypto::KeyPair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::testnet::{dht_opts, testnet};

/// Generous: only a hang fails the test.
const STEP: Duration = Duration::from_secs(120);

async fn node_with(bootstrap: SocketAddrV4, ipv6: Vec<Ipv6Addr>) -> HyperDht {
    let dht = HyperDht::bind(HyperDhtOpts {
        ipv6_addresses: Some(ipv6),
        ..dht_opts(bootstrap)
    })
    .await
    .expect("bind");
    timeout(STEP, dht.ready())
        .await
        .expect("in time")
        .expect("ready");
    dht
}

/// What a connection between a server offering `server_v6` and a client offering `client_v6` looked like.
struct Seen {
    /// The `addresses6` of the client's handshake, as the server's firewall saw them.
    client_offered: Vec<std::net::SocketAddrV6>,
    /// The client's path and the server's address.
    client: (ConnectionPath, Option<SocketAddr>),
    /// The server's path and the client's address when the server accepted the connection.
    server_at_accept: (ConnectionPath, Option<SocketAddr>),
    /// The same once the client's bytes arrived.
    server: (ConnectionPath, Option<SocketAddr>),
}

async fn connect(server_v6: Vec<Ipv6Addr>, client_v6: Vec<Ipv6Addr>) -> Seen {
    let (net, _) = testnet(5).await;
    let boot = net[0].server_addr();
    let server_dht = node_with(boot, server_v6).await;
    let offered = Arc::new(Mutex::new(None));
    let mut server = {
        let offered = offered.clone();
        server_dht.create_server(move |_, payload| {
            *offered.lock().expect("lock") = Some(payload.addresses6.clone());
            false
        })
    };
    let kp = KeyPair::generate();
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let (seen_tx, seen_rx) = oneshot::channel();
    {
        let server_dht = server_dht.clone();
        let len = data.len();
        tokio::spawn(async move {
            let mut conn = server.accept().await.expect("a connection");
            let at_accept = server_dht.connection_path(&conn);
            let mut got = vec![0u8; len];
            conn.read_exact(&mut got).await.expect("read");
            let _ = seen_tx.send((at_accept, server_dht.connection_path(&conn)));
            conn.write_all(&got).await.expect("echo");
            conn.shutdown().await.expect("end");
            let mut rest = Vec::new();
            let _ = conn.read_to_end(&mut rest).await;
            drop(server);
        });
    }
    let client_dht = node_with(boot, client_v6).await;
    let mut conn = timeout(STEP, client_dht.connect(&kp.public))
        .await
        .expect("in time")
        .expect("connected");
    conn.write_all(&data).await.expect("write");
    let mut back = vec![0u8; data.len()];
    timeout(STEP, conn.read_exact(&mut back))
        .await
        .expect("in time")
        .expect("echo");
    assert!(back == data, "the echo differs");
    let client = client_dht.connection_path(&conn);
    conn.shutdown().await.expect("end");
    let (server_at_accept, server) = timeout(STEP, seen_rx)
        .await
        .expect("in time")
        .expect("the server saw the connection");
    let client_offered = offered.lock().expect("lock").clone().expect("a handshake");
    Seen {
        client_offered,
        client,
        server_at_accept,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_offering_ipv6_connect_over_it() {
    let seen = connect(vec![Ipv6Addr::LOCALHOST], vec![Ipv6Addr::LOCALHOST]).await;
    assert_eq!(seen.client_offered.len(), 1, "{:?}", seen.client_offered);
    assert_eq!(*seen.client_offered[0].ip(), Ipv6Addr::LOCALHOST);
    let (path, remote) = seen.client;
    assert_eq!(path, ConnectionPath::Direct);
    assert!(
        remote.is_some_and(|a| a.ip() == Ipv6Addr::LOCALHOST),
        "the client's stream goes to {remote:?}, not over IPv6"
    );
    // The server hands out the connection on its final path (what the tools' `path:` line prints).
    for (when, (path, remote)) in [("accepted", seen.server_at_accept), ("read", seen.server)] {
        assert_eq!(path, ConnectionPath::Direct);
        assert_eq!(
            remote,
            Some(SocketAddr::V6(seen.client_offered[0])),
            "the server's stream ({when}) goes to the client's IPv6 socket"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_ipv6_is_reached_over_ipv4() {
    let seen = connect(Vec::new(), vec![Ipv6Addr::LOCALHOST]).await;
    assert_eq!(
        seen.client_offered.len(),
        1,
        "the client offers its IPv6 address"
    );
    for (side, (_, remote)) in [
        ("client", seen.client),
        ("server", seen.server_at_accept),
        ("server", seen.server),
    ] {
        assert!(
            remote.is_some_and(|a| a.is_ipv4()),
            "the {side}'s stream goes to {remote:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_ipv6_offers_none_and_is_reached_over_ipv4() {
    let seen = connect(vec![Ipv6Addr::LOCALHOST], Vec::new()).await;
    assert!(seen.client_offered.is_empty(), "{:?}", seen.client_offered);
    for (side, (_, remote)) in [("client", seen.client), ("server", seen.server)] {
        assert!(
            remote.is_some_and(|a| a.is_ipv4()),
            "the {side}'s stream goes to {remote:?}"
        );
    }
}

//! A local DHT for the tests that need one: a bootstrap node and persistent nodes on loopback, each serving
//! hyperdht, and client nodes bootstrapped from it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use holepunch_dht::dht_rpc::driver::DhtHandle;
use holepunch_dht::dht_rpc::node::Config;
use holepunch_dht::hyperdht::{CacheOpts, HyperDht, HyperDhtOpts, ServeHyperdht};
use tokio::time::timeout;

/// A bound on each setup step so a hang fails the test instead of blocking it (they finish in seconds).
const SETUP: Duration = Duration::from_secs(120);

/// `size` nodes (the first one the bootstrap node, whose address is returned), every one bootstrapped.
pub async fn testnet(size: usize) -> (Vec<DhtHandle>, SocketAddrV4) {
    let server = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let SocketAddr::V4(public) = server.local_addr().expect("addr") else {
        panic!("v4")
    };
    let boot = DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn");
    boot.serve_hyperdht(CacheOpts::default())
        .await
        .expect("serve");
    let mut nodes = vec![boot];
    while nodes.len() < size {
        let config = Config {
            bootstrap: vec![public],
            ephemeral: Some(false),
            firewalled: false,
            ..Config::default()
        };
        let n = DhtHandle::bind(Ipv4Addr::LOCALHOST, 0, config)
            .await
            .expect("bind");
        n.serve_hyperdht(CacheOpts::default()).await.expect("serve");
        timeout(SETUP, n.bootstrapped())
            .await
            .expect("in time")
            .expect("running");
        nodes.push(n);
    }
    (nodes, public)
}

/// The options of a hyperdht node on loopback bootstrapped from `bootstrap`.
pub fn dht_opts(bootstrap: SocketAddrV4) -> HyperDhtOpts {
    HyperDhtOpts {
        bootstrap: vec![bootstrap],
        host: Ipv4Addr::LOCALHOST,
        ..HyperDhtOpts::default()
    }
}

/// A hyperdht node on loopback, bootstrapped from `bootstrap` and ready.
pub async fn node(bootstrap: SocketAddrV4) -> HyperDht {
    let dht = HyperDht::bind(dht_opts(bootstrap)).await.expect("bind");
    timeout(SETUP, dht.ready())
        .await
        .expect("in time")
        .expect("ready");
    dht
}

//! Rough throughput of the dht-rpc and hyperdht codecs: `cargo run --release --example dht_codec_bench`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use holepunch::compact_encoding::{Decode, Encode};
use holepunch::dht_rpc::messages::{Message, Response};
use holepunch::dht_rpc::peer::node_id;
use holepunch::hyperdht::messages::{NoisePayload, UdxInfo};

fn time(name: &str, n: u32, mut f: impl FnMut()) {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{name:<40} {ns:>8.0} ns/op");
}

fn main() {
    let nodes: Vec<SocketAddrV4> = (0..20u8)
        .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 49737))
        .collect();
    let res = Message::Response(Response {
        tid: 7,
        to: nodes[0],
        id: Some([1; 32]),
        token: Some([2; 32]),
        closer_nodes: Some(nodes),
        error: holepunch::dht_rpc::messages::ErrorCode::OK,
        value: None,
    });
    let bytes = res.to_bytes();
    println!(
        "FIND_NODE response with 20 closer nodes: {} bytes",
        bytes.len()
    );
    time("encode FIND_NODE response", 1_000_000, || {
        black_box(black_box(&res).to_bytes());
    });
    time("decode FIND_NODE response", 1_000_000, || {
        black_box(Message::decode(black_box(&bytes)).ok());
    });
    let payload = NoisePayload {
        firewall: holepunch::hyperdht::constants::Firewall::OPEN,
        addresses4: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1); 3],
        udx: Some(UdxInfo {
            version: 1,
            reusable_socket: false,
            id: 5,
            seq: 0,
        }),
        ..NoisePayload::default()
    };
    let pb = payload.to_bytes();
    time("decode noise payload", 1_000_000, || {
        black_box(NoisePayload::from_bytes(black_box(&pb)).ok());
    });
    let a = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5);
    time("node id (blake2b of 6 bytes)", 1_000_000, || {
        black_box(node_id(black_box(&a)));
    });
}

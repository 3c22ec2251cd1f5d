//! Truncated, mutated and random inputs to the dht-rpc and hyperdht decoders return errors, never panic.

use std::collections::HashMap;

use holepunch_dht::dht_rpc::messages::Message;
use holepunch_dht::hyperdht::messages::*;
use holepunch_wire::compact_encoding::Decode;
use proptest::prelude::*;

fn vectors() -> HashMap<String, Vec<u8>> {
    include_str!("vectors/dht.txt")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), hex::decode(v).expect("hex")))
        .collect()
}

/// Runs every decoder on `buf`; only the absence of panics matters.
fn decode_all(buf: &[u8]) {
    let _ = Message::decode(buf);
    let _ = Handshake::from_bytes(buf);
    let _ = Holepunch::from_bytes(buf);
    let _ = HolepunchPayload::from_bytes(buf);
    let _ = NoisePayload::from_bytes(buf);
    let _ = Peer::from_bytes(buf);
    let _ = Peers::from_bytes(buf);
    let _ = LookupReply::from_bytes(buf);
    let _ = Announce::from_bytes(buf);
    let _ = MutableSignable::from_bytes(buf);
    let _ = MutablePutRequest::from_bytes(buf);
    let _ = MutableGetResponse::from_bytes(buf);
    let _ = PluginRequest::from_bytes(buf);
    let _ = decode_mutable_get_request(buf);
    let _ = holepunch_dht::hyperdht::ipv6::ProbeMessage::decode(buf);
}

#[test]
fn every_truncation_of_every_vector_is_an_error() {
    for (name, bytes) in vectors() {
        for cut in 0..bytes.len() {
            let short = &bytes[..cut];
            decode_all(short);
            let res = match name.as_str() {
                n if n.starts_with("rpc_") => Message::decode(short).err(),
                "hd_handshake_min" | "hd_handshake_full" => Handshake::from_bytes(short).err(),
                "hd_holepunch" | "hd_holepunch_nopeer" => Holepunch::from_bytes(short).err(),
                n if n.starts_with("hd_holepunch_payload") => {
                    HolepunchPayload::from_bytes(short).err()
                }
                n if n.starts_with("hd_noise_payload") => NoisePayload::from_bytes(short).err(),
                "hd_peer" => Peer::from_bytes(short).err(),
                "hd_peers" => Peers::from_bytes(short).err(),
                n if n.starts_with("hd_announce") => Announce::from_bytes(short).err(),
                "hd_mutable_put_request" => MutablePutRequest::from_bytes(short).err(),
                "hd_mutable_get_response" => MutableGetResponse::from_bytes(short).err(),
                n if n.starts_with("hd_plugin") => PluginRequest::from_bytes(short).err(),
                _ => continue,
            };
            assert!(res.is_some(), "{name} cut at {cut} decoded");
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&buf);
    }

    #[test]
    fn mutated_vectors_never_panic(idx in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(),
                                   byte in any::<u8>()) {
        let all: Vec<Vec<u8>> = vectors().into_values().collect();
        let mut buf = idx.get(&all).clone();
        if !buf.is_empty() {
            let i = pos.index(buf.len());
            buf[i] = byte;
        }
        decode_all(&buf);
    }

    #[test]
    fn rpc_typed_prefix_never_panics(kind in prop_oneof![Just(0x03u8), Just(0x13u8)],
                                     rest in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut buf = vec![kind];
        buf.extend(rest);
        let _ = Message::decode(&buf);
    }
}

proptest! {
    /// The hyperdht storage handlers take request values straight from the network.
    #[test]
    fn persistent_store_never_panics(command in 0u64..12, target in proptest::option::of(any::<[u8; 32]>()),
                                     token in proptest::option::of(any::<[u8; 32]>()),
                                     value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))) {
        use holepunch_dht::dht_rpc::node::{IncomingRequest, Socket};
        use holepunch_dht::hyperdht::{CacheOpts, Persistent};
        let now = std::time::Instant::now();
        let mut store = Persistent::new(CacheOpts::default(), now);
        let req = IncomingRequest {
            tid: 0,
            from: "1.2.3.4:5".parse().expect("addr"),
            from_id: None,
            socket: Socket::Server,
            to: "5.6.7.8:9".parse().expect("addr"),
            token,
            internal: false,
            command,
            target,
            value,
        };
        let _ = store.handle(&req, Some(&[1; 32]), 0);
        let _ = store.handle(&req, Some(&[1; 32]), u64::MAX);
        store.tick(now + std::time::Duration::from_secs(86_400 * 365));
    }
}

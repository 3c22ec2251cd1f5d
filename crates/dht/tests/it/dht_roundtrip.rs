//! Property tests: every dht-rpc and hyperdht message decodes back to what was encoded.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use holepunch_dht::dht_rpc::messages::{Message, Request, Response};
use holepunch_dht::hyperdht::messages::*;
use holepunch_wire::compact_encoding::{Decode, Encode};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn v4() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn v6() -> impl Strategy<Value = SocketAddrV6> {
    (any::<u128>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
}

fn key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn sig() -> impl Strategy<Value = [u8; 64]> {
    vec(any::<u8>(), 64).prop_map(|v| {
        let mut s = [0u8; 64];
        s.copy_from_slice(&v);
        s
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..80)
}

fn peer() -> impl Strategy<Value = Peer> {
    (key(), vec(v4(), 0..4)).prop_map(|(public_key, relay_addresses)| Peer {
        public_key,
        relay_addresses,
    })
}

fn roundtrip<T: Encode + for<'a> Decode<'a> + PartialEq + std::fmt::Debug>(v: &T) {
    let bytes = v.to_bytes();
    assert_eq!(&T::from_bytes_exact(&bytes).expect("decodes"), v);
}

proptest! {
    #[test]
    fn rpc_request(tid in any::<u16>(), to in v4(), id in option::of(key()), token in option::of(key()),
                   internal in any::<bool>(), command in any::<u64>(), target in option::of(key()),
                   value in option::of(bytes())) {
        let m = Message::Request(Request { tid, to, id, token, internal, command, target, value });
        prop_assert_eq!(Message::decode(&m.to_bytes()).expect("decodes"), m);
    }

    #[test]
    fn rpc_response(tid in any::<u16>(), to in v4(), id in option::of(key()), token in option::of(key()),
                    closer in option::of(vec(v4(), 1..25)), error in any::<u64>(),
                    value in option::of(bytes())) {
        let m = Message::Response(Response { tid, to, id, token, closer_nodes: closer, error: error.into(), value });
        prop_assert_eq!(Message::decode(&m.to_bytes()).expect("decodes"), m);
    }

    #[test]
    fn handshake_and_holepunch(mode in any::<u64>(), noise in bytes(), pa in option::of(v4()),
                               ra in option::of(v4()), id in any::<u64>()) {
        roundtrip(&Handshake { mode: mode.into(), noise: noise.clone(), peer_address: pa, relay_address: ra });
        roundtrip(&Holepunch { mode: mode.into(), id, payload: noise, peer_address: pa });
    }

    #[test]
    fn holepunch_payload(error in any::<u64>(), firewall in any::<u64>(), round in any::<u64>(),
                         connected in any::<bool>(), punching in any::<bool>(),
                         addresses in option::of(vec(v4(), 0..4)), remote_address in option::of(v4()),
                         token in option::of(key()), remote_token in option::of(key())) {
        roundtrip(&HolepunchPayload {
            error: error.into(), firewall: firewall.into(), round, connected, punching, addresses, remote_address, token, remote_token,
        });
    }

    #[test]
    fn noise_payload(error in any::<u64>(), firewall in any::<u64>(),
                     hp in option::of((any::<u64>(), vec((v4(), v4()), 0..3))),
                     addresses4 in vec(v4(), 0..3), addresses6 in vec(v6(), 0..3),
                     udx in option::of((any::<bool>(), any::<u64>(), any::<u64>())),
                     secret_stream in any::<bool>(), relay_through in option::of((key(), key())),
                     relay_addresses in option::of(vec(v4(), 0..3))) {
        roundtrip(&NoisePayload {
            version: 1,
            error: error.into(),
            firewall: firewall.into(),
            holepunch: hp.map(|(id, relays)| HolepunchInfo {
                id,
                relays: relays.into_iter()
                    .map(|(relay_address, peer_address)| RelayInfo { relay_address, peer_address })
                    .collect(),
            }),
            addresses4,
            addresses6,
            udx: udx.map(|(reusable_socket, id, seq)| UdxInfo { version: 1, reusable_socket, id, seq }),
            secret_stream: secret_stream.then_some(SecretStreamInfo { version: 1 }),
            relay_through: relay_through
                .map(|(public_key, token)| RelayThroughInfo { version: 1, public_key, token }),
            relay_addresses,
        });
    }

    #[test]
    fn records(p in peer(), ps in vec(peer(), 0..4), bump in any::<u64>(), refresh in option::of(key()),
               signature in option::of(sig()), with_peer in any::<bool>()) {
        roundtrip(&p);
        roundtrip(&Peers(ps.clone()));
        roundtrip(&LookupReply { peers: ps, bump });
        roundtrip(&Announce { peer: with_peer.then_some(p), refresh, signature, bump });
    }

    #[test]
    fn mutable_and_plugin(public_key in key(), seq in any::<u64>(), value in bytes(), signature in sig(),
                          plugin in "[a-z-]{0,20}", version in any::<u64>(), command in any::<u64>(),
                          pv in option::of(bytes())) {
        roundtrip(&MutableSignable { seq, value: value.clone() });
        roundtrip(&MutablePutRequest { public_key, seq, value: value.clone(), signature });
        roundtrip(&MutableGetResponse { seq, value, signature });
        roundtrip(&PluginRequest { plugin, version, command, value: pv });
    }
}

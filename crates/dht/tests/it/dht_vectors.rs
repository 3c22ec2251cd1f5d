//! Fixed vectors produced by the JS dht-rpc and hyperdht packages (tests/interop/js/dht_vectors.js),
//! checked byte for byte in both directions.

use std::collections::HashMap;
use std::net::{SocketAddrV4, SocketAddrV6};

use holepunch_dht::dht_rpc::messages::{ErrorCode as RpcErrorCode, Message, Request, Response};
use holepunch_dht::dht_rpc::peer::{node_id, TokenSecrets};
use holepunch_dht::hyperdht::constants::{ns, ErrorCode, Firewall, Mode};
use holepunch_dht::hyperdht::messages::*;
use holepunch_wire::compact_encoding::{Decode, Encode};

fn vectors() -> HashMap<String, Vec<u8>> {
    include_str!("vectors/dht.txt")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), hex::decode(v).expect("hex")))
        .collect()
}

fn v(name: &str) -> Vec<u8> {
    vectors()
        .remove(name)
        .unwrap_or_else(|| panic!("missing vector {name}"))
}

fn a4(s: &str) -> SocketAddrV4 {
    s.parse().expect("addr")
}

fn check<T: Encode + for<'a> Decode<'a> + PartialEq + std::fmt::Debug>(name: &str, value: T) {
    let bytes = v(name);
    assert_eq!(
        hex::encode(value.to_bytes()),
        hex::encode(&bytes),
        "encode {name}"
    );
    assert_eq!(
        T::from_bytes_exact(&bytes).expect(name),
        value,
        "decode {name}"
    );
}

fn check_rpc(name: &str, m: Message) {
    let bytes = v(name);
    assert_eq!(
        hex::encode(m.to_bytes()),
        hex::encode(&bytes),
        "encode {name}"
    );
    assert_eq!(Message::decode(&bytes).expect(name), m, "decode {name}");
}

const TO: &str = "10.1.2.3:49737";

#[test]
fn rpc_requests() {
    check_rpc(
        "rpc_req_ping",
        Message::Request(Request {
            tid: 7,
            to: a4(TO),
            id: None,
            token: None,
            internal: true,
            command: 0,
            target: None,
            value: None,
        }),
    );
    check_rpc(
        "rpc_req_findnode_persistent",
        Message::Request(Request {
            tid: 0xbeef,
            to: a4(TO),
            id: Some([0x11; 32]),
            token: None,
            internal: true,
            command: 2,
            target: Some([0x22; 32]),
            value: None,
        }),
    );
    check_rpc(
        "rpc_req_custom_token_value",
        Message::Request(Request {
            tid: 65535,
            to: a4("127.0.0.1:1"),
            id: Some([0x11; 32]),
            token: Some([0x44; 32]),
            internal: false,
            command: 300,
            target: Some([0x33; 32]),
            value: Some(b"hello world".to_vec()),
        }),
    );
    check_rpc(
        "rpc_req_pingnat",
        Message::Request(Request {
            tid: 1,
            to: a4(TO),
            id: None,
            token: None,
            internal: true,
            command: 1,
            target: None,
            value: Some(vec![0x39, 0x30]),
        }),
    );
}

#[test]
fn rpc_responses() {
    let from = a4("192.168.0.9:5555");
    let secrets = TokenSecrets::new([0xa1; 32], [0xb2; 32]);
    let token = secrets.token(from.ip(), 1);
    let nodes = vec![
        a4("1.2.3.4:1000"),
        a4("255.254.253.252:65535"),
        a4("0.0.0.0:1"),
    ];
    let base = Response {
        tid: 7,
        to: from,
        id: None,
        token: None,
        closer_nodes: None,
        error: RpcErrorCode::OK,
        value: None,
    };
    check_rpc("rpc_res_ping", Message::Response(base.clone()));
    check_rpc(
        "rpc_res_findnode_persistent",
        Message::Response(Response {
            tid: 0xbeef,
            id: Some([0x11; 32]),
            token: Some(token),
            closer_nodes: Some(nodes.clone()),
            ..base.clone()
        }),
    );
    check_rpc(
        "rpc_res_error",
        Message::Response(Response {
            tid: 0xbeef,
            closer_nodes: Some(nodes),
            error: RpcErrorCode::UNKNOWN_COMMAND,
            ..base.clone()
        }),
    );
    check_rpc(
        "rpc_res_value",
        Message::Response(Response {
            tid: 0xbeef,
            id: Some([0x11; 32]),
            token: Some(token),
            value: Some(b"reply-value".to_vec()),
            ..base
        }),
    );
}

#[test]
fn node_ids_and_tokens() {
    assert_eq!(node_id(&a4(TO)).to_vec(), v("peer_id_10.1.2.3:49737"));
    assert_eq!(
        node_id(&a4("127.0.0.1:1")).to_vec(),
        v("peer_id_127.0.0.1:1")
    );
    let host = "192.168.0.9".parse().expect("ip");
    let mut s = TokenSecrets::new([0xa1; 32], [0xb2; 32]);
    assert_eq!(s.token(&host, 0).to_vec(), v("token_0_192.168.0.9"));
    assert_eq!(s.token(&host, 1).to_vec(), v("token_1_192.168.0.9"));
    for _ in 0..TokenSecrets::ROTATE_EVERY - 1 {
        s.tick();
    }
    assert_eq!(s.token(&host, 1).to_vec(), v("token_1_192.168.0.9"));
    s.tick();
    assert_eq!(s.token(&host, 0).to_vec(), v("token_rotated_0_192.168.0.9"));
    assert_eq!(s.token(&host, 1).to_vec(), v("token_rotated_1_192.168.0.9"));
    let t: [u8; 32] = v("token_rotated_0_192.168.0.9").try_into().expect("32");
    assert!(s.verify(&host, &t));
    assert!(!s.verify(&"192.168.0.10".parse().expect("ip"), &t));
}

#[test]
fn hyperdht_handshake_and_holepunch() {
    check(
        "hd_handshake_min",
        Handshake {
            mode: Mode::FROM_CLIENT,
            noise: b"noise!".to_vec(),
            peer_address: None,
            relay_address: None,
        },
    );
    check(
        "hd_handshake_full",
        Handshake {
            mode: Mode::REPLY,
            noise: vec![7; 300],
            peer_address: Some(a4("8.8.8.8:53")),
            relay_address: Some(a4("10.0.0.1:40000")),
        },
    );
    check(
        "hd_holepunch",
        Holepunch {
            mode: Mode::FROM_RELAY,
            id: 1000,
            payload: b"payload".to_vec(),
            peer_address: Some(a4("10.0.0.1:40000")),
        },
    );
    check(
        "hd_holepunch_nopeer",
        Holepunch {
            mode: Mode::FROM_SERVER,
            id: 0,
            payload: vec![],
            peer_address: None,
        },
    );
    check(
        "hd_holepunch_payload_min",
        HolepunchPayload {
            firewall: Firewall::OPEN,
            ..Default::default()
        },
    );
    check(
        "hd_holepunch_payload_full",
        HolepunchPayload {
            error: ErrorCode::TRY_LATER,
            firewall: Firewall::CONSISTENT,
            round: 200,
            connected: true,
            punching: true,
            addresses: Some(vec![a4("8.8.8.8:53"), a4("10.0.0.1:40000")]),
            remote_address: Some(a4("8.8.8.8:53")),
            token: Some([1; 32]),
            remote_token: Some([2; 32]),
        },
    );
}

#[test]
fn hyperdht_noise_payload() {
    check("hd_noise_payload_min", NoisePayload::default());
    let addrs = vec![a4("8.8.8.8:53"), a4("10.0.0.1:40000")];
    let v6: SocketAddrV6 = "[2001:db8::1]:8080".parse().expect("v6");
    check(
        "hd_noise_payload_full",
        NoisePayload {
            version: 1,
            error: ErrorCode::VERSION_MISMATCH,
            firewall: Firewall::RANDOM,
            holepunch: Some(HolepunchInfo {
                id: 77,
                relays: vec![RelayInfo {
                    relay_address: addrs[0],
                    peer_address: addrs[1],
                }],
            }),
            addresses4: addrs.clone(),
            addresses6: vec![v6],
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: true,
                id: 12345,
                seq: 0,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            relay_through: Some(RelayThroughInfo {
                version: 1,
                public_key: [0x55; 32],
                token: [0x66; 32],
            }),
            relay_addresses: Some(vec![addrs[1]]),
        },
    );
    check(
        "hd_noise_payload_udx_plain",
        NoisePayload {
            firewall: Firewall::OPEN,
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: 1,
                seq: 70000,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            ..Default::default()
        },
    );
    // Another version: the body is not decoded.
    let other = NoisePayload::from_bytes(&[2, 0xff, 0xff]).expect("decodes");
    assert_eq!(
        other,
        NoisePayload {
            version: 2,
            ..Default::default()
        }
    );
}

#[test]
fn hyperdht_records() {
    let pk = [0x55; 32];
    let addrs = vec![a4("8.8.8.8:53"), a4("10.0.0.1:40000")];
    check(
        "hd_peer",
        Peer {
            public_key: pk,
            relay_addresses: addrs.clone(),
        },
    );
    check(
        "hd_peers",
        Peers(vec![
            Peer {
                public_key: pk,
                relay_addresses: vec![],
            },
            Peer {
                public_key: [0x77; 32],
                relay_addresses: vec![addrs[0]],
            },
        ]),
    );
    let rec1 = Peer {
        public_key: pk,
        relay_addresses: vec![addrs[0]],
    };
    let rec2 = Peer {
        public_key: [0x77; 32],
        relay_addresses: vec![],
    };
    check(
        "hd_lookup_raw_reply",
        LookupReply {
            peers: vec![rec1.clone(), rec2],
            bump: 0,
        },
    );
    check(
        "hd_lookup_raw_reply_bump",
        LookupReply {
            peers: vec![rec1.clone()],
            bump: 1_700_000_000_000,
        },
    );
    let raw1 = rec1.to_bytes();
    let raw2 = Peer {
        public_key: [0x77; 32],
        relay_addresses: vec![],
    }
    .to_bytes();
    assert_eq!(
        LookupReply::encode_raw(&[&raw1, &raw2], 0),
        v("hd_lookup_raw_reply")
    );
    // Older nodes do not write the bump.
    let mut no_bump = v("hd_lookup_raw_reply");
    no_bump.pop();
    assert_eq!(
        LookupReply::from_bytes_exact(&no_bump)
            .expect("decodes")
            .bump,
        0
    );
    check(
        "hd_announce_full",
        Announce {
            peer: Some(Peer {
                public_key: pk,
                relay_addresses: addrs,
            }),
            refresh: Some([0x88; 32]),
            signature: Some([0x99; 64]),
            bump: 5,
        },
    );
    check(
        "hd_announce_refresh_only",
        Announce {
            peer: None,
            refresh: Some([0x88; 32]),
            signature: None,
            bump: 0,
        },
    );
    check(
        "hd_mutable_signable",
        MutableSignable {
            seq: 42,
            value: b"mutable".to_vec(),
        },
    );
    check(
        "hd_mutable_put_request",
        MutablePutRequest {
            public_key: pk,
            seq: 0xfffff,
            value: b"v".to_vec(),
            signature: [0xab; 64],
        },
    );
    check(
        "hd_mutable_get_response",
        MutableGetResponse {
            seq: 3,
            value: b"value".to_vec(),
            signature: [0xcd; 64],
        },
    );
    check(
        "hd_plugin_request",
        PluginRequest {
            plugin: "my-plugin".into(),
            version: 2,
            command: 9,
            value: Some(b"x".to_vec()),
        },
    );
    check(
        "hd_plugin_request_novalue",
        PluginRequest {
            plugin: String::new(),
            version: 0,
            command: 0,
            value: None,
        },
    );
}

#[test]
fn hyperdht_namespaces_and_signatures() {
    assert_eq!(ns::announce().to_vec(), v("hd_ns_ANNOUNCE"));
    assert_eq!(ns::unannounce().to_vec(), v("hd_ns_UNANNOUNCE"));
    assert_eq!(ns::mutable_put().to_vec(), v("hd_ns_MUTABLE_PUT"));
    assert_eq!(ns::peer_handshake().to_vec(), v("hd_ns_PEER_HANDSHAKE"));
    assert_eq!(ns::peer_holepunch().to_vec(), v("hd_ns_PEER_HOLEPUNCH"));
    assert_eq!(ns::plugin().to_vec(), v("hd_ns_PLUGIN"));

    let key = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
    let pk = key.verifying_key().to_bytes();
    assert_eq!(pk.to_vec(), v("hd_keypair_public"));

    let signable = mutable_signable(42, b"mutable");
    let sig = sign(&signable, &key);
    assert_eq!(sig.to_vec(), v("hd_sig_mutable"));
    assert!(verify(&sig, &signable, &pk));
    assert!(!verify(&sig, &mutable_signable(43, b"mutable"), &pk));

    let addrs = vec![a4("8.8.8.8:53"), a4("10.0.0.1:40000")];
    let peer = Peer {
        public_key: pk,
        relay_addresses: addrs,
    };
    let signable = announce_signable(
        &[1; 32],
        &[2; 32],
        &[3; 32],
        &peer,
        Some(&[0x88; 32]),
        &ns::announce(),
    );
    assert_eq!(sign(&signable, &key).to_vec(), v("hd_sig_announce"));
    let peer = Peer {
        public_key: pk,
        relay_addresses: vec![],
    };
    let signable = announce_signable(&[1; 32], &[2; 32], &[3; 32], &peer, None, &ns::unannounce());
    assert_eq!(sign(&signable, &key).to_vec(), v("hd_sig_unannounce"));
}

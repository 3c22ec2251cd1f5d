//! LAN discovery: the packet format (a committed vector, round trips, hostile bytes), and two HyperDHT nodes
//! with no DHT reachable (their bootstrap node never answers) that find each other on the loopback
//! interface's multicast and connect with the normal handshake; the server's firewall still applies, and a
//! node without LAN discovery does not find the server.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use holepunch_dht::hyperdht::{HyperDht, HyperDhtError, HyperDhtOpts};
use holepunch_dht::lan_discovery::wire::{Answer, DecodeError, Packet, Query, Record};
use holepunch_dht::lan_discovery::{answer_for, found_in, AdvertTable, LanOpts, GROUP};
use holepunch_dht::Hyperswarm;
use holepunch_wire::crypto::{self, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Generous: only a hang fails the test.
const STEP: Duration = Duration::from_secs(60);

fn answer() -> Packet {
    Packet::Answer(Answer {
        nonce: 0x0102_0304,
        records: vec![
            Record {
                id: [0xaa; 32],
                public_key: None,
                port: 49737,
                addresses: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 1, 7)],
            },
            Record {
                id: [0xbb; 32],
                public_key: Some([0xcc; 32]),
                port: 1,
                addresses: Vec::new(),
            },
        ],
    })
}

#[test]
fn query_vector() {
    let q = Packet::Query(Query {
        nonce: 0x0a0b_0c0d,
        ids: vec![[0x11; 32]],
    });
    let mut want = b"HDLN".to_vec();
    want.extend([1, 1, 0x0d, 0x0c, 0x0b, 0x0a, 1]);
    want.extend([0x11; 32]);
    assert_eq!(q.encode(), want);
    assert_eq!(Packet::decode(&want), Ok(q));
}

#[test]
fn answer_vector() {
    let a = answer();
    let mut want = b"HDLN".to_vec();
    want.extend([1, 2, 0x04, 0x03, 0x02, 0x01, 2]);
    want.extend([0xaa; 32]);
    want.extend([0, 0x49, 0xc2, 2, 10, 0, 0, 1, 192, 168, 1, 7]);
    want.extend([0xbb; 32]);
    want.push(1);
    want.extend([0xcc; 32]);
    want.extend([1, 0, 0]);
    assert_eq!(a.encode(), want);
    assert_eq!(Packet::decode(&want), Ok(a));
}

#[test]
fn truncated_and_mutated_packets_are_errors() {
    for p in [
        answer(),
        Packet::Query(Query {
            nonce: 7,
            ids: vec![[1; 32], [2; 32]],
        }),
    ] {
        let bytes = p.encode();
        for n in 0..bytes.len() {
            assert!(
                Packet::decode(bytes.get(..n).expect("prefix")).is_err(),
                "prefix {n}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(Packet::decode(&long).is_err(), "trailing byte");
        // Every single-byte change decodes to an error or to some packet: never a panic.
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xfc, 0xfd, 0xfe, 0xff] {
                let mut m = bytes.clone();
                if let Some(b) = m.get_mut(i) {
                    *b = v;
                }
                if let Ok(d) = Packet::decode(&m) {
                    assert_eq!(Packet::decode(&d.encode()), Ok(d));
                }
            }
        }
    }
    assert_eq!(Packet::decode(b"HDLN\x02\x01"), Err(DecodeError::NotOurs));
    assert_eq!(Packet::decode(b"hdln\x01\x01"), Err(DecodeError::NotOurs));
    assert_eq!(
        Packet::decode(b"HDLN\x01\x09"),
        Err(DecodeError::UnknownType(9))
    );
    // An empty query, and more ids than allowed.
    assert_eq!(
        Packet::decode(b"HDLN\x01\x01\0\0\0\0\0"),
        Err(DecodeError::BadCount)
    );
    let mut many = b"HDLN\x01\x01\0\0\0\0\x09".to_vec();
    many.extend([0u8; 9 * 32]);
    assert_eq!(Packet::decode(&many), Err(DecodeError::BadCount));
    // A huge claimed count is refused before allocating.
    assert!(Packet::decode(b"HDLN\x01\x02\0\0\0\0\xfe\xff\xff\xff\xff").is_err());
}

proptest::proptest! {
    /// What the fuzz target does, for a few thousand inputs on every test run: hostile bytes never panic the
    /// decoder, the responder or the querier, and what decodes re-encodes to the same packet.
    #[test]
    fn hostile_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                 prefix in proptest::bool::ANY) {
        let mut bytes = if prefix { b"HDLN\x01".to_vec() } else { Vec::new() };
        bytes.extend(data);
        if let Ok(p) = Packet::decode(&bytes) {
            proptest::prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
        let adverts = AdvertTable::new([([7u8; 32], vec![None, Some([9u8; 32])])].into_iter().collect());
        let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5353);
        if let Some(a) = answer_for(&bytes, &adverts, 49737, &[Ipv4Addr::new(10, 0, 0, 1)], from) {
            proptest::prop_assert!(Packet::decode(&a).is_ok());
        }
        for f in found_in(&bytes, from, &[7u8; 32], 0) {
            proptest::prop_assert!(!f.addresses.is_empty());
        }
    }
}

#[test]
fn the_responder_answers_only_what_it_advertises() {
    let adverts = AdvertTable::new(
        [([7u8; 32], vec![None]), ([8u8; 32], vec![Some([9u8; 32])])]
            .into_iter()
            .collect(),
    );
    let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
    let ifaces = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 0, 0, 1)];
    let query = |ids: Vec<[u8; 32]>| Packet::Query(Query { nonce: 42, ids }).encode();
    assert_eq!(
        answer_for(&query(vec![[1; 32]]), &adverts, 5000, &ifaces, from),
        None
    );
    let a = answer_for(
        &query(vec![[1; 32], [8; 32], [7; 32]]),
        &adverts,
        5000,
        &ifaces,
        from,
    )
    .expect("an answer");
    assert_eq!(
        Packet::decode(&a),
        Ok(Packet::Answer(Answer {
            nonce: 42,
            records: vec![
                Record {
                    id: [8; 32],
                    public_key: Some([9; 32]),
                    port: 5000,
                    addresses: vec![Ipv4Addr::new(10, 0, 0, 1)],
                },
                Record {
                    id: [7; 32],
                    public_key: None,
                    port: 5000,
                    addresses: vec![Ipv4Addr::new(10, 0, 0, 1)],
                },
            ],
        }))
    );
    // An answer is not a query: no answer to it.
    assert_eq!(answer_for(&a, &adverts, 5000, &ifaces, from), None);
}

#[test]
fn answers_name_the_source_address_first() {
    let bytes = answer().encode();
    let from = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 40000);
    let found = found_in(&bytes, from, &[0xaa; 32], 0x0102_0304);
    assert_eq!(found.len(), 1);
    let f = found.first().expect("one");
    assert_eq!(f.public_key, None);
    assert_eq!(
        f.addresses,
        [
            SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 49737),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 49737),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 7), 49737),
        ]
    );
    // Another query's nonce, or another id: nothing.
    assert!(found_in(&bytes, from, &[0xaa; 32], 5).is_empty());
    assert!(found_in(&bytes, from, &[0xdd; 32], 0x0102_0304).is_empty());
    let topic = found_in(&bytes, from, &[0xbb; 32], 0x0102_0304);
    assert_eq!(topic.first().and_then(|f| f.public_key), Some([0xcc; 32]));
}

/// A bootstrap "node" that never answers (a bound socket nobody reads), and LAN options on loopback with a
/// group port of this test's own.
fn offline() -> (UdpSocket, LanOpts) {
    let dead = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let lan = LanOpts {
        group: SocketAddrV4::new(GROUP, port),
        interfaces: Some(vec![Ipv4Addr::LOCALHOST]),
        ..LanOpts::default()
    };
    (dead, lan)
}

async fn node(dead: &UdpSocket, lan: Option<LanOpts>) -> HyperDht {
    let boot = match dead.local_addr().expect("addr") {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => unreachable!("bound v4"),
    };
    HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![boot],
        host: Ipv4Addr::LOCALHOST,
        lan,
        ..HyperDhtOpts::default()
    })
    .await
    .expect("bind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_connect_over_the_lan_without_a_dht() {
    let (dead, lan) = offline();
    let server_dht = node(&dead, Some(lan.clone())).await;
    let allowed = KeyPair::generate();
    let allowed_pk = allowed.public;
    let mut server = server_dht.create_server(move |remote, _| *remote != allowed_pk);
    let kp = KeyPair::generate();
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    assert!(server_dht.lan().is_some_and(|l| l.responding()));
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tokio::io::split(conn);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });

    // The allowed client gets through, through the LAN alone, and its bytes come back.
    let client = node(&dead, Some(lan.clone())).await;
    let mut conn = timeout(STEP, client.connect_with(&kp.public, &allowed))
        .await
        .expect("in time")
        .expect("connected over the LAN");
    assert_eq!(conn.remote_public_key(), &kp.public);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    conn.write_all(&data).await.expect("write");
    conn.shutdown().await.expect("end");
    let mut back = Vec::new();
    conn.read_to_end(&mut back).await.expect("read");
    assert!(back == data, "the echo differs");

    // The firewall applies: another key gets no answer.
    let stranger = KeyPair::generate();
    let refused = timeout(STEP, client.connect_with(&kp.public, &stranger))
        .await
        .expect("in time");
    assert!(
        matches!(refused, Err(HyperDhtError::PeerNotFound)),
        "{refused:?}"
    );

    // Without LAN discovery the server is not found.
    let blind = node(&dead, None).await;
    let r = timeout(STEP, blind.connect_with(&kp.public, &allowed))
        .await
        .expect("in time");
    assert!(matches!(r, Err(HyperDhtError::PeerNotFound)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_topics_are_found_over_the_lan() {
    let (dead, lan) = offline();
    let topic = crypto::hash(&[b"lan topic"]);
    let a = Hyperswarm::new(node(&dead, Some(lan.clone())).await, Default::default());
    let b = Hyperswarm::new(node(&dead, Some(lan)).await, Default::default());
    let _da = a
        .join(topic, holepunch_dht::hyperswarm::JoinOpts::default())
        .expect("join a");
    let _db = b
        .join(
            topic,
            holepunch_dht::hyperswarm::JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join b");
    let (mut conn_b, info) = timeout(STEP, b.next_connection())
        .await
        .expect("in time")
        .expect("a connection");
    assert_eq!(info.public_key, a.key_pair().public);
    let (mut conn_a, _) = timeout(STEP, a.next_connection())
        .await
        .expect("in time")
        .expect("a connection");
    conn_b.write_all(b"over the lan").await.expect("write");
    let mut got = [0u8; 12];
    conn_a.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"over the lan");
}

/// Nodes of another DHT network (other bootstrap nodes: a second testnet on the machine, or the public
/// network beside a testnet) do not find a server on the LAN, even one with the same key: ids are scoped to
/// the network. Tests on one machine running servers with the same key on their own testnets once connected
/// to each other's servers this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_dht_networks_do_not_find_a_server_on_the_lan() {
    let (dead, lan) = offline();
    let server_dht = node(&dead, Some(lan.clone())).await;
    let mut server = server_dht.create_server(|_, _| false);
    let kp = KeyPair::generate();
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    tokio::spawn(async move { while server.accept().await.is_some() {} });

    let other_dead = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let other = node(&other_dead, Some(lan.clone())).await;
    let r = timeout(STEP, other.connect(&kp.public))
        .await
        .expect("in time");
    assert!(matches!(r, Err(HyperDhtError::PeerNotFound)), "{r:?}");

    // The same network's nodes do (the bootstrap list's order does not matter).
    let same = node(&dead, Some(lan)).await;
    timeout(STEP, same.connect(&kp.public))
        .await
        .expect("in time")
        .expect("connected over the LAN");
}

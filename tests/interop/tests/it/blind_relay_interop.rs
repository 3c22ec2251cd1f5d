//! blind-relay, Rust <-> JS, over a local JS testnet (loopback only, every step bounded in time): JS peers
//! (blind-relay's Client over hyperdht connections) pair through a Rust relay, Rust peers pair through a JS
//! relay (blind-relay's Server) and through a Rust relay; the bytes sent over the relayed raw UDX streams
//! arrive exactly. HyperDHT connections with `relayThrough` (client's relay, a JS one; server's relay, a Rust
//! one) run through the relay when no direct path exists, and move to the direct path when it shows up late.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use holepunch::blind_relay::{self, BlindRelayClient, BlindRelayServer, RelaySession};
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{
    ConnectOpts, Connection, ConnectionPath, HyperDht, HyperDhtOpts, RelayThrough, Server,
};
use holepunch::udx::UdxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);
const TOTAL: usize = 1 << 20;

fn pattern(start: usize, out: &mut [u8]) {
    for (k, b) in out.iter_mut().enumerate() {
        let i = start + k;
        *b = ((i * 7 + i / 1024) & 0xff) as u8;
    }
}

fn parse(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad json {line:?}: {e}"))
}

async fn rust_node(bootstrap: SocketAddr) -> HyperDht {
    let SocketAddr::V4(b) = bootstrap else {
        panic!("v4 bootstrap")
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![b],
        host: Ipv4Addr::LOCALHOST,
        ..HyperDhtOpts::default()
    })
    .await
    .expect("bind");
    timeout(STEP, dht.fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    dht
}

/// A Rust relay: a HyperDHT server whose connections each get a blind-relay session named by the peer's key.
pub(crate) async fn rust_relay(
    dht: &HyperDht,
) -> (
    BlindRelayServer,
    [u8; 32],
    tokio::task::JoinHandle<Vec<RelaySession>>,
) {
    let streams = dht.clone();
    let relay = BlindRelayServer::new(move || {
        streams
            .create_raw_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let kp = KeyPair::from_seed(&[0x5e; 32]);
    let mut server: Server = dht.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let r = relay.clone();
    let task = tokio::spawn(async move {
        let mut sessions = Vec::new();
        while let Some(conn) = server.accept().await {
            let id = *conn.remote_public_key();
            sessions.push(r.accept(conn, Some(&id)).expect("session"));
            if sessions.len() == 2 {
                // keep the server (and its announcement) until the test ends
                std::future::pending::<()>().await;
            }
        }
        sessions
    });
    (relay, kp.public, task)
}

/// One Rust peer side: connects to the relay as `seed`, pairs a new raw stream and connects it to its relay
/// stream. Returns the raw stream and the relay client (which keeps the relay connection open).
async fn rust_pair(
    dht: &HyperDht,
    relay_key: &[u8; 32],
    seed: u8,
    is_initiator: bool,
    token: blind_relay::Token,
) -> (UdxStream, BlindRelayClient) {
    let kp = KeyPair::from_seed(&[seed; 32]);
    let conn = timeout(STEP, dht.connect_with(relay_key, &kp))
        .await
        .expect("connect to the relay in time")
        .expect("connect to the relay");
    let control = conn.get_ref().control();
    let id = *conn.public_key();
    let client = BlindRelayClient::new(conn, Some(&id)).expect("client");
    let raw = dht.create_raw_stream().expect("raw stream");
    let remote = timeout(STEP, client.pair(is_initiator, token, raw.local_id()))
        .await
        .expect("paired in time")
        .expect("paired");
    raw.connect_alongside(&control, remote)
        .expect("connect to the relay stream");
    (raw, client)
}

/// Both sides send TOTAL pattern bytes and end (a relay stream learns its peer from the peer's first
/// packet, so both must send); returns (received by a, received by b, both matched the pattern).
async fn relayed_exchange(a: &UdxStream, b: &UdxStream) -> (usize, usize, bool) {
    async fn side(st: &UdxStream) -> Vec<u8> {
        let send = async {
            let mut w = st;
            let mut buf = vec![0u8; 65536];
            let mut sent = 0;
            while sent < TOTAL {
                let n = buf.len().min(TOTAL - sent);
                pattern(sent, &mut buf[..n]);
                w.write_all(&buf[..n]).await.expect("write");
                sent += n;
            }
            w.shutdown().await.expect("end");
        };
        let recv = async {
            let mut r = st;
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            got
        };
        tokio::join!(send, recv).1
    }
    let (at_a, at_b) = timeout(STEP, async { tokio::join!(side(a), side(b)) })
        .await
        .expect("relayed exchange in time");
    let mut expect = vec![0u8; TOTAL];
    pattern(0, &mut expect);
    (at_a.len(), at_b.len(), at_a == expect && at_b == expect)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_peers_through_a_rust_relay() {
    let net = interop::JsTestnet::start(5);
    let dht = rust_node(net.bootstrap[0]).await;
    let (relay, relay_key, _task) = rust_relay(&dht).await;
    let mut js = interop::node(
        "blind_relay_peer.js",
        &[
            "pair",
            &net.bootstrap_arg(),
            &hex::encode(relay_key),
            &TOTAL.to_string(),
        ],
    );
    let v = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["receivedA"], TOTAL, "{v}");
    assert_eq!(v["receivedB"], TOTAL, "{v}");
    let st = relay.stats();
    assert_eq!((st.pairings_matched, st.streams_opened), (1, 2), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_peers_through_a_js_relay() {
    let net = interop::JsTestnet::start(5);
    let mut js = interop::node("blind_relay_peer.js", &["relay", &net.bootstrap_arg()]);
    let v = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    let relay_key: [u8; 32] = hex::decode(v["relay"].as_str().expect("relay key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let dht = rust_node(net.bootstrap[0]).await;
    let token = blind_relay::token();
    let ((a, _ca), (b, _cb)) = tokio::join!(
        rust_pair(&dht, &relay_key, 0xa1, true, token),
        rust_pair(&dht, &relay_key, 0xb2, false, token)
    );
    let paired = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    assert!(paired["paired"].as_u64().is_some(), "{paired}");
    let (received, echoed, ok) = relayed_exchange(&a, &b).await;
    assert_eq!((received, echoed, ok), (TOTAL, TOTAL, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_peers_through_a_rust_relay() {
    let net = interop::JsTestnet::start(5);
    let relay_node = rust_node(net.bootstrap[0]).await;
    let (relay, relay_key, _task) = rust_relay(&relay_node).await;
    let dht = rust_node(net.bootstrap[0]).await;
    let token = blind_relay::token();
    let ((a, _ca), (b, _cb)) = tokio::join!(
        rust_pair(&dht, &relay_key, 0xa1, true, token),
        rust_pair(&dht, &relay_key, 0xb2, false, token)
    );
    let (received, echoed, ok) = relayed_exchange(&a, &b).await;
    assert_eq!((received, echoed, ok), (TOTAL, TOTAL, true));
    assert_eq!(relay.stats().pairings_matched, 1);
}

// ---------------------------------------------------------------------------------------------------------
// HyperDHT connections with relayThrough

async fn firewalled_node(bootstrap: SocketAddr, hold: Option<Option<Duration>>) -> HyperDht {
    let SocketAddr::V4(b) = bootstrap else {
        panic!("v4 bootstrap")
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![b],
        host: Ipv4Addr::LOCALHOST,
        assume_firewalled: true,
        hold_direct_path: hold,
        ..HyperDhtOpts::default()
    })
    .await
    .expect("bind");
    timeout(STEP, dht.fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    dht
}

/// Writes `len` pattern bytes from `start` and reads the echo back; true if it came back exactly.
async fn echo_round(conn: &mut Connection, start: usize, len: usize) -> bool {
    let mut buf = vec![0u8; len];
    pattern(start, &mut buf);
    let (mut rd, mut wr) = tokio::io::split(conn);
    let write = async {
        wr.write_all(&buf).await.expect("write");
        wr.flush().await.expect("flush");
    };
    let read = async {
        let mut got = vec![0u8; len];
        rd.read_exact(&mut got).await.expect("read echo");
        got
    };
    let ((), got) = timeout(STEP, async { tokio::join!(write, read) })
        .await
        .expect("echo in time");
    got == buf
}

/// The server echoes everything on its first connection.
fn echo_server(mut server: Server) -> tokio::task::JoinHandle<Server> {
    tokio::spawn(async move {
        if let Some(conn) = server.accept().await {
            let (mut rd, mut wr) = tokio::io::split(conn);
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
        }
        server
    })
}

async fn relayed_connection_case(
    relay_key: [u8; 32],
    bootstrap: SocketAddr,
    server_names_relay: bool,
    hold: Option<Duration>,
    rust_relay: Option<&BlindRelayServer>,
) {
    let server_node = firewalled_node(bootstrap, None).await;
    let client_node = firewalled_node(bootstrap, Some(hold)).await;
    let kp = KeyPair::from_seed(&[0x77; 32]);
    let mut server = server_node.create_server(|_, _| false);
    if server_names_relay {
        server.set_relay_through(Some(RelayThrough::Key(relay_key)));
    }
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let _echo = echo_server(server);
    let opts = ConnectOpts {
        relay_through: (!server_names_relay).then_some(RelayThrough::Key(relay_key)),
        ..ConnectOpts::default()
    };
    let mut conn = timeout(STEP, client_node.connect_opts(&kp.public, opts))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(client_node.connection_path(&conn).0, ConnectionPath::Relay);
    assert!(
        echo_round(&mut conn, 0, 256 * 1024).await,
        "echo through the relay"
    );
    if hold.is_some() {
        // The direct path shows up later: the connection moves there without the application noticing.
        timeout(STEP, async {
            while client_node.connection_path(&conn).0 == ConnectionPath::Relay {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("moved to the direct path in time");
        assert!(
            echo_round(&mut conn, 256 * 1024, TOTAL).await,
            "echo after the move"
        );
        assert_ne!(client_node.connection_path(&conn).0, ConnectionPath::Relay);
        if let Some(relay) = rust_relay {
            // Both sides dropped their relay connections: the bytes now take the direct path only.
            timeout(STEP, async {
                while relay.stats().sessions_closed < 2 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("relay sessions closed after the move");
            assert!(
                echo_round(&mut conn, 256 * 1024 + TOTAL, TOTAL).await,
                "echo with the relay gone"
            );
        }
    } else {
        assert!(
            echo_round(&mut conn, 256 * 1024, TOTAL).await,
            "more through the relay"
        );
        assert_eq!(client_node.connection_path(&conn).0, ConnectionPath::Relay);
    }
}

/// A client naming a JS relay, and no direct path: the connection runs through the relay, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_relayed_through_a_js_relay() {
    let net = interop::JsTestnet::start(5);
    let mut js = interop::node("blind_relay_peer.js", &["relay", &net.bootstrap_arg()]);
    let v = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    let relay_key: [u8; 32] = hex::decode(v["relay"].as_str().expect("relay key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    relayed_connection_case(relay_key, net.bootstrap[0], false, None, None).await;
}

/// A server naming a Rust relay; the client's direct path comes 2 s late: relayed first, then moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_relay_then_direct_through_a_rust_relay() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let net = interop::JsTestnet::start(5);
    let relay_node = rust_node(net.bootstrap[0]).await;
    let (relay, relay_key, _task) = rust_relay(&relay_node).await;
    relayed_connection_case(
        relay_key,
        net.bootstrap[0],
        true,
        Some(Duration::from_secs(2)),
        Some(&relay),
    )
    .await;
    assert_eq!(relay.stats().pairings_matched, 1);
}

/// A connection to the relay that names the relay itself as its relayThrough (a JS app passing relayThrough
/// to every `dht.connect` does that when hyperdht opens its connection to the relay; the NAT lab's JS
/// hyperbeam wrapper once did): the relay cannot pair a connection through itself and must not try (it did,
/// connecting to itself, and a loaded run now and then lost the peer's pairing). Rust and JS clients connect
/// directly, and the relay pairs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_to_the_relay_naming_the_relay_is_direct() {
    let net = interop::JsTestnet::start(5);
    let relay_node = rust_node(net.bootstrap[0]).await;
    let (relay, relay_key, _task) = rust_relay(&relay_node).await;

    let client_node = rust_node(net.bootstrap[0]).await;
    let opts = ConnectOpts {
        relay_through: Some(RelayThrough::Key(relay_key)),
        ..ConnectOpts::default()
    };
    let conn = timeout(STEP, client_node.connect_opts(&relay_key, opts))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_ne!(client_node.connection_path(&conn).0, ConnectionPath::Relay);

    let mut js = interop::node(
        "blind_relay_peer.js",
        &["self", &net.bootstrap_arg(), &hex::encode(relay_key)],
    );
    let v = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    assert_eq!(v["connected"], true, "JS: {v}");
    let v = parse(&tokio::task::block_in_place(|| js.line(STEP)));
    assert_eq!(v["alive"], true, "JS: {v}");
    assert_eq!(relay.stats().pairings_matched, 0);
    drop(conn);
}

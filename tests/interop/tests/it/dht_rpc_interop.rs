//! Interop with the JavaScript dht-rpc (tests/interop/js): a Rust node joins a JS testnet, and JS nodes
//! bootstrap through a Rust bootstrapper. Loopback only; every step bounded in time.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use holepunch::dht_rpc::driver::{DhtHandle, HandlerReply};
use holepunch::dht_rpc::messages::{ErrorCode, Id};
use holepunch::dht_rpc::node::{Config, QueryOpts, QuerySpec, RequestOpts, RequestSpec};
use holepunch::dht_rpc::peer::node_id;
use holepunch::dht_rpc::routing_table::compare_distance;
use interop::{json_field as json_scalar, json_strings};
use tokio::time::timeout;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const STEP: Duration = Duration::from_secs(60);

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().expect("address")
}

fn sorted_by_distance(target: &Id, addrs: &[SocketAddrV4]) -> Vec<SocketAddrV4> {
    let mut v = addrs.to_vec();
    v.sort_by(|a, b| compare_distance(target, &node_id(a), &node_id(b)));
    v.truncate(20);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_node_joins_a_js_testnet() {
    let mut child = interop::tokio::node("testnet.js", &["--dht-rpc", "12"]);
    let ready = child.line(STEP).await;
    let bootstrap = addr(&json_scalar(&ready, "bootstrap"));
    let js_nodes: Vec<SocketAddrV4> = json_strings(&ready, "nodes")
        .iter()
        .map(|s| addr(s))
        .collect();
    assert_eq!(js_nodes.len(), 12);
    let js_ids = json_strings(&ready, "ids");
    for (a, id) in js_nodes.iter().zip(&js_ids) {
        assert_eq!(
            &hex::encode(node_id(a)),
            id,
            "JS and Rust derive the same node id"
        );
    }

    let config = Config {
        bootstrap: vec![bootstrap],
        ephemeral: Some(false),
        firewalled: false,
        ..Config::default()
    };
    let node = DhtHandle::bind(LOCALHOST, 0, config).await.expect("bind");
    timeout(STEP, node.bootstrapped())
        .await
        .expect("bootstrapped in time")
        .expect("running");
    let state = node.state().await.expect("state");
    assert!(!state.ephemeral, "the Rust node became persistent");
    assert_eq!(state.id, Some(node_id(&node.server_addr())));
    assert_eq!(
        (state.public_host, state.public_port),
        (Some(LOCALHOST), node.server_addr().port())
    );
    assert!(
        state.nodes.iter().filter(|a| js_nodes.contains(a)).count() >= 10,
        "{:?}",
        state.nodes
    );

    // Ping and custom commands against a JS node.
    let pong = timeout(STEP, node.ping(js_nodes[3]))
        .await
        .expect("in time")
        .expect("pong");
    assert_eq!(pong.from_id, Some(node_id(&js_nodes[3])));
    assert_eq!(pong.to, node.server_addr());
    let spec = RequestSpec {
        command: 42,
        value: Some(b"hi".to_vec()),
        ..RequestSpec::default()
    };
    let echo = timeout(
        STEP,
        node.request(spec, js_nodes[5], RequestOpts::default()),
    )
    .await
    .expect("in time")
    .expect("echo");
    assert_eq!(echo.value.as_deref(), Some(&b"echo:hi"[..]));
    assert!(echo.token.is_some());
    // The JS node's token is accepted back; a made-up one is refused with INVALID_TOKEN (and a fresh
    // token to retry with).
    let spec = RequestSpec {
        token: echo.token,
        command: 42,
        value: Some(b"t".to_vec()),
        ..RequestSpec::default()
    };
    let ok = timeout(
        STEP,
        node.request(spec, js_nodes[5], RequestOpts::default()),
    )
    .await
    .expect("in time")
    .expect("reply");
    assert_eq!(
        (ok.error, ok.value.as_deref()),
        (ErrorCode::OK, Some(&b"echo:t"[..]))
    );
    let spec = RequestSpec {
        token: Some([7; 32]),
        command: 42,
        ..RequestSpec::default()
    };
    let bad = timeout(
        STEP,
        node.request(spec, js_nodes[5], RequestOpts::default()),
    )
    .await
    .expect("in time")
    .expect("reply");
    assert_eq!(bad.error, ErrorCode::INVALID_TOKEN);
    assert_eq!(
        bad.token, echo.token,
        "the refusal carries the current token"
    );
    let spec = RequestSpec {
        command: 43,
        ..RequestSpec::default()
    };
    let unknown = timeout(
        STEP,
        node.request(spec, js_nodes[5], RequestOpts::default()),
    )
    .await
    .expect("in time")
    .expect("reply");
    assert_eq!(unknown.error, ErrorCode::UNKNOWN_COMMAND);

    // find_node converges to the true closest JS nodes.
    let target: Id = node_id(&SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5));
    let out = timeout(STEP, node.find_node(target))
        .await
        .expect("in time")
        .expect("query");
    assert_eq!(out.result, Ok(()));
    let got: Vec<SocketAddrV4> = out.closest.iter().map(|r| r.from).collect();
    assert_eq!(got, sorted_by_distance(&target, &js_nodes));

    // A custom-command query reaches every node.
    let spec = QuerySpec {
        target,
        command: 42,
        value: Some(b"q".to_vec()),
    };
    let out = timeout(STEP, node.query(spec, QueryOpts::default()))
        .await
        .expect("in time")
        .expect("query");
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.closest.len(), 12);
    assert!(out
        .replies
        .iter()
        .all(|r| r.value.as_deref() == Some(&b"echo:q"[..])));

    // A Rust node with the default options (firewalled at start, adaptive): it stays ephemeral and JS
    // nodes do not add it.
    let config = Config {
        bootstrap: vec![bootstrap],
        ..Config::default()
    };
    let adaptive = DhtHandle::bind(LOCALHOST, 0, config).await.expect("bind");
    timeout(STEP, adaptive.bootstrapped())
        .await
        .expect("in time")
        .expect("running");
    let st = adaptive.state().await.expect("state");
    // Whether the quick PING_NAT reply arrives before the bootstrap query ends is a race, in the JS
    // too; either way the node stays ephemeral and requests leave from the socket its state says.
    assert!(st.ephemeral, "{st:?}");
    assert_eq!(st.id, None);
    let pong = timeout(STEP, adaptive.ping(js_nodes[1]))
        .await
        .expect("in time")
        .expect("pong");
    let expected = if st.firewalled {
        adaptive.client_addr()
    } else {
        adaptive.server_addr()
    };
    assert_eq!(pong.to, expected);

    // The JS nodes added the Rust node to their routing tables, and find it.
    child
        .write_line(&format!("has {}", node.server_addr()))
        .await;
    let has: usize = json_scalar(&child.line(STEP).await, "has")
        .parse()
        .expect("number");
    assert!(has >= 3, "JS tables holding the Rust node: {has}");
    child
        .write_line(&format!("has {}", adaptive.server_addr()))
        .await;
    let has_adaptive: usize = json_scalar(&child.line(STEP).await, "has")
        .parse()
        .expect("number");
    assert_eq!(
        has_adaptive, 0,
        "ephemeral nodes stay out of routing tables"
    );
    let rust_id = node_id(&node.server_addr());
    child
        .write_line(&format!("find {}", hex::encode(rust_id)))
        .await;
    let closest = json_strings(&child.line(STEP).await, "closest");
    assert_eq!(closest.first().map(|s| addr(s)), Some(node.server_addr()));

    let _ = child.finish(STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_nodes_bootstrap_through_a_rust_bootstrapper() {
    let server = tokio::net::UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind");
    let public = match server.local_addr().expect("addr") {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let node = DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn");
    node.on_command(42, |req| {
        let mut v = b"echo:".to_vec();
        v.extend(req.value.as_deref().unwrap_or_default());
        HandlerReply::Value(Some(v))
    })
    .await
    .expect("register");
    timeout(STEP, node.bootstrapped())
        .await
        .expect("in time")
        .expect("running");
    let state = node.state().await.expect("state");
    assert_eq!(
        state.id,
        Some(node_id(&public)),
        "a bootstrapper is persistent at its given address"
    );

    let target: Id = node_id(&SocketAddrV4::new(Ipv4Addr::new(9, 9, 9, 9), 9));
    let mut child = interop::tokio::node(
        "dht_join.js",
        &[&public.to_string(), "6", &hex::encode(target)],
    );
    let out = child.line(STEP).await;
    let js_nodes: Vec<SocketAddrV4> = json_strings(&out, "nodes")
        .iter()
        .map(|s| addr(s))
        .collect();
    assert_eq!(js_nodes.len(), 6);
    assert!(
        json_strings(&out, "persistent").iter().all(|p| p == "true"),
        "{out}"
    );
    assert_eq!(
        json_scalar(&out, "pongFromId"),
        hex::encode(node_id(&public))
    );
    assert_eq!(json_scalar(&out, "echo"), "echo:from-js");
    assert_eq!(json_scalar(&out, "echoHasToken"), "true");
    assert_eq!(
        json_scalar(&out, "unknown"),
        ErrorCode::UNKNOWN_COMMAND.0.to_string()
    );
    assert_eq!(json_scalar(&out, "withTokenEcho"), "echo:t", "{out}");
    assert_eq!(json_scalar(&out, "withTokenError"), "0", "{out}");
    assert_eq!(
        json_scalar(&out, "badTokenError"),
        ErrorCode::INVALID_TOKEN.0.to_string(),
        "{out}"
    );
    // A default (adaptive) JS node stays ephemeral; its PING_NAT probe to the Rust node is answered to
    // the server-socket port it named in the value.
    assert_eq!(json_scalar(&out, "adaptiveEphemeral"), "true", "{out}");
    assert_eq!(
        json_scalar(&out, "natReplyToPort"),
        json_scalar(&out, "natServerPort"),
        "{out}"
    );
    assert_eq!(json_scalar(&out, "natViaServer"), "true", "{out}");
    for size in json_strings(&out, "tableSizes") {
        let size: usize = size.parse().expect("number");
        assert!(
            size >= 4,
            "JS tables filled through the Rust bootstrapper: {out}"
        );
    }
    let mut everyone = js_nodes.clone();
    everyone.push(public);
    everyone.retain(|a| *a != js_nodes[5]);
    let closest: Vec<SocketAddrV4> = json_strings(&out, "closest")
        .iter()
        .map(|s| addr(s))
        .collect();
    assert_eq!(closest, sorted_by_distance(&target, &everyone));

    let state = node.state().await.expect("state");
    for a in &js_nodes {
        assert!(state.nodes.contains(a), "the Rust bootstrapper knows {a}");
    }
    let _ = child.finish(STEP).await;
}

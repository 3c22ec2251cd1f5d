//! Hyperswarm, Rust <-> JS hyperswarm 4.17.2 and Rust <-> Rust, on a local JS HyperDHT testnet (loopback only,
//! every wait bounded): peers joining one topic find each other and exchange messages both ways, server-only
//! and client-only roles both ways round, simultaneous dials end with one connection per side, leaving a
//! topic unannounces it, three Rust swarms form a full mesh, and a firewall rejection bans the peer; and
//! relayThrough: our swarm through a JS blind relay, a JS swarm's relayThrough with our relay.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holepunch::compact_encoding::{Reader, Writer};
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{ConnectionPath, HyperDhtOpts};
use holepunch::hyperswarm::{
    Backoffs, Hyperswarm, JoinOpts, PeerInfo, SwarmConnection, SwarmOpts, SwarmRelay,
};
use holepunch::protomux::{ChannelOptions, Mux};
use interop::tokio::JsProcess;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);

fn v4(a: &SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => *a,
        SocketAddr::V6(_) => panic!("testnet on IPv6"),
    }
}

fn random_topic() -> [u8; 32] {
    rand::random()
}

fn testnet() -> interop::JsTestnet {
    interop::require_js();
    tokio::task::block_in_place(|| interop::JsTestnet::start(5))
}

async fn rust_swarm(net: &interop::JsTestnet, opts: SwarmOpts) -> Hyperswarm {
    let swarm = Hyperswarm::bind(
        HyperDhtOpts {
            bootstrap: net.bootstrap.iter().map(v4).collect(),
            host: Ipv4Addr::LOCALHOST,
            ..HyperDhtOpts::default()
        },
        opts,
    )
    .await
    .expect("bind swarm");
    timeout(STEP, swarm.dht().fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    swarm
}

/// A JS hyperswarm peer (js/hyperswarm_peer.js) whose event lines are kept until asked for.
struct Js {
    p: JsProcess,
    backlog: VecDeque<Value>,
    public_key: String,
}

impl Js {
    async fn start(net: &interop::JsTestnet, topic: &[u8; 32], mode: &str) -> Self {
        Self::start_with(net, topic, mode, &[], None).await
    }

    /// With leading `flags` and the key pair of `seed`.
    async fn start_with(
        net: &interop::JsTestnet,
        topic: &[u8; 32],
        mode: &str,
        flags: &[&str],
        seed: Option<[u8; 32]>,
    ) -> Self {
        let (bootstrap, topic) = (net.bootstrap_arg(), hex::encode(topic));
        let seed = seed.map(hex::encode);
        let mut args = flags.to_vec();
        args.extend([bootstrap.as_str(), topic.as_str(), mode]);
        args.extend(seed.as_deref());
        let p = interop::tokio::node("hyperswarm_peer.js", &args);
        let mut js = Self {
            p,
            backlog: VecDeque::new(),
            public_key: String::new(),
        };
        let first = js.expect(|v| v.get("publicKey").is_some(), STEP).await;
        js.public_key = first["publicKey"].as_str().expect("pk").to_string();
        js
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad json from js {line:?}: {e}"))
    }

    /// The first line (kept or new) matching `pred`; the others stay kept.
    async fn expect(&mut self, pred: impl Fn(&Value) -> bool, within: Duration) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.p.line(left).await;
            let v = Self::parse(&line);
            if pred(&v) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// Sends a command and returns its answer (the first line with key `answer`).
    async fn ask(&mut self, command: &str, answer: &str) -> Value {
        self.p.write_line(command).await;
        self.expect(|v| v.get(answer).is_some(), STEP).await
    }

    async fn stats(&mut self) -> (u64, Vec<String>) {
        let v = self.ask("stats", "connections").await;
        let remotes = v["remotes"]
            .as_array()
            .expect("remotes")
            .iter()
            .map(|s| s.as_str().expect("hex").to_string())
            .collect();
        (v["connections"].as_u64().expect("n"), remotes)
    }

    async fn finish(mut self) {
        let _ = self.p.finish(Duration::from_secs(20)).await;
    }
}

/// What the reader tasks of Rust connections report.
#[derive(Debug)]
enum Msg {
    Data([u8; 32], String),
}

type Served = (
    mpsc::UnboundedReceiver<PeerInfo>,
    mpsc::UnboundedReceiver<Msg>,
);

/// Takes connections from `swarm` as they come: sends `rust:<own pk>` on each, forwards what arrives.
fn serve(swarm: &Hyperswarm) -> Served {
    serve_with(swarm, true)
}

/// [`serve`]; without `hello` nothing is sent until the peer sends `echo ...`.
fn serve_with(swarm: &Hyperswarm, hello: bool) -> Served {
    let (info_tx, info_rx) = mpsc::unbounded_channel();
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    let swarm = swarm.clone();
    let hello = hello.then(|| format!("rust:{}", hex::encode(swarm.key_pair().public)));
    tokio::spawn(async move {
        while let Some((conn, info)) = swarm.next_connection().await {
            let _ = info_tx.send(info);
            tokio::spawn(read_loop(conn, hello.clone(), msg_tx.clone()));
        }
    });
    (info_rx, msg_rx)
}

async fn read_loop(
    mut conn: SwarmConnection,
    hello: Option<String>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let remote = conn.remote_public_key();
    if let Some(hello) = hello {
        if conn.send_message(hello.as_bytes()).await.is_err() {
            return;
        }
    }
    loop {
        let m = match conn.recv_message().await {
            Ok(Some(m)) => m,
            _ => break,
        };
        let text = String::from_utf8_lossy(&m).into_owned();
        if let Some(reply) = text.strip_prefix("echo ") {
            let _ = conn
                .send_message(format!("echoed {reply}").as_bytes())
                .await;
        }
        let _ = tx.send(Msg::Data(remote, text));
    }
}

async fn next_data(rx: &mut mpsc::UnboundedReceiver<Msg>, want: &str) -> [u8; 32] {
    timeout(STEP, async {
        loop {
            match rx.recv().await {
                Some(Msg::Data(from, text)) if text == want => return from,
                Some(_) => continue,
                None => panic!("message channel closed waiting for {want:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message {want:?} in time"))
}

async fn next_info(rx: &mut mpsc::UnboundedReceiver<PeerInfo>) -> PeerInfo {
    timeout(STEP, rx.recv())
        .await
        .expect("a connection in time")
        .expect("swarm alive")
}

fn pk_hex(s: &Hyperswarm) -> String {
    hex::encode(s.key_pair().public)
}

/// Polls until both sides report exactly one connection, to each other, three times in a row.
async fn settle_one_each(rust: &Hyperswarm, js: &mut Js) {
    let deadline = Instant::now() + STEP;
    let mut stable = 0;
    loop {
        let r = rust.stats().await.connections;
        let (n, remotes) = js.stats().await;
        if r == 1 && n == 1 && remotes == vec![pk_hex(rust)] {
            stable += 1;
            if stable == 3 {
                return;
            }
        } else {
            stable = 0;
        }
        assert!(
            Instant::now() < deadline,
            "no single connection per side: rust {r}, js {n} {remotes:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_js_swarms_on_one_topic_connect_and_talk_both_ways() {
    let net = testnet();
    let topic = random_topic();
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let (mut infos, mut msgs) = serve(&rust);
    let d = rust.join(topic, JoinOpts::default()).expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));

    let mut js = Js::start(&net, &topic, "both").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let js_pk: [u8; 32] = hex::decode(&js.public_key)
        .expect("hex")
        .try_into()
        .expect("32");

    let info = next_info(&mut infos).await;
    assert_eq!(info.public_key, js_pk);
    let from = next_data(&mut msgs, &format!("js:{}", js.public_key)).await;
    assert_eq!(from, js_pk);
    let want = format!("rust:{}", pk_hex(&rust));
    js.expect(
        |v| v["data"] == pk_hex(&rust).as_str() && v["text"] == want.as_str(),
        STEP,
    )
    .await;
    settle_one_each(&rust, &mut js).await;

    // Request/response over the surviving connection, both ways.
    js.ask("send echo hello-from-js", "sent").await;
    next_data(&mut msgs, "echo hello-from-js").await;
    js.expect(|v| v["text"] == "echoed hello-from-js", STEP)
        .await;

    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_only_accepts_a_js_client_only() {
    let net = testnet();
    let topic = random_topic();
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let (mut infos, mut msgs) = serve(&rust);
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: true,
                client: false,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));

    let mut js = Js::start(&net, &topic, "client").await;
    let c = js.expect(|v| v.get("connection").is_some(), STEP).await;
    assert_eq!(c["connection"], pk_hex(&rust).as_str());
    assert_eq!(c["client"], true, "the JS side dialled");
    let info = next_info(&mut infos).await;
    assert!(!info.client, "the Rust side accepted");
    assert!(info.topics.is_empty(), "a server does not learn the topic");
    next_data(&mut msgs, &format!("js:{}", js.public_key)).await;
    let want = format!("rust:{}", pk_hex(&rust));
    js.expect(|v| v["text"] == want.as_str(), STEP).await;
    assert_eq!(js.ask("flush", "flush").await["flush"], true);
    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_only_reaches_a_js_server_only() {
    let net = testnet();
    let topic = random_topic();
    let mut js = Js::start(&net, &topic, "server").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;

    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let (mut infos, mut msgs) = serve(&rust);
    let started = Instant::now();
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    let looked_up = started.elapsed();
    assert!(timeout(STEP, rust.flush())
        .await
        .expect("swarm flush in time"));
    eprintln!(
        "rust client -> js server: lookup {looked_up:?}, connected (swarm.flush) {:?}",
        started.elapsed()
    );
    let stats = rust.stats().await;
    assert_eq!(
        stats.connections, 1,
        "flush waits for the attempt: {stats:?}"
    );

    let info = next_info(&mut infos).await;
    assert!(info.client, "the Rust side dialled");
    assert_eq!(hex::encode(info.public_key), js.public_key);
    assert_eq!(info.topics, vec![topic]);
    next_data(&mut msgs, &format!("js:{}", js.public_key)).await;
    let c = js.expect(|v| v.get("connection").is_some(), STEP).await;
    assert_eq!(c["client"], false);
    let want = format!("rust:{}", pk_hex(&rust));
    js.expect(|v| v["text"] == want.as_str(), STEP).await;
    js.finish().await;
    rust.destroy().await;
}

/// Two dials that cross between a fresh Rust swarm and a fresh JS peer: the JS side answers handshakes three
/// seconds late, so the Rust dial is still pending when the JS dial arrives. `rust_larger` picks the key order,
/// hence which branch of the tie-break the Rust side takes.
async fn crossing_dials(net: &interop::JsTestnet, rust_larger: bool) {
    let topic = random_topic();
    let rust_kp = KeyPair::generate();
    let js_seed = loop {
        let seed: [u8; 32] = rand::random();
        if (KeyPair::from_seed(&seed).public < rust_kp.public) == rust_larger {
            break seed;
        }
    };
    let server_only = JoinOpts {
        server: true,
        client: false,
    };
    let rust = rust_swarm(
        net,
        SwarmOpts {
            key_pair: Some(rust_kp),
            ..SwarmOpts::default()
        },
    )
    .await;
    // Neither side writes before the tie-break is over: a connection bytes went both ways on counts as
    // established, and an established connection always yields to a new one.
    let (mut infos, mut msgs) = serve_with(&rust, false);
    let d = rust.join(topic, server_only).expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    let mut js = Js::start_with(
        net,
        &topic,
        "server",
        &["--quiet", "--delay-handshake", "3000"],
        Some(js_seed),
    )
    .await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;

    // Both announced. The Rust side turns client first: its dial waits in the JS firewall while the JS side
    // turns client and dials back.
    let refreshed = timeout(STEP, d.refresh(JoinOpts::default()))
        .await
        .expect("refresh in time")
        .expect("refresh");
    assert!(refreshed);
    js.ask("mode both", "mode").await;
    let info = next_info(&mut infos).await;
    settle_one_each(&rust, &mut js).await;

    // The surviving connection is the same on both sides: a message from JS arrives on it, and its answer
    // comes back.
    js.ask("send echo after-dedup", "sent").await;
    next_data(&mut msgs, "echo after-dedup").await;
    js.expect(|v| v["text"] == "echoed after-dedup", STEP).await;
    let stats = rust.stats().await;
    if rust_larger {
        // The JS dial arrived while ours was pending; the larger key (ours) initiates: drop theirs.
        assert!(stats.duplicates_dropped >= 1, "{stats:?}");
        assert!(info.client, "we kept our own dial");
    } else {
        // The larger key (theirs) initiates: abort our pending dial, keep theirs.
        assert!(stats.duplicates_replaced >= 1, "{stats:?}");
        assert!(!info.client, "we kept their dial");
    }
    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_dials_with_js_end_with_one_connection_per_side() {
    let net = testnet();
    crossing_dials(&net, true).await;
    crossing_dials(&net, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_unannounces_the_topic() {
    let net = testnet();
    let topic = random_topic();
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: true,
                client: false,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));

    let mut js = Js::start(&net, &topic, "none").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let keys = js.ask("lookup", "keys").await;
    assert!(
        keys["keys"]
            .as_array()
            .expect("keys")
            .contains(&Value::from(pk_hex(&rust))),
        "announced: {keys}"
    );

    timeout(STEP, rust.leave(&topic))
        .await
        .expect("leave in time");
    assert!(!d.flushed().await, "the discovery is gone");
    let keys = js.ask("lookup", "keys").await;
    assert!(
        !keys["keys"]
            .as_array()
            .expect("keys")
            .contains(&Value::from(pk_hex(&rust))),
        "still announced after leave: {keys}"
    );
    // A new JS client finds nobody to connect to.
    let mut late = Js::start(&net, &topic, "client").await;
    late.expect(|v| v.get("flushed").is_some(), STEP).await;
    assert_eq!(late.ask("flush", "flush").await["flush"], true);
    assert_eq!(late.stats().await.0, 0);
    late.finish().await;
    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rust_swarms_form_a_full_mesh() {
    let net = testnet();
    let topic = random_topic();
    let mut swarms = Vec::new();
    let mut chans = Vec::new();
    for _ in 0..3 {
        let s = rust_swarm(&net, SwarmOpts::default()).await;
        chans.push(serve(&s));
        swarms.push(s);
    }
    let mut discoveries = Vec::new();
    for s in &swarms {
        discoveries.push(s.join(topic, JoinOpts::default()).expect("join"));
    }
    for d in &discoveries {
        assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    }
    // Late joiners found the early ones; early ones are found by later lookups: refresh once more.
    for d in &discoveries {
        assert!(timeout(STEP, d.refresh(JoinOpts::default()))
            .await
            .expect("refresh in time")
            .expect("refresh"));
    }
    let keys: Vec<[u8; 32]> = swarms.iter().map(|s| s.key_pair().public).collect();
    for (i, (_, msgs)) in chans.iter_mut().enumerate() {
        let want: HashSet<[u8; 32]> = keys
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, k)| *k)
            .collect();
        let mut got = HashSet::new();
        while got != want {
            let expected: Vec<String> = want
                .difference(&got)
                .map(|k| format!("rust:{}", hex::encode(k)))
                .collect();
            let from = timeout(STEP, async {
                loop {
                    match msgs.recv().await {
                        Some(Msg::Data(from, text)) if expected.contains(&text) => return from,
                        Some(_) => continue,
                        None => panic!("closed"),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("swarm {i} heard from {got:?} only"));
            got.insert(from);
        }
    }
    // Exactly one connection per pair once settled.
    let deadline = Instant::now() + STEP;
    loop {
        let mut counts = Vec::new();
        for s in &swarms {
            counts.push(s.stats().await.connections);
        }
        if counts == vec![2, 2, 2] {
            break;
        }
        assert!(Instant::now() < deadline, "not a mesh: {counts:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for s in &swarms {
        s.destroy().await;
    }
    assert!(swarms[0].next_connection().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_simultaneous_dials_and_the_firewall() {
    let net = testnet();
    let topic = random_topic();
    let a = rust_swarm(&net, SwarmOpts::default()).await;
    let a_pk = a.key_pair().public;
    let rejected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = rejected.clone();
    let b = rust_swarm(
        &net,
        SwarmOpts {
            firewall: Some(Arc::new(move |remote: &[u8; 32], _| {
                let reject = *remote == a_pk;
                if reject {
                    r2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                reject
            })),
            ..SwarmOpts::default()
        },
    )
    .await;
    let c = rust_swarm(&net, SwarmOpts::default()).await;
    let (_ai, mut am) = serve(&a);
    let (_bi, mut bm) = serve(&b);
    let (_ci, mut cm) = serve(&c);
    let server_only = JoinOpts {
        server: true,
        client: false,
    };
    let discoveries: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|s| s.join(topic, server_only).expect("join"))
        .collect();
    for d in &discoveries {
        assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    }
    // All turn client at once.
    let (ra, rb, rc) = tokio::join!(
        discoveries[0].refresh(JoinOpts::default()),
        discoveries[1].refresh(JoinOpts::default()),
        discoveries[2].refresh(JoinOpts::default()),
    );
    assert!(ra.is_ok() && rb.is_ok() && rc.is_ok());
    // b-c and a-c connect; a-b never (b rejects a both ways).
    next_data(&mut bm, &format!("rust:{}", pk_hex(&c))).await;
    next_data(&mut cm, &format!("rust:{}", pk_hex(&b))).await;
    next_data(&mut am, &format!("rust:{}", pk_hex(&c))).await;
    for s in [&a, &b, &c] {
        assert!(timeout(STEP, s.flush()).await.expect("flush in time"));
    }
    let deadline = Instant::now() + STEP;
    loop {
        let (sa, sb, sc) = (a.stats().await, b.stats().await, c.stats().await);
        if (sa.connections, sb.connections, sc.connections) == (1, 1, 2) {
            assert!(sb.banned_peers >= 1, "{sb:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unexpected connections: a {sa:?} b {sb:?} c {sc:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(rejected.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // Destroying a swarm closes its connections: the others see them go.
    a.destroy().await;
    let deadline = Instant::now() + STEP;
    while c.stats().await.connections != 1 {
        assert!(Instant::now() < deadline, "c kept a's connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.stats().await.connections, 1);
    b.destroy().await;
    c.destroy().await;
}

/// Short backoffs so retries happen within a test.
fn quick_retries() -> SwarmOpts {
    let ms = Duration::from_millis;
    SwarmOpts {
        backoffs: Some(Backoffs {
            s: ms(200),
            m: ms(400),
            l: ms(800),
            x: ms(1600),
        }),
        jitter: Duration::ZERO,
        ..SwarmOpts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_redialled_both_ways() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let net = testnet();
    // A Rust client reconnects to a JS server that dropped it.
    let topic = random_topic();
    let mut js = Js::start(&net, &topic, "server").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let rust = rust_swarm(&net, quick_retries()).await;
    let (mut infos, mut msgs) = serve(&rust);
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    assert!(next_info(&mut infos).await.client);
    let hello = format!("js:{}", js.public_key);
    next_data(&mut msgs, &hello).await;
    assert_eq!(js.ask("drop", "dropped").await["dropped"], 1);
    let again = next_info(&mut infos).await;
    assert!(again.client, "we dialled again");
    next_data(&mut msgs, &hello).await;
    let stats = rust.stats().await;
    assert_eq!(stats.client_attempted, 2, "{stats:?}");
    assert_eq!(stats.client_closed, 1, "{stats:?}");
    js.finish().await;
    rust.destroy().await;

    // A JS client reconnects to a Rust server that dropped it.
    let topic = random_topic();
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: true,
                client: false,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    let mut js = Js::start(&net, &topic, "client").await;
    let (first, info) = timeout(STEP, rust.next_connection())
        .await
        .expect("in time")
        .expect("a connection");
    assert!(!info.client);
    // Destroy it once the JS side has opened it too: a connection destroyed before the JS secret stream
    // opened never becomes a `connection` there (no `close` to see; JS redials all the same).
    js.expect(|v| v.get("connection").is_some(), STEP).await;
    first.destroy();
    js.expect(|v| v.get("closed").is_some(), STEP).await;
    drop(first);
    let (second, _) = timeout(STEP, rust.next_connection())
        .await
        .expect("redialled in time")
        .expect("a connection");
    assert_eq!(hex::encode(second.remote_public_key()), js.public_key);
    let stats = rust.stats().await;
    assert_eq!(
        (stats.server_opened, stats.server_closed),
        (2, 1),
        "{stats:?}"
    );
    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_peers_caps_client_connections_and_flush_returns() {
    let net = testnet();
    let topic = random_topic();
    let server_only = JoinOpts {
        server: true,
        client: false,
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        let s = rust_swarm(&net, SwarmOpts::default()).await;
        let d = s.join(topic, server_only).expect("join");
        assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
        servers.push((s, d));
    }
    let client = rust_swarm(
        &net,
        SwarmOpts {
            max_peers: 2,
            ..SwarmOpts::default()
        },
    )
    .await;
    let _d = client
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    assert!(timeout(STEP, client.flush()).await.expect("flush in time"));
    let stats = client.stats().await;
    assert_eq!(stats.connections, 2, "{stats:?}");
    assert_eq!(stats.client_attempted, 2, "{stats:?}");
    assert_eq!(stats.queued, 1, "the third peer waits: {stats:?}");
    client.destroy().await;
    for (s, _) in servers {
        s.destroy().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_peer_dials_a_key_directly_both_ways() {
    let net = testnet();
    let topic = random_topic();
    // Rust dials a listening JS swarm by key.
    let mut js = Js::start(&net, &topic, "listen").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let js_pk: [u8; 32] = hex::decode(&js.public_key)
        .expect("hex")
        .try_into()
        .expect("32");
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let (mut infos, mut msgs) = serve(&rust);
    rust.join_peer(js_pk);
    let info = next_info(&mut infos).await;
    assert!(info.client);
    assert_eq!(info.public_key, js_pk);
    assert!(info.topics.is_empty());
    next_data(&mut msgs, &format!("js:{}", js.public_key)).await;
    rust.leave_peer(js_pk);

    // JS dials a listening Rust swarm by key.
    let listener = rust_swarm(&net, SwarmOpts::default()).await;
    timeout(STEP, listener.listen())
        .await
        .expect("listen in time")
        .expect("listen");
    let (mut linfos, mut lmsgs) = serve(&listener);
    js.ask(&format!("joinpeer {}", pk_hex(&listener)), "joined")
        .await;
    let info = next_info(&mut linfos).await;
    assert!(!info.client);
    assert_eq!(info.public_key, js_pk);
    next_data(&mut lmsgs, &format!("js:{}", js.public_key)).await;
    js.finish().await;
    rust.destroy().await;
    listener.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protomux_runs_over_a_swarm_connection_with_js() {
    let net = testnet();
    let topic = random_topic();
    let mut js = Js::start_with(&net, &topic, "server", &["--quiet"], None).await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let d = rust
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    assert!(timeout(STEP, d.flushed()).await.expect("flushed in time"));
    let (conn, info) = timeout(STEP, rust.next_connection())
        .await
        .expect("in time")
        .expect("a connection");
    assert!(info.client);
    js.expect(|v| v.get("connection").is_some(), STEP).await;
    assert_eq!(js.ask("mux", "muxed").await["muxed"], 1);

    let mux = Mux::new(conn);
    let ch = mux
        .create_channel(ChannelOptions::new("swarm-test"))
        .expect("channel");
    ch.open(b"").expect("open");
    timeout(STEP, ch.opened())
        .await
        .expect("opened in time")
        .expect("paired with the JS channel");
    let mut w = Writer::new();
    w.string("over protomux");
    ch.send(0, w.as_slice()).await.expect("send");
    js.expect(|v| v["mux"] == "over protomux", STEP).await;
    let (kind, bytes) = timeout(STEP, ch.recv())
        .await
        .expect("answer in time")
        .expect("channel open");
    assert_eq!(kind, 0);
    let mut r = Reader::new(&bytes);
    assert_eq!(r.string().expect("a string"), "echo:over protomux");
    js.finish().await;
    rust.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_topic_share_one_discovery() {
    let net = testnet();
    let topic = random_topic();
    let rust = rust_swarm(&net, SwarmOpts::default()).await;
    let server = rust
        .join(
            topic,
            JoinOpts {
                server: true,
                client: false,
            },
        )
        .expect("join");
    let client = rust
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    assert!(timeout(STEP, server.flushed()).await.expect("in time"));
    assert!(timeout(STEP, client.flushed()).await.expect("in time"));
    assert_eq!(rust.topics(), vec![topic]);
    let mut js = Js::start(&net, &topic, "none").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let announced = |v: &Value| {
        v["keys"]
            .as_array()
            .expect("keys")
            .contains(&Value::from(pk_hex(&rust)))
    };
    assert!(announced(&js.ask("lookup", "keys").await));

    // Without its server session the discovery turns client-only: the next refresh unannounces.
    server.destroy().await;
    assert_eq!(
        rust.topics(),
        vec![topic],
        "the client session keeps it joined"
    );
    assert!(timeout(STEP, client.flushed()).await.expect("in time"));
    assert!(!announced(&js.ask("lookup", "keys").await));
    // The last session leaves the topic.
    client.destroy().await;
    assert!(rust.topics().is_empty());
    assert!(matches!(
        rust.join(
            topic,
            JoinOpts {
                server: false,
                client: false
            }
        ),
        Err(holepunch::hyperswarm::SwarmError::NeitherClientNorServer)
    ));
    rust.destroy().await;
    assert!(matches!(
        rust.join(topic, JoinOpts::default()),
        Err(holepunch::hyperswarm::SwarmError::Destroyed)
    ));
    js.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// relayThrough

/// A Rust swarm whose node has no direct path to servers (firewalled, direct paths held back): only a blind
/// relay connects it, so a connection that opens ran through one.
async fn relay_only_swarm(net: &interop::JsTestnet, relay: SwarmRelay) -> Hyperswarm {
    let swarm = Hyperswarm::bind(
        HyperDhtOpts {
            bootstrap: net.bootstrap.iter().map(v4).collect(),
            host: Ipv4Addr::LOCALHOST,
            assume_firewalled: true,
            hold_direct_path: Some(None),
            ..HyperDhtOpts::default()
        },
        SwarmOpts {
            relay_through: Some(relay),
            ..SwarmOpts::default()
        },
    )
    .await
    .expect("bind swarm");
    timeout(STEP, swarm.dht().fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    swarm
}

/// Joins `topic` as a client and returns the first connection, checking it runs through the relay and that
/// messages go both ways with the JS peer.
async fn relayed_client_connection(rust: &Hyperswarm, js: &mut Js, topic: [u8; 32]) {
    let _d = rust
        .join(
            topic,
            JoinOpts {
                server: false,
                client: true,
            },
        )
        .expect("join");
    let (mut conn, info) = timeout(STEP, rust.next_connection())
        .await
        .expect("in time")
        .expect("a connection");
    assert!(info.client);
    assert_eq!(
        rust.dht().connection_path(&conn).0,
        ConnectionPath::Relay,
        "the connection runs through the relay"
    );
    let hello = timeout(STEP, conn.recv_message())
        .await
        .expect("hello in time")
        .expect("read")
        .expect("a message");
    assert_eq!(
        String::from_utf8_lossy(&hello),
        format!("js:{}", js.public_key)
    );
    conn.send_message(b"rust through the relay")
        .await
        .expect("send");
    js.expect(|v| v["text"] == "rust through the relay", STEP)
        .await;
    js.expect(|v| v.get("connection").is_some(), STEP).await;
}

/// Our swarm's relayThrough (a function choosing the relay for every connection) through a JS blind relay
/// (blind-relay 1.6.1) to a JS hyperswarm 4 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_swarm_relays_through_a_js_blind_relay() {
    let net = testnet();
    let mut relay = interop::tokio::node("blind_relay_peer.js", &["relay", &net.bootstrap_arg()]);
    let v = Js::parse(&relay.line(STEP).await);
    let relay_key: [u8; 32] = hex::decode(v["relay"].as_str().expect("relay key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let topic = random_topic();
    let mut js = Js::start(&net, &topic, "server").await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let rust = relay_only_swarm(
        &net,
        SwarmRelay::Select(Arc::new(move |_force, _randomized| Some(relay_key))),
    )
    .await;
    relayed_client_connection(&rust, &mut js, topic).await;
    let paired = Js::parse(&relay.line(STEP).await);
    assert_eq!(paired["paired"], 1, "{paired}");
    rust.destroy().await;
    js.finish().await;
    let _ = relay.finish(Duration::from_secs(20)).await;
}

/// A JS hyperswarm 4 server with relayThrough naming our relay (a Rust blind relay): the server's relay wins,
/// and our swarm (with a relay key, which it would only use itself when forced or behind a randomizing NAT)
/// pairs through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_swarm_relay_through_a_rust_relay() {
    let net = testnet();
    let relay_node = rust_node(&net).await;
    let (relay, relay_key, _task) = crate::blind_relay_interop::rust_relay(&relay_node).await;
    let topic = random_topic();
    let relay_hex = hex::encode(relay_key);
    let mut js = Js::start_with(&net, &topic, "server", &["--relay", &relay_hex], None).await;
    js.expect(|v| v.get("flushed").is_some(), STEP).await;
    let rust = relay_only_swarm(&net, SwarmRelay::Key(relay_key)).await;
    relayed_client_connection(&rust, &mut js, topic).await;
    assert_eq!(relay.stats().pairings_matched, 1);
    rust.destroy().await;
    js.finish().await;
}

async fn rust_node(net: &interop::JsTestnet) -> holepunch::hyperdht::HyperDht {
    let dht = holepunch::hyperdht::HyperDht::bind(HyperDhtOpts {
        bootstrap: net.bootstrap.iter().map(v4).collect(),
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

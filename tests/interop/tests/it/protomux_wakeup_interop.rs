//! Live interop with JS protomux-wakeup 2.9.0 (autobase 7's wakeup protocol) over `@hyperswarm/secret-stream`
//! on TCP 127.0.0.1, in both secret-stream roles, driving `tests/interop/js/wakeup_peer.js`: the namespace
//! vectors, the capability proofs checked both ways, lookups and announces both ways, an info, and a peer
//! with the wrong capability refused by both sides.

use std::time::Duration;

use anyhow::{anyhow, bail};
use holepunch::crypto;
use holepunch::noise::Keypair;
use holepunch::protomux::{ChannelOptions, Mux};
use holepunch::protomux_wakeup::{
    capability_proof, Handshake, Lookup, WakeupChannel, WakeupError, WakeupMessage, WriterHint,
    PROTOCOL,
};
use holepunch::secret_stream::SecretStream;
use interop::tokio::{node, JsProcess};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(60);
const CAPABILITY: [u8; 32] = [0x42; 32];

type Node = JsProcess;

fn spawn(mode: &str, port: &str) -> Node {
    node("wakeup_peer.js", &[mode, port, &hex::encode(CAPABILITY)])
}

/// The next line; fails on `error ...` lines and at the end of output.
async fn line(node: &mut Node) -> anyhow::Result<String> {
    let line = node
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("node exited early"))?;
    if line.starts_with("error") {
        bail!("JS peer: {line}");
    }
    Ok(line)
}

/// Reads lines until one equals `want`; fails on `end` first.
async fn expect(node: &mut Node, want: &str) -> anyhow::Result<()> {
    loop {
        let line = line(node).await?;
        if line == want {
            return Ok(());
        }
        if line == "end" {
            bail!("JS peer ended before printing {want:?}");
        }
    }
}

async fn check_vectors(node: &mut Node) -> anyhow::Result<()> {
    let line = line(node).await?;
    let ns = crypto::namespace(b"wakeup", &[0, 1]);
    let want = format!("vectors {} {}", hex::encode(ns[0]), hex::encode(ns[1]));
    assert_eq!(line, want, "crypto.namespace('wakeup', 2)");
    Ok(())
}

async fn scenario(stream: SecretStream<TcpStream>, node: &mut Node) -> anyhow::Result<()> {
    let is_initiator = stream.is_initiator();
    let hh = *stream.handshake_hash();
    let mux = Mux::new(stream);
    let dk = crypto::discovery_key(&CAPABILITY);
    let mut ch = WakeupChannel::open(&mux, &dk, &CAPABILITY, is_initiator, &hh, true)
        .ok_or_else(|| anyhow!("channel"))?;
    ch.opened().await?;
    assert!(ch.remote_active(), "the JS topic is active");
    expect(node, "peer-add true").await?;

    // JS looks up as soon as it added us
    assert_eq!(
        ch.recv().await,
        Some(WakeupMessage::Lookup(Lookup { hash: None }))
    );
    ch.announce(&[WriterHint {
        key: [0x33; 32],
        length: 7,
    }])
    .await?;
    expect(node, &format!("announce {}:7", hex::encode([0x33; 32]))).await?;

    // and answers ours
    ch.lookup(None).await?;
    expect(node, "lookup null").await?;
    assert_eq!(
        ch.recv().await,
        Some(WakeupMessage::Announce(vec![
            WriterHint {
                key: [0x11; 32],
                length: 5
            },
            WriterHint {
                key: [0x22; 32],
                length: 300
            },
        ]))
    );

    ch.info(false).await?;
    expect(node, "peer-inactive").await?;
    ch.info(true).await?;
    expect(node, "peer-active").await?;

    ch.close();
    expect(node, "peer-remove").await?;
    mux.destroy();
    expect(node, "end").await
}

/// A peer that knows only the discovery key, not the capability, opens the channel with a proof made from a
/// wrong capability: ours refuses JS's proof (it cannot verify it) and closes the channel; JS never adds it.
async fn wrong_capability(stream: SecretStream<TcpStream>, node: &mut Node) -> anyhow::Result<()> {
    let is_initiator = stream.is_initiator();
    let hh = *stream.handshake_hash();
    let mux = Mux::new(stream);
    let dk = crypto::discovery_key(&CAPABILITY);
    let mut ch = WakeupChannel::open(&mux, &dk, &[0x43; 32], is_initiator, &hh, true)
        .ok_or_else(|| anyhow!("channel"))?;
    let err = ch.opened().await.err();
    assert!(
        matches!(
            err,
            Some(WakeupError::WrongCapability) | Some(WakeupError::Protomux(_))
        ),
        "{err:?}"
    );
    no_peer_added(mux, node).await
}

/// The same from JS's side: a raw channel whose handshake carries a proof of the wrong capability is closed
/// by JS (its check fails), and JS never adds the peer.
async fn js_refuses_a_wrong_proof(
    stream: SecretStream<TcpStream>,
    node: &mut Node,
) -> anyhow::Result<()> {
    let is_initiator = stream.is_initiator();
    let hh = *stream.handshake_hash();
    let mux = Mux::new(stream);
    let dk = crypto::discovery_key(&CAPABILITY);
    let ch = mux
        .create_channel(ChannelOptions::new(PROTOCOL).id(dk.to_vec()).messages(3))
        .ok_or_else(|| anyhow!("channel"))?;
    let hs = Handshake {
        version: 0,
        capability: capability_proof(is_initiator, &[0x43; 32], &hh),
        active: true,
    };
    ch.open(&hs.encode())?;
    // JS closes the channel once it has checked our proof
    assert!(ch.closed().await, "JS closed the channel");
    no_peer_added(mux, node).await
}

async fn no_peer_added(mux: Mux, node: &mut Node) -> anyhow::Result<()> {
    mux.destroy();
    loop {
        let line = line(node).await?;
        assert!(
            !line.starts_with("peer-add"),
            "JS added a peer with a wrong proof"
        );
        if line == "end" {
            return Ok(());
        }
    }
}

async fn listen_js() -> anyhow::Result<(Node, TcpStream)> {
    let mut node = spawn("listen", "0");
    check_vectors(&mut node).await?;
    let line = line(&mut node).await?;
    let port: u16 = line
        .strip_prefix("port ")
        .ok_or_else(|| anyhow!("expected port, got {line}"))?
        .parse()?;
    Ok((node, TcpStream::connect(("127.0.0.1", port)).await?))
}

async fn js_connects() -> anyhow::Result<(Node, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port().to_string();
    let mut node = spawn("connect", &port);
    check_vectors(&mut node).await?;
    let (tcp, _) = listener.accept().await?;
    Ok((node, tcp))
}

#[tokio::test]
async fn rust_initiator_with_js() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let (mut node, tcp) = listen_js().await?;
        let stream = SecretStream::connect(tcp, &Keypair::from_seed(&[7; 32])).await?;
        scenario(stream, &mut node).await
    })
    .await?
}

#[tokio::test]
async fn js_initiator_with_rust() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let (mut node, tcp) = js_connects().await?;
        let stream = SecretStream::accept(tcp, &Keypair::from_seed(&[8; 32])).await?;
        scenario(stream, &mut node).await
    })
    .await?
}

#[tokio::test]
async fn a_wrong_capability_is_refused_both_ways() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let (mut node, tcp) = listen_js().await?;
        let stream = SecretStream::connect(tcp, &Keypair::from_seed(&[9; 32])).await?;
        js_refuses_a_wrong_proof(stream, &mut node).await?;
        let (mut node, tcp) = js_connects().await?;
        let stream = SecretStream::accept(tcp, &Keypair::from_seed(&[10; 32])).await?;
        wrong_capability(stream, &mut node).await
    })
    .await?
}

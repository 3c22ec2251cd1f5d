//! Live interop with JS protomux 3.12.1 over `@hyperswarm/secret-stream` on TCP 127.0.0.1, in both
//! secret-stream roles, driving `tests/interop/js/protomux_peer.js`: channels opened from each side, a
//! channel opened from both sides at once, rejects in both directions, echoes, batches both ways, closes,
//! and a 32 MiB transfer to JS (throughput printed with --nocapture).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use holepunch::noise::Keypair;
use holepunch::protomux::{ChannelOptions, Mux, ProtomuxError};
use holepunch::secret_stream::SecretStream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

const LIMIT: Duration = Duration::from_secs(60);

struct Node {
    _child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Node {
    fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        let dir = interop::interop_dir();
        let mut child = Command::new("node")
            .arg("js/protomux_peer.js")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context(
                "spawning node (is Node 20 on PATH and tests/interop/node_modules installed?)",
            )?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        Ok(Self {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        self.lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("node exited early"))
    }
}

fn h(s: &[u8]) -> String {
    hex::encode(s)
}

async fn scenario(stream: SecretStream<TcpStream>, node: &mut Node) -> anyhow::Result<()> {
    let (mux, mut pairing) = Mux::new_with(stream, |mux| mux.pair("js-to-rust", None));

    // opened by both sides at once
    let both = mux
        .create_channel(ChannelOptions::new("both").id(b"b".to_vec()))
        .ok_or_else(|| anyhow!("both"))?;
    both.open(b"both-rust")?;
    // JS does not know this one
    let unknown = mux
        .create_channel(ChannelOptions::new("unknown-to-js"))
        .ok_or_else(|| anyhow!("unknown"))?;
    unknown.open(b"")?;
    // JS pairs this one
    let echo = mux
        .create_channel(ChannelOptions::new("echo").id(vec![1, 2, 3]))
        .ok_or_else(|| anyhow!("echo"))?;
    echo.open(b"rs-hs")?;
    // bulk transfer to JS, measured
    let bulk = mux
        .create_channel(ChannelOptions::new("bulk"))
        .ok_or_else(|| anyhow!("bulk"))?;
    bulk.open(b"")?;

    assert_eq!(both.opened().await?, b"both-js");
    assert_eq!(both.recv().await, Some((0, b"from-js".to_vec())));
    both.send(0, b"from-rust").await?;
    assert_eq!(unknown.opened().await, Err(ProtomuxError::Rejected));
    assert!(unknown.is_closed());

    assert_eq!(echo.opened().await?, b"js-hs");
    echo.send(0, b"ping").await?;
    assert_eq!(echo.recv().await, Some((0, b"ping".to_vec())));
    echo.send(1, b"b").await?;
    for i in 0..3u8 {
        assert_eq!(echo.recv().await, Some((0, vec![b'b', i])));
    }
    // a batch from us; JS answers it with a batch
    echo.cork();
    echo.send(0, b"x").await?;
    echo.send(0, b"y").await?;
    echo.uncork();
    assert_eq!(echo.recv().await, Some((0, b"x".to_vec())));
    assert_eq!(echo.recv().await, Some((0, b"y".to_vec())));

    bulk.opened().await?;
    const BULK: usize = 32 * 1024 * 1024;
    let chunk = vec![0xa5u8; 64 * 1024];
    let start = std::time::Instant::now();
    for _ in 0..BULK / chunk.len() {
        bulk.send(0, &chunk).await?;
    }
    bulk.send(1, b"").await?;
    let (kind, count) = bulk.recv().await.ok_or_else(|| anyhow!("no count"))?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(kind, 1);
    let mut want = holepunch::compact_encoding::Writer::new();
    want.uint(BULK as u64);
    assert_eq!(count, want.into_vec());
    println!(
        "Rust -> JS protomux over secret-stream/TCP: {} MiB in {secs:.2}s = {:.0} MiB/s",
        BULK >> 20,
        (BULK >> 20) as f64 / secs
    );

    // opened by JS, paired here
    let incoming = pairing
        .next()
        .await
        .ok_or_else(|| anyhow!("no pair request"))?;
    assert_eq!(incoming.protocol(), "js-to-rust");
    assert_eq!(incoming.id(), Some(&b"r"[..]));
    let to_rust = incoming.accept_default().ok_or_else(|| anyhow!("accept"))?;
    to_rust.open(b"")?;
    assert_eq!(to_rust.opened().await?, b"");
    assert_eq!(to_rust.recv().await, Some((0, b"hello-rust".to_vec())));
    to_rust.close();
    echo.close();
    assert!(!echo.closed().await, "closed locally");

    // wait for JS to see the closes before ending the stream
    let mut seen = Vec::new();
    while !(seen.iter().any(|l| l == "closed echo true")
        && seen.iter().any(|l| l == "closed js-to-rust true"))
    {
        let line = node.line().await?;
        if line.starts_with("error") {
            bail!("JS peer: {line}");
        }
        seen.push(line);
    }
    mux.destroy();
    assert_eq!(mux.closed().await, None);
    assert!(both.is_closed());
    assert_eq!(both.recv().await, None);
    loop {
        let line = node.line().await?;
        if line.starts_with("error") {
            bail!("JS peer: {line}");
        }
        let end = line == "end";
        seen.push(line);
        if end {
            break;
        }
    }
    for want in [
        format!("opened both {}", h(b"both-rust")),
        format!("message both 0 {}", h(b"from-rust")),
        "rejected nobody".to_owned(),
        format!("opened echo {}", h(b"rs-hs")),
        format!("message echo 0 {}", h(b"ping")),
        format!("message echo 1 {}", h(b"b")),
        format!("message echo 0 {}", h(b"x")),
        format!("message echo 0 {}", h(b"y")),
        "opened js-to-rust".to_owned(),
        "closed js-to-rust true".to_owned(),
        "closed echo true".to_owned(),
        "closed both true".to_owned(),
    ] {
        assert!(
            seen.contains(&want),
            "JS did not print {want:?}; it printed {seen:#?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn rust_connects_to_js() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let mut node = Node::spawn(&["listen", "0"])?;
        let line = node.line().await?;
        let port: u16 = line
            .strip_prefix("port ")
            .ok_or_else(|| anyhow!("expected port, got {line}"))?
            .parse()?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let stream = SecretStream::connect(tcp, &Keypair::from_seed(&[7; 32])).await?;
        scenario(stream, &mut node).await
    })
    .await?
}

#[tokio::test]
async fn js_connects_to_rust() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port().to_string();
        let mut node = Node::spawn(&["connect", &port])?;
        let (tcp, _) = listener.accept().await?;
        let stream = SecretStream::accept(tcp, &Keypair::from_seed(&[8; 32])).await?;
        scenario(stream, &mut node).await
    })
    .await?
}

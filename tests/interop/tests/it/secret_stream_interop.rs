//! Live interop with the JS `@hyperswarm/secret-stream` 6.9.2 over TCP on 127.0.0.1, driving
//! `tests/interop/js/secret_stream_peer.js` with Node. Each test is bounded in time; Node is killed on drop.

use std::time::Duration;

use anyhow::{anyhow, bail};
use holepunch::noise::{Keypair, NoiseError, Pattern};
use holepunch::secret_stream::{SecretStream, SecretStreamError, SecretStreamOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIXTEEN_MIB: usize = 16 * 1024 * 1024;
const ONE_MIB: usize = 1024 * 1024;
const LIMIT: Duration = Duration::from_secs(90);

/// The xorshift32 byte stream the JS peer generates and checks.
struct XorShift(u32);

impl XorShift {
    fn new(seed: u32) -> Self {
        Self(if seed == 0 { 1 } else { seed })
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            *b = self.0 as u8;
        }
    }
}

struct Node {
    js: interop::tokio::JsProcess,
}

impl Node {
    fn spawn(args: &[String]) -> anyhow::Result<Self> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(Self {
            js: interop::tokio::node("secret_stream_peer.js", &args),
        })
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        self.js
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("node exited without output"))
    }

    async fn port(&mut self) -> anyhow::Result<u16> {
        let line = self.line().await?;
        let port = line
            .strip_prefix("port ")
            .ok_or_else(|| anyhow!("expected port, got {line}"))?;
        Ok(port.parse()?)
    }

    /// Parses `result k=v ...` into a lookup, failing on `error ...`.
    async fn result(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        let line = self.line().await?;
        let Some(rest) = line.strip_prefix("result ") else {
            bail!("JS peer did not finish: {line}");
        };
        Ok(rest
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

fn get<'a>(result: &'a [(String, String)], key: &str) -> anyhow::Result<&'a str> {
    result
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| anyhow!("no {key} in result"))
}

fn peer_args(mode: &str, port: u16, seed: &[u8; 32], extra: &[String]) -> Vec<String> {
    let mut args = vec![
        mode.to_owned(),
        port.to_string(),
        format!("seed={}", hex::encode(seed)),
    ];
    args.extend_from_slice(extra);
    args
}

/// Sends `send` bytes of the `sendseed` stream (in varied write sizes) then half-closes, while reading and
/// checking the `recvseed` stream until the peer ends. Returns how many bytes arrived.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    send: usize,
    sendseed: u32,
    recvseed: u32,
) -> anyhow::Result<usize> {
    exchange_after(stream, Duration::ZERO, send, sendseed, recvseed).await
}

/// [`exchange`], staying idle for `delay` before writing (while reading).
async fn exchange_after<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    delay: Duration,
    send: usize,
    sendseed: u32,
    recvseed: u32,
) -> anyhow::Result<usize> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = async move {
        tokio::time::sleep(delay).await;
        let mut gen = XorShift::new(sendseed);
        let mut sizes = XorShift::new(777);
        let mut buf = vec![0u8; 300_000];
        let mut sent = 0;
        while sent < send {
            let mut r = [0u8; 4];
            sizes.fill(&mut r);
            let n = (1 + u32::from_le_bytes(r) as usize % buf.len()).min(send - sent);
            let chunk = &mut buf[..n];
            gen.fill(chunk);
            wr.write_all(chunk).await?;
            sent += n;
        }
        wr.shutdown().await?;
        anyhow::Ok(())
    };
    let reader = async move {
        let mut gen = XorShift::new(recvseed);
        let mut buf = vec![0u8; 128 * 1024];
        let mut want = vec![0u8; 128 * 1024];
        let mut received = 0;
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            gen.fill(&mut want[..n]);
            if buf[..n] != want[..n] {
                bail!("received bytes differ near offset {received}");
            }
            received += n;
        }
        anyhow::Ok(received)
    };
    let (w, r) = tokio::join!(writer, reader);
    w?;
    r
}

async fn rust_initiator(
    opts: SecretStreamOptions,
    js_extra: &[String],
    size: usize,
) -> anyhow::Result<()> {
    let rust_key = Keypair::from_seed(&[0x11; 32]);
    let js_seed = [0x22; 32];
    let js_key = Keypair::from_seed(&js_seed);
    let extra: Vec<String> = [
        format!("send={size}"),
        "sendseed=7".into(),
        "recvseed=8".into(),
    ]
    .into_iter()
    .chain(js_extra.iter().cloned())
    .collect();
    let mut node = Node::spawn(&peer_args("listen", 0, &js_seed, &extra))?;
    let port = node.port().await?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let stream = SecretStream::connect_with(tcp, &rust_key, opts).await?;
    assert_eq!(stream.remote_public_key(), &js_key.public_key);
    assert_eq!(stream.public_key(), &rust_key.public_key);
    let hash = hex::encode(stream.handshake_hash());
    let received = exchange(stream, size, 8, 7).await?;
    assert_eq!(received, size);
    let result = node.result().await?;
    assert_eq!(get(&result, "received")?, size.to_string());
    assert_eq!(get(&result, "mismatch")?, "-1");
    assert_eq!(get(&result, "remote")?, hex::encode(rust_key.public_key));
    assert_eq!(get(&result, "local")?, hex::encode(js_key.public_key));
    assert_eq!(get(&result, "hash")?, hash);
    Ok(())
}

async fn rust_responder(
    opts: SecretStreamOptions,
    js_extra: &[String],
    size: usize,
) -> anyhow::Result<()> {
    let rust_key = Keypair::from_seed(&[0x33; 32]);
    let js_seed = [0x44; 32];
    let js_key = Keypair::from_seed(&js_seed);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let extra: Vec<String> = [
        format!("send={size}"),
        "sendseed=9".into(),
        "recvseed=10".into(),
    ]
    .into_iter()
    .chain(js_extra.iter().cloned())
    .collect();
    let mut node = Node::spawn(&peer_args("connect", port, &js_seed, &extra))?;
    let (tcp, _) = listener.accept().await?;
    let stream = SecretStream::accept_with(tcp, &rust_key, opts).await?;
    assert_eq!(stream.remote_public_key(), &js_key.public_key);
    let hash = hex::encode(stream.handshake_hash());
    let received = exchange(stream, size, 10, 9).await?;
    assert_eq!(received, size);
    let result = node.result().await?;
    assert_eq!(get(&result, "received")?, size.to_string());
    assert_eq!(get(&result, "mismatch")?, "-1");
    assert_eq!(get(&result, "remote")?, hex::encode(rust_key.public_key));
    assert_eq!(get(&result, "hash")?, hash);
    Ok(())
}

#[tokio::test]
async fn rust_initiator_js_responder_16mib_each_way() -> anyhow::Result<()> {
    tokio::time::timeout(
        LIMIT,
        rust_initiator(SecretStreamOptions::default(), &[], SIXTEEN_MIB),
    )
    .await?
}

#[tokio::test]
async fn js_initiator_rust_responder_16mib_each_way() -> anyhow::Result<()> {
    tokio::time::timeout(
        LIMIT,
        rust_responder(SecretStreamOptions::default(), &[], SIXTEEN_MIB),
    )
    .await?
}

#[tokio::test]
async fn rust_ik_initiator_js_ik_responder() -> anyhow::Result<()> {
    let js_key = Keypair::from_seed(&[0x22; 32]);
    let opts = SecretStreamOptions {
        pattern: Pattern::IK,
        remote_public_key: Some(js_key.public_key),
        ..Default::default()
    };
    tokio::time::timeout(LIMIT, rust_initiator(opts, &["pattern=IK".into()], ONE_MIB)).await?
}

#[tokio::test]
async fn js_ik_initiator_rust_ik_responder() -> anyhow::Result<()> {
    let rust_key = Keypair::from_seed(&[0x33; 32]);
    let opts = SecretStreamOptions {
        pattern: Pattern::IK,
        ..Default::default()
    };
    let extra = [
        "pattern=IK".to_owned(),
        format!("remote={}", hex::encode(rust_key.public_key)),
    ];
    tokio::time::timeout(LIMIT, rust_responder(opts, &extra, ONE_MIB)).await?
}

#[tokio::test]
async fn rust_expecting_wrong_remote_key_fails() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let js_seed = [0x22; 32];
        let wrong = Keypair::from_seed(&[0x99; 32]).public_key;
        let mut node = Node::spawn(&peer_args("listen", 0, &js_seed, &[]))?;
        let port = node.port().await?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let opts = SecretStreamOptions {
            remote_public_key: Some(wrong),
            ..Default::default()
        };
        let res = SecretStream::connect_with(tcp, &Keypair::from_seed(&[0x11; 32]), opts).await;
        match res {
            Err(SecretStreamError::RemoteKeyMismatch { expected, actual }) => {
                assert_eq!(expected, hex::encode(wrong));
                assert_eq!(actual, hex::encode(Keypair::from_seed(&js_seed).public_key));
                let msg = SecretStreamError::RemoteKeyMismatch { expected, actual }.to_string();
                assert!(msg.starts_with("remote public key mismatch"), "{msg}");
            }
            other => bail!("expected a key mismatch, got {other:?}"),
        }
        // the JS side sees the connection go away without completing
        let line = node.line().await?;
        assert!(line == "closed" || line.starts_with("error"), "{line}");
        Ok(())
    })
    .await?
}

#[tokio::test]
async fn js_ik_initiator_with_wrong_key_is_refused() -> anyhow::Result<()> {
    tokio::time::timeout(LIMIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let wrong = Keypair::from_seed(&[0x99; 32]).public_key;
        let extra = [
            "pattern=IK".to_owned(),
            format!("remote={}", hex::encode(wrong)),
        ];
        let mut node = Node::spawn(&peer_args("connect", port, &[0x44; 32], &extra))?;
        let (tcp, _) = listener.accept().await?;
        let opts = SecretStreamOptions {
            pattern: Pattern::IK,
            ..Default::default()
        };
        let res = SecretStream::accept_with(tcp, &Keypair::from_seed(&[0x33; 32]), opts).await;
        assert!(
            matches!(res, Err(SecretStreamError::Handshake(NoiseError::Decrypt))),
            "{res:?}"
        );
        drop(res);
        let line = node.line().await?;
        assert!(line == "closed" || line.starts_with("error"), "{line}");
        Ok(())
    })
    .await?
}

#[tokio::test]
async fn keep_alive_and_timeout_interop() -> anyhow::Result<()> {
    // Both sides time out after 1 s of silence and send keep-alives every 200 ms, then stay idle for 2.5 s
    // before sending: the connection only survives if each side's empty messages reach the other, and the
    // data must arrive without stray bytes (the empty messages are filtered).
    tokio::time::timeout(LIMIT, async {
        let js_seed = [0x22; 32];
        let rust_key = Keypair::from_seed(&[0x11; 32]);
        let extra = [
            "send=1000".to_owned(),
            "sendseed=7".into(),
            "recvseed=8".into(),
            "keepalive=200".into(),
            "timeout=1000".into(),
            "delay=2500".into(),
        ];
        let mut node = Node::spawn(&peer_args("listen", 0, &js_seed, &extra))?;
        let port = node.port().await?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let opts = SecretStreamOptions {
            keep_alive: Some(Duration::from_millis(200)),
            timeout: Some(Duration::from_millis(1000)),
            ..Default::default()
        };
        let stream = SecretStream::connect_with(tcp, &rust_key, opts).await?;
        let received = exchange_after(stream, Duration::from_millis(2500), 1000, 8, 7).await?;
        assert_eq!(received, 1000);
        let result = node.result().await?;
        assert_eq!(get(&result, "received")?, "1000");
        assert_eq!(get(&result, "mismatch")?, "-1");
        Ok(())
    })
    .await?
}

#[tokio::test]
async fn silent_js_peer_times_out() -> anyhow::Result<()> {
    // The JS side neither sends nor keeps alive: the Rust timeout fires.
    tokio::time::timeout(LIMIT, async {
        let extra = ["delay=5000".to_owned(), "send=10".into()];
        let mut node = Node::spawn(&peer_args("listen", 0, &[0x22; 32], &extra))?;
        let port = node.port().await?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let opts = SecretStreamOptions {
            timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        };
        let mut stream =
            SecretStream::connect_with(tcp, &Keypair::from_seed(&[0x11; 32]), opts).await?;
        let res = stream.recv_message().await;
        assert!(matches!(res, Err(SecretStreamError::TimedOut)), "{res:?}");
        Ok(())
    })
    .await?
}

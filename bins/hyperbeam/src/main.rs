//! `hyperbeam`: a 1-1 end-to-end encrypted pipe over HyperDHT. See `hyperbeam --help`.
//!
//! Exit codes: 0 when the pipe ended (or Ctrl-C), 1 on an error (one line on stderr), 2 on bad usage, 128 + the
//! signal number for a second Ctrl-C (or SIGTERM) while the pipe is ending (the JS bin is killed by it).

use std::io::IsTerminal;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context;
use bin_support::bootstrap::{self, BootstrapNode};
use bin_support::runtime::{Flavor, Shutdown};
use bin_support::{Killed, Report, Signals};
use clap::{CommandFactory, Parser};
use holepunch::base32::{hyperbeam_key_pair, hyperbeam_random_passphrase};
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{ConnectOpts, Connection, HyperDht, HyperDhtOpts, RelayThrough};
use holepunch::secret_stream::MAX_WRITE_CHUNK;
use hyperbeam_cli::cli::Cli;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

/// Size of the stdin/stdout chunks.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between each pump thread and the pipe.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long closing the server and the node may take at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

mod pump;

/// Runtime errors: `[hyperbeam] Error: <message>`.
const REPORT: Report = Report::new("[hyperbeam] Error: ");

fn main() -> ExitCode {
    let cli = Cli::parse();
    bin_support::logging::init();
    let bootstrap = match cli.net.nodes_or_usage(Cli::command()) {
        Ok(b) => b,
        Err(e) => e.exit(),
    };
    // --relay, else HYPERDHT_RELAY, else HYPERBEAM_RELAY (the older name; the NAT lab's RELAY=1 sets both).
    let relay = match cli.relay.key_or_legacy("HYPERBEAM_RELAY") {
        Ok(r) => r,
        Err(e) => bin_support::relay::usage_error(Cli::command(), &e).exit(),
    };
    let announce = cli.announces();
    let passphrase = cli
        .passphrase
        .clone()
        .unwrap_or_else(hyperbeam_random_passphrase);
    let key_pair = match hyperbeam_key_pair(&passphrase) {
        Ok(kp) => kp,
        Err(e) => {
            eprintln!("Invalid passphrase: {e}");
            eprintln!("(If you are attempting to create a new pipe, do not provide a phrase and hyperbeam will generate one for you.)");
            return ExitCode::FAILURE;
        }
    };
    if announce {
        eprintln!("[hyperbeam] Run hyperbeam {passphrase} to connect");
        eprintln!(
            "[hyperbeam] To restart this side of the pipe with the same key add -r to the above"
        );
    } else {
        eprintln!("[hyperbeam] Connecting pipe...");
    }
    // A blocking read of stdin cannot be cancelled: do not wait for it. A second Ctrl-C (or SIGTERM) while
    // the pipe is ending is a `Killed` error: exit 128 + the signal, as the JS bin is killed by it.
    REPORT.exit(bin_support::runtime::run(
        Flavor::CurrentThread,
        Shutdown::Background,
        run(bootstrap, key_pair, announce, relay, cli.net.lan()),
    ))
}

async fn run(
    bootstrap: Vec<BootstrapNode>,
    key_pair: KeyPair,
    announce: bool,
    relay: Option<[u8; 32]>,
    lan: Option<holepunch::lan_discovery::LanOpts>,
) -> anyhow::Result<()> {
    let mut interrupt = Signals::listen()?;
    let bootstrap = bootstrap::resolve(&bootstrap).await?;
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap,
        ephemeral: Some(true),
        lan,
        ..HyperDhtOpts::default()
    })
    .await?;
    // The relay (`relayThrough`): both sides pair through it as well; the connection opens through it at
    // once and moves to a punched path when one opens.
    let mut server = None;
    let open = async {
        if announce {
            let public = key_pair.public;
            // Only the peer holding the same key pair gets through.
            let server = server.insert(dht.create_server(move |remote, _| *remote != public));
            server.set_relay_through(relay.map(RelayThrough::Key));
            server.listen(key_pair.clone()).await?;
            remote_address(&dht).await;
            server
                .accept()
                .await
                .context("the server closed before a peer connected")
        } else {
            let opts = ConnectOpts {
                key_pair: Some(key_pair.clone()),
                relay_through: relay.map(RelayThrough::Key),
                ..ConnectOpts::default()
            };
            let conn = dht.connect_opts(&key_pair.public, opts).await?;
            remote_address(&dht).await;
            Ok(conn)
        }
    };
    let opened = tokio::select! {
        r = open => Some(r),
        _ = interrupt.recv() => None,
    };
    let result = match opened {
        None => {
            eprintln!("[hyperbeam] Shutting down beam...");
            Ok(())
        }
        Some(Err(e)) => Err(e),
        Some(Ok(conn)) => {
            eprintln!("[hyperbeam] Success! Encrypted tunnel established to remote peer");
            if std::env::var_os("HYPERBEAM_DEBUG").is_some() || bin_support::relay::debug() {
                // How the connection reached the peer (the NAT lab reads this line).
                let (path, remote) = dht.connection_path(&conn);
                let remote = remote.map_or_else(|| "?".to_string(), |a| a.to_string());
                eprintln!("[hyperbeam] path: {path} {remote}");
            }
            pipe(conn, &mut interrupt).await
        }
    };
    if result.as_ref().is_err_and(|e| e.is::<Killed>()) {
        return result;
    }
    if let Some(mut server) = server {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, server.close()).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, dht.destroy()).await;
    result
}

/// Prints the node's public address as the JS bin's `remote-address` event.
async fn remote_address(dht: &HyperDht) {
    match dht.handle().state().await {
        Ok(s) if s.public_host.is_some() && s.public_port != 0 => {
            if let Some(host) = s.public_host {
                eprintln!(
                    "[hyperbeam] Joined the DHT - remote address is {host}:{}",
                    s.public_port
                );
            }
        }
        _ => eprintln!("[hyperbeam] Could not detect remote address"),
    }
}

/// Byte counters for the progress line.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
}

/// Copies stdin to the stream and the stream to stdout. When stdin ends (or at Ctrl-C) the write side is
/// shut down; when the peer ends its side, this side ends too (at once when stdin is a terminal, else once
/// stdin is fully sent). Returns once both sides ended and everything
/// written was acknowledged.
async fn pipe(conn: Connection, interrupt: &mut Signals) -> anyhow::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(conn);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(Notify::new());
    let mut input = pump::stdin(CHUNK, CHUNKS_IN_FLIGHT).context("reading stdin")?;
    let mut output = pump::stdout(CHUNK, CHUNKS_IN_FLIGHT).context("writing stdout")?;

    let up = {
        let counters = counters.clone();
        let stop = stop.clone();
        async move {
            let copied: anyhow::Result<()> = async {
                loop {
                    let next = tokio::select! {
                        next = input.next() => next,
                        () = stop.notified() => None,
                    };
                    let Some(chunk) = next else { break };
                    let (buf, n) = chunk.context("reading stdin")?;
                    writer
                        .write_all(buf.get(..n).unwrap_or_default())
                        .await
                        .context("writing to the peer")?;
                    input.recycle(buf);
                    counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                    // Typed input goes out now; bulk input is flushed by the writes that follow it.
                    if input.is_empty() {
                        writer.flush().await.context("writing to the peer")?;
                    }
                }
                writer.shutdown().await.context("ending the pipe")?;
                Ok(())
            }
            .await;
            copied.map(|()| writer)
        }
    };
    let down = {
        let counters = counters.clone();
        async move {
            loop {
                let mut buf = output.buffer();
                let (n, end) = read_available(&mut reader, &mut buf)
                    .await
                    .context("reading from the peer")?;
                if n > 0 {
                    output.send(buf, n).await.context("writing stdout")?;
                    counters.received.fetch_add(n as u64, Ordering::Relaxed);
                }
                if end {
                    break;
                }
            }
            output.finish().await.context("writing stdout")?;
            anyhow::Ok(reader)
        }
    };
    tokio::pin!(up, down);

    let progress = std::io::stderr().is_terminal();
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut writer = None;
    let mut reader = None;
    let mut interrupted = false;
    let result = loop {
        if let (Some(_), Some(_)) = (&reader, &writer) {
            break Ok(());
        }
        tokio::select! {
            r = &mut up, if writer.is_none() => match r {
                Ok(w) => writer = Some(w),
                Err(e) => break Err(e),
            },
            r = &mut down, if reader.is_none() => match r {
                // The far side ended: end this side too. Input from a terminal stops now, as in the JS bin;
                // input from a file or a pipe is still delivered whole first.
                Ok(r) => {
                    reader = Some(r);
                    if stdin_is_terminal {
                        stop.notify_one();
                    }
                }
                Err(e) => break Err(e),
            },
            signal = interrupt.recv() => {
                if interrupted {
                    break Err(Killed(signal).into());
                }
                interrupted = true;
                stop.notify_one();
            }
            _ = tick.tick(), if progress => print_progress(&counters, started),
        }
    };
    if progress {
        print_progress(&counters, started);
        eprintln!();
    }
    result?;
    if let (Some(r), Some(w)) = (reader, writer) {
        let conn = r.unsplit(w);
        // Everything written reaches the peer before the node goes away.
        let closed = conn.get_ref().closed();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                r = &mut closed => break r.context("closing the pipe")?,
                signal = interrupt.recv() => {
                    if interrupted {
                        return Err(Killed(signal).into());
                    }
                    interrupted = true;
                }
            }
        }
    }
    Ok(())
}

/// Reads what `reader` has into `buf`: waits for the first bytes, then takes whatever else is ready without
/// waiting, so stdout gets few large writes. Returns the byte count and whether the stream ended.
///
/// It stops once less room is left than a whole message of the peer can need ([`MAX_WRITE_CHUNK`]: what our
/// peer writes at most at once, and what JS writes from a pipe or a file): the secret stream decrypts a
/// message that fits straight into `buf`, and one that does not through a buffer of its own.
async fn read_available<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> std::io::Result<(usize, bool)> {
    let mut filled = reader.read(buf).await?;
    if filled == 0 {
        return Ok((0, true));
    }
    loop {
        let Some(rest) = buf.get_mut(filled..).filter(|r| r.len() >= MAX_WRITE_CHUNK) else {
            return Ok((filled, false));
        };
        let ready = std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(rest);
            Poll::Ready(match Pin::new(&mut *reader).poll_read(cx, &mut rb) {
                Poll::Pending => None,
                Poll::Ready(r) => Some(r.map(|()| rb.filled().len())),
            })
        })
        .await;
        match ready {
            None => return Ok((filled, false)),
            Some(Ok(0)) => return Ok((filled, true)),
            Some(Ok(n)) => filled += n,
            Some(Err(e)) => return Err(e),
        }
    }
}

fn print_progress(counters: &Counters, started: Instant) {
    let sent = counters.sent.load(Ordering::Relaxed);
    let received = counters.received.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    eprint!(
        "\r\x1b[K[hyperbeam] sent {} ({}/s), received {} ({}/s)",
        human(sent as f64),
        human(sent as f64 / secs),
        human(received as f64),
        human(received as f64 / secs)
    );
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
}

//! udxcat: netcat over one UDX stream.
//!
//! ```text
//! udxcat --bind HOST:PORT --connect HOST:PORT --id N --remote-id M
//! ```
//!
//! Binds a UDP socket, opens stream N to remote stream M at the `--connect` address, pipes stdin into the
//! stream and the stream into stdout. Prints `udxcat: bound HOST:PORT` on stderr once bound (so a test can bind
//! port 0), exits 0 once both directions have ended (stdin at EOF and the remote's END received, and our END
//! acknowledged), and non-zero with a message on error.
//!
//! Debugging aids: `UDXCAT_TRACE=1` prints the stream's counters every 100 ms on stderr, `UDXCAT_STATS=1` prints
//! them once at the end, `RUST_LOG=holepunch_udx::loss=debug` logs loss recovery as it happens (probes, packets
//! RACK marks lost, RTOs; `=trace` adds RACK advancing on a retransmitted packet).
//! `UDXCAT_RWND=BYTES` sets the stream's receive window maximum (libudx's default: 4 MiB), for experiments.
//!
//! `UDXCAT_LINGER=1` (benches): once the stream closed, print `udxcat: closed at SECS` (Unix time) on stderr and
//! keep the socket open while the stream lingers to re-acknowledge retransmissions (its last ack may have been
//! lost; without this the remote retransmits to a closed port until it times out).

use std::fs::File;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use holepunch::udx::UdxSocket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Chunk size of the stdin/stdout pumps.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between a pump thread and the stream.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long to wait for our data to be acknowledged after both directions ended.
const LINGER: Duration = Duration::from_secs(30);
/// How long to wait for the acknowledgement of our END alone, once all data was acknowledged.
const END_ACK_GRACE: Duration = Duration::from_secs(4);

/// Pipe stdin/stdout over a UDX stream (wire-compatible with udx-native).
#[derive(Debug, Parser)]
#[command(name = "udxcat", version)]
struct Args {
    /// Local UDP address to bind (port 0 picks one; the bound address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT")]
    bind: SocketAddr,
    /// Address of the remote UDX socket.
    #[arg(long, value_name = "HOST:PORT")]
    connect: SocketAddr,
    /// Local stream id.
    #[arg(long, value_name = "N")]
    id: u32,
    /// Remote stream id.
    #[arg(long = "remote-id", value_name = "M")]
    remote_id: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        // Debugging aid: e.g. RUST_LOG=holepunch_udx::loss=debug logs loss recovery (probes, RACK, RTOs).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("udxcat: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udxcat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The process's stdin or stdout as a raw file: no line buffering, no extra copy.
fn raw_fd(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: fds 0 and 1 stay open for the whole process; ManuallyDrop never closes them.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

async fn run(args: Args) -> Result<()> {
    let socket = UdxSocket::bind(args.bind)
        .await
        .with_context(|| format!("cannot bind {}", args.bind))?;
    eprintln!("udxcat: bound {}", socket.local_addr());
    // UDXCAT_RWND=BYTES (experiments): the receive window's maximum instead of libudx's 4 MiB.
    let mut config = holepunch::udx::StreamConfig::default();
    if let Some(n) = std::env::var("UDXCAT_RWND")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.recv_window_max = n;
    }
    let stream = socket
        .create_stream_with(args.id, config)
        .context("cannot create the stream")?;
    stream
        .connect(args.remote_id, args.connect)
        .context("cannot connect")?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    if std::env::var_os("UDXCAT_TRACE").is_some() {
        // Debugging aid: the stream's counters every 100 ms on stderr.
        let socket = socket.clone();
        let id = args.id;
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while let Some(s) = {
                tick.tick().await;
                socket.stream_stats(id)
            } {
                eprintln!(
                    "udxcat: t={:.1}s sent={} rx={} inflight={} cwnd={} srtt={:?} rto={:?} rtos={} probes={} retrans={} pace={}B/ms bw={}B/s bbr={} bw_samples={} bw_probes={}",
                    start.elapsed().as_secs_f64(),
                    s.bytes_sent,
                    s.bytes_received,
                    s.inflight_packets,
                    s.cwnd,
                    s.srtt,
                    s.rto,
                    s.rto_count,
                    s.probes,
                    s.packets_retransmitted,
                    s.pacing_bytes_per_ms,
                    s.bandwidth_bytes_per_sec,
                    s.bbr_state,
                    s.bandwidth_samples,
                    s.bandwidth_probes
                );
            }
        });
    }

    // stdin -> stream: a thread reads big chunks, the task writes them; buffers go back for reuse.
    let (full_tx, mut full_rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
    std::thread::spawn(move || {
        let mut stdin = raw_fd(0);
        loop {
            let mut buf = empty_rx.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let n = loop {
                match stdin.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = full_tx.blocking_send(Err(e));
                        return;
                    }
                }
            };
            if n == 0 {
                return;
            }
            buf.truncate(n);
            if full_tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    let upload = async move {
        while let Some(buf) = full_rx.recv().await {
            let buf = buf.context("reading stdin")?;
            writer
                .write_all(&buf)
                .await
                .context("sending to the stream")?;
            let _ = empty_tx.try_send(buf);
        }
        writer.shutdown().await.context("ending the stream")?;
        anyhow::Ok(writer)
    };

    // stream -> stdout: the task reads, a thread writes; buffers go back for reuse.
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
    let stdout_thread = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stdout = raw_fd(1);
        while let Some(buf) = out_rx.blocking_recv() {
            stdout.write_all(&buf)?;
            let _ = back_tx.try_send(buf);
        }
        stdout.flush()
    });
    let download = async move {
        loop {
            let mut buf = back_rx.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let n = reader
                .read(&mut buf)
                .await
                .context("receiving from the stream")?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if out_tx.send(buf).await.is_err() {
                return Err(anyhow!("stdout closed"));
            }
        }
        drop(out_tx);
        anyhow::Ok(reader)
    };

    let (writer, reader) = tokio::try_join!(upload, download)?;
    let stream = reader.unsplit(writer);
    if std::env::var_os("UDXCAT_STATS").is_some() {
        if let Ok(stats) = stream.stats() {
            eprintln!("udxcat: {stats:?}");
        }
    }
    // Both directions ended; wait for the remote to acknowledge our END. A libudx peer forgets the stream as soon
    // as it has everything, so if its last ACK is lost our END is never acknowledged: once every data byte was
    // acknowledged, give the END a grace period only, then leave (the peer has all our bytes).
    match tokio::time::timeout(END_ACK_GRACE, stream.closed()).await {
        Ok(closed) => closed.context("stream failed")?,
        Err(_) if stream.unacked_len().unwrap_or(1) == 0 => {
            eprintln!("udxcat: our END was not acknowledged (the remote had closed); all data was acknowledged");
        }
        Err(_) => tokio::time::timeout(LINGER, stream.closed())
            .await
            .map_err(|_| anyhow!("timed out waiting for the remote to acknowledge our data"))?
            .context("stream failed")?,
    }

    if std::env::var_os("UDXCAT_LINGER").is_some() {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!(
            "udxcat: closed at {}.{:09}",
            at.as_secs(),
            at.subsec_nanos()
        );
        // The driver drops the stream once its linger ends.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while stream.stats().is_ok() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::task::spawn_blocking(move || stdout_thread.join())
        .await
        .context("stdout pump")?
        .map_err(|_| anyhow!("stdout pump panicked"))?
        .context("writing stdout")?;
    Ok(())
}

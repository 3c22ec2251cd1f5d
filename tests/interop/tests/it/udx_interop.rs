//! UDX interop: the Rust driver against udx-native (node, `tests/interop/js/udxcat.js`) and against itself,
//! directly on loopback and through a lossy, delaying, reordering UDP relay run by the test.
//!
//! Every transfer moves 64 MiB of seeded pseudo-random bytes per direction and checks them byte for byte
//! (the first differing offset is reported). The node tests need `tests/interop/node_modules` (CI installs it
//! with `npm ci`); without it they fail loudly rather than pass.

use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use holepunch::udx::{SocketConfig, UdxSocket, UdxStream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
const SIZE: u64 = 64 << 20;
const CHUNK: usize = 256 * 1024;
/// Upper bound for one whole test (transfers and process exits).
const TEST_LIMIT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------------------------
// Deterministic data

/// A seeded xorshift64* byte stream: cheap enough in debug builds to generate and re-check 64 MiB.
#[derive(Clone)]
struct Pattern {
    state: u64,
    pending: [u8; 8],
    used: usize,
}

impl Pattern {
    fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            pending: [0; 8],
            used: 8,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.pending = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
                self.used = 0;
            }
            *b = self.pending[self.used];
            self.used += 1;
        }
    }
}

/// Byte counters of one test's transfers, reported when it times out.
#[derive(Default)]
struct Progress(Mutex<Vec<(&'static str, u64, Arc<AtomicU64>)>>);

impl Progress {
    fn counter(&self, what: &'static str, size: u64) -> Arc<AtomicU64> {
        let c = Arc::new(AtomicU64::new(0));
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((what, size, Arc::clone(&c)));
        c
    }

    fn report(&self) -> String {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .map(|(what, size, c)| format!("{what}: {} of {size} bytes", c.load(Ordering::Relaxed)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs `work` within [`TEST_LIMIT`], panicking with the transfer progress if it does not finish.
/// How long a close may wait for the ACK of our END once all data is acknowledged (as udxcat's grace).
const END_ACK_GRACE: Duration = Duration::from_secs(4);

async fn bounded<F: std::future::Future>(name: &str, progress: &Progress, work: F) -> F::Output {
    match tokio::time::timeout(TEST_LIMIT, work).await {
        Ok(out) => out,
        Err(_) => panic!(
            "{name}: timed out after {TEST_LIMIT:?}; progress: {}",
            progress.report()
        ),
    }
}

/// Writes `size` bytes of `Pattern::new(seed)` into `w`, then shuts it down (END / EOF).
async fn send_pattern<W: AsyncWrite + Unpin>(
    mut w: W,
    seed: u64,
    size: u64,
    what: &'static str,
    progress: &Progress,
) -> W {
    let done = progress.counter(what, size);
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        pattern.fill(&mut buf[..n]);
        w.write_all(&buf[..n])
            .await
            .unwrap_or_else(|e| panic!("{what}: write failed after {} bytes: {e}", size - left));
        left -= n as u64;
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
    w.shutdown()
        .await
        .unwrap_or_else(|e| panic!("{what}: shutdown failed: {e}"));
    w
}

/// Reads `r` to its end and checks it is exactly `size` bytes of `Pattern::new(seed)`.
async fn expect_pattern<R: AsyncRead + Unpin>(
    mut r: R,
    seed: u64,
    size: u64,
    what: &'static str,
    progress: &Progress,
) -> R {
    let done = progress.counter(what, size);
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut expected = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{what}: read failed at offset {offset}: {e}"));
        if n == 0 {
            break;
        }
        assert!(
            offset + n as u64 <= size,
            "{what}: received more than the {size} bytes sent"
        );
        pattern.fill(&mut expected[..n]);
        if let Some(i) = buf[..n]
            .iter()
            .zip(&expected[..n])
            .position(|(a, b)| a != b)
        {
            panic!("{what}: bytes differ at offset {}", offset + i as u64);
        }
        offset += n as u64;
        done.store(offset, Ordering::Relaxed);
    }
    assert_eq!(
        offset, size,
        "{what}: stream ended after {offset} of {size} bytes"
    );
    r
}

// ---------------------------------------------------------------------------------------------------------------
// The lossy relay

/// Impairments of the relay, per direction.
#[derive(Clone, Copy, Debug)]
struct Impairment {
    loss: f64,
    delay: Duration,
    jitter: Duration,
}

const CLEAN: Impairment = Impairment {
    loss: 0.0,
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
};
const LOSSY: Impairment = Impairment {
    loss: 0.05,
    delay: Duration::from_millis(2),
    jitter: Duration::from_millis(2),
};

/// A UDP forwarder on loopback. Side A talks to `a_facing`, side B to `b_facing`; what arrives on one is sent
/// from the other to that side's peer, after a seeded-random drop decision and a delay with jitter (which
/// reorders packets a little).
struct Relay {
    a_facing: SocketAddr,
    b_facing: SocketAddr,
    peers: Arc<Mutex<(Option<SocketAddr>, Option<SocketAddr>)>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(impairment: Impairment, seed: u64) -> Self {
        let a = Arc::new(UdpSocket::bind(LOOPBACK).await.expect("bind relay a"));
        let b = Arc::new(UdpSocket::bind(LOOPBACK).await.expect("bind relay b"));
        let peers = Arc::new(Mutex::new((None, None)));
        let a_facing = a.local_addr().expect("relay addr");
        let b_facing = b.local_addr().expect("relay addr");
        let tasks = vec![
            tokio::spawn(forward(
                Arc::clone(&a),
                Arc::clone(&b),
                Arc::clone(&peers),
                true,
                impairment,
                seed,
            )),
            tokio::spawn(forward(
                b,
                a,
                Arc::clone(&peers),
                false,
                impairment,
                seed ^ 0x5555,
            )),
        ];
        Self {
            a_facing,
            b_facing,
            peers,
            tasks,
        }
    }

    fn set_peers(&self, a: SocketAddr, b: SocketAddr) {
        *self.peers.lock().unwrap_or_else(|e| e.into_inner()) = (Some(a), Some(b));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn forward(
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
    peers: Arc<Mutex<(Option<SocketAddr>, Option<SocketAddr>)>>,
    a_to_b: bool,
    imp: Impairment,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queue: BinaryHeap<std::cmp::Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut counter = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        let next = queue.peek().map(|std::cmp::Reverse((t, _, _))| *t);
        tokio::select! {
            res = from.recv_from(&mut buf) => {
                let Ok((n, _src)) = res else { continue };
                if imp.loss > 0.0 && rng.gen_bool(imp.loss) {
                    continue;
                }
                let jitter = if imp.jitter.is_zero() { Duration::ZERO } else { imp.jitter.mul_f64(rng.gen::<f64>()) };
                counter += 1;
                let packet = buf[..n].to_vec();
                if imp.delay.is_zero() && jitter.is_zero() {
                    send_to_peer(&to, &peers, a_to_b, &packet).await;
                } else {
                    queue.push(std::cmp::Reverse((Instant::now() + imp.delay + jitter, counter, packet)));
                }
            }
            _ = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if next.is_some() => {
                let now = Instant::now();
                while queue.peek().is_some_and(|std::cmp::Reverse((t, _, _))| *t <= now) {
                    if let Some(std::cmp::Reverse((_, _, packet))) = queue.pop() {
                        send_to_peer(&to, &peers, a_to_b, &packet).await;
                    }
                }
            }
        }
    }
}

async fn send_to_peer(
    to: &UdpSocket,
    peers: &Mutex<(Option<SocketAddr>, Option<SocketAddr>)>,
    a_to_b: bool,
    packet: &[u8],
) {
    let peer = {
        let p = peers.lock().unwrap_or_else(|e| e.into_inner());
        if a_to_b {
            p.1
        } else {
            p.0
        }
    };
    if let Some(peer) = peer {
        let _ = to.send_to(packet, peer).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Peers

// The udxcat processes (node or Rust) run in `interop::interop_dir()`; `interop::require_js()` checks the JS side.

/// The Rust `udxcat` example binary: `cargo test --workspace` builds it with the tests; built here only when it
/// is missing (a cargo build from inside a test resolves the facade's features alone and would rebuild every crate
/// below it).
fn rust_udxcat() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/udx_interop-HASH -> target/<profile>/examples/udxcat
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile dir")
            .to_path_buf();
        let bin = profile_dir.join("examples/udxcat");
        if bin.is_file() {
            return bin;
        }
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "holepunch", "--example", "udxcat"])
            .args(if profile_dir.ends_with("release") {
                &["--release"][..]
            } else {
                &[][..]
            })
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example udxcat");
        assert!(status.success(), "cargo build --example udxcat failed");
        assert!(bin.is_file(), "udxcat not found at {}", bin.display());
        bin
    })
    .clone()
}

/// A udxcat process (node or Rust) with piped stdio, and the address it bound.
struct CatProcess {
    child: Child,
    addr: SocketAddr,
    name: &'static str,
}

async fn spawn_cat(
    name: &'static str,
    mut cmd: Command,
    connect: SocketAddr,
    id: u32,
    remote_id: u32,
) -> CatProcess {
    cmd.args(["--bind", "127.0.0.1:0", "--connect", &connect.to_string()])
        .args([
            "--id",
            &id.to_string(),
            "--remote-id",
            &remote_id.to_string(),
        ])
        .current_dir(interop::interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if let Some(addr) = line.strip_prefix("udxcat: bound ") {
                return addr.trim().parse::<SocketAddr>().expect("bound address");
            }
            eprintln!("{name}: {line}");
        }
        panic!("{name} exited before binding")
    })
    .await
    .unwrap_or_else(|_| panic!("{name} did not report its address in time"));
    // Keep echoing its stderr so failures explain themselves.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name}: {line}");
        }
    });
    CatProcess { child, addr, name }
}

fn node_cat() -> Command {
    interop::tokio::command("udxcat.js")
}

fn rust_cat() -> Command {
    Command::new(rust_udxcat())
}

/// A Rust peer in this process: one socket, one stream.
async fn rust_peer(id: u32) -> (UdxSocket, UdxStream) {
    rust_peer_with(id, SocketConfig::default()).await
}

async fn rust_peer_with(id: u32, config: SocketConfig) -> (UdxSocket, UdxStream) {
    let socket = UdxSocket::bind_with(LOOPBACK, config)
        .await
        .expect("bind rust peer");
    let stream = socket.create_stream(id).expect("create stream");
    (socket, stream)
}

/// Moves `a_bytes` from the in-process Rust peer to the process and `b_bytes` back, at the same time, and checks
/// both byte for byte and the process's clean exit.
async fn rust_vs_process(
    name: &'static str,
    cmd: Command,
    relay: Option<Impairment>,
    a_bytes: u64,
    b_bytes: u64,
) {
    rust_vs_process_with(name, cmd, relay, a_bytes, b_bytes, SocketConfig::default()).await
}

async fn rust_vs_process_with(
    name: &'static str,
    cmd: Command,
    relay: Option<Impairment>,
    a_bytes: u64,
    b_bytes: u64,
    config: SocketConfig,
) {
    let (socket, stream) = rust_peer_with(1, config).await;
    let relay = match relay {
        Some(imp) => Some(Relay::start(imp, 0xC0FFEE).await),
        None => None,
    };
    let rust_target = relay.as_ref().map_or(socket.local_addr(), |r| r.b_facing);
    let mut proc = spawn_cat(name, cmd, rust_target, 2, 1).await;
    let proc_target = match &relay {
        Some(r) => {
            r.set_peers(socket.local_addr(), proc.addr);
            r.a_facing
        }
        None => proc.addr,
    };
    stream.connect(2, proc_target).expect("connect");

    let stdin = proc.child.stdin.take().expect("stdin");
    let stdout = proc.child.stdout.take().expect("stdout");
    let (reader, writer) = tokio::io::split(stream);
    let progress = Progress::default();
    let work = async {
        // Dropping the pipe is what gives the process EOF (shutdown only flushes it).
        let feed = async {
            drop(send_pattern(stdin, 22, b_bytes, "to the process's stdin", &progress).await)
        };
        let up = send_pattern(writer, 11, a_bytes, "rust stream write", &progress);
        let down = expect_pattern(
            reader,
            22,
            b_bytes,
            "rust stream read (process -> rust)",
            &progress,
        );
        let out = expect_pattern(
            stdout,
            11,
            a_bytes,
            "process stdout (rust -> process)",
            &progress,
        );
        let (_, writer, reader, _) = tokio::join!(feed, up, down, out);
        let stream = reader.unsplit(writer);
        // The rule udxcat follows: udx-native forgets a stream as soon as it has everything, so when its last ACK
        // is lost (the relay drops 5%) our END is never acknowledged. Every byte was verified above; a clean close
        // is still required unless all our data was acknowledged and only the END is outstanding after the grace.
        // The END's retransmits can also run out (6 RTOs) within the grace on a loaded machine: that TimedOut is
        // the same lost last ACK, and is accepted only because the process then exits 0 (it saw our END).
        let closed = match tokio::time::timeout(END_ACK_GRACE, stream.closed()).await {
            Ok(closed) => closed,
            Err(_) if stream.unacked_len().unwrap_or(1) == 0 => Ok(()),
            Err(_) => stream.closed().await,
        };
        let status = proc.child.wait().await.expect("wait for the process");
        assert!(status.success(), "{} exited with {status}", proc.name);
        if let Err(e) = closed {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::TimedOut,
                "rust stream closed cleanly: {e}"
            );
        }
    };
    bounded(name, &progress, work).await;
    drop(socket);
}

/// Two in-process Rust peers, optionally through the relay, both directions at once.
async fn rust_vs_rust(relay: Option<Impairment>, a_bytes: u64, b_bytes: u64) {
    let (sa, a) = rust_peer(1).await;
    let (sb, b) = rust_peer(2).await;
    let relay = match relay {
        Some(imp) => Some(Relay::start(imp, 0xBEEF).await),
        None => None,
    };
    match &relay {
        Some(r) => {
            r.set_peers(sa.local_addr(), sb.local_addr());
            a.connect(2, r.a_facing).expect("connect a");
            b.connect(1, r.b_facing).expect("connect b");
        }
        None => {
            a.connect(2, sb.local_addr()).expect("connect a");
            b.connect(1, sa.local_addr()).expect("connect b");
        }
    }
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let progress = Progress::default();
    let work = async {
        let (aw, ar, bw, br) = tokio::join!(
            send_pattern(aw, 33, a_bytes, "a write", &progress),
            expect_pattern(ar, 44, b_bytes, "a read (b -> a)", &progress),
            send_pattern(bw, 44, b_bytes, "b write", &progress),
            expect_pattern(br, 33, a_bytes, "b read (a -> b)", &progress),
        );
        let (a, b) = (ar.unsplit(aw), br.unsplit(bw));
        a.closed().await.expect("a closed cleanly");
        b.closed().await.expect("b closed cleanly");
    };
    bounded("rust <-> rust", &progress, work).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_js_64mib() {
    rust_vs_process("udxcat.js", node_cat(), None, SIZE, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_to_rust_64mib() {
    rust_vs_process("udxcat.js", node_cat(), None, 0, SIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_js_both_ways_64mib() {
    rust_vs_process("udxcat.js", node_cat(), None, SIZE, SIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_without_gso_or_gro_and_js_both_ways() {
    let plain = SocketConfig {
        gso: false,
        gro: false,
    };
    rust_vs_process_with("udxcat.js", node_cat(), None, SIZE, SIZE, plain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_js_both_ways_through_lossy_relay() {
    rust_vs_process("udxcat.js", node_cat(), Some(LOSSY), SIZE, SIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_rust_udxcat_both_ways() {
    rust_vs_process("udxcat", rust_cat(), None, SIZE, SIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_rust_both_ways_64mib() {
    rust_vs_rust(None, SIZE, SIZE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_rust_both_ways_through_lossy_relay() {
    rust_vs_rust(Some(LOSSY), SIZE, SIZE).await;
}

/// Two udxcat processes, each talking to its side of the relay, `size` bytes each way at once.
async fn process_vs_process(
    (name_a, cmd_a): (&'static str, Command),
    (name_b, cmd_b): (&'static str, Command),
    impairment: Impairment,
    size: u64,
) {
    let relay = Relay::start(impairment, 7).await;
    let mut a = spawn_cat(name_a, cmd_a, relay.a_facing, 1, 2).await;
    let mut b = spawn_cat(name_b, cmd_b, relay.b_facing, 2, 1).await;
    relay.set_peers(a.addr, b.addr);
    let progress = Progress::default();
    let work = async {
        let (a_in, a_out) = (
            a.child.stdin.take().expect("stdin"),
            a.child.stdout.take().expect("stdout"),
        );
        let (b_in, b_out) = (
            b.child.stdin.take().expect("stdin"),
            b.child.stdout.take().expect("stdout"),
        );
        tokio::join!(
            async { drop(send_pattern(a_in, 5, size, "a stdin", &progress).await) },
            async { drop(send_pattern(b_in, 6, size, "b stdin", &progress).await) },
            expect_pattern(a_out, 6, size, "a stdout (b -> a)", &progress),
            expect_pattern(b_out, 5, size, "b stdout (a -> b)", &progress),
        );
        let status = a.child.wait().await.expect("wait a");
        assert!(status.success(), "{} exited with {status}", a.name);
        let status = b.child.wait().await.expect("wait b");
        assert!(status.success(), "{} exited with {status}", b.name);
    };
    bounded(&format!("{name_a} <-> {name_b}"), &progress, work).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_and_js_through_lossy_relay_sanity() {
    // Checks the relay itself with the reference implementation on both sides.
    process_vs_process(
        ("udxcat.js a", node_cat()),
        ("udxcat.js b", node_cat()),
        LOSSY,
        8 << 20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_udxcat_and_js_udxcat_both_ways() {
    process_vs_process(
        ("udxcat", rust_cat()),
        ("udxcat.js", node_cat()),
        CLEAN,
        SIZE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_udxcat_and_js_udxcat_through_lossy_relay() {
    process_vs_process(
        ("udxcat", rust_cat()),
        ("udxcat.js", node_cat()),
        LOSSY,
        16 << 20,
    )
    .await;
}

/// HyperDHT's upgrade path: two streams talk through a relay, then both `change_remote` to the direct addresses
/// mid-transfer, the relay goes away once the changes completed; every byte still arrives, in order, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_streams_move_from_relay_to_direct_mid_transfer() {
    let (sa, a) = rust_peer(1).await;
    let (sb, b) = rust_peer(2).await;
    let relay = Relay::start(CLEAN, 3).await;
    relay.set_peers(sa.local_addr(), sb.local_addr());
    a.connect(2, relay.a_facing).expect("connect a");
    b.connect(1, relay.b_facing).expect("connect b");
    let size = 32 << 20;
    let progress = Progress::default();
    let moved = tokio::sync::Notify::new();
    let work = async {
        let switch = async {
            // Once some data went through the relay, go direct and tear the relay down.
            loop {
                let got = a.stats().expect("stats").bytes_received;
                if got > 4 << 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            a.change_remote(2, sb.local_addr()).expect("a goes direct");
            b.change_remote(1, sa.local_addr()).expect("b goes direct");
            // As hyperdht does: keep the old path until everything sent on it was acknowledged.
            a.remote_changed().await.expect("a's change completes");
            b.remote_changed().await.expect("b's change completes");
            drop(relay);
            moved.notify_one();
        };
        tokio::join!(
            switch,
            send_pattern(&a, 33, size, "a write", &progress),
            expect_pattern(&a, 44, size, "a read (b -> a)", &progress),
            send_pattern(&b, 44, size, "b write", &progress),
            expect_pattern(&b, 33, size, "b read (a -> b)", &progress),
        );
        moved.notified().await;
        assert_eq!(a.remote(), Some((2, sb.local_addr())));
        assert_eq!(b.remote(), Some((1, sa.local_addr())));
        a.closed().await.expect("a closed cleanly");
        b.closed().await.expect("b closed cleanly");
    };
    bounded("relay -> direct", &progress, work).await;
}

/// Rust peers talking end to end through udx-native's blind relay (`stream.relayTo`, tests/interop/js/udxrelay.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_peers_through_a_js_relay() {
    let (sa, a) = rust_peer(1).await;
    let (sb, b) = rust_peer(2).await;
    let mut relay = interop::tokio::command("udxrelay.js");
    relay
        .args(["--bind", "127.0.0.1:0", "--id-a", "101", "--remote-a", "1"])
        .args(["--peer-a", &sa.local_addr().to_string()])
        .args([
            "--id-b",
            "102",
            "--remote-b",
            "2",
            "--peer-b",
            &sb.local_addr().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut relay = relay.spawn().expect("spawn udxrelay.js");
    let mut lines = BufReader::new(relay.stderr.take().expect("stderr")).lines();
    let relay_addr: SocketAddr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("relay stderr") {
            if let Some(addr) = line.strip_prefix("udxrelay: bound ") {
                return addr.trim().parse().expect("relay address");
            }
            eprintln!("udxrelay.js: {line}");
        }
        panic!("udxrelay.js exited before binding")
    })
    .await
    .expect("udxrelay.js reported its address");
    a.connect(101, relay_addr).expect("a -> relay");
    b.connect(102, relay_addr).expect("b -> relay");

    let size = 16 << 20;
    let progress = Progress::default();
    let work = async {
        tokio::join!(
            send_pattern(&a, 1, size, "a write", &progress),
            expect_pattern(&a, 2, size, "a read (b -> a)", &progress),
            send_pattern(&b, 2, size, "b write", &progress),
            expect_pattern(&b, 1, size, "b read (a -> b)", &progress),
        );
        a.closed().await.expect("a closed cleanly");
        b.closed().await.expect("b closed cleanly");
        drop(relay.stdin.take());
        let status = relay.wait().await.expect("wait relay");
        assert!(status.success(), "udxrelay.js exited with {status}");
    };
    bounded("rust <-> js relay <-> rust", &progress, work).await;
}

/// udx-native peers (udxcat.js) talking end to end through our blind relay (`UdxStream::relay_to`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_peers_through_a_rust_relay() {
    let relay_socket = UdxSocket::bind(LOOPBACK).await.expect("bind relay");
    let r1 = relay_socket.create_stream(101).expect("r1");
    let r2 = relay_socket.create_stream(102).expect("r2");
    let mut a = spawn_cat("udxcat.js a", node_cat(), relay_socket.local_addr(), 1, 101).await;
    let mut b = spawn_cat("udxcat.js b", node_cat(), relay_socket.local_addr(), 2, 102).await;
    // Relay first, then connect: a connected stream that is not relaying yet would take the peers' packets as
    // its own.
    r1.relay_to(&r2).expect("relay r1 -> r2");
    r2.relay_to(&r1).expect("relay r2 -> r1");
    r1.connect(1, a.addr).expect("r1 -> a");
    r2.connect(2, b.addr).expect("r2 -> b");

    let size = 16 << 20;
    let progress = Progress::default();
    let work = async {
        let (a_in, a_out) = (
            a.child.stdin.take().expect("stdin"),
            a.child.stdout.take().expect("stdout"),
        );
        let (b_in, b_out) = (
            b.child.stdin.take().expect("stdin"),
            b.child.stdout.take().expect("stdout"),
        );
        tokio::join!(
            async { drop(send_pattern(a_in, 5, size, "a stdin", &progress).await) },
            async { drop(send_pattern(b_in, 6, size, "b stdin", &progress).await) },
            expect_pattern(a_out, 6, size, "a stdout (b -> a)", &progress),
            expect_pattern(b_out, 5, size, "b stdout (a -> b)", &progress),
        );
        let status = a.child.wait().await.expect("wait a");
        assert!(status.success(), "udxcat.js a exited with {status}");
        let status = b.child.wait().await.expect("wait b");
        assert!(status.success(), "udxcat.js b exited with {status}");
    };
    bounded("js <-> rust relay <-> js", &progress, work).await;
}

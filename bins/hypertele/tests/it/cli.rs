//! `hypertele-server` and `hypertele` end to end on a local JS testnet: an echo service behind the server,
//! clients through the proxy. Rust <-> Rust, Rust client <-> JS server, JS client <-> Rust server (the JS
//! hypertele 1.1.4 bins, through tests/interop/js/hypertele.js), with and without `--compress`, Unix
//! sockets, `.hyper-hosts` names, the allow list, `--private`, bad configuration files, and 100 concurrent
//! connections through one Rust pair.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use holepunch::crypto::KeyPair;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Every scenario must be done within this.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Which side of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Rust,
    Js,
}

/// A running bin: its stdout and stderr lines arrive on one channel (tagged), it is killed on drop.
pub(crate) struct Proc {
    child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    log: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((true, line)).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx2.send((false, line)).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The next stdout line matching `pred` (stderr lines are logged meanwhile).
    fn stdout_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((is_out, line)) => {
                    eprintln!("{} {line}", if is_out { "out:" } else { "err:" });
                    self.log.push(line.clone());
                    if is_out && pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such stdout line ({e}); got {:?}", self.log),
            }
        }
    }

    /// Waits until some line (stdout or stderr) contains `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, line)) => {
                    eprintln!("log: {line}");
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e}); got {:?}", self.log),
            }
        }
    }

    /// Waits for the exit; returns the status and every line printed.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the bin") {
                break s;
            }
            assert!(Instant::now() < deadline, "did not exit: {:?}", self.log);
            if let Ok((_, line)) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.log.push(line);
            }
        };
        while let Ok((_, line)) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Show what it printed last, for failing tests.
        while let Ok((_, line)) = self.lines.recv_timeout(Duration::from_millis(100)) {
            eprintln!("late: {line}");
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hypertele-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        Self(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("writing a temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_cmd(side: Side, bootstrap: &str, args: &[&str]) -> Command {
    match side {
        Side::Rust => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypertele-server"));
            cmd.arg("--bootstrap").arg(bootstrap).args(args);
            cmd.env_remove("HYPERDHT_BOOTSTRAP");
            cmd
        }
        Side::Js => js("server", bootstrap, args),
    }
}

pub(crate) fn client_cmd(side: Side, bootstrap: &str, args: &[&str]) -> Command {
    match side {
        Side::Rust => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypertele"));
            cmd.arg("--bootstrap").arg(bootstrap).args(args);
            cmd.env_remove("HYPERDHT_BOOTSTRAP");
            cmd
        }
        Side::Js => js("client", bootstrap, args),
    }
}

fn js(role: &str, bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg("js/hypertele.js")
        .arg(role)
        .arg(bootstrap)
        .args(args)
        .current_dir(interop::interop_dir());
    cmd
}

/// Starts a server; returns it and the public key it printed.
pub(crate) fn start_server(side: Side, bootstrap: &str, args: &[&str]) -> (Proc, String) {
    let mut p = Proc::spawn(server_cmd(side, bootstrap, args));
    let line = p.stdout_line(|l| l.starts_with("hypertele"));
    let key = if let Some(rest) = line.strip_prefix("hypertele: ") {
        rest.to_string()
    } else {
        line.rsplit("listening on ")
            .next()
            .unwrap_or_default()
            .trim_end_matches(')')
            .to_string()
    };
    assert_eq!(key.len(), 64, "{line}");
    (p, key)
}

/// Starts a client; returns it and the address it listens on (`HOST:PORT` or a socket path).
pub(crate) fn start_client(mut cmd: Command) -> (Proc, String) {
    let mut p = Proc::spawn({
        cmd.stdin(Stdio::null());
        cmd
    });
    let line = p.stdout_line(|l| l.starts_with("Server ready @"));
    let addr = line.trim_start_matches("Server ready @").to_string();
    (p, addr)
}

/// A TCP echo service on 127.0.0.1: echoes until the client's end, then ends (half-close respected).
pub(crate) async fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding echo");
    let port = listener.local_addr().expect("echo address").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(echo(s));
        }
    });
    port
}

/// A Unix socket echo service at `path`.
async fn unix_echo(path: &Path) {
    let listener = UnixListener::bind(path).expect("binding unix echo");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(echo(s));
        }
    });
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: S) {
    let (mut r, mut w) = tokio::io::split(s);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `payload` through a connection to the proxy at `addr` and reads the echo to the end. With `hold`,
/// the write side stays open until the whole echo arrived; otherwise it ends as soon as everything is
/// written.
async fn exchange_with<S: AsyncRead + AsyncWrite>(
    s: S,
    payload: &[u8],
    hold: bool,
) -> std::io::Result<Vec<u8>> {
    let (mut r, mut w) = tokio::io::split(s);
    let (got_all_tx, got_all_rx) = tokio::sync::oneshot::channel::<()>();
    let write = async {
        w.write_all(payload).await?;
        if hold {
            let _ = got_all_rx.await;
        }
        w.shutdown().await
    };
    let read = async {
        let mut out = Vec::with_capacity(payload.len());
        let mut buf = vec![0u8; 64 * 1024];
        let mut tx = Some(got_all_tx);
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() >= payload.len() {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        Ok(out)
    };
    let (written, out) = tokio::join!(write, read);
    written?;
    out
}

async fn try_exchange(addr: &str, payload: &[u8], hold: bool) -> std::io::Result<Vec<u8>> {
    let work = async {
        if addr.starts_with('/') {
            exchange_with(UnixStream::connect(addr).await?, payload, hold).await
        } else {
            exchange_with(TcpStream::connect(addr).await?, payload, hold).await
        }
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .expect("the exchange timed out")
}

async fn exchange(addr: &str, payload: &[u8], hold: bool) -> Vec<u8> {
    try_exchange(addr, payload, hold)
        .await
        .expect("exchanging bytes through the proxy")
}

/// A connection the proxy cannot complete: it is closed (or reset) without a byte of echo.
async fn check_refused(addr: &str) {
    if let Ok(echoed) = try_exchange(addr, b"let me in", false).await {
        assert!(echoed.is_empty(), "a rejected client got {echoed:?}");
    }
}

pub(crate) async fn check_exchange(addr: &str, seed: u64, len: usize, hold: bool) {
    eprintln!("exchange {seed}: {len} bytes");
    let payload = data(seed, len);
    let echoed = exchange(addr, &payload, hold).await;
    assert_eq!(echoed.len(), payload.len(), "echo length");
    assert!(echoed == payload, "echoed bytes differ");
}

pub(crate) fn seed_hex(n: u8) -> String {
    hex::encode([n; 32])
}

fn identity_json(kp: &KeyPair) -> String {
    format!(
        "{{\"secretKey\":\"{}\",\"publicKey\":\"{}\"}}",
        hex::encode(kp.secret),
        hex::encode(kp.public)
    )
}

/// One proxy pair (server side `server`, client side `client`) in front of a TCP echo service; a few
/// exchanges of various sizes, one after another and two at once.
async fn pair(server: Side, client: Side, compress: bool) {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let echo_port = tcp_echo().await.to_string();
    let seed = seed_hex(11);
    let mut sargs = vec!["-l", echo_port.as_str(), "--seed", seed.as_str()];
    let mut cflags = vec!["-p", "0"];
    if compress {
        sargs.push("--compress");
        cflags.push("--compress");
    }
    let (_server, key) = start_server(server, &bootstrap, &sargs);
    cflags.extend(["-s", key.as_str()]);
    let (_client, addr) = start_client(client_cmd(client, &bootstrap, &cflags));
    // The JS server tears both sides down as soon as one closes (connPiper's `close` handler destroys the
    // secret stream), dropping echoed bytes still in flight, and with --compress it ends the service before
    // the last message is gunzipped: facing it, the client keeps its side open until it has everything.
    let hold = server == Side::Js;
    check_exchange(&addr, 1, 11, hold).await;
    check_exchange(&addr, 2, 3 * 1024 * 1024 + 17, hold).await;
    let (a, b) = tokio::join!(
        check_exchange(&addr, 3, 300_000, hold),
        check_exchange(&addr, 4, 1, hold)
    );
    let ((), ()) = (a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust() {
    pair(Side::Rust, Side::Rust, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_compressed() {
    pair(Side::Rust, Side::Rust, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_js_server() {
    pair(Side::Js, Side::Rust, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_js_server_compressed() {
    pair(Side::Js, Side::Rust, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_rust_server() {
    pair(Side::Rust, Side::Js, false).await;
}

/// The JS client's --compress has its two directions swapped (it cannot talk to the JS server either), so
/// the Rust server's compressed framing is checked against Node's zlib with a raw JS HyperDHT peer: gzip
/// members in, gzip members out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_server_compressed_framing_with_node_zlib() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let echo_port = tcp_echo().await.to_string();
    let seed = seed_hex(12);
    let (_server, key) = start_server(
        Side::Rust,
        &bootstrap,
        &["-l", &echo_port, "--seed", &seed, "--compress"],
    );
    let out = tokio::task::spawn_blocking(move || {
        interop::run(
            "hypertele_gzip_peer.js",
            &[&bootstrap, &key, "hello ", "from node ", "zlib"],
            &[],
            TIMEOUT,
        )
    })
    .await
    .expect("gzip peer");
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON from the gzip peer");
    assert_eq!(v["received"], "hello from node zlib", "{out}");
    assert!(v["messages"].as_u64().unwrap_or(0) >= 1, "{out}");
}

/// Unix sockets on both ends, and the server key given as a `.hyper-hosts` name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_sockets_and_hosts_names() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let dir = TempDir::new("unix");
    let service = dir.0.join("service.sock");
    unix_echo(&service).await;
    let seed = seed_hex(13);
    let (_server, key) = start_server(
        Side::Rust,
        &bootstrap,
        &["-u", service.to_str().expect("utf-8 path"), "--seed", &seed],
    );
    dir.file(
        ".hyper-hosts",
        &format!("other {}\nmybox {key}\n", seed_hex(1)),
    );
    let local = dir.0.join("client.sock");
    let local_str = local.to_str().expect("utf-8 path").to_string();
    let mut cmd = client_cmd(Side::Rust, &bootstrap, &["-u", &local_str, "-s", "mybox"]);
    cmd.current_dir(&dir.0);
    let (client, addr) = start_client(cmd);
    assert_eq!(addr, local_str);
    check_exchange(&addr, 5, 200_000, false).await;
    // The JS client reads the same hosts file.
    let js_local = dir.0.join("js-client.sock");
    let js_local = js_local.to_str().expect("utf-8 path").to_string();
    let mut cmd = Command::new("node");
    cmd.arg(interop::interop_dir().join("js/hypertele.js"))
        .args(["client", &bootstrap, "-u", &js_local, "-s", "mybox"])
        .current_dir(&dir.0);
    let (_js_client, js_addr) = start_client(cmd);
    check_exchange(&js_addr, 6, 100_000, false).await;
    // The socket file goes away when the client stops.
    terminate(client);
    assert!(!local.exists(), "the client left its socket behind");
}

/// SIGTERM, then the exit status.
fn terminate(p: Proc) -> (ExitStatus, Vec<String>) {
    let pid = p.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    p.finish(Duration::from_secs(10))
}

/// The allow list: listed identities get through (Rust and JS clients with `-i`), others are rejected with
/// a message on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list() {
    for server in [Side::Rust, Side::Js] {
        let net = interop::JsTestnet::start(5);
        let bootstrap = net.bootstrap_arg();
        let echo_port = tcp_echo().await.to_string();
        let dir = TempDir::new("allow");
        let allowed = KeyPair::from_seed(&[21; 32]);
        let stranger = KeyPair::from_seed(&[22; 32]);
        let conf = dir.file(
            "server.json",
            &format!(
                "{{\"seed\":\"{}\",\"allow\":[\"{}\",\"{}\"]}}",
                seed_hex(14),
                hex::encode([1u8; 32]),
                hex::encode(allowed.public)
            ),
        );
        let good = dir.file("good.json", &identity_json(&allowed));
        let bad = dir.file("bad.json", &identity_json(&stranger));
        let conf = conf.to_str().expect("utf-8 path");
        let (mut srv, key) = start_server(server, &bootstrap, &["-l", &echo_port, "-c", conf]);
        for client in [Side::Rust, Side::Js] {
            let id = good.to_str().expect("utf-8 path");
            let (_c, addr) = start_client(client_cmd(
                client,
                &bootstrap,
                &["-p", "0", "-s", &key, "-i", id],
            ));
            check_exchange(&addr, 7, 50_000, false).await;
        }
        let id = bad.to_str().expect("utf-8 path");
        let (mut c, addr) = start_client(client_cmd(
            Side::Rust,
            &bootstrap,
            &["-p", "0", "-s", &key, "-i", id],
        ));
        check_refused(&addr).await;
        c.wait_for("PEER_CONNECTION_FAILED", Duration::from_secs(30));
        if server == Side::Rust {
            srv.wait_for(
                &format!(
                    "rejected a connection from {}: not in the allow list",
                    hex::encode(stranger.public)
                ),
                Duration::from_secs(5),
            );
        }
    }
}

/// `--private`: the client connects with the key pair derived from the server's seed; knowing only the
/// public key is not enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_servers() {
    for (server, client) in [
        (Side::Rust, Side::Rust),
        (Side::Rust, Side::Js),
        (Side::Js, Side::Rust),
    ] {
        let net = interop::JsTestnet::start(5);
        let bootstrap = net.bootstrap_arg();
        let echo_port = tcp_echo().await.to_string();
        let seed = seed_hex(15);
        let mut srv = Proc::spawn(server_cmd(
            server,
            &bootstrap,
            &["-l", &echo_port, "--seed", &seed, "--private"],
        ));
        let public = hex::encode(KeyPair::from_seed(&[15; 32]).public);
        let line = srv.stdout_line(|l| l.starts_with("hypertele"));
        assert_eq!(
            line,
            format!("hypertele (private): connect with seed {seed} (listening on {public})")
        );
        let (_c, addr) = start_client(client_cmd(
            client,
            &bootstrap,
            &["-p", "0", "--private", "-s", &seed],
        ));
        check_exchange(&addr, 8, 70_000, false).await;
        if server == Side::Rust && client == Side::Rust {
            let (mut c, addr) = start_client(client_cmd(
                Side::Rust,
                &bootstrap,
                &["-p", "0", "-s", &public],
            ));
            check_refused(&addr).await;
            c.wait_for("PEER_CONNECTION_FAILED", Duration::from_secs(30));
            srv.wait_for("(--private)", Duration::from_secs(5));
        }
    }
}

/// 100 local connections at once through one Rust pair, each its own DHT stream, all byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_connections() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let echo_port = tcp_echo().await.to_string();
    let seed = seed_hex(16);
    let (_server, key) = start_server(Side::Rust, &bootstrap, &["-l", &echo_port, "--seed", &seed]);
    let (_client, addr) =
        start_client(client_cmd(Side::Rust, &bootstrap, &["-p", "0", "-s", &key]));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u64 {
        let addr = addr.clone();
        tasks.spawn(async move {
            let len = 20_000 + (i as usize) * 997;
            check_exchange(&addr, 100 + i, len, false).await;
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("a connection failed");
        done += 1;
    }
    assert_eq!(done, 100);
    eprintln!("100 connections in {:?}", started.elapsed());
}

/// Bad flags and files: a clear `Error:` line and exit status 1 (2 for usage errors), before any network.
#[test]
fn bad_configuration() {
    let dir = TempDir::new("bad");
    let bad_json = dir.file("bad.json", "{\"seed\": ");
    let not_object = dir.file("list.json", "[1, 2]");
    let short_seed = dir.file("short.json", "{\"seed\": \"abcd\"}");
    let bad_allow = dir.file(
        "allow.json",
        &format!("{{\"seed\": \"{}\", \"allow\": [\"nope\"]}}", seed_hex(1)),
    );
    let allow_ok = dir.file(
        "allow-ok.json",
        &format!(
            "{{\"seed\": \"{}\", \"allow\": [\"{}\"]}}",
            seed_hex(1),
            seed_hex(2)
        ),
    );
    let bad_identity = dir.file("id.json", "{\"secretKey\": \"00\"}");
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let server = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypertele-server"));
        cmd.args(["--bootstrap", "127.0.0.1:9"]).args(args);
        cmd
    };
    let client = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypertele"));
        cmd.args(["--bootstrap", "127.0.0.1:9"]).args(args);
        cmd
    };
    let cases: Vec<(Command, i32, String)> = vec![
        (server(&["-l", "1"]), 1, "Error: conf.seed invalid".into()),
        (
            server(&["-l", "1", "--seed", "xyz"]),
            1,
            "Error: conf.seed invalid: expected 64 hex digits".into(),
        ),
        (
            server(&["-l", "1", "-c", "/nonexistent/conf.json"]),
            1,
            "Error: cannot read /nonexistent/conf.json".into(),
        ),
        (
            server(&["-l", "1", "-c", &p(&bad_json)]),
            1,
            "is not valid JSON".into(),
        ),
        (
            server(&["-l", "1", "-c", &p(&not_object)]),
            1,
            "expected a JSON object".into(),
        ),
        (
            server(&["-l", "1", "-c", &p(&short_seed)]),
            1,
            format!("Error: {}: conf.seed invalid", p(&short_seed)),
        ),
        (
            server(&["-l", "1", "-c", &p(&bad_allow)]),
            1,
            format!(
                "Error: {}: allow list entry invalid: \"nope\"",
                p(&bad_allow)
            ),
        ),
        (
            server(&["-l", "1", "-c", &p(&allow_ok), "--private"]),
            1,
            "--private flag is not compatible with an allow list".into(),
        ),
        (
            server(&["-l", "0", "--seed", "00"]),
            2,
            "proxy port invalid".into(),
        ),
        (server(&["--seed", "00"]), 2, "required".into()),
        (client(&["-p", "0"]), 1, "Error: peer is invalid".into()),
        (
            client(&["-p", "0", "-s", "tooshort"]),
            1,
            "Error: peer (-s) invalid: \"tooshort\"".into(),
        ),
        (
            client(&["-p", "0", "-s", &seed_hex(1), "-i", "/nonexistent/id.json"]),
            1,
            "Error: identity file /nonexistent/id.json invalid".into(),
        ),
        (
            client(&["-p", "0", "-s", &seed_hex(1), "-i", &p(&bad_identity)]),
            1,
            "invalid: \"secretKey\" is not 128 hex digits".into(),
        ),
        (
            client(&["-p", "0", "-s", &seed_hex(1), "-c", &p(&bad_json)]),
            1,
            "is not valid JSON".into(),
        ),
        (
            client(&["-p", "0", "--private", "-s", "notaseed"]),
            1,
            "seed (-s with --private) invalid".into(),
        ),
    ];
    for (mut cmd, code, want) in cases {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {stderr}");
        assert!(stderr.contains(&want), "{cmd:?}: {stderr:?} lacks {want:?}");
    }
}

/// A service that reads until the client's end, then answers with the byte count: only works if the
/// client's half-close reaches it while the way back stays open.
async fn count_then_answer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding counter");
    let port = listener.local_addr().expect("counter address").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut count = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    count += n;
                }
                let _ = s.write_all(format!("{count}\n").as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

/// Half-close through the proxy: the service sees the client's end and still answers (Rust client and
/// JS client facing the Rust server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_reaches_the_service() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let port = count_then_answer().await.to_string();
    let seed = seed_hex(17);
    let (_server, key) = start_server(Side::Rust, &bootstrap, &["-l", &port, "--seed", &seed]);
    for client in [Side::Rust, Side::Js] {
        let (_c, addr) = start_client(client_cmd(client, &bootstrap, &["-p", "0", "-s", &key]));
        let payload = data(9, 123_457);
        let answer = exchange(&addr, &payload, false).await;
        assert_eq!(
            String::from_utf8_lossy(&answer),
            "123457\n",
            "{client:?} client"
        );
    }
}

/// A service that is down: the server says so, and the client's connection is closed without data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_service() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    // A port nothing listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let seed = seed_hex(18);
    let (mut server, key) = start_server(Side::Rust, &bootstrap, &["-l", &port, "--seed", &seed]);
    let (_c, addr) = start_client(client_cmd(Side::Rust, &bootstrap, &["-p", "0", "-s", &key]));
    check_refused(&addr).await;
    server.wait_for(
        &format!("cannot connect to the service at 127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
}

/// Truncated or emptied configuration and identity files: exit status 1 and an error naming the file, which
/// is left as it was.
#[test]
fn truncated_files_are_reported_with_their_name() {
    let dir = TempDir::new("truncated");
    let conf = format!(
        "{{\"seed\": \"{}\", \"allow\": [\"{}\"]}}\n",
        seed_hex(1),
        seed_hex(2)
    );
    let kp = KeyPair::from_seed(&[3; 32]);
    let identity = identity_json(&kp);
    let client_conf = format!("{{\"peer\": \"{}\"}}", seed_hex(4));
    let cases: Vec<(&str, &str, bool)> = vec![
        ("conf.json", conf.as_str(), true),
        ("id.json", identity.as_str(), false),
        ("client.json", client_conf.as_str(), false),
    ];
    for (name, text, server_side) in cases {
        // Cut at several points (inside a key, inside the JSON), and emptied.
        let len = text.len();
        for cut in [len - 2, len * 2 / 3, len / 2, 13, 1, 0] {
            let path = dir.file(name, &text[..cut]);
            let mut cmd = if server_side {
                let mut c = Command::new(env!("CARGO_BIN_EXE_hypertele-server"));
                c.args(["--bootstrap", "127.0.0.1:9", "-l", "1", "-c"])
                    .arg(&path);
                c
            } else {
                let mut c = Command::new(env!("CARGO_BIN_EXE_hypertele"));
                c.args(["--bootstrap", "127.0.0.1:9", "-p", "0"]);
                if name == "id.json" {
                    c.args(["-s", &seed_hex(5), "-i"]).arg(&path);
                } else {
                    c.arg("-c").arg(&path);
                }
                c
            };
            let out = cmd.stdin(Stdio::null()).output().expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} cut at {cut}: {stderr}");
            assert!(
                stderr.starts_with("Error: ") && stderr.contains(&p_str(&path)),
                "{name} cut at {cut}: {stderr:?} does not name the file"
            );
            assert_eq!(
                std::fs::read_to_string(&path).expect("read"),
                &text[..cut],
                "left as it was"
            );
        }
    }
}

fn p_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

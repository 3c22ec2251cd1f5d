//! The `hyperbeam` binary end to end on a local JS testnet: Rust <-> Rust, Rust <-> the JS hyperbeam 3.1.0
//! both ways round (8 MiB byte-exact each way, half-close), the firewall, and the exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use holepunch::base32::{hyperbeam_key_pair, hyperbeam_random_passphrase};
use holepunch::hyperdht::{HyperDht, HyperDhtOpts};

/// Every peer process must be done within this.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes sent each way.
const SIZE: usize = 8 * 1024 * 1024;

/// A running peer: its stderr lines arrive on a channel, its whole stdout once it closed.
struct Peer {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<Vec<u8>>,
    log: Vec<String>,
}

impl Peer {
    /// Starts `cmd` with `input` on its stdin. With `hold`, stdin stays open until the peer has received
    /// [`SIZE`] bytes (or its stdout closed): the JS bin ends its side as soon as the far side ends, dropping
    /// what it has not sent yet, so a Rust peer facing it must not end first.
    fn spawn(mut cmd: Command, input: Vec<u8>, hold: bool) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (err_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("peer: {line}");
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (out_tx, stdout) = mpsc::channel();
        let (full_tx, full) = mpsc::channel::<()>();
        let mut out = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut full_tx = Some(full_tx);
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
                if buf.len() >= SIZE {
                    full_tx = None;
                }
            }
            drop(full_tx);
            let _ = out_tx.send(buf);
        });
        let mut stdin = child.stdin.take().expect("piped stdin");
        thread::spawn(move || {
            // Ends (closing stdin) once everything is written or the peer went away, and with `hold` once
            // everything was received (the sender is dropped then).
            let _ = stdin.write_all(&input);
            if hold {
                let _ = full.recv();
            }
        });
        Self {
            child,
            stderr,
            stdout,
            log: Vec::new(),
        }
    }

    /// The next stderr line matching `pred`, waiting at most until `deadline`.
    fn wait_line(&mut self, deadline: Instant, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such line on stderr ({e}); got {:?}", self.log),
            }
        }
    }

    /// The passphrase an announcing peer prints.
    fn passphrase(&mut self, deadline: Instant) -> String {
        let line = self.wait_line(deadline, |l| l.starts_with("[hyperbeam] Run hyperbeam "));
        line.trim_start_matches("[hyperbeam] Run hyperbeam ")
            .trim_end_matches(" to connect")
            .to_string()
    }

    /// Waits for the exit (killing the process at `deadline`) and returns the status, the whole stdout and
    /// every stderr line.
    fn finish(mut self, deadline: Instant) -> (ExitStatus, Vec<u8>, Vec<String>) {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the peer") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("peer did not exit in time; stderr {:?}", self.log);
            }
            // Collect stderr meanwhile; the channel wait doubles as the poll interval.
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.log.push(line);
            }
        };
        let out = self
            .stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("stdout closes at exit");
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
        (status, out, std::mem::take(&mut self.log))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rust(bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperbeam"));
    cmd.arg("--bootstrap").arg(bootstrap).args(args);
    cmd.env_remove("HYPERDHT_BOOTSTRAP");
    cmd
}

fn js(bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg("js/hyperbeam.js")
        .arg(bootstrap)
        .args(args)
        .current_dir(interop::interop_dir());
    cmd
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn data(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(SIZE);
    out
}

/// Both directions through one pipe: `announce` starts first, `connect` gets the passphrase.
/// `hold`: which of (announcer, connector) keep stdin open until they received everything (see
/// [`Peer::spawn`]); set for the Rust side facing a JS peer.
fn transfer(
    announce: impl Fn(&str) -> Command,
    connect: impl Fn(&str, &str) -> Command,
    hold: (bool, bool),
) {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let deadline = Instant::now() + TIMEOUT;
    let (a_data, b_data) = (data(1), data(2));
    let mut a = Peer::spawn(announce(&bootstrap), a_data.clone(), hold.0);
    let key = a.passphrase(deadline);
    // Both bins print the passphrase before announcing; the address line comes once announced.
    a.wait_line(deadline, |l| {
        l.contains("remote address") || l.contains("Could not detect")
    });
    let b = Peer::spawn(connect(&bootstrap, &key), b_data.clone(), hold.1);
    let (b_status, b_out, b_log) = b.finish(deadline);
    let (a_status, a_out, a_log) = a.finish(deadline);
    assert!(b_status.success(), "connector failed: {b_status} {b_log:?}");
    assert!(a_status.success(), "announcer failed: {a_status} {a_log:?}");
    for log in [&a_log, &b_log] {
        assert!(
            log.iter()
                .any(|l| l == "[hyperbeam] Success! Encrypted tunnel established to remote peer"),
            "{log:?}"
        );
    }
    assert!(b_log.iter().any(|l| l == "[hyperbeam] Connecting pipe..."));
    assert_eq!(
        a_out.len(),
        SIZE,
        "announcer received {} bytes",
        a_out.len()
    );
    assert_eq!(
        b_out.len(),
        SIZE,
        "connector received {} bytes",
        b_out.len()
    );
    assert!(a_out == b_data, "announcer received other bytes");
    assert!(b_out == a_data, "connector received other bytes");
}

#[test]
fn rust_to_rust() {
    transfer(|b| rust(b, &[]), |b, key| rust(b, &[key]), (false, false));
}

#[test]
fn rust_announces_js_connects() {
    transfer(|b| rust(b, &[]), |b, key| js(b, &[key]), (true, false));
}

#[test]
fn js_announces_rust_connects() {
    transfer(|b| js(b, &[]), |b, key| rust(b, &[key]), (false, true));
}

#[test]
fn reuse_announces_with_the_given_passphrase() {
    let key = hyperbeam_random_passphrase();
    transfer(
        |b| rust(b, &[key.as_str(), "-r"]),
        |b, printed| {
            assert_eq!(printed, key);
            js(b, &[printed])
        },
        (true, false),
    );
}

/// A peer with another passphrase finds nobody, and a peer knowing the announcer's public key but holding
/// another key pair is rejected by the firewall; the announcer stays unconnected.
#[test]
fn wrong_passphrase_does_not_connect() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let deadline = Instant::now() + TIMEOUT;
    let mut a = Peer::spawn(rust(&bootstrap, &[]), Vec::new(), false);
    let key = a.passphrase(deadline);
    a.wait_line(deadline, |l| {
        l.contains("remote address") || l.contains("Could not detect")
    });

    let other = Peer::spawn(
        rust(&bootstrap, &[&hyperbeam_random_passphrase()]),
        Vec::new(),
        false,
    );
    let (status, out, log) = other.finish(deadline);
    assert_eq!(status.code(), Some(1), "{log:?}");
    assert!(out.is_empty());
    assert!(
        log.last()
            .is_some_and(|l| l.starts_with("[hyperbeam] Error: ")),
        "{log:?}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let boot = net
            .bootstrap
            .iter()
            .filter_map(|a| match a {
                std::net::SocketAddr::V4(a) => Some(*a),
                std::net::SocketAddr::V6(_) => None,
            })
            .collect();
        let dht = HyperDht::bind(HyperDhtOpts {
            bootstrap: boot,
            ephemeral: Some(true),
            ..HyperDhtOpts::default()
        })
        .await
        .expect("dht");
        let target = hyperbeam_key_pair(&key).expect("key").public;
        let intruder = hyperbeam_key_pair(&hyperbeam_random_passphrase()).expect("key");
        let r = tokio::time::timeout(TIMEOUT, dht.connect_with(&target, &intruder)).await;
        assert!(
            matches!(r, Ok(Err(_))),
            "the firewall let another key pair in"
        );
        dht.destroy().await;
    });
    // The announcer is still waiting for its peer.
    while let Ok(line) = a.stderr.try_recv() {
        assert!(!line.contains("Success"), "{line}");
    }
    assert!(a.child.try_wait().expect("try_wait").is_none());
}

#[test]
fn exit_codes() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hyperbeam"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hyperbeam")
    };
    let out = run(&["a", "b"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["-r"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--bootstrap", "not an address"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["!!!not-base32"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

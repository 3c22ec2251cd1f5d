//! The `hyperdht` binary end to end: flags and exit codes, and JS peers (the pinned hyperdht, through
//! tests/interop/js scripts) using the networks it runs. Loopback only; every wait bounded.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(60);

pub(crate) fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperdht"));
    // Never the public network, whatever the environment says.
    cmd.env_remove("HYPERDHT_BOOTSTRAP").env_remove("RUST_LOG");
    cmd
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run hyperdht")
}

/// A running `hyperdht`, its stdout read line by line; killed on drop.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = bin();
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start hyperdht");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub(crate) fn line(&mut self) -> String {
        let line = self.lines.recv_timeout(STEP).unwrap_or_else(|e| {
            panic!(
                "hyperdht: no line within {STEP:?} ({e}); so far: {:?}",
                self.seen
            )
        });
        self.seen.push(line.clone());
        line
    }

    /// Reads lines up to and including the one equal to `want`; returns the lines before it.
    fn until(&mut self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line == want {
                return before;
            }
            before.push(line);
        }
    }

    /// Sends SIGTERM and returns the exit code and the rest of stdout.
    fn terminate(self) -> (Option<i32>, Vec<String>) {
        self.signal(libc::SIGTERM)
    }

    /// Sends `signal` and returns the exit code and the rest of stdout.
    fn signal(mut self, signal: libc::c_int) -> (Option<i32>, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill");
        let deadline = Instant::now() + STEP;
        let status = loop {
            match self.child.try_wait().expect("wait") {
                Some(status) => break status,
                None if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                None => panic!("hyperdht did not exit within {STEP:?} of signal {signal}"),
            }
        };
        let rest = self.lines.iter().collect();
        (status.code(), rest)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ports of the "Node #i bound to { host: '...', family: 4, port: P }" lines.
fn bound_ports(lines: &[String]) -> Vec<u16> {
    lines
        .iter()
        .filter_map(|l| {
            l.split("port: ")
                .nth(1)?
                .trim_end_matches(" }")
                .parse()
                .ok()
        })
        .collect()
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Runs tests/interop/js/hyperdht_probe.js: FIND_NODE straight to each target; returns the closer nodes
/// each answered with.
fn probe(bootstrap: &str, targets: &[String]) -> Vec<Vec<String>> {
    let mut args = vec![bootstrap];
    args.extend(targets.iter().map(String::as_str));
    let mut js = interop::node("hyperdht_probe.js", &args);
    let out = json(&js.line(STEP));
    let replies = out["replies"].as_array().expect("replies").clone();
    assert_eq!(replies.len(), targets.len(), "{out}");
    replies
        .iter()
        .map(|r| {
            assert!(r["error"].is_null(), "{r}");
            r["closer"]
                .as_array()
                .expect("closer")
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bootstrap",
        "--nodes",
        "--port",
        "--host",
        "--testnet",
        "HYPERDHT_BOOTSTRAP",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}:\n{help}");
    }
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hyperdht "));
}

#[test]
fn bad_flags_exit_2_with_clap_message() {
    for args in [
        &["--bogus"][..],
        &["--nodes", "many"],
        &["--nodes", "0"],
        &["--bootstrap", "nohost:"],
        &["--bootstrap"],
        &["--bootstrap", "--port", "5000"],
        &["--nodes", "2", "--port", "5000"],
        &["--testnet", "3", "--bootstrap", "1"],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = bin()
        .env("HYPERDHT_BOOTSTRAP", "not a list")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HYPERDHT_BOOTSTRAP"));
}

#[test]
fn runtime_error_exits_1_with_one_line() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = run(&["--bootstrap", "--host", "127.0.0.1", "--port", &port]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("hyperdht: binding 127.0.0.1:"), "{err}");
}

#[test]
fn testnet_serves_js_peers() {
    let mut testnet = Running::start(&["--testnet", "5"], &[]);
    let list = testnet.line();
    let addrs: Vec<SocketAddrV4> = list
        .split(',')
        .map(|a| a.parse().unwrap_or_else(|e| panic!("{list:?}: {e}")))
        .collect();
    assert_eq!(addrs.len(), 5, "{list}");
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{list}");

    // A JS node bootstraps through the list and runs a findNode: the Rust nodes answer.
    let mut ping = interop::node("dht-ping.js", &[&list]);
    let ok = ping.line(STEP);
    let replies: usize = ok
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("dht-ping.js: {ok}"));
    assert!(replies >= 3, "{ok}");

    // A JS hyperdht client stores, looks up and announces through the testnet.
    let first = addrs[0].to_string();
    let mut client = interop::node("hyperdht_client.js", &[&first]);
    let out = json(&client.line(STEP));
    assert_eq!(out["imm"], "imm from js", "{out}");
    assert_eq!(out["mut"], "mut v5", "{out}");
    let announce = out["announcePk"].as_str().expect("announcePk");
    assert_eq!(out["lookup"][0], format!("{announce}@1.2.3.4:5"), "{out}");
    assert_eq!(out["findPeer"], out["selfPk"], "{out}");
    assert_eq!(out["afterUnannounce"], 0, "{out}");

    // A Rust node joins through HYPERDHT_BOOTSTRAP given as a bare port: its table holds testnet nodes.
    let port = addrs[0].port().to_string();
    let mut node = Running::start(&["--host", "127.0.0.1"], &[("HYPERDHT_BOOTSTRAP", &port)]);
    assert_eq!(node.line(), "Booting DHT nodes...");
    let bound = node.until("Fully started 1 Hyperswarm DHT node");
    let ports = bound_ports(&bound);
    assert_eq!(ports.len(), 1, "{bound:?}");
    let closer = probe(&list, &[format!("127.0.0.1:{}", ports[0])]);
    assert!(
        closer[0]
            .iter()
            .any(|c| addrs.iter().any(|a| a.to_string() == *c)),
        "the node joined the testnet: {closer:?}"
    );

    let (code, rest) = node.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(rest, ["Shutting down nodes...", "Node #0 closed"]);
    let (code, rest) = testnet.terminate();
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn joins_a_js_testnet() {
    let js = interop::JsTestnet::start(5);
    let list = js.bootstrap_arg();
    let mut nodes = Running::start(
        &["--bootstrap", &list, "--nodes", "2", "--host", "127.0.0.1"],
        &[],
    );
    assert_eq!(nodes.line(), "Booting DHT nodes...");
    let bound = nodes.until("Fully started 2 Hyperswarm DHT nodes");
    assert_eq!(bound.len(), 2, "{bound:?}");
    for (i, line) in bound.iter().enumerate() {
        assert!(
            line.starts_with(&format!(
                "Node #{i} bound to {{ host: '127.0.0.1', family: 4, port: "
            )),
            "{line}"
        );
    }
    let rust: Vec<String> = bound_ports(&bound)
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    assert_eq!(rust.len(), 2);

    // A JS peer of the JS testnet asks each Rust node for nodes: they answer with JS testnet nodes
    // from their routing tables (and not with each other: adaptive nodes stay ephemeral).
    for closer in probe(&list, &rust) {
        assert!(!closer.is_empty(), "the Rust node knows the JS testnet");
        assert!(closer.iter().all(|c| !rust.contains(c)), "{closer:?}");
    }

    let (code, rest) = nodes.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        rest,
        ["Shutting down nodes...", "Node #0 closed", "Node #1 closed"]
    );
}

#[test]
fn bootstrap_node_serves_js_peers() {
    let port = free_port();
    let p = port.to_string();
    let mut boot = Running::start(&["--bootstrap", "--host", "127.0.0.1", "--port", &p], &[]);
    assert_eq!(boot.line(), "Starting DHT bootstrap node...");
    assert_eq!(
        boot.line(),
        format!("Bootstrap node bound to {{ host: '127.0.0.1', family: 4, port: {port} }}")
    );
    assert_eq!(boot.line(), "Fully started Hyperswarm DHT bootstrap node");

    let addr = format!("127.0.0.1:{port}");
    let mut ping = interop::node("dht-ping.js", &[&addr]);
    assert_eq!(ping.line(STEP), "ok 1");

    // A JS server and client find each other through a network whose only bootstrap (and only
    // persistent node) is the Rust bootstrap node: announce, findPeer, handshake and holepunch relay.
    let mut connect = interop::node("hyperdht_connect.js", &[&addr]);
    let out = json(&connect.line(STEP));
    assert_eq!(out["echo"], "echo:hi", "{out}");
    assert_eq!(out["remotePublicKey"], out["serverPublicKey"], "{out}");

    let (code, rest) = boot.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(rest, ["Bootstrap node closed"]);
}

#[test]
fn testnet_first_node_on_port_and_ctrl_c() {
    let port = free_port();
    let mut testnet = Running::start(&["--testnet", "3", "--port", &port.to_string()], &[]);
    let list = testnet.line();
    assert!(list.starts_with(&format!("127.0.0.1:{port},")), "{list}");
    assert_eq!(list.split(',').count(), 3, "{list}");
    let (code, rest) = testnet.signal(libc::SIGINT);
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "{rest:?}");
}

/// `hyperdht --relay --seed HEX`: prints the public key of the seed's key pair, and two JS peers (the pinned
/// hyperdht and blind-relay) pair raw streams through it and exchange bytes exactly; it reports the pairing.
#[test]
fn relay_pairs_js_peers() {
    let js = interop::JsTestnet::start(5);
    let list = js.bootstrap_arg();
    let seed = "5e".repeat(32);
    let mut relay = Running::start(
        &[
            "--relay",
            "--seed",
            &seed,
            "--bootstrap",
            &list,
            "--host",
            "127.0.0.1",
        ],
        &[],
    );
    let key = relay.line();
    // ed25519 public key of the seed 0x5e * 32, as JS `DHT.keyPair(seed)` derives it.
    let want = hex::encode(holepunch::crypto::KeyPair::from_seed(&[0x5e; 32]).public);
    assert_eq!(key, want);
    let total = 300_000;
    let mut peers = interop::node(
        "blind_relay_peer.js",
        &["pair", &list, &key, &total.to_string()],
    );
    let out = json(&peers.line(STEP));
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["receivedA"], total, "{out}");
    assert_eq!(out["receivedB"], total, "{out}");
    assert_eq!(relay.line(), "paired 1");
    let (code, _) = relay.terminate();
    assert_eq!(code, Some(0));
}

//! `hyperdht doctor` against a local testnet (and a blind relay) on loopback, and against a bootstrap
//! node that never answers.

use std::net::UdpSocket;

use crate::cli::{bin, Running};

fn doctor(args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin()
        .arg("doctor")
        .args(args)
        .output()
        .expect("run hyperdht doctor");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
}

#[test]
fn healthy_on_a_local_testnet_with_a_relay() {
    let mut testnet = Running::start(&["--testnet", "5"], &[]);
    let bootstrap = testnet.line();
    let mut relay = Running::start(&["--relay", "--bootstrap", &bootstrap], &[]);
    let key = relay.line();
    let (code, out, err) = doctor(&["--bootstrap", &bootstrap, "--relay", &key]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    // One latency line per bootstrap node, each answering.
    for node in bootstrap.split(',') {
        let l = line(&out, &format!("  {node} "));
        assert!(l.contains("answers") && l.contains("rtt "), "{l}");
    }
    assert!(line(&out, "UDP:").contains("5 of 5"), "{out}");
    assert!(line(&out, "DHT:").contains("joined"), "{out}");
    // Loopback: every node reaches us, so the DHT sees an open host whose port is preserved.
    assert!(line(&out, "incoming UDP:").contains("ok"), "{out}");
    assert!(line(&out, "NAT:").contains("open"), "{out}");
    let public = line(&out, "public address:");
    assert!(
        public.contains("127.0.0.1:") && public.contains("preserved"),
        "{public}"
    );
    assert!(line(&out, "IPv6:").contains("v6 UDP socket"), "{out}");
    let r = line(&out, "relay:");
    assert!(r.contains(&key) && r.contains("answers"), "{r}");
    assert_eq!(line(&out, "verdict:"), "verdict:        healthy");

    // A relay key nobody serves: unhealthy.
    let (code, out, _) = doctor(&[
        "--bootstrap",
        &bootstrap,
        "--relay",
        &"11".repeat(32),
        "--timeout",
        "5",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(line(&out, "relay:").contains("does not answer"), "{out}");
    assert!(line(&out, "verdict:").contains("UNHEALTHY"), "{out}");
}

#[test]
fn unreachable_dht_exits_1() {
    // A bound socket that never answers: the datagrams arrive, nothing comes back.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let (code, out, err) = doctor(&["--bootstrap", &addr, "--timeout", "2"]);
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        line(&out, &format!("  {addr} ")).contains("no answer"),
        "{out}"
    );
    assert!(line(&out, "UDP:").contains("unreachable"), "{out}");
    assert!(line(&out, "verdict:").contains("UNHEALTHY"), "{out}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = doctor(&["--relay", "nothex"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = doctor(&["--bootstrap", "x:y"]);
    assert_eq!(code, Some(2), "{err}");
}

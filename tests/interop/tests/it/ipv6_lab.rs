//! The IPv6 lab (tests/ipv6/run): hosts A and B in network namespaces, with IPv4 to a 5-node JS hyperdht
//! testnet and a direct IPv6-only link between them (2001:db8::a and ::b). Two Rust hyperbeams connect
//! over the IPv6 link (both `path:` lines name the peer's IPv6 address, and the link's byte counters show
//! the 4 MiB went over it), also with stateful IPv6 firewalls on both hosts, and between two hosts whose
//! IPv4 goes through random-port NATs (which no holepunch joins: without the IPv6 link the same pair
//! fails with HOLEPUNCH_DOUBLE_RANDOMIZED_NATS); the JS hyperbeam 3.1.0, as
//! client of a Rust server and as server of a Rust client, still connects to the dual-stack Rust peer,
//! over IPv4.
//!
//! Needs root, `ip netns` and node, so the test is `#[ignore]`d in a normal run; `.ci/run` runs it as root
//! with `--ignored`. Run without those, it fails and says what is missing.

use std::process::{Command, Stdio};

#[test]
#[ignore = "needs root, ip netns and node: .ci/run runs it as root with --ignored"]
fn rust_peers_connect_over_ipv6_and_js_peers_over_ipv4() {
    interop::require_root("IPv6 lab");
    interop::require_js();
    let script = interop::workspace_dir().join("tests/ipv6/run");
    let out = Command::new(&script)
        .env(
            "RUST_BIN_DIR",
            interop::lab_bin_dir("IPv6 lab", &["hyperbeam"], &["hyperbeam"]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert_ne!(out.status.code(), Some(2), "the lab could not be set up");
    for check in [
        "rust-rust",
        "js-to-rust",
        "rust-to-js",
        "rust-rust-firewalled",
        "rust-rust-random-nats",
        "rust-rust-random-nats-no-v6",
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("{check} ")))
            .unwrap_or_else(|| panic!("no {check} line in:\n{report}"));
        assert!(line.starts_with(&format!("{check} ok ")), "{line}");
    }
    for (check, server, client) in [
        ("rust-rust ", "[2001:db8::b]", "[2001:db8::a]"),
        ("rust-rust-firewalled ", "[2001:db8::b]", "[2001:db8::a]"),
        (
            "rust-rust-random-nats ",
            "[2001:db8:1::d]",
            "[2001:db8:1::c]",
        ),
    ] {
        let rust = report
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_default();
        assert!(
            rust.contains(&format!("server path: direct {server}:"))
                && rust.contains(&format!("client path: direct {client}:")),
            "the Rust pair's stream is not on the IPv6 link: {rust}"
        );
    }
    assert!(out.status.success(), "the lab failed:\n{report}");
}

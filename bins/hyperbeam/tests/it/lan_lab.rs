//! The LAN lab (tests/lan/run): two hosts on one link (network namespaces, a veth pair) and no DHT reachable
//! (every tool's bootstrap node is an address nobody has). Through LAN discovery alone, a Rust hyperbeam pipe
//! moves bytes, a hypertele client reaches a hypertele-server's echo service, hypershell runs a command and
//! `drives mirror` gets a seeded drive; with `--no-lan` / `HYPERDHT_NO_LAN=1` the connects fail.
//!
//! Needs root and `ip netns`, so the test is `#[ignore]`d in a normal run; `.ci/run` runs it as root with
//! `--ignored`. Run without those, it fails and says what is missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The packages whose bins the lab runs besides hyperbeam.
const LAB_PACKAGES: [&str; 3] = ["hypertele", "hypershell", "drives"];
const LAB_BINS: [&str; 6] = [
    "hypertele",
    "hypertele-server",
    "hypershell",
    "hypershell-server",
    "hypershell-keygen",
    "drives",
];

#[test]
#[ignore = "needs root and ip netns: .ci/run runs it as root with --ignored"]
fn tools_connect_over_the_lan_without_a_dht() {
    interop::require_root("LAN lab");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lan/run");
    let out = Command::new(&script)
        .env(
            "RUST_BIN_DIR",
            interop::lab_bin_dir("LAN lab", &LAB_PACKAGES, &LAB_BINS),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_ne!(out.status.code(), Some(2), "the lab could not be set up");
    for case in [
        "hyperbeam: 3 MB A -> B",
        "hypertele: TCP echo through the proxy",
        "hypershell: a command",
        "drives mirror: the seeded drive",
        "hypershell --no-lan: fails",
        "hyperbeam, HYPERDHT_NO_LAN=1: fails",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("| {case} | ok"))),
            "{case}: not ok\n{table}"
        );
    }
    assert!(out.status.success(), "the lab failed:\n{table}");
}

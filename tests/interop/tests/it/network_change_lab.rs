//! The network-change lab (tests/netchange/run): in network namespaces, the host of a Rust hypertele-server,
//! hypershell-server and `drives seed` (and of the JS hypertele-server 1.1.4, for comparison) changes its
//! address on the same link (`ip addr del/add`); a new client must get through to each Rust server within
//! 10 s of the change (the script's bound: BOUND). The script prints how long each took, and whether a
//! hypershell session and a hyperbeam pipe open across the change still carry data after it (they follow the
//! server to its new address).
//!
//! Needs root, `ip netns` and node, so the test is `#[ignore]`d in a normal run; `.ci/run` runs it as root
//! with `--ignored`. Run without those, it fails and says what is missing.

use std::process::{Command, Stdio};

/// The Rust bins the lab runs, and their packages.
const LAB_BINS: [&str; 7] = [
    "hypertele",
    "hypertele-server",
    "hypershell",
    "hypershell-server",
    "hypershell-keygen",
    "drives",
    "hyperbeam",
];
const LAB_PACKAGES: [&str; 4] = ["hypertele", "hypershell", "drives", "hyperbeam"];

#[test]
#[ignore = "needs root, ip netns and node: .ci/run runs it as root with --ignored"]
fn servers_are_reached_again_soon_after_their_address_changes() {
    interop::require_root("network-change lab");
    interop::require_js();
    let script = interop::workspace_dir().join("tests/netchange/run");
    let out = Command::new(&script)
        .env(
            "RUST_BIN_DIR",
            interop::lab_bin_dir("network-change lab", &LAB_PACKAGES, &LAB_BINS),
        )
        .env("BOUND", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_ne!(out.status.code(), Some(2), "the lab could not be set up");
    for server in [
        "Rust hypertele-server",
        "Rust hypershell-server",
        "Rust drives seed",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {server} |")))
            .unwrap_or_else(|| panic!("no {server} row in:\n{table}"));
        assert!(
            row.ends_with(" s |") && !row.contains("over") && !row.contains("not within"),
            "{server} was not reached within 10 s of the change: {row}"
        );
    }
    // Open connections move with the server (UDX stream migration: its probe from the new address), and
    // carry data both ways after the change.
    for what in [
        "an open hypershell session",
        "an open hyperbeam pipe (both ways)",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {what} |")))
            .unwrap_or_else(|| panic!("no {what} row in:\n{table}"));
        assert!(
            row.contains("| moved: "),
            "{what} did not carry data after the change: {row}"
        );
    }
    assert!(out.status.success(), "the lab failed:\n{table}");
}

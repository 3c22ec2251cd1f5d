//! The NAT lab's consistent x consistent cell (tests/nat/run): hyperbeam between two hosts behind separate
//! consistent NATs (network namespaces, iptables MASQUERADE), Rust -> Rust, Rust -> JS and JS -> Rust, a few
//! MiB byte-exact each, every connection holepunched.
//!
//! Needs root, `ip netns` and iptables; without them it prints why and passes without running (CI runs as
//! root with iptables installed by .ci/run, so it runs there).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The whole lab run is bounded by this.
const LAB_LIMIT: Duration = Duration::from_secs(240);

fn succeeds(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the lab cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    if !succeeds("iptables", &["-V"]) {
        return Some("iptables is not installed".into());
    }
    let probe = format!("hplprobe{}", std::process::id());
    if !succeeds("ip", &["netns", "add", &probe]) {
        return Some("cannot create network namespaces (`ip netns add` failed)".into());
    }
    let _ = succeeds("ip", &["netns", "del", &probe]);
    None
}

#[test]
fn consistent_nats_holepunch_both_languages() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping the NAT lab: {reason}");
        return;
    }
    interop::require_js();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/nat/run");
    let mut child = Command::new(&script)
        .env("KINDS", "consistent")
        .env("LANGS", "rust->rust rust->js js->rust")
        .env("RUST_BEAM", env!("CARGO_BIN_EXE_hyperbeam"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + LAB_LIMIT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                eprintln!("{line}");
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // SIGTERM: the script's trap removes its namespaces and processes.
                let _ = succeeds("kill", &["-TERM", &child.id().to_string()]);
                let _ = child.wait();
                panic!("the NAT lab took more than {LAB_LIMIT:?}; so far: {lines:#?}");
            }
        }
    }
    let status = child.wait().expect("wait for the lab");
    let row = lines
        .iter()
        .find(|l| l.starts_with("| consistent | consistent |"))
        .unwrap_or_else(|| panic!("no consistent x consistent row in {lines:#?}"));
    for lang in ["rust->rust", "rust->js", "js->rust"] {
        assert!(
            row.contains(&format!("{lang}: holepunch ")),
            "{lang} did not holepunch: {row}"
        );
    }
    assert!(status.success(), "the lab failed: {lines:#?}");
}

//! `drives seed` while a peer downloads the drive (a local testnet; the peer is `drives mirror KEY --live`): plain
//! status lines when stdout is a pipe (what scripts read), and on a terminal (a pseudo-terminal from
//! util-linux `script`) the JS screen redrawn in place with the peer's address, key, lengths and blocks.

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{fixture, ok, Running};

fn new_drive(cwd: &std::path::Path, storage: &str) -> String {
    let out = ok(cwd, &["touch", "--storage", storage]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    ok(cwd, &["mirror", "./src", &key, "--storage", storage]);
    key
}

#[test]
fn seed_reports_a_downloading_peer_in_plain_lines() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("src"), 200_000);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let key = new_drive(cwd, "rs");
    let seed = Running::spawn(
        cwd,
        &["seed", &key, "--storage", "rs", "--bootstrap", &bootstrap],
    );
    seed.wait_for("Announced", Duration::from_secs(60));
    let files = seed.wait_for("Files: ", Duration::from_secs(5));
    assert_eq!(files, format!("Files: {key}"));
    seed.wait_for("Blobs: ", Duration::from_secs(5));
    seed.wait_for("No peers", Duration::from_secs(10));
    // A peer that stays: a live mirror of the drive.
    let _peer = Running::spawn(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--live",
            "--storage",
            "dl",
            "--bootstrap",
            &bootstrap,
        ],
    );
    // The status line moves on to the peer and what was uploaded to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = seed.wait_for("Peers: ", Duration::from_secs(30));
        let uploaded: u64 = line
            .rsplit("uploaded ")
            .next()
            .and_then(|s| s.trim_end_matches(" blks").parse().ok())
            .expect("uploaded count");
        if uploaded > 0 {
            assert!(line.starts_with("Peers: 1 | files "), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "nothing uploaded: {line}");
    }
}

#[test]
fn seed_redraws_the_js_screen_on_a_terminal() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("src"), 200_000);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let key = new_drive(cwd, "rs");
    let cmd = format!(
        "exec {} seed {key} --storage rs --bootstrap {bootstrap}",
        env!("CARGO_BIN_EXE_drives")
    );
    // `script` runs the command on a pseudo-terminal and copies what it draws to our pipe.
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(cwd)
        .env_remove("HYPERDHT_BOOTSTRAP")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("util-linux `script` runs the seed on a terminal");
    let mut stdout = child.stdout.take().expect("stdout");
    let _child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let wait_for = |screen: &mut String, needle: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !needle(screen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {what} on the screen: {screen:?}"),
            }
        }
    };
    wait_for(&mut screen, &|s| s.contains("Announced"), "Announced");
    assert!(screen.contains(&format!("Files: {key}")), "{screen:?}");
    wait_for(&mut screen, &|s| s.contains("No peers"), "No peers");
    // A peer that stays: a live mirror of the drive.
    let _peer = Running::spawn(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--live",
            "--storage",
            "dl",
            "--bootstrap",
            &bootstrap,
        ],
    );
    // A peer line as JS draws it (address, abbreviated key, files and blobs lengths), plus blocks sent.
    wait_for(
        &mut screen,
        &|s| {
            s.lines().any(|l| {
                l.starts_with("- 127.0.0.1 ")
                    && l.contains("..")
                    && l.contains(" blks ↑")
                    && !l.contains("↑0 ")
            })
        },
        "peer line with uploaded blocks",
    );
    // Redrawn in place: cursor back to the first line of the previous screen, cleared below.
    assert!(screen.contains("F\x1b[J"), "{screen:?}");
    assert!(
        screen.contains("Peers\r\n") || screen.contains("Peers\n"),
        "{screen:?}"
    );
}

/// Kills `script` when the test ends (its seed then gets SIGHUP from the closed terminal).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

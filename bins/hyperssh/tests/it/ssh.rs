//! `hyperssh` end to end: a local OpenSSH server (started on a loopback port with a temporary host key and
//! authorized key) behind `hypertele-server --seed S -l PORT` on a JS testnet; hyperssh runs the system ssh
//! through its proxy and exits with ssh's exit status. Needs `sshd` (Debian: `apt-get install openssh-server`).

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rust_hypertele_server, ssh_options, start_sshd, user};

#[test]
fn ssh_through_hypertele() {
    let dir = std::env::temp_dir().join(format!("hyperssh-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_sshd, port, client_key) = start_sshd(&dir);

    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let seed = "7".repeat(64);
    let (_server, key) = rust_hypertele_server(
        std::path::Path::new(env!("CARGO_BIN_EXE_hyperssh")),
        &bootstrap,
        port,
        &seed,
    );
    let ssh_options = ssh_options(&client_key);
    let run = |command: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperssh"));
        cmd.args([
            "--bootstrap",
            &bootstrap,
            "-s",
            &key,
            "-u",
            &user(),
            "-e",
            command,
            "--",
        ])
        .args(&ssh_options)
        .stdin(Stdio::null());
        let started = Instant::now();
        let out = cmd.output().expect("running hyperssh");
        assert!(started.elapsed() < Duration::from_secs(120));
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let out = run("echo hello over hyperdht; exit 3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello over hyperdht"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "hyperssh exits with ssh's status"
    );

    // A larger output through the stream.
    let out = run("head -c 1000000 /dev/zero | tr '\\0' x");
    assert_eq!(out.stdout.len(), 1_000_000);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    assert_eq!(out.status.code(), Some(0));

    let _ = std::fs::remove_dir_all(&dir);
}

//! Shared by the end-to-end tests: a local OpenSSH server (on a loopback port with a temporary host key and
//! authorized key, with the sftp subsystem for sshfs) and a Rust hypertele-server in front of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where sshd lives.
const SSHD: &str = "/usr/sbin/sshd";

/// Kills the child on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("running ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

/// A running sshd on 127.0.0.1:port accepting `client_key` for the current user.
pub fn start_sshd(dir: &Path) -> (Guard, u16, PathBuf) {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (apt-get install openssh-server)"
    );
    // sshd running as root wants its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let host_key = dir.join("host_key");
    let client_key = dir.join("client_key");
    keygen(&host_key);
    keygen(&client_key);
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
        .expect("authorized_keys");
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             StrictModes no\nSubsystem sftp internal-sftp\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .expect("sshd_config");
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sshd");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("sshd: {line}");
            let _ = tx.send(line);
        }
    });
    // sshd -e logs "Server listening on 127.0.0.1 port N." once it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Server listening") => break,
            Ok(_) => {}
            Err(e) => panic!("sshd did not start: {e}"),
        }
    }
    (Guard(child), port, client_key)
}

pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

/// The client key's ssh options: that key only, never a prompt, errors only.
pub fn ssh_options(client_key: &Path) -> Vec<String> {
    [
        "-i",
        client_key.to_str().expect("utf-8 path"),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A Rust `hypertele-server --seed SEED -l PORT` (built next to `bin`) and its key.
pub fn rust_hypertele_server(
    bin: &Path,
    bootstrap: &str,
    port: u16,
    seed: &str,
) -> (Guard, String) {
    // The workspace builds hypertele-server next to hyperssh (`cargo test` at the root, or `cargo build -p
    // hypertele` first).
    let server_bin = bin.with_file_name("hypertele-server");
    assert!(
        server_bin.exists(),
        "{} is missing: cargo build -p hypertele",
        server_bin.display()
    );
    let mut server = Command::new(server_bin);
    server
        .args([
            "--bootstrap",
            bootstrap,
            "-l",
            &port.to_string(),
            "--seed",
            seed,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = Guard(server.spawn().expect("starting hypertele-server"));
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading the server's key");
    let key = line.trim().trim_start_matches("hypertele: ").to_string();
    assert_eq!(key.len(), 64, "{line}");
    (server, key)
}

//! The hypershell tools against JS hypershell 0.0.15 (tests/interop/hypershell) on a local testnet, in every
//! pairing: Rust client with JS server, JS client with Rust server, Rust with Rust. Each runs a command
//! (output and exit code), copies a folder of nested files both ways byte for byte, copies a single file,
//! and checks that a key missing from the allow list is refused on both sides.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use holepunch::crypto::KeyPair;
use holepunch::hypershell::format_key;
use interop::JsTestnet;

const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Rust,
    Js,
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(side: Side, bin: &str, home: &Path, bootstrap: &str) -> Command {
    let mut cmd = match side {
        Side::Rust => {
            let exe = match bin {
                "client" => env!("CARGO_BIN_EXE_hypershell"),
                "server" => env!("CARGO_BIN_EXE_hypershell-server"),
                _ => env!("CARGO_BIN_EXE_hypershell-copy"),
            };
            let mut c = Command::new(exe);
            c.arg("--bootstrap").arg(bootstrap);
            c
        }
        Side::Js => {
            interop::require_js();
            let modules = interop::interop_dir().join("hypershell/node_modules/hypershell");
            assert!(
                modules.is_dir(),
                "JS hypershell is not installed: run `npm ci` in tests/interop/hypershell (.ci/run does this)"
            );
            let mut c = Command::new("node");
            c.arg("js/hypershell_bin.js").arg(bin).arg(bootstrap);
            c.current_dir(interop::interop_dir());
            c
        }
    };
    cmd.env("HOME", home).env_remove("HYPERDHT_BOOTSTRAP");
    cmd
}

/// Runs to completion within [`TIMEOUT`] (killed after it).
fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
    }
}

/// A home folder with a key file `~/.hypershell/peer` (hex seed, read by both implementations).
fn home(base: &Path, name: &str, seed: u8) -> (PathBuf, KeyPair) {
    let home = base.join(name);
    let dir = home.join(".hypershell");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let kp = KeyPair::from_seed(&[seed; 32]);
    std::fs::write(dir.join("peer"), format!("{}\n", hex::encode(kp.seed())))
        .unwrap_or_else(|e| panic!("{e}"));
    (home, kp)
}

/// Starts a server in `home` allowing `allowed`; returns it and its key as printed.
fn server(side: Side, home: &Path, bootstrap: &str, allowed: &[&KeyPair]) -> (Proc, String) {
    let list: String = allowed
        .iter()
        .map(|k| format!("{}\n", format_key(&k.public)))
        .collect();
    std::fs::write(
        home.join(".hypershell/authorized_peers"),
        format!("# <public key>\n{list}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = tool(side, "server", home, bootstrap);
    cmd.current_dir(home).env("SHELL", "/bin/sh");
    if side == Side::Js {
        cmd.current_dir(interop::interop_dir());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn server: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[{side:?} server] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("{side:?} server printed no key: {e}"));
        if let Some(key) = line.strip_prefix("hypershell ") {
            // Keep draining its output.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (proc, key.trim().to_owned());
        }
    }
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut es: Vec<_> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map_while(Result::ok)
            .collect();
        es.sort_by_key(std::fs::DirEntry::file_name);
        for e in es {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            if p.is_dir() {
                out.push((rel + "/", Vec::new()));
                walk(base, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn sample_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.join("empty")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("a.txt"), b"hello\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("sub/b.txt"), b"").unwrap_or_else(|e| panic!("{e}"));
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("sub/deeper/big.bin"), big).unwrap_or_else(|e| panic!("{e}"));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scenario(client: Side, srv: Side) {
    let testnet = JsTestnet::start(5);
    let bs = testnet.bootstrap_arg();
    let base = std::env::temp_dir().join(format!(
        "hypershell-it-{client:?}-{srv:?}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let (client_home, client_kp) = home(&base, "client", 1);
    let (server_home, _) = home(&base, "server", 2);
    let (stranger_home, stranger_kp) = home(&base, "stranger", 3);
    let (_server, key) = server(srv, &server_home, &bs, &[&client_kp]);

    // A command: its output and exit code. It waits a second before it exits: the JS server (tt-native's pty)
    // ends its output stream as soon as the child exits, dropping output it had not read yet.
    let mut cmd = tool(client, "client", &client_home, &bs);
    cmd.arg(&key).args([
        "--",
        "sh",
        "-c",
        "echo out-$((6*7)); echo err >&2; sleep 1; exit 7",
    ]);
    let out = run(cmd);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("out-42"),
        "stdout: {stdout:?} stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));

    // A folder of nested files, both ways.
    let data = base.join("data");
    sample_folder(&data);
    let up = base.join("uploaded");
    let mut cmd = tool(client, "copy", &client_home, &bs);
    cmd.arg(&data).arg(format!("{key}:{}", up.display()));
    let out = run(cmd);
    assert!(out.status.success(), "upload: {}", text(&out.stderr));
    assert_eq!(tree(&data), tree(&up));
    let down = base.join("downloaded");
    let mut cmd = tool(client, "copy", &client_home, &bs);
    cmd.arg(format!("{key}:{}", data.display())).arg(&down);
    let out = run(cmd);
    assert!(out.status.success(), "download: {}", text(&out.stderr));
    assert_eq!(tree(&data), tree(&down));
    // One file, and a missing one.
    // (By name, from ~/.hypershell/known_peers.)
    std::fs::write(
        client_home.join(".hypershell/known_peers"),
        format!("# <name> <public key>\nmy-box {key}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let one = base.join("one.txt");
    let mut cmd = tool(client, "copy", &client_home, &bs);
    cmd.arg(format!("@my-box:{}", data.join("a.txt").display()))
        .arg(&one);
    let out = run(cmd);
    assert!(out.status.success(), "file download: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&one).ok(), Some(b"hello\n".to_vec()));
    if client == Side::Rust {
        let mut cmd = tool(client, "copy", &client_home, &bs);
        cmd.arg(format!("{key}:{}", base.join("nope").display()))
            .arg(base.join("x"));
        let out = run(cmd);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("No such file or directory"),
            "{}",
            text(&out.stderr)
        );
    }

    // -L: two TCP connections through the server to an echo server.
    tunnel(client, &client_home, &bs, &key);

    // A key not on the allow list.
    let mut cmd = tool(client, "client", &stranger_home, &bs);
    cmd.arg(&key).args(["--", "true"]);
    let out = run(cmd);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("firewalled"), "refused client said: {err}");
    // The allow list is read live: once the key is added, it gets in.
    let list = server_home.join(".hypershell/authorized_peers");
    let mut text_list = std::fs::read_to_string(&list).unwrap_or_default();
    text_list.push_str(&format!("{}\n", format_key(&stranger_kp.public)));
    std::fs::write(&list, text_list).unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut cmd = tool(client, "client", &stranger_home, &bs);
        cmd.arg(&key).args(["--", "sh", "-c", "echo admitted"]);
        let out = run(cmd);
        if text(&out.stdout).contains("admitted") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the added key is still refused: {}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Runs `-L 127.0.0.1:0:127.0.0.1:<echo port>` and sends two connections through it.
fn tunnel(client: Side, home: &Path, bs: &str, key: &str) {
    use std::io::{Read, Write};
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let echo_port = echo.local_addr().map(|a| a.port()).unwrap_or_default();
    std::thread::spawn(move || {
        for conn in echo.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut cmd = tool(client, "client", home, bs);
    cmd.arg(key)
        .arg("-L")
        .arg(format!("127.0.0.1:0:127.0.0.1:{echo_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn -L client: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let _proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|e| panic!("{client:?} -L client printed nothing: {e}"));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected tunnel line {line:?}"));
    for round in 0..2 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to the tunnel: {e}"));
        c.set_read_timeout(Some(TIMEOUT))
            .unwrap_or_else(|e| panic!("{e}"));
        let msg: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + round) as u8).collect();
        c.write_all(&msg).unwrap_or_else(|e| panic!("{e}"));
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("{client:?} tunnel echo, round {round}: {e}"));
        assert_eq!(back, msg);
    }
}

#[test]
fn rust_client_js_server() {
    scenario(Side::Rust, Side::Js);
}

#[test]
fn js_client_rust_server() {
    scenario(Side::Js, Side::Rust);
}

#[test]
fn rust_client_rust_server() {
    scenario(Side::Rust, Side::Rust);
}

/// A tmux server of its own (socket name), killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.0);
        c
    }

    fn ok(&self, args: &[&str]) {
        let st = self
            .cmd()
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("tmux (apt-get install tmux): {e}"));
        assert!(st.success(), "tmux {args:?} failed");
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "hs"])
            .output()
            .unwrap_or_else(|e| panic!("tmux: {e}"));
        text(&out.stdout)
    }

    /// Polls the screen until `pred` holds, or panics with the screen after [`TIMEOUT`].
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// Count of lines of `screen` that are exactly `line` (after trimming).
/// Lines of the screen that are `line`, after a shell prompt (`# `, `$ `) the remote shell may have printed
/// in front of the output (the JS server's shell prints its prompt late, so output can follow it).
fn lines_equal(screen: &str, line: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.trim().trim_start_matches(['#', '$']).trim() == line)
        .count()
}

/// The Rust client in a real terminal (tmux) against both servers: typing, a resize, Ctrl-C, exit code.
#[test]
fn interactive_session_in_tmux() {
    let testnet = JsTestnet::start(5);
    let bs = testnet.bootstrap_arg();
    for srv in [Side::Rust, Side::Js] {
        let base =
            std::env::temp_dir().join(format!("hypershell-tmux-{srv:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (client_home, client_kp) = home(&base, "client", 1);
        let (server_home, _) = home(&base, "server", 2);
        let (_server, key) = server(srv, &server_home, &bs, &[&client_kp]);
        let tmux = Tmux(format!("hypershell-test-{}-{srv:?}", std::process::id()));
        let client = format!(
            "HOME={} {} --bootstrap {bs} {key}; echo CLIENT-EXIT=$?; sleep 600",
            client_home.display(),
            env!("CARGO_BIN_EXE_hypershell")
        );
        tmux.ok(&[
            "new-session",
            "-d",
            "-s",
            "hs",
            "-x",
            "100",
            "-y",
            "30",
            &client,
        ]);
        // Typing reaches the remote shell, which runs in a terminal of our size.
        tmux.ok(&[
            "send-keys",
            "-t",
            "hs",
            "echo typed-$((2+3)); stty size",
            "Enter",
        ]);
        tmux.wait_for("the typed command's output", |s| {
            lines_equal(s, "typed-5") == 1 && lines_equal(s, "30 100") == 1
        });
        // A resize reaches the remote terminal.
        tmux.ok(&["resize-window", "-t", "hs", "-x", "120", "-y", "40"]);
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            tmux.ok(&["send-keys", "-t", "hs", "stty size", "Enter"]);
            std::thread::sleep(Duration::from_millis(300));
            if lines_equal(&tmux.screen(), "40 120") >= 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no resize: {}",
                tmux.screen()
            );
        }
        // Ctrl-C interrupts the remote command, not the client. Only against our server: the JS server's
        // tt-native 1.x spawns the shell without a controlling terminal here ("can't access tty; job
        // control turned off"), so ^C reaches its pty but no process group gets SIGINT.
        if srv == Side::Rust {
            // (The shell answers the next command only once the sleep is gone.)
            tmux.ok(&["send-keys", "-t", "hs", "sleep 1000", "Enter"]);
            std::thread::sleep(Duration::from_millis(300));
            tmux.ok(&["send-keys", "-t", "hs", "C-c"]);
            tmux.ok(&["send-keys", "-t", "hs", "echo after-$((40+2))", "Enter"]);
            // Typed ahead, so the output may follow the prompt on its line.
            tmux.wait_for("the shell after Ctrl-C", |s| {
                s.lines()
                    .any(|l| l.trim().ends_with("after-42") && !l.contains("$(("))
            });
        }
        // exit: the remote status becomes the client's.
        tmux.ok(&["send-keys", "-t", "hs", "exit 4", "Enter"]);
        tmux.wait_for("the client's exit", |s| {
            lines_equal(s, "CLIENT-EXIT=4") == 1
        });
        let _ = std::fs::remove_dir_all(&base);
    }
}

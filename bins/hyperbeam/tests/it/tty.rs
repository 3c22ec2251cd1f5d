//! `hyperbeam` as a user runs it: in terminals. Each peer runs in a tmux pane (a real pseudo-terminal for
//! stdin, stdout and stderr) on a local JS testnet; keys are typed with `send-keys` and the screen is read with
//! `capture-pane`, polled until a deadline. Checked: the progress line on a terminal, typed lines crossing the
//! pipe both ways, and Ctrl-C. For Ctrl-C the JS hyperbeam 3.1.0 (tests/interop/js/hyperbeam.js, which
//! handles SIGINT as its bin.js does) runs through the same steps, and the Rust bin must end the same way.
//!
//! Needs tmux (`apt-get install tmux`) and Linux (/proc).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every wait for something on a screen ends within this.
const WAIT: Duration = Duration::from_secs(60);
/// Screen polling interval.
const POLL: Duration = Duration::from_millis(50);

/// A private tmux server (its own socket in a temporary directory), killed on drop.
struct Tmux {
    dir: PathBuf,
}

impl Tmux {
    fn start() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hyperbeam-tty-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let tmux = Self { dir };
        // A placeholder window keeps the session alive while peers come and go; dead panes stay (with their
        // exit status) until the server is killed.
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            "sleep 600",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "set-option",
            "-g",
            "default-shell",
            "/bin/sh",
        ]);
        tmux
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux ({e}); install it: apt-get install tmux"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `command` (a shell command line) in a new window with working directory `cwd`.
    ///
    /// The pane's shell writes the command's status as a shell reports it (128 + the signal when one killed
    /// it) to a file: tmux's own `pane_dead_status` is sometimes left empty when the terminal closes before
    /// the process is reaped. The shell traps SIGINT (a handler, which the command does not inherit), so
    /// Ctrl-C reaches the command and not the shell.
    fn spawn(&self, cwd: &Path, command: &str) -> Pane<'_> {
        static N: AtomicUsize = AtomicUsize::new(0);
        eprintln!("tmux: {command}");
        let status_file = self
            .dir
            .join(format!("status-{}", N.fetch_add(1, Ordering::Relaxed)));
        let line = format!(
            "trap : INT; {command}; echo $? > '{}'",
            status_file.display()
        );
        let cwd = cwd.to_str().expect("utf-8 path");
        let out = self.run(&[
            "new-window",
            "-d",
            "-t",
            "t:",
            "-c",
            cwd,
            "-P",
            "-F",
            "#{pane_id}",
            &line,
        ]);
        Pane {
            tmux: self,
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            command: command.to_string(),
            status_file,
        }
    }
}

impl Tmux {
    /// Every pane's command, status and screen, for failure messages.
    fn dump(&self) -> String {
        let out = self.run(&[
            "list-panes",
            "-s",
            "-t",
            "t",
            "-F",
            "#{pane_id} #{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}",
        ]);
        let mut text = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let id = line.split(' ').next().unwrap_or_default();
            let screen = self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", id]);
            text.push_str(&format!(
                "--- pane {line}\n{}\n",
                String::from_utf8_lossy(&screen.stdout).trim_end()
            ));
        }
        text
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One pane, running one process.
struct Pane<'a> {
    tmux: &'a Tmux,
    id: String,
    command: String,
    status_file: PathBuf,
}

impl Pane<'_> {
    /// The whole screen and scrollback, wrapped lines joined.
    fn screen(&self) -> String {
        let out = self
            .tmux
            .run(&["capture-pane", "-p", "-J", "-S", "-", "-t", &self.id]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `pred` and returns it.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{}`: no {what} within {WAIT:?}; screen:\n{screen}\nall panes:\n{}",
                self.command,
                self.tmux.dump()
            );
            std::thread::sleep(POLL);
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |s| s.contains(text))
    }

    fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.id.as_str()];
        args.extend_from_slice(keys);
        self.tmux.run(&args);
    }

    /// Types a line (as literal text) and Enter.
    fn type_line(&self, line: &str) {
        self.send_keys(&["-l", line]);
        self.send_keys(&["Enter"]);
    }

    /// `Some(shell status)` once the process ended: the pane's shell writes it to a file (see
    /// [`Tmux::spawn`]).
    fn exit_status(&self) -> Option<i32> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        // Complete once the line is.
        text.strip_suffix('\n')?.trim().parse().ok()
    }

    /// The pid of the pane's process (the child of the pane's shell).
    fn pid(&self) -> u32 {
        let out = self
            .tmux
            .run(&["display-message", "-p", "-t", &self.id, "#{pane_pid}"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let shell = text.trim();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child of the pane's shell {shell:?}"))
    }

    /// Waits for the process to end; returns its shell status.
    fn wait_exit(&self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`{}`: still running after {WAIT:?}; all panes:\n{}",
                self.command,
                self.tmux.dump()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The passphrase an announcing peer prints, once it announced.
    fn passphrase(&self) -> String {
        let screen = self.wait_for("announcement", |s| {
            s.contains("[hyperbeam] Joined the DHT") || s.contains("Could not detect")
        });
        screen
            .lines()
            .find_map(|l| l.strip_prefix("[hyperbeam] Run hyperbeam "))
            .and_then(|l| l.strip_suffix(" to connect"))
            .unwrap_or_else(|| panic!("no passphrase on the screen:\n{screen}"))
            .to_string()
    }
}

/// Whether process `pid` has a handler for SIGINT (`SigCgt` in /proc/PID/status).
fn catches_sigint(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (2 - 1)) != 0)
}

/// Which implementation runs in a pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Rust,
    Js,
}

/// The shell command line running `bin` with `args` on the testnet `bootstrap`, and its working directory.
fn command(bin: Bin, bootstrap: &str, args: &[&str]) -> (PathBuf, String) {
    let args = args.join(" ");
    match bin {
        Bin::Rust => (
            std::env::temp_dir(),
            format!(
                "env -u RUST_LOG -u HYPERDHT_BOOTSTRAP '{}' --bootstrap {bootstrap} {args}",
                env!("CARGO_BIN_EXE_hyperbeam")
            ),
        ),
        Bin::Js => (
            interop::interop_dir(),
            format!("node js/hyperbeam.js {bootstrap} {args}"),
        ),
    }
}

fn spawn<'a>(tmux: &'a Tmux, bin: Bin, bootstrap: &str, args: &[&str]) -> Pane<'a> {
    let (cwd, cmd) = command(bin, bootstrap, args);
    tmux.spawn(&cwd, &cmd)
}

const TUNNEL: &str = "[hyperbeam] Success! Encrypted tunnel established to remote peer";

/// Two Rust peers in terminals: the progress line, typed lines both ways, and Ctrl-C on the connector
/// ending both sides with status 0.
#[test]
fn rust_pair_in_terminals() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let tmux = Tmux::start();

    let announcer = spawn(&tmux, Bin::Rust, &bootstrap, &[]);
    let key = announcer.passphrase();
    let connector = spawn(&tmux, Bin::Rust, &bootstrap, &[&key]);
    connector.wait_text("[hyperbeam] Connecting pipe...");
    connector.wait_text(TUNNEL);
    announcer.wait_text(TUNNEL);

    // stderr is a terminal: the progress line is redrawn every second.
    announcer.wait_text("[hyperbeam] sent 0.0 B (");
    connector.wait_text("received 0.0 B (");

    // Typed lines cross the pipe (the terminal echoes them on their own side as well).
    announcer.type_line("ping-from-the-announcer");
    connector.wait_text("ping-from-the-announcer");
    connector.type_line("pong-from-the-connector");
    announcer.wait_text("pong-from-the-connector");
    // 24 bytes each way, counted in the progress lines.
    announcer.wait_text("sent 24.0 B");
    announcer.wait_text("received 24.0 B");
    connector.wait_text("sent 24.0 B");
    connector.wait_text("received 24.0 B");

    // Ctrl-C on the connector ends its side; the announcer (input from a terminal) ends on the far side's
    // end, and both exit 0.
    connector.send_keys(&["C-c"]);
    assert_eq!(connector.wait_exit(), 0, "{}", connector.screen());
    assert_eq!(announcer.wait_exit(), 0, "{}", announcer.screen());
}

/// Ctrl-C while waiting for a peer: "Shutting down beam..." and the JS bin's status.
fn ctrl_c_while_waiting(bin: Bin, bootstrap: &str) -> i32 {
    let tmux = Tmux::start();
    let pane = spawn(&tmux, bin, bootstrap, &[]);
    pane.passphrase();
    pane.send_keys(&["C-c"]);
    let status = pane.wait_exit();
    pane.wait_text("[hyperbeam] Shutting down beam...");
    status
}

/// Ctrl-C on a connected `bin` facing a Rust announcer whose input is a terminal: both sides end.
/// Returns the statuses of (`bin`, the announcer).
fn ctrl_c_when_connected(bin: Bin, bootstrap: &str) -> (i32, i32) {
    let tmux = Tmux::start();
    let announcer = spawn(&tmux, Bin::Rust, bootstrap, &[]);
    let key = announcer.passphrase();
    let pane = spawn(&tmux, bin, bootstrap, &[&key]);
    pane.wait_text(TUNNEL);
    announcer.wait_text(TUNNEL);
    announcer.type_line("hello-over-the-pipe");
    pane.wait_text("hello-over-the-pipe");
    pane.send_keys(&["C-c"]);
    (pane.wait_exit(), announcer.wait_exit())
}

/// Ctrl-C twice on a connected `bin` facing a Rust announcer whose input is a pipe that stays open: the
/// first ends `bin`'s side only (the announcer keeps its side open while its input is open), the second
/// ends `bin`. Returns `bin`'s status.
fn ctrl_c_twice(bin: Bin, bootstrap: &str) -> i32 {
    let tmux = Tmux::start();
    let (cwd, cmd) = command(Bin::Rust, bootstrap, &[]);
    let announcer = tmux.spawn(&cwd, &format!("sleep 300 | {cmd}"));
    let key = announcer.passphrase();
    let pane = spawn(&tmux, bin, bootstrap, &[&key]);
    pane.wait_text(TUNNEL);
    announcer.wait_text(TUNNEL);
    pane.send_keys(&["C-c"]);
    if bin == Bin::Js {
        // Node runs the SIGINT listener from its event loop, later; a second SIGINT before that would be
        // caught too. The listener was added with `once`: it ran when node stops catching SIGINT.
        let deadline = Instant::now() + WAIT;
        while catches_sigint(pane.pid()) {
            assert!(Instant::now() < deadline, "node never handled the SIGINT");
            std::thread::sleep(POLL);
        }
    }
    // The first Ctrl-C does not end the process: the far side has not ended. Give the process time to
    // (wrongly) exit.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        assert_eq!(pane.exit_status(), None, "{}", pane.screen());
        std::thread::sleep(POLL);
    }
    pane.send_keys(&["C-c"]);
    pane.wait_exit()
}

/// Ctrl-C ends the Rust bin as it ends the JS bin, in each state.
#[test]
fn ctrl_c_exits_as_the_js_bin() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();

    let js = ctrl_c_while_waiting(Bin::Js, &bootstrap);
    let rust = ctrl_c_while_waiting(Bin::Rust, &bootstrap);
    assert_eq!(js, 0, "the JS bin exits 0 at Ctrl-C before a peer came");
    assert_eq!(rust, js, "waiting for a peer");

    let js = ctrl_c_when_connected(Bin::Js, &bootstrap);
    let rust = ctrl_c_when_connected(Bin::Rust, &bootstrap);
    assert_eq!(js, (0, 0), "the JS bin exits 0 once both sides ended");
    assert_eq!(rust, js, "connected");

    let js = ctrl_c_twice(Bin::Js, &bootstrap);
    let rust = ctrl_c_twice(Bin::Rust, &bootstrap);
    assert_eq!(js, 128 + 2, "the second SIGINT kills the JS bin");
    assert_eq!(rust, js, "second Ctrl-C");
}

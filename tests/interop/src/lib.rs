//! Runs the pinned JavaScript reference peers from Rust tests.
//!
//! The JS packages live in `tests/interop/node_modules` (installed by `npm ci` from the committed lockfile; `.ci/run`
//! does it). Scripts live in `tests/interop/js/` and run with `tests/interop` as their working directory so that
//! `require()` finds the pinned packages. Every process started here is killed when its handle drops, and every wait
//! is bounded, so a hung peer fails the test instead of hanging it.
//!
//! A missing `node` or `node_modules` is a test failure with instructions, never a silent pass.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The `tests/interop` folder.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    interop_dir()
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| interop_dir().join("../.."))
}

/// Panics with instructions unless node and the pinned packages are installed.
pub fn require_js() {
    let modules = interop_dir().join("node_modules");
    assert!(
        modules.join("hyperdht").is_dir(),
        "the JS reference packages are not installed: run `npm ci` in {} (.ci/run does this)",
        interop_dir().display()
    );
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "`node` is not on PATH: install Node.js 20 (.ci/run does this)"
    );
}

/// A running node process; killed on drop.
#[derive(Debug)]
pub struct JsProcess {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stdin: Option<ChildStdin>,
}

/// Runs `node js/<script> args...` in `tests/interop`, with stdout read line by line, stderr passed through, and
/// stdin piped (closing it is how the scripts here are told to stop).
pub fn node(script: &str, args: &[&str]) -> JsProcess {
    node_with(script, args, &[])
}

/// [`node`] with extra environment variables.
pub fn node_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> JsProcess {
    require_js();
    let mut cmd = Command::new("node");
    cmd.arg(Path::new("js").join(script))
        .args(args)
        .current_dir(interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node js/{script}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let stdin = child.stdin.take();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    JsProcess {
        name: script.to_string(),
        child,
        lines,
        stdin,
    }
}

impl JsProcess {
    /// The next line the process printed on stdout; panics after `timeout` or when stdout closes.
    pub fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("js/{}: no output line within {timeout:?}", self.name)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "js/{}: stdout closed before the expected line (exit: {status:?})",
                    self.name
                )
            }
        }
    }

    /// Reads lines until one starts with `prefix` and returns the rest of it.
    pub fn line_starting(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left);
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }

    /// Writes to the process's stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            stdin
                .write_all(bytes)
                .unwrap_or_else(|e| panic!("js/{}: stdin: {e}", self.name));
        }
    }

    /// Closes stdin (the scripts here exit on it).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit, at most `timeout`; panics (after killing it) if it does not.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    panic!("js/{} did not exit within {timeout:?}", self.name)
                }
            }
        }
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for JsProcess {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A local HyperDHT testnet run by the JS reference (`hyperdht/testnet.js`) on 127.0.0.1.
#[derive(Debug)]
pub struct JsTestnet {
    /// The bootstrap node(s) to give peers.
    pub bootstrap: Vec<SocketAddr>,
    _process: JsProcess,
}

impl JsTestnet {
    /// Starts `size` nodes (use 5 or more: 3 is flaky for connections).
    pub fn start(size: usize) -> Self {
        let mut process = node("testnet.js", &[&size.to_string()]);
        let line = process.line(Duration::from_secs(60));
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("testnet.js printed {line:?}: {e}"));
        let bootstrap = v["bootstrap"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str()?.parse().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert!(
            !bootstrap.is_empty(),
            "testnet.js printed no bootstrap address: {line}"
        );
        Self {
            bootstrap,
            _process: process,
        }
    }

    /// The bootstrap list as the CLIs take it: `HOST:PORT[,HOST:PORT...]`.
    pub fn bootstrap_arg(&self) -> String {
        self.bootstrap
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Path of a binary or example built by cargo in this workspace's target dir (`profile` is `debug` or `release`;
/// examples live under `examples/`). Panics with the build command when it is missing.
pub fn built(profile: &str, rel: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    let path = target.join(profile).join(rel);
    assert!(
        path.exists(),
        "{} is not built (cargo build first)",
        path.display()
    );
    path
}

/// Reads all of `r` into a BLAKE2-free cheap digest-like summary: length and a 64-bit FNV-1a hash. Enough to tell
/// two byte streams apart in a test failure message without printing them.
pub fn fingerprint(mut r: impl Read) -> std::io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 1 << 16];
    let (mut len, mut h) = (0u64, 0xcbf2_9ce4_8422_2325u64);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((len, h));
        }
        len += n as u64;
        for &b in &buf[..n] {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

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

pub use testkit::scratch_dir;

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

/// `node js/<script> args...` in `tests/interop` with `env`, stdout piped and stderr passed through.
fn command(script: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    require_js();
    let mut cmd = Command::new("node");
    cmd.arg(Path::new("js").join(script))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Runs `node js/<script> args...` in `tests/interop`, with stdout read line by line, stderr passed through, and
/// stdin piped (closing it is how the scripts here are told to stop).
pub fn node(script: &str, args: &[&str]) -> JsProcess {
    node_with(script, args, &[])
}

/// [`node`] with extra environment variables.
pub fn node_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> JsProcess {
    let mut child = command(script, args, env)
        .stdin(Stdio::piped())
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

    /// Closes stdin, then returns every line still to come on stdout once it closes, and the exit status. Panics
    /// if that takes longer than `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        self.stdin = None;
        let mut lines = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("js/{} did not finish within {timeout:?}", self.name)
                }
            }
        }
        let status = self.wait(deadline.saturating_duration_since(Instant::now()));
        (status, lines)
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

/// The same harness for async tests: processes driven with `tokio::process`, lines read with timeouts.
pub mod tokio {
    use std::process::{ExitStatus, Stdio};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
    use tokio::process::{Child, ChildStdin, ChildStdout, Command};

    /// A running node process (async); killed on drop.
    #[derive(Debug)]
    pub struct JsProcess {
        name: String,
        child: Child,
        lines: Lines<BufReader<ChildStdout>>,
        stdin: Option<ChildStdin>,
    }

    /// `node js/<script>` in `tests/interop`, killed on drop, for callers that set up its stdio themselves (more
    /// arguments may follow). Panics with instructions if node or the pinned packages are missing.
    pub fn command(script: &str) -> Command {
        super::require_js();
        let mut cmd = Command::new("node");
        cmd.arg(std::path::Path::new("js").join(script))
            .current_dir(super::interop_dir())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `node js/<script> args...` in `tests/interop` with stdout read line by line, stderr passed through, and
    /// stdin piped (closing it is how the long-running scripts here are told to stop).
    pub fn node(script: &str, args: &[&str]) -> JsProcess {
        let mut child = command(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node js/{script}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        JsProcess {
            name: script.to_string(),
            child,
            lines: BufReader::new(stdout).lines(),
            stdin,
        }
    }

    impl JsProcess {
        /// The next stdout line, `None` at end of output; no timeout (for callers that bound the whole test).
        pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
            self.lines.next_line().await
        }

        /// The next stdout line; panics after `timeout`, on a read error or when stdout closes.
        pub async fn line(&mut self, timeout: Duration) -> String {
            match ::tokio::time::timeout(timeout, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => panic!("js/{}: stdout closed before the expected line", self.name),
                Ok(Err(e)) => panic!("js/{}: stdout: {e}", self.name),
                Err(_) => panic!("js/{}: no output line within {timeout:?}", self.name),
            }
        }

        /// Writes `line` and a newline to stdin (the command-loop scripts read one command a line).
        pub async fn write_line(&mut self, line: &str) {
            let stdin = self
                .stdin
                .as_mut()
                .unwrap_or_else(|| panic!("js/{}: stdin already closed", self.name));
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("js/{}: stdin: {e}", self.name));
        }

        /// Sends one command line and returns the one line it answers.
        pub async fn ask(&mut self, command: &str, timeout: Duration) -> String {
            self.write_line(command).await;
            self.line(timeout).await
        }

        /// Closes stdin (the long-running scripts exit on it).
        pub fn close_stdin(&mut self) {
            self.stdin = None;
        }

        /// Closes stdin and waits at most `timeout` for the process to exit; `None` if it did not (it is killed
        /// on drop then).
        pub async fn finish(&mut self, timeout: Duration) -> Option<ExitStatus> {
            self.stdin = None;
            ::tokio::time::timeout(timeout, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok)
        }
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

/// Runs `node js/<script> args...` with `input` on its stdin (then closed), and returns everything it printed on
/// stdout once it exits. Panics if it does not finish within `timeout` or exits unsuccessfully.
pub fn run_with_stdin(script: &str, args: &[&str], input: &[u8], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut process = node(script, args);
    // The reader thread drains stdout meanwhile, so a large input cannot deadlock against a full pipe.
    process.write_stdin(input);
    let (status, lines) = process.finish(deadline.saturating_duration_since(Instant::now()));
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(status.success(), "js/{script} failed: {status}");
    out
}

/// [`run_with_stdin`] for the request/reply scripts: `request` as JSON in, the whole stdout parsed as one JSON value.
pub fn run_json(script: &str, request: &serde_json::Value, timeout: Duration) -> serde_json::Value {
    let out = run_with_stdin(script, &[], request.to_string().as_bytes(), timeout);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("js/{script} printed no JSON ({e}): {out}"))
}

/// Runs `node js/<script> args...` with `env` to completion (stdout discarded, stdin empty) and returns its
/// output. Panics if it cannot start or does not finish within `timeout`.
pub fn run(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> std::process::Output {
    let mut child = command(script, args, env)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node js/{script}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let read = stdout.read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(read);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("js/{script} did not finish within {timeout:?}")
            }
        }
    };
    // stdout reaches EOF once the process (and anything holding its stdout) is gone.
    let stdout = match rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5))
    {
        Ok(read) => read.unwrap_or_else(|e| panic!("js/{script}: stdout: {e}")),
        Err(_) => panic!("js/{script}: stdout did not close after exit"),
    };
    std::process::Output {
        status,
        stdout,
        stderr: Vec::new(),
    }
}

/// The value under `key` in a JSON object printed on one line, as text: strings without their quotes, anything
/// else as JSON. Panics (showing the line) if the line is not a JSON object with that key.
pub fn json_field(line: &str, key: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => panic!("no field {key:?} in {line}"),
    }
}

/// The array under `key` in a JSON object printed on one line, each element as [`json_field`] renders values.
pub fn json_strings(line: &str, key: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    let Some(items) = v.get(key).and_then(serde_json::Value::as_array) else {
        panic!("{key} array in {line}")
    };
    items
        .iter()
        .map(|item| match item {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
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

/// The directory of the bins the root-only labs run (tests/*/run): `target/<profile>` of the running test
/// binary, after `cargo build -p` of `packages` (with `--release` for a release test build) when one of `bins` is
/// missing there. `lab` names the lab in the failure message.
pub fn lab_bin_dir(lab: &str, packages: &[&str], bins: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/it-<hash>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_path_buf();
    if bins.iter().any(|b| !dir.join(b).exists()) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.arg("build");
        for p in packages {
            build.args(["-p", p]);
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        assert!(
            build.status().is_ok_and(|s| s.success()),
            "cannot build the Rust bins for the {lab} ({packages:?})"
        );
    }
    dir
}

/// Fails the test unless it runs as root: `lab` needs network namespaces.
pub fn require_root(lab: &str) {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the {lab} needs root (network namespaces)"
    );
}

#[cfg(test)]
mod tests {
    use super::{json_field, json_strings};

    #[test]
    fn json_line_fields() {
        let line = r#"{"s":"a,b}","n":5,"b":true,"z":null,"a":["x","y"],"m":[1,false]}"#;
        assert_eq!(json_field(line, "s"), "a,b}");
        assert_eq!(json_field(line, "n"), "5");
        assert_eq!(json_field(line, "b"), "true");
        assert_eq!(json_field(line, "z"), "null");
        assert_eq!(json_strings(line, "a"), ["x", "y"]);
        assert_eq!(json_strings(line, "m"), ["1", "false"]);
    }

    #[test]
    #[should_panic(expected = "no field \"absent\" in {\"a\":1}")]
    fn json_field_missing_key_panics() {
        json_field(r#"{"a":1}"#, "absent");
    }
}

//! `hyperssh-fuse` end to end: a local OpenSSH server (with the sftp subsystem) behind a Rust and a JS
//! (hypertele 1.1.4) `hypertele-server --seed S -l PORT` on a JS testnet; hyperssh-fuse mounts a folder of
//! it with the system sshfs through its proxy, a file is read and written through the mount, and the folder
//! is unmounted (by a signal to hyperssh-fuse, and by `fusermount -u` from outside).
//!
//! The mount test needs sshd, sshfs and a usable /dev/fuse with the right to mount (Debian: `apt-get install
//! openssh-server sshfs`, as root), so it is `#[ignore]`d in a normal run; `.ci/run` runs it as root with
//! `--ignored`. Run where FUSE cannot be used, it fails and says why; every failure to mount fails it (a
//! refused login is a failure, never "not permitted here").

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{rust_hypertele_server, ssh_options, start_sshd, user};

const BIN: &str = env!("CARGO_BIN_EXE_hyperssh-fuse");

/// A running hyperssh-fuse: its stdout lines, its stderr so far; on drop it is killed and the mount point
/// unmounted, so a failing test leaves no mount behind.
struct Fuse {
    child: Option<std::process::Child>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    mount: PathBuf,
}

impl Fuse {
    fn start(
        bootstrap: &str,
        key: &str,
        user: &str,
        mount: &Path,
        remote: &Path,
        client_key: &Path,
    ) -> Self {
        let mut child = Command::new(BIN)
            .args(["--bootstrap", bootstrap, "-s", key, "-u", user, "-m"])
            .arg(mount)
            .arg("-r")
            .arg(remote)
            .arg("--")
            .args(
                ssh_options(client_key)
                    .chunks(2)
                    .flat_map(|pair| match pair {
                        // sshfs takes the ssh options as -o NAME=VALUE; -i KEY becomes IdentityFile.
                        [flag, key] if flag == "-i" => {
                            ["-o".to_owned(), format!("IdentityFile={key}")]
                        }
                        [flag, value] => [flag.clone(), value.clone()],
                        _ => panic!("ssh options come in pairs"),
                    }),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting hyperssh-fuse");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("hyperssh-fuse: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                eprintln!("hyperssh-fuse stderr: {line}");
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Self {
            child: Some(child),
            lines,
            stderr,
            mount: mount.to_path_buf(),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the `Mounted ...` line: `Ok` once mounted, `Err(stderr)` if hyperssh-fuse ended first.
    fn mounted(&mut self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.starts_with("Mounted ") => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("not mounted within {timeout:?}"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|c| c.wait());
                    // The stderr thread may still be reading the last lines.
                    std::thread::sleep(Duration::from_millis(200));
                    return Err(format!("exit {status:?}: {}", self.stderr()));
                }
            }
        }
    }

    /// Waits for hyperssh-fuse to exit (at most `timeout`) and returns its status and remaining stdout.
    fn exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("running");
        let mut rest = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("hyperssh-fuse did not exit within {timeout:?}");
                }
            }
        }
        (child.wait().expect("waiting for hyperssh-fuse"), rest)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        let pid = libc::pid_t::try_from(pid).expect("a pid");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if fuse_mounted(&self.mount) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mount)
                .status();
            let _ = Command::new("fusermount")
                .args(["-u", "-z"])
                .arg(&self.mount)
                .status();
        }
    }
}

fn fuse_mounted(point: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let point = std::fs::canonicalize(point).unwrap_or_else(|_| point.to_path_buf());
    hyperssh_cli::mount::fuse_mounted(&table, &point)
}

/// Why FUSE cannot be used here at all, if so: no sshfs, no /dev/fuse, or no permission to open it.
fn fuse_unusable() -> Option<String> {
    if hyperssh_cli::mount::find_program("sshfs", std::env::var_os("PATH")).is_none() {
        return Some("sshfs is not installed (apt-get install sshfs)".into());
    }
    hyperssh_cli::mount::check_fuse_device(Path::new(hyperssh_cli::mount::FUSE_DEVICE))
        .err()
        .map(|e| e.to_string())
}

enum Unmount {
    /// SIGTERM to hyperssh-fuse: it unmounts and exits.
    Signal(libc::c_int),
    /// `fusermount -u MOUNTPOINT` from outside: sshfs ends, so does hyperssh-fuse.
    Fusermount,
}

/// Mounts `dir/remote-<name>` through the server with `key`, reads and writes files through the mount,
/// unmounts as `unmount` says.
fn mount_round_trip(
    name: &str,
    dir: &Path,
    bootstrap: &str,
    key: &str,
    client_key: &Path,
    unmount: &Unmount,
) {
    let remote = dir.join(format!("remote-{name}"));
    let mount = dir.join(format!("mnt-{name}"));
    std::fs::create_dir_all(&remote).expect("remote folder");
    std::fs::create_dir_all(&mount).expect("mount point");
    std::fs::write(remote.join("hello.txt"), format!("hello from {name}\n")).expect("a file");

    let mut fuse = Fuse::start(bootstrap, key, &user(), &mount, &remote, client_key);
    let line = fuse
        .mounted(Duration::from_secs(90))
        .unwrap_or_else(|why| panic!("hyperssh-fuse ended before mounting: {why}"));
    assert!(
        line.contains(&format!("@localhost:{}", remote.display())),
        "{line}"
    );
    assert!(fuse_mounted(&mount), "the mount table shows the mount");

    // Read what the server has.
    assert_eq!(
        std::fs::read_to_string(mount.join("hello.txt")).expect("reading through the mount"),
        format!("hello from {name}\n")
    );
    // Write through the mount: a small text and 3 MB that are not all the same byte.
    std::fs::write(mount.join("note.txt"), "written through sshfs\n").expect("writing a file");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(mount.join("big.bin"), &big).expect("writing a big file");
    assert_eq!(
        std::fs::read_to_string(remote.join("note.txt")).expect("the note on the server"),
        "written through sshfs\n"
    );
    assert!(
        std::fs::read(remote.join("big.bin")).expect("the big file on the server") == big,
        "the big file arrived byte-exact"
    );
    // And back: the big file read through the mount, a folder listing, a rename.
    assert!(std::fs::read(mount.join("big.bin")).expect("reading it back") == big);
    let mut names: Vec<String> = std::fs::read_dir(&mount)
        .expect("listing the mount")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "hello.txt", "note.txt"]);
    std::fs::rename(mount.join("note.txt"), mount.join("renamed.txt")).expect("renaming");
    assert!(remote.join("renamed.txt").exists() && !remote.join("note.txt").exists());

    match unmount {
        Unmount::Signal(signal) => fuse.signal(*signal),
        Unmount::Fusermount => {
            let status = Command::new("fusermount3")
                .arg("-u")
                .arg(&mount)
                .status()
                .or_else(|_| Command::new("fusermount").arg("-u").arg(&mount).status())
                .expect("running fusermount");
            assert!(status.success(), "fusermount -u: {status}");
        }
    }
    let (status, rest) = fuse.exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "hyperssh-fuse exits 0 once unmounted: {status}; stderr: {}",
        fuse.stderr()
    );
    assert!(rest.iter().any(|l| l.starts_with("Unmounted ")), "{rest:?}");
    assert!(!fuse_mounted(&mount), "still mounted after exit");
    assert!(
        !mount.join("hello.txt").exists(),
        "the mount point is the empty folder again"
    );
}

#[test]
#[ignore = "needs sshd, sshfs and the right to mount FUSE (root): .ci/run runs it as root with --ignored"]
fn sshfs_through_rust_and_js_hypertele_servers() {
    if let Some(reason) = fuse_unusable() {
        panic!("FUSE cannot be used here: {reason}");
    }
    let dir = std::env::temp_dir().join(format!("hyperssh-fuse-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_sshd, port, client_key) = start_sshd(&dir);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();

    // The Rust hypertele-server; unmounted by SIGTERM to hyperssh-fuse.
    let (rust_server, key) =
        rust_hypertele_server(Path::new(BIN), &bootstrap, port, &"5".repeat(64));
    mount_round_trip(
        "rust",
        &dir,
        &bootstrap,
        &key,
        &client_key,
        &Unmount::Signal(libc::SIGTERM),
    );
    {
        // A refused login (a key the sshd does not know): sshfs mounts before it logs in, but hyperssh-fuse reports no mount, exits with
        // sshfs's failure and leaves nothing mounted.
        let mount = dir.join("mnt-refused");
        std::fs::create_dir_all(&mount).expect("mount point");
        let other_key = dir.join("other_key");
        common::keygen(&other_key);
        let mut fuse = Fuse::start(&bootstrap, &key, &user(), &mount, &dir, &other_key);
        let why = fuse
            .mounted(Duration::from_secs(90))
            .expect_err("a refused login mounts nothing");
        assert!(why.contains("Permission denied"), "{why}");
        assert!(!fuse_mounted(&mount));
    }
    drop(rust_server);

    {
        // The JS hypertele 1.1.4 server; unmounted from outside with fusermount -u, then once more
        // mounted and ended with SIGINT (as Ctrl-C).
        let mut js_server = interop::node(
            "hypertele.js",
            &[
                "server",
                &bootstrap,
                "-l",
                &port.to_string(),
                "--seed",
                &"6a".repeat(32), // not all digits: minimist would read a number
            ],
        );
        let key = js_server
            .line_starting("hypertele: ", Duration::from_secs(60))
            .trim()
            .to_owned();
        assert_eq!(key.len(), 64, "{key}");
        mount_round_trip(
            "js",
            &dir,
            &bootstrap,
            &key,
            &client_key,
            &Unmount::Fusermount,
        );
        mount_round_trip(
            "js-sigint",
            &dir,
            &bootstrap,
            &key,
            &client_key,
            &Unmount::Signal(libc::SIGINT),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clear_errors_before_mounting() {
    let run = |args: &[&str], path: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdin(Stdio::null());
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        let out = cmd.output().expect("running hyperssh-fuse");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let key = "a".repeat(64);
    // No sshfs on PATH.
    let empty = std::env::temp_dir().join(format!("hyperssh-fuse-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("an empty folder");
    let (code, err) = run(
        &["-s", &key, "-m", "/tmp"],
        Some(empty.to_str().expect("utf-8")),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sshfs is not installed"), "{err}");
    let _ = std::fs::remove_dir(&empty);

    if fuse_unusable().is_none() {
        let (code, err) = run(&["-s", &key, "-m", "/nonexistent/mnt"], None);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("mount point /nonexistent/mnt"), "{err}");
        let (code, err) = run(&["-s", "not-a-key", "-m", "/tmp"], None);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.starts_with("Error: "), "{err}");
    }
    // Bad usage.
    let (code, _) = run(&["-s", &key], None);
    assert_eq!(code, Some(2), "-m is required");
}

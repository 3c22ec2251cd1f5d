//! Helpers shared by the `drives` CLI tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The built `drives` binary.
pub fn drives() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drives"));
    c.env_remove("HYPERDHT_BOOTSTRAP").env("NO_COLOR", "1");
    c
}

/// Runs `drives args...` in `cwd`, bounded in time; returns its output.
pub fn run(cwd: &Path, args: &[&str]) -> Output {
    let mut child = drives()
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drives");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "drives {args:?} timed out; stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs and asserts success; returns stdout.
pub fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = run(cwd, args);
    assert!(
        out.status.success(),
        "drives {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A long-running `drives` process whose stdout lines arrive on a channel; killed on drop.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn spawn(cwd: &Path, args: &[&str]) -> Self {
        let mut child = drives()
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn drives");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} within {timeout:?}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A folder with nested folders, unicode names, an empty file, an executable and a big file.
pub fn fixture(root: &Path, big: usize) {
    let w = |p: &str, d: &[u8], exec: bool| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, d).expect("write");
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    w("readme.txt", b"hello drives\n", false);
    w("empty", b"", false);
    w("bin/run.sh", b"#!/bin/sh\necho hi\n", true);
    w("a/b/c/deep.bin", &data(1, 70_000), false);
    w("ünïcödé/文件.txt", "こんにちは".as_bytes(), false);
    w("big/large.bin", &data(2, big), false);
    for i in 0..20 {
        w(
            &format!("many/f{i:02}"),
            &data(10 + i, 1000 + i as usize * 97),
            i % 3 == 0,
        );
    }
}

/// Every file of a folder (ignoring `.drives`): relative path -> (bytes, executable).
pub fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, bool)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            if rel.starts_with(".drives") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).expect("meta");
            if m.is_dir() {
                walk(root, &p, out);
            } else if m.is_file() {
                out.insert(
                    rel,
                    (
                        std::fs::read(&p).expect("read"),
                        m.permissions().mode() & 0o100 != 0,
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two folders hold the same files, bytes and executable bits.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    let ka: Vec<_> = ta.keys().collect();
    let kb: Vec<_> = tb.keys().collect();
    assert_eq!(ka, kb, "file lists differ");
    for (k, (da, xa)) in &ta {
        let (db, xb) = &tb[k];
        assert!(da == db, "{k}: bytes differ ({} vs {})", da.len(), db.len());
        assert_eq!(xa, xb, "{k}: executable bit differs");
    }
}

//! `drives mount` (Rust) of a drive made and seeded by the JS `drives` 2.9.1 CLI (hyperdrive 11, corestore 6
//! compat cores; run through `js/drives-cli.js` to keep its swarm on loopback) on a JS testnet: the mount is
//! read-only, lists the tree as JS wrote it (sizes, executable bits, symlinks), reads every file byte-exact,
//! and reading 1 MiB from the middle of a large file fetches about 1 MiB (blocks counted in the Rust store
//! afterwards). Needs `cargo build -p drives`, and root for FUSE: `#[ignore]`d in a normal run, `.ci/run`
//! runs it as root with `--ignored`; where FUSE cannot be used it fails and says why.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interop::{built, interop_dir, JsTestnet};

const T: Duration = Duration::from_secs(180);
const MIB: usize = 1 << 20;

fn data(seed: u64, len: usize) -> Vec<u8> {
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

fn write(root: &Path, rel: &str, bytes: &[u8], exec: bool) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, bytes).expect("write");
    let mode = if exec { 0o755 } else { 0o644 };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A process whose stdout is gathered; killed on drop (a mount point is unmounted first).
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    mount: Option<PathBuf>,
}

impl Proc {
    fn spawn(mut cmd: Command, cwd: &Path) -> Self {
        let mut child = cmd
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("HYPERDHT_BOOTSTRAP")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().expect("stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                sink.lock().expect("lock").push_str(&text);
            }
        });
        Proc {
            child,
            out,
            mount: None,
        }
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let text = self.out.lock().expect("lock").clone();
            if text.contains(needle) {
                return text;
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("exited ({s}) before printing {needle:?}: {text}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {T:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(m)
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn js(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(interop_dir().join("js/drives-cli.js"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run JS drives");
    assert!(
        out.status.success(),
        "JS drives {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every name below `root`: kind, size and executable bit, or link target.
fn listing(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            let m = std::fs::symlink_metadata(&p).expect("stat");
            if m.is_dir() {
                out.push((rel, "dir".into()));
                walk(root, &p, out);
            } else if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).expect("readlink");
                out.push((rel, format!("-> {}", target.display())));
            } else {
                let x = m.permissions().mode() & 0o100 != 0;
                out.push((rel, format!("{} {x}", m.len())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
#[ignore = "needs root: mounts FUSE (.ci/run runs it as root with --ignored)"]
fn rust_mounts_a_js_seeded_drive_sparse_and_byte_exact() {
    interop::require_js();
    let cwd = interop::scratch_dir("drives-mount-js");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let src = cwd.join("src");
    write(&src, "a.txt", b"hello from js\n", false);
    write(&src, "bin/run.sh", b"#!/bin/sh\necho hi\n", true);
    write(&src, "sub/deep/b.bin", &data(1, 300_000), false);
    write(&src, "empty", b"", false);
    let large = data(2, 16 * MIB);
    write(&src, "large.bin", &large, false);
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");

    let out = js(&cwd, &["touch", "--storage", "st"]);
    let key = out
        .lines()
        .find_map(|l| l.split("New drive:").nth(1))
        .map(str::trim)
        .expect("key")
        .to_string();
    js(&cwd, &["mirror", "./src", &key, "--storage", "st"]);

    let net = JsTestnet::start(5);
    let mut seed_cmd = Command::new("node");
    seed_cmd
        .arg(interop_dir().join("js/drives-cli.js"))
        .args(["seed", &key, "--storage", "st"])
        .env("DRIVES_JS_BOOTSTRAP", net.bootstrap_arg());
    let mut seeder = Proc::spawn(seed_cmd, &cwd);
    seeder.wait_for("Announced");

    let mount = |dir: &Path| {
        std::fs::create_dir_all(dir).expect("mount point");
        let mut cmd = Command::new(built("debug", "drives"));
        cmd.arg("mount").arg(&key).arg(dir).args([
            "--storage",
            "r",
            "--bootstrap",
            &net.bootstrap_arg(),
        ]);
        let mut p = Proc::spawn(cmd, &cwd);
        p.mount = Some(dir.to_path_buf());
        let banner = p.wait_for("Mounted ");
        assert!(banner.contains("read-only"), "{banner}");
        p
    };
    let stop = |mut p: Proc| {
        let pid = p.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        p.wait_for("Unmounted ");
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(s) = p.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "drives mount did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "drives mount: {status}");
        p.mount = None;
    };
    let dir = cwd.join("m");

    // Sparse: 1 MiB from the middle of 16 MiB (JS writes 64 KiB blocks too).
    let m = mount(&dir);
    assert_eq!(listing(&dir), listing(&src), "the tree as JS wrote it");
    let offset = 7 * MIB + 4321;
    let mut f = std::fs::File::open(dir.join("large.bin")).expect("open");
    f.seek(SeekFrom::Start(offset as u64)).expect("seek");
    let mut got = vec![0; MIB];
    f.read_exact(&mut got).expect("read");
    drop(f);
    assert!(got == large[offset..offset + MIB], "1 MiB from the middle");
    stop(m);
    let stored = {
        use holepunch::corestore::Corestore;
        use holepunch::hyperdrive::{DriveOptions, Hyperdrive};
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let store = Corestore::open(cwd.join("r/corestore")).expect("store");
            let k = holepunch::id_encoding::decode(&key).expect("key");
            let drive = Hyperdrive::open_key(&store, k, DriveOptions::default()).expect("drive");
            let blobs = drive.blobs().await.expect("blobs");
            let core = blobs.core();
            (0..core.length()).filter(|&i| core.has(i)).count()
        })
    };
    assert!(
        (16..=24).contains(&stored),
        "reading 1 MiB stored {stored} blocks of 64 KiB"
    );

    // Every file byte-exact.
    let m = mount(&dir);
    for rel in [
        "a.txt",
        "bin/run.sh",
        "sub/deep/b.bin",
        "empty",
        "large.bin",
        "link",
    ] {
        let want = std::fs::read(src.join(rel)).expect("source");
        let got = std::fs::read(dir.join(rel)).expect("mounted");
        assert!(
            got == want,
            "{rel}: {} bytes, {} expected",
            got.len(),
            want.len()
        );
    }
    let err = std::fs::write(dir.join("x"), b"x").expect_err("read-only");
    assert_eq!(err.kind(), std::io::ErrorKind::ReadOnlyFilesystem, "{err}");
    stop(m);
    drop(seeder);
    let _ = std::fs::remove_dir_all(&cwd);
}

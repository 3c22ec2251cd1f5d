//! `drives mount` end to end on a JS testnet: a drive written by Rust is mounted read-write by its writer
//! (which seeds it) and read-only by a replica in another store. The replica is sparse (reading 1 MiB in
//! the middle of a 24 MiB file stores about 1 MiB of blocks, counted in its store afterwards), reads every
//! file byte-exact with the executable bits and symlinks of the drive, refuses writes (EROFS), and follows
//! the writes made through the writer's mount (create, overwrite, chmod +x, symlink, mkdir, rename,
//! delete). Once the writer is gone a block nobody has fails with EIO within `--timeout`.
//!
//! Mounting needs /dev/fuse and the right to mount (root), so the mount test is `#[ignore]`d in a normal
//! run; `.ci/run` runs it as root with `--ignored`. Run where FUSE cannot be used, it fails and says why.

use crate::common;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{data, ok};

const T: Duration = Duration::from_secs(120);

/// A running `drives mount`; on drop the mount point is unmounted (lazily) and the process killed, so a
/// failing test leaves no mount behind.
struct Mount {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
    /// The "Mounted ..." line.
    banner: String,
}

impl Mount {
    fn start(cwd: &Path, key: &str, dir: &str, args: &[&str]) -> Self {
        let dir = cwd.join(dir);
        std::fs::create_dir_all(&dir).expect("mount point");
        let mut child = common::drives()
            .arg("mount")
            .arg(key)
            .arg(&dir)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn drives mount");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut m = Mount {
            child: Some(child),
            lines,
            dir,
            banner: String::new(),
        };
        m.banner = m.wait_for("Mounted ");
        m
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!("drives mount printed no {needle:?} within {T:?} (exit: {status:?})")
                }
            }
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Stops it with SIGTERM, or with `fusermount3 -u` from outside; asserts it unmounts and exits 0.
    fn stop(mut self, by_signal: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = if by_signal {
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
        } else {
            std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .status()
        };
        assert!(status.expect("run kill/fusermount3").success());
        self.wait_for("Unmounted ");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "drives mount did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "drives mount exited with {status}");
        let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let point = std::fs::canonicalize(&self.dir).expect("canonical");
        assert!(
            !table.contains(&format!(" {} ", point.display())),
            "still mounted"
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `check` holds (a replica follows its writer within seconds).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).expect("read");
    buf
}

/// Every name below `root` with its kind and, for files, size and executable bit (stat only, no reads).
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

/// The bytes of the drive's blobs core stored in `storage`, and the core's byte length.
fn stored_bytes(storage: &Path, key: &str) -> (u64, u64) {
    use holepunch::corestore::Corestore;
    use holepunch::hyperdrive::{DriveOptions, Hyperdrive};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = Corestore::open(storage.join("corestore")).expect("store");
        let key = holepunch::id_encoding::decode(key).expect("key");
        let drive = Hyperdrive::open_key(&store, key, DriveOptions::default()).expect("drive");
        let blobs = drive.blobs().await.expect("blobs");
        let core = blobs.core();
        let stored = (0..core.length())
            .filter_map(|i| core.get(i).ok().flatten())
            .map(|b| b.len() as u64)
            .sum();
        (stored, core.byte_length())
    })
}

const MIB: usize = 1 << 20;

#[test]
#[ignore = "needs root: mounts FUSE (.ci/run runs it as root with --ignored)"]
fn a_writer_mounts_read_write_and_a_sparse_replica_follows() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let src = cwd.join("src");
    common::fixture(&src, 200_000);
    let huge = data(7, 24 * MIB);
    std::fs::create_dir_all(src.join("huge")).expect("mkdir");
    std::fs::write(src.join("huge/sparse.bin"), &huge).expect("write");
    std::fs::write(src.join("huge/untouched.bin"), data(8, MIB)).expect("write");
    std::os::unix::fs::symlink("../readme.txt", src.join("bin/readme-link")).expect("symlink");
    let key = ok(cwd, &["touch", "--storage", "w"])
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    ok(cwd, &["mirror", "./src", &key, "--storage", "w"]);

    let net = interop::JsTestnet::start(5);
    let b = net.bootstrap_arg();
    let writer = Mount::start(cwd, &key, "mw", &["--storage", "w", "--bootstrap", &b]);
    assert!(writer.banner.contains("read-write"), "{}", writer.banner);
    let reader_args = ["--storage", "r", "--bootstrap", &b, "--timeout", "5"];
    let reader = Mount::start(cwd, &key, "mr", &reader_args);
    assert!(reader.banner.contains("read-only"), "{}", reader.banner);

    // ls/stat/find/readlink from the entries alone, as the drive has them.
    let want = listing(&src);
    assert_eq!(listing(&reader.dir), want, "the replica's tree");
    assert_eq!(listing(&writer.dir), want, "the writer's tree");
    reader.stop(true);
    let (before, total) = stored_bytes(&cwd.join("r"), &key);
    assert_eq!(before, 0, "stat, ls and readlink fetch no content");

    // Sparse: 1 MiB from the middle of a 24 MiB file.
    let reader = Mount::start(cwd, &key, "mr", &reader_args);
    let offset = 11 * MIB as u64 + 12_345;
    let got = read_at(&reader.path("huge/sparse.bin"), offset, MIB);
    let start = usize::try_from(offset).expect("offset");
    assert!(got == huge[start..start + MIB], "1 MiB from the middle");
    reader.stop(true);
    let (stored, length) = stored_bytes(&cwd.join("r"), &key);
    assert_eq!(length, total);
    // 1 MiB, plus the rest of the first and last blocks it touches (content-defined chunks of up to
    // 256 KiB), the blocks the reader fetched to find where the range starts, and the kernel's readahead.
    assert!(
        (MIB as u64..=3 * MIB as u64).contains(&stored),
        "reading 1 MiB stored {stored} bytes (of {length})"
    );
    eprintln!("sparse: 1 MiB read, {stored} bytes stored, of {length}");

    // Every file byte-exact (but one, kept unread for the EIO check below).
    let reader = Mount::start(cwd, &key, "mr", &reader_args);
    for (rel, (bytes, _)) in common::tree(&src) {
        if rel == "huge/untouched.bin" {
            continue;
        }
        let got = std::fs::read(reader.path(&rel)).expect("read");
        assert!(
            got == bytes,
            "{rel}: {} bytes read, {} expected",
            got.len(),
            bytes.len()
        );
    }
    let err = std::fs::write(reader.path("new.txt"), b"x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let err = std::fs::read(reader.path("nothing-here")).expect_err("missing");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");

    // Writes through the writer's mount; the replica sees each new version.
    std::fs::write(writer.path("new.txt"), b"written through the mount").expect("write");
    std::fs::write(writer.path("readme.txt"), b"overwritten\n").expect("overwrite");
    std::fs::set_permissions(writer.path("empty"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod +x");
    std::os::unix::fs::symlink("new.txt", writer.path("new-link")).expect("symlink");
    std::fs::create_dir(writer.path("made")).expect("mkdir");
    std::fs::write(writer.path("made/inner.bin"), data(9, 100_000)).expect("write");
    std::fs::rename(writer.path("many"), writer.path("renamed")).expect("rename folder");
    std::fs::rename(writer.path("a/b/c/deep.bin"), writer.path("moved.bin")).expect("rename");
    std::fs::remove_file(writer.path("big/large.bin")).expect("rm");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(writer.path("synced.txt")).expect("create");
        f.write_all(b"fsynced, still open").expect("write");
        f.sync_all().expect("fsync");
        // Committed by the fsync: the replica sees it before the close.
        eventually("an fsynced file reaches the replica", || {
            std::fs::read(reader.path("synced.txt")).ok().as_deref()
                == Some(&b"fsynced, still open"[..])
        });
    }
    let mut expected = listing(&writer.dir);
    expected.retain(|(rel, _)| rel != "huge/untouched.bin");
    eventually("the replica follows the writer", || {
        let mut now = listing(&reader.dir);
        now.retain(|(rel, _)| rel != "huge/untouched.bin");
        now == expected
    });
    assert!(expected.contains(&("empty".into(), "0 true".into())));
    assert!(expected.contains(&("new-link".into(), "-> new.txt".into())));
    assert!(expected.iter().any(|(rel, _)| rel == "renamed/f00"));
    assert!(!expected.iter().any(|(rel, _)| rel.starts_with("many")));
    assert!(!expected.iter().any(|(rel, _)| rel == "big/large.bin"));
    assert_eq!(
        std::fs::read(reader.path("new-link")).expect("through the link"),
        b"written through the mount"
    );
    assert_eq!(
        std::fs::read(reader.path("readme.txt")).expect("read"),
        b"overwritten\n"
    );
    assert!(std::fs::read(reader.path("made/inner.bin")).expect("read") == data(9, 100_000));
    assert!(std::fs::read(reader.path("moved.bin")).expect("read") == data(1, 70_000));

    // The writer goes; a block no peer has is an EIO within --timeout, not a hang.
    writer.stop(false);
    let err = std::fs::read(reader.path("huge/untouched.bin")).expect_err("no peer");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    reader.stop(true);

    // Every write is in the writer's store (a new version per closed file).
    let ls = ok(cwd, &["ls", &key, "-r", "--storage", "w"]);
    for k in [
        "/new.txt",
        "/made/inner.bin",
        "/renamed/f00",
        "/moved.bin",
        "/synced.txt",
    ] {
        assert!(ls.contains(k), "{k} in {ls}");
    }
}

#[test]
fn a_folder_or_a_missing_mount_point_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let key = ok(cwd, &["touch", "--storage", "w"])
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    let out = common::run(cwd, &["mount", "./folder", "m", "--storage", "w"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a hyperdrive key"));
    let out = common::run(cwd, &["mount", &key, "missing", "--storage", "w"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mount point"));
}

//! A full disk (a small tmpfs): an import into a store on it and a download into a folder on it stop with a
//! clear error (exit 1, "the disk is full" and where, no panic); the store reopens with every entry whole,
//! the folder holds no half-written file; after space is freed a rerun completes.

use crate::common;
use crate::crash::{check_folder, check_store};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same_tree, data, ok, run};

/// A tmpfs mounted at a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "cannot mount a tmpfs at {} (needs root)",
            at.display()
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("running mount");
        assert!(st.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    common::tree(root)
        .into_iter()
        .map(|(k, (bytes, _))| (format!("/{k}"), bytes))
        .collect()
}

fn assert_disk_full(out: &std::process::Output, place: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("Error: the disk is full"), "{err}");
    assert!(err.contains(place), "{err:?} does not say where ({place})");
}

#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn a_full_disk_is_a_clear_error_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let src_dir = cwd.join("src");
    for i in 0..40u64 {
        std::fs::create_dir_all(src_dir.join("d")).expect("mkdir");
        std::fs::write(src_dir.join(format!("d/f{i:02}")), data(i, 150_000)).expect("write");
    }
    std::fs::write(src_dir.join("big.bin"), data(99, 3_000_000)).expect("write");
    let src = files(&src_dir);

    // An import into a store on a 2 MiB disk.
    let disk = Tmpfs::mount(&cwd.join("disk"), "2m");
    let key = ok(cwd, &["touch", "--storage", "disk/s"])
        .lines()
        .find_map(|l| l.strip_prefix("New drive: ").map(str::to_string))
        .expect("key");
    let out = run(cwd, &["mirror", "./src", &key, "--storage", "disk/s"]);
    assert_disk_full(&out, "disk/s");
    let store = cwd.join("disk/s/corestore");
    let kept = check_store(&store, &key, &src);
    eprintln!(
        "import: {} of {} files kept before the disk filled",
        kept.len(),
        src.len()
    );
    assert!(kept.len() < src.len());
    disk.resize("64m");
    ok(cwd, &["mirror", "./src", &key, "--storage", "disk/s"]);
    assert_eq!(check_store(&store, &key, &src), src);

    // A download into a folder on a 2 MiB disk.
    let out_disk = Tmpfs::mount(&cwd.join("out"), "2m");
    let out = run(cwd, &["mirror", &key, "./out/copy", "--storage", "disk/s"]);
    assert_disk_full(&out, "./out/copy");
    check_folder(&cwd.join("out/copy"), &src);
    out_disk.resize("64m");
    ok(cwd, &["mirror", &key, "./out/copy", "--storage", "disk/s"]);
    assert_same_tree(&src_dir, &cwd.join("out/copy"));
}

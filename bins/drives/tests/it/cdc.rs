//! `drives mirror` of a changed big file: with content-defined chunking (the default) the store grows by about
//! the change, with `--no-chunking` by the whole file; either way the drive mirrors back out byte-exact and
//! `entry` reports the file's size (not its block map's).

use std::path::Path;

use crate::common::{assert_same_tree, data, ok};

const SIZE: usize = 6 << 20;

/// Bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let meta = e.metadata().expect("meta");
        total += if meta.is_dir() {
            du(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

fn new_drive(cwd: &Path) -> String {
    ok(cwd, &["init"]);
    let out = ok(cwd, &["touch"]);
    out.lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string()
}

/// Imports `src` with a changed `big.bin` (512 KiB rewritten in the middle); returns the store's growth.
fn change_and_import(cwd: &Path, key: &str, seed: u64, extra: &[&str]) -> u64 {
    let file = cwd.join("src/big.bin");
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid..mid + (512 << 10)].copy_from_slice(&data(seed, 512 << 10));
    std::fs::write(&file, &bytes).expect("write");
    let store = cwd.join(".drives");
    let before = du(&store);
    let mut args = vec!["mirror", "./src", key];
    args.extend_from_slice(extra);
    let out = ok(cwd, &args);
    assert!(out.contains("(+0 -0 ~1)"), "{out}");
    du(&store) - before
}

#[test]
fn reimporting_a_changed_file_stores_about_the_change() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("src")).expect("mkdir");
    std::fs::write(cwd.join("src/big.bin"), data(1, SIZE)).expect("write");
    std::fs::write(cwd.join("src/small.txt"), b"small").expect("write");
    let key = new_drive(cwd);
    ok(cwd, &["mirror", "./src", &key]);

    let grew = change_and_import(cwd, &key, 77, &[]);
    assert!(grew < 2 << 20, "chunked: the store grew by {grew} bytes");
    let out = ok(cwd, &["entry", &key, "/big.bin"]);
    assert!(out.contains("Blob size: 6.3MB"), "{out}");
    ok(cwd, &["mirror", &key, "./out"]);
    assert_same_tree(&cwd.join("src"), &cwd.join("out"));

    let grew = change_and_import(cwd, &key, 78, &["--no-chunking"]);
    assert!(
        grew >= SIZE as u64,
        "unchunked: the store grew by {grew} bytes"
    );
    ok(cwd, &["mirror", &key, "./out"]);
    assert_same_tree(&cwd.join("src"), &cwd.join("out"));

    // Unchanged: nothing to do.
    let out = ok(cwd, &["mirror", "./src", &key]);
    assert!(out.contains("(+0 -0 ~0)"), "{out}");
}

//! The committed JS vectors (read by the layer crates' tests without node) must be exactly what the generator
//! scripts produce with the pinned packages in `tests/interop/node_modules`: regenerated here with node and
//! compared byte for byte.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The committed vectors of crate `krate` (`crates/<krate>/tests/it/vectors/<file>`).
fn committed(krate: &str, file: &str) -> (PathBuf, Vec<u8>) {
    let path = interop::workspace_dir()
        .join("crates")
        .join(krate)
        .join("tests/it/vectors")
        .join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

/// Runs a generator that writes its files into `VECTORS_DIR` and compares each with the committed one.
fn check_generated(script: &str, krate: &str, files: &[&str]) {
    let out = interop::scratch_dir("vectors-fresh");
    std::fs::create_dir_all(&out).expect("scratch dir");
    let dir = out.to_str().expect("utf-8 scratch dir");
    // No timeout before the harness: bounded generously now.
    let status = interop::run(
        script,
        &[],
        &[("VECTORS_DIR", dir)],
        Duration::from_secs(600),
    )
    .status;
    assert!(status.success(), "{script} failed: {status}");
    for file in files {
        let fresh = std::fs::read(Path::new(&out).join(file)).expect("generated file");
        let (path, committed) = committed(krate, file);
        assert!(
            fresh == committed,
            "{} is stale: run tests/interop/js/{script} with VECTORS_DIR set to its folder",
            path.display()
        );
    }
}

/// Runs a generator that prints one file on stdout and compares it with the committed one.
fn check_printed(script: &str, krate: &str, file: &str) {
    // No timeout before the harness: bounded generously now.
    let out = interop::run(script, &[], &[], Duration::from_secs(600));
    assert!(out.status.success(), "{script} failed: {}", out.status);
    let (path, committed) = committed(krate, file);
    assert!(
        out.stdout == committed,
        "{} is stale: run `node js/{script} > {}` in tests/interop",
        path.display(),
        path.display()
    );
}

#[test]
fn committed_wire_vectors_match_the_generators() {
    check_generated("gen-vectors.js", "wire", &["compact_encoding.json"]);
    check_generated(
        "gen-crypto-vectors.js",
        "wire",
        &["crypto.json", "id_encoding.json", "base32.json"],
    );
}

#[test]
fn committed_dht_vectors_match_the_generators() {
    check_printed("dht_vectors.js", "dht", "dht.txt");
    check_printed("dht_table_vectors.js", "dht", "dht_table.txt");
}

#[test]
fn committed_hypercore_vectors_match_the_generators() {
    check_generated(
        "gen-hypercore-vectors.js",
        "cores",
        &["flat_tree.json", "hypercore.json"],
    );
}

#[test]
fn committed_corestore_vectors_match_the_pinned_js_corestore() {
    interop::require_js();
    let out = interop::run("corestore_vectors.js", &[], &[], Duration::from_secs(60));
    assert!(out.status.success(), "js/corestore_vectors.js failed");
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json line");
    let (path, committed) = committed("cores", "corestore.json");
    let committed: serde_json::Value = serde_json::from_slice(&committed).expect("json");
    assert_eq!(fresh, committed, "regenerate {}", path.display());
}

#[test]
fn committed_autobase_encryption_vectors_match_the_pinned_js_autobase() {
    interop::require_js();
    let out = interop::run(
        "autobase_encryption_vectors.js",
        &[],
        &[],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "js/autobase_encryption_vectors.js failed"
    );
    let (path, committed) = committed("cores", "autobase_encryption.json");
    assert!(
        out.stdout == committed,
        "{} is stale: run `node js/autobase_encryption_vectors.js > {}` in tests/interop",
        path.display(),
        path.display()
    );
}

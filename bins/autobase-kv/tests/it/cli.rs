//! The local commands (no network): output, exit codes and what a second writer sees before it is synced.
//! `sync` is tested with the JS twin on a testnet in tests/interop (`autobase_kv_interop`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autobase-kv"))
        .args(args)
        .env_remove("HYPERDHT_BOOTSTRAP")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn dir(root: &Path, name: &str) -> String {
    root.join(name).to_str().unwrap().to_string()
}

#[test]
fn local_commands_as_the_js_twin() {
    let root = testkit::scratch_dir("autobase-kv-cli");
    let (a, b) = (dir(&root, "a"), dir(&root, "b"));
    let created = ok(&["create", &a]);
    let lines: Vec<&str> = created.lines().collect();
    assert_eq!(lines.len(), 2, "base key, then writer key: {created}");
    assert_eq!(
        lines[0], lines[1],
        "the creator's writer key is the base key"
    );
    assert_eq!(lines[0].len(), 64);
    // create again opens the same base
    assert_eq!(ok(&["create", &a]), created);
    let joined = ok(&["join", lines[0], &b]);
    let bkey = joined.trim();
    assert_eq!(bkey.len(), 64);
    assert_ne!(bkey, lines[0]);
    assert_eq!(
        ok(&["join", lines[0], &b]),
        joined,
        "join again: same writer"
    );

    ok(&["put", &a, "b", "2"]);
    ok(&["put", &a, "a", "1"]);
    ok(&["put", &a, "c", "3"]);
    ok(&["del", &a, "c"]);
    assert_eq!(ok(&["list", &a]), "a\t1\nb\t2\n");
    assert_eq!(ok(&["get", &a, "b"]), "2\n");
    let missing = run(&["get", &a, "c"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty() && missing.stderr.is_empty());

    ok(&["add-writer", &a, bkey, "--indexer"]);
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", &a])).unwrap();
    assert_eq!(info["key"], lines[0]);
    assert_eq!(info["writable"], true);
    let members = info["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .any(|m| m["key"] == bkey && m["isIndexer"] == true));

    // b has not synced: it does not know it was added
    let not_yet = run(&["put", &b, "k", "v"]);
    assert_eq!(not_yet.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&not_yet.stderr),
        "autobase-kv: this store is not a writer of its base (yet): add its key first\n"
    );
    assert_eq!(ok(&["list", &b]), "");
    let binfo: serde_json::Value = serde_json::from_str(&ok(&["info", &b])).unwrap();
    assert_eq!(binfo["key"], lines[0]);
    assert_eq!(binfo["localKey"], bkey);
    assert_eq!(binfo["writable"], false);
}

#[test]
fn usage_and_runtime_errors() {
    let root = testkit::scratch_dir("autobase-kv-cli-errors");
    let missing = dir(&root, "none");
    let out = run(&["list", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("autobase-kv: no base in "));
    assert!(!Path::new(&missing).exists(), "nothing created");
    assert_eq!(run(&["join", "abc", &missing]).status.code(), Some(2));
    assert_eq!(run(&["put", &missing, "k"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    // sync for no time: no peer, nothing changes, exit 0
    let a = dir(&root, "a");
    ok(&["create", &a]);
    ok(&["put", &a, "k", "v"]);
    ok(&["sync", &a, "--bootstrap", "127.0.0.1:9", "--seconds", "0"]);
    assert_eq!(ok(&["list", &a]), "k\tv\n");
    let help = ok(&["--help"]);
    assert!(help.contains("sync") && help.contains("Exit status"));
}

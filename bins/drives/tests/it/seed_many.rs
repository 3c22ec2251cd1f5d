//! `drives seed --all` and `drives seed KEY KEY...`: several drives seeded from one process on one swarm (a
//! local testnet), each downloaded by another peer (`drives mirror KEY FOLDER`) file for file, with one status
//! line per drive.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{assert_same_tree, data, ok, run, Running};

/// A small drive of its own per `i`: a few files, one of them bigger than a block.
fn drive_with_files(cwd: &Path, storage: &str, i: u64) -> String {
    let src = cwd.join(format!("src{i}"));
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("name.txt"), format!("drive {i}\n")).expect("write");
    std::fs::write(src.join("sub/data.bin"), data(i, 70_000 + i as usize)).expect("write");
    let out = ok(cwd, &["touch", "--storage", storage]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    ok(
        cwd,
        &["mirror", &format!("./src{i}"), &key, "--storage", storage],
    );
    key
}

/// Waits until the seeder has printed a status line for each key (the first: `KEY No peers`).
fn wait_for_status_lines(seeder: &Running, keys: &[String]) {
    let mut missing: Vec<&String> = keys.iter().collect();
    while !missing.is_empty() {
        let line = seeder.wait_for(" No peers", Duration::from_secs(60));
        let key = line.split(' ').next().unwrap_or_default().to_string();
        assert!(
            keys.contains(&key),
            "a status line for a drive not seeded: {line}"
        );
        missing.retain(|k| **k != key);
    }
}

fn download_each(cwd: &Path, keys: &[String], firsts: &[u64], bootstrap: &str, tag: &str) {
    for (key, i) in keys.iter().zip(firsts) {
        let folder = format!("./{tag}-copy{i}");
        ok(
            cwd,
            &[
                "mirror",
                key,
                &folder,
                "--storage",
                &format!("{tag}-dl{i}"),
                "--bootstrap",
                bootstrap,
            ],
        );
        assert_same_tree(&cwd.join(format!("src{i}")), &cwd.join(&folder));
    }
}

#[test]
fn seed_all_serves_every_drive_of_the_store_from_one_process() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let firsts = [1, 2, 3];
    let keys: Vec<String> = firsts
        .iter()
        .map(|&i| drive_with_files(cwd, "rs", i))
        .collect();
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let seeder = Running::spawn(
        cwd,
        &[
            "seed",
            "--all",
            "--storage",
            "rs",
            "--bootstrap",
            &bootstrap,
        ],
    );
    seeder.wait_for("Seeding 3 drives", Duration::from_secs(30));
    seeder.wait_for("Announced", Duration::from_secs(60));
    wait_for_status_lines(&seeder, &keys);
    download_each(cwd, &keys, &firsts, &bootstrap, "all");
    // A peer that stays (a live mirror of the second drive) shows on that drive's line.
    let _peer = Running::spawn(
        cwd,
        &[
            "mirror",
            &keys[1],
            "./live",
            "--live",
            "--storage",
            "live-dl",
            "--bootstrap",
            &bootstrap,
        ],
    );
    seeder.wait_for(&format!("{} Peers: 1 | ", keys[1]), Duration::from_secs(60));
}

#[test]
fn seed_keys_serves_the_drives_named() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let keys: Vec<String> = [4, 5, 6]
        .iter()
        .map(|&i| drive_with_files(cwd, "rs", i))
        .collect();
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    // Two of the three (one named twice): only those two are announced.
    let seeder = Running::spawn(
        cwd,
        &[
            "seed",
            &keys[0],
            &keys[2],
            &keys[0],
            "--storage",
            "rs",
            "--bootstrap",
            &bootstrap,
        ],
    );
    seeder.wait_for("Seeding 2 drives", Duration::from_secs(30));
    seeder.wait_for("Announced", Duration::from_secs(60));
    let named = [keys[0].clone(), keys[2].clone()];
    wait_for_status_lines(&seeder, &named);
    download_each(cwd, &named, &[4, 6], &bootstrap, "keys");
}

#[test]
fn seed_all_takes_no_keys_and_needs_a_drive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let key = "a".repeat(64);
    let out = run(cwd, &["seed", "--all", &key, "--storage", "s"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // A store without drives: an error, not a seeder of nothing.
    ok(cwd, &["init"]);
    let out = run(cwd, &["seed", "--all", "--bootstrap", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no drive to seed"), "{stderr}");
}

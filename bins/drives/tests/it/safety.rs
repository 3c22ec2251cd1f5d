//! No loss from a typo, a stuck download, a killed run or a broken key file: a missing source folder or a
//! file where a folder is expected is an error before anything is touched; a mirror from a key that finds
//! no peer within `--timeout` fails without writing; what a killed mirror left half-written is never under a
//! file's name and is cleaned up by the next run; a corrupt or missing primary key is never replaced.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{assert_same_tree, fixture, ok, run, tree};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts `drives args` failed with exit status 1 and an `Error:` line containing every one of `want`.
fn fails(cwd: &Path, args: &[&str], want: &[&str]) -> Output {
    let out = run(cwd, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "drives {args:?}: {err}");
    assert!(
        err.lines().last().is_some_and(|l| l.starts_with("Error: ")),
        "drives {args:?}: {err}"
    );
    for w in want {
        assert!(err.contains(w), "drives {args:?}: {err:?} lacks {w:?}");
    }
    out
}

fn new_drive(cwd: &Path) -> String {
    let out = ok(cwd, &["touch"]);
    out.lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string()
}

#[test]
fn a_typo_or_a_file_instead_of_a_folder_touches_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("photos"), 10_000);
    std::fs::write(cwd.join("file.txt"), b"just a file").expect("write");
    let before = tree(&cwd.join("photos"));
    ok(cwd, &["init"]);
    let key = new_drive(cwd);
    ok(cwd, &["mirror", "./photos", &key]);
    let version = |cwd: &Path| {
        let out = ok(cwd, &["info", &key]);
        out.lines()
            .find(|l| l.starts_with("Version: "))
            .expect("version")
            .to_string()
    };
    let v1 = version(cwd);

    // A source folder that does not exist: JS drives deletes every file of the destination, exit 0.
    fails(
        cwd,
        &["mirror", "./typo", "./photos"],
        &["./typo", "does not exist"],
    );
    fails(
        cwd,
        &["mirror", "./typo", &key],
        &["./typo", "does not exist"],
    );
    fails(
        cwd,
        &["mirror", "./typo", "./photos", "--dry-run"],
        &["does not exist"],
    );
    // A file where a folder is expected, on either side.
    fails(
        cwd,
        &["mirror", "./file.txt", "./photos"],
        &["./file.txt", "is a file, not a folder"],
    );
    fails(
        cwd,
        &["mirror", "./photos", "./file.txt"],
        &["./file.txt", "is a file, not a folder"],
    );
    fails(
        cwd,
        &["mirror", &key, "./file.txt"],
        &["./file.txt", "is a file, not a folder"],
    );
    fails(
        cwd,
        &["mirror", "./photos", "./file.txt/sub"],
        &["file.txt", "is a file, not a folder"],
    );
    assert_eq!(tree(&cwd.join("photos")), before, "the folder is untouched");
    assert_eq!(
        std::fs::read(cwd.join("file.txt")).expect("read"),
        b"just a file"
    );
    assert_eq!(version(cwd), v1, "the drive is untouched");

    // Every other command that takes a folder.
    fails(cwd, &["ls", "./typo"], &["./typo", "does not exist"]);
    fails(cwd, &["ls", "./file.txt"], &["is a file, not a folder"]);
    fails(cwd, &["get", "./typo", "/a"], &["does not exist"]);
    fails(cwd, &["entry", "./typo", "/a"], &["does not exist"]);
    fails(cwd, &["rm", "./typo", "/a"], &["does not exist"]);
    fails(
        cwd,
        &["put", "./file.txt", "/a", "x"],
        &["is a file, not a folder"],
    );
    fails(
        cwd,
        &["serve", "./typo", "--port", "0"],
        &["does not exist"],
    );
    assert_eq!(tree(&cwd.join("photos")), before);

    // What is not a typo still works: a new destination folder is created, and a key's mirror into it too.
    ok(cwd, &["mirror", "./photos", "./new/copy"]);
    assert_same_tree(&cwd.join("photos"), &cwd.join("new/copy"));
    ok(cwd, &["put", "./new/other", "/a.txt", "x"]);
    assert_eq!(
        std::fs::read(cwd.join("new/other/a.txt")).expect("read"),
        b"x"
    );
}

#[test]
fn a_mirror_from_a_key_without_peers_gives_up_after_timeout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("folder"), 1000);
    let before = tree(&cwd.join("folder"));
    ok(cwd, &["init"]);
    // A drive nobody serves (a random key); the DHT bootstrap answers nothing (port 9 on loopback).
    let key = "4a".repeat(32);
    let out = fails(
        cwd,
        &[
            "mirror",
            &key,
            "./folder",
            "--timeout",
            "1",
            "--bootstrap",
            "127.0.0.1:9",
        ],
        &[
            "no peer found for drive",
            "within 1s",
            "nothing was written",
        ],
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("Looking for peers of jj"),
        "says what it does first: {err}"
    );
    assert_eq!(tree(&cwd.join("folder")), before, "the folder is untouched");

    fails(
        cwd,
        &[
            "download",
            &key,
            "--timeout",
            "1",
            "--bootstrap",
            "127.0.0.1:9",
        ],
        &["no peer found for drive", "within 1s"],
    );
}

#[test]
fn half_written_files_never_carry_a_name_and_are_cleaned_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("src"), 50_000);
    ok(cwd, &["mirror", "./src", "./dst"]);
    // What a killed run leaves: its temporary files (a process that is gone), beside the real ones.
    let stale = [
        "dst/.readme.txt.4194999.0.localdrive.tmp",
        "dst/a/b/c/.deep.bin.4194999.17.localdrive.tmp",
    ];
    for s in stale {
        std::fs::write(cwd.join(s), b"half a fi").expect("write");
    }
    // A running writer's temporary file (this test's own process) is left alone.
    let live = format!("dst/.x.{}.3.localdrive.tmp", std::process::id());
    std::fs::write(cwd.join(&live), b"in progress").expect("write");
    // Temporary files are not entries of the folder.
    let out = ok(cwd, &["ls", "./dst", "-r"]);
    assert!(!out.contains("localdrive.tmp"), "{out}");
    std::fs::write(cwd.join("src/readme.txt"), b"changed").expect("write");
    let out = ok(cwd, &["mirror", "./src", "./dst"]);
    assert_eq!(
        out,
        "~ /readme.txt 7B -6B\n\n✔ Total files: 26 (+0 -0 ~1)\n"
    );
    for s in stale {
        assert!(!cwd.join(s).exists(), "{s} is removed");
    }
    assert!(cwd.join(&live).exists(), "a live writer's file stays");
    std::fs::remove_file(cwd.join(&live)).expect("rm");
    assert_same_tree(&cwd.join("src"), &cwd.join("dst"));
    // Nothing else was left beside the files written.
    let names: Vec<String> = walk(&cwd.join("dst"));
    assert!(
        names.iter().all(|n| !n.contains("localdrive.tmp")),
        "{names:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn a_corrupt_or_missing_primary_key_is_never_replaced() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("src")).expect("mkdir");
    std::fs::write(cwd.join("src/a.txt"), b"a").expect("write");
    ok(cwd, &["init"]);
    let key = new_drive(cwd);
    ok(cwd, &["mirror", "./src", &key]);
    let pk = cwd.join(".drives/corestore/primary-key");
    let good = std::fs::read(&pk).expect("primary key");
    assert_eq!(good.len(), 32);
    let shown = ".drives/corestore/primary-key";
    for bad in [
        &good[..31],
        &good[..0],
        &[good.as_slice(), b"\n"].concat()[..],
    ] {
        std::fs::write(&pk, bad).expect("write");
        for args in [
            vec!["touch"],
            vec!["ls", key.as_str()],
            vec!["mirror", "./src", key.as_str()],
            vec!["info", key.as_str()],
        ] {
            fails(cwd, &args, &[shown, "corrupt primary key file"]);
            assert_eq!(std::fs::read(&pk).expect("read"), bad, "left as it was");
        }
    }
    // Missing, in a store that holds drives: no new key (the drives would turn read-only).
    std::fs::remove_file(&pk).expect("rm");
    fails(cwd, &["touch"], &[shown, "is missing"]);
    fails(cwd, &["ls", &key], &[shown, "is missing"]);
    assert!(!pk.exists());
    // Put back, everything is as before.
    std::fs::write(&pk, &good).expect("write");
    let out = ok(cwd, &["info", &key]);
    assert!(out.contains("Writable? true"), "{out}");
    let out = ok(cwd, &["get", &key, "/a.txt"]);
    assert!(out.ends_with("\na\n"), "{out:?}");
}

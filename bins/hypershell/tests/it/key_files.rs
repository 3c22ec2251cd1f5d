//! Broken key and config files (truncated, emptied, not keys): every hypershell tool stops with exit status 1
//! and an error naming the file, before any network, and never writes a new key over it.

use std::path::Path;
use std::process::Command;

use holepunch::crypto::KeyPair;
use holepunch::hypershell::{format_key, format_seed_file};

fn tool(exe: &str, home: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env("HOME", home).env_remove("HYPERDHT_BOOTSTRAP");
    c
}

/// Runs `cmd`; asserts exit status 1 and an error containing each of `want`.
fn fails(cmd: &mut Command, want: &[&str]) {
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
    for w in want {
        assert!(err.contains(w), "{cmd:?}: {err:?} lacks {w:?}");
    }
}

const BOOT: [&str; 2] = ["--bootstrap", "127.0.0.1:9"];

#[test]
fn broken_key_files_are_reported_and_never_replaced() {
    let home = tempfile::tempdir().expect("tmp");
    let home = home.path();
    let dir = home.join(".hypershell");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good = format_seed_file(&[7; 32], None);
    let server_key = format_key(&KeyPair::from_seed(&[8; 32]).public);
    let peer = dir.join("peer");
    let shown = peer.display().to_string();
    // Truncated at several points, emptied, and garbage.
    let broken: Vec<String> = vec![
        good[..good.len() - 2].to_string(),
        good[..10].to_string(),
        String::new(),
        "\n\n".into(),
        "not a key at all\n".into(),
    ];
    for text in &broken {
        std::fs::write(&peer, text).expect("write");
        let check = |cmd: &mut Command| {
            fails(cmd, &[&shown]);
            assert_eq!(
                &std::fs::read_to_string(&peer).expect("read"),
                text,
                "left as it was"
            );
        };
        // The default key file and -f.
        check(tool(env!("CARGO_BIN_EXE_hypershell-server"), home).args(BOOT));
        check(
            tool(env!("CARGO_BIN_EXE_hypershell-server"), home)
                .args(BOOT)
                .arg("-f")
                .arg(&peer),
        );
        check(
            tool(env!("CARGO_BIN_EXE_hypershell"), home)
                .args(BOOT)
                .arg(&server_key)
                .args(["--", "true"]),
        );
        check(
            tool(env!("CARGO_BIN_EXE_hypershell-copy"), home)
                .args(BOOT)
                .arg(format!("@{server_key}:/tmp/x"))
                .arg(home.join("out")),
        );
        // keygen refuses to write over it.
        check(
            tool(env!("CARGO_BIN_EXE_hypershell-keygen"), home)
                .arg("-f")
                .arg(&peer),
        );
    }

    // The allow list of the server: a truncated key line.
    std::fs::write(&peer, &good).expect("write");
    let firewall = dir.join("authorized_peers");
    let allowed = format!("# <public key>\n{server_key}\n{}\n", &server_key[..30]);
    std::fs::write(&firewall, &allowed).expect("write");
    fails(
        tool(env!("CARGO_BIN_EXE_hypershell-server"), home).args(BOOT),
        &[&firewall.display().to_string()],
    );
    assert_eq!(std::fs::read_to_string(&firewall).expect("read"), allowed);

    // known_peers: a name whose key is truncated is reported as such, with the file.
    let known = dir.join("known_peers");
    std::fs::write(&known, format!("box {}\n", &server_key[..40])).expect("write");
    fails(
        tool(env!("CARGO_BIN_EXE_hypershell"), home)
            .args(BOOT)
            .args(["box", "--", "true"]),
        &[&known.display().to_string(), "\"box\"", "invalid key"],
    );
    assert_eq!(
        std::fs::read(&peer).expect("read"),
        good.as_bytes(),
        "the key file is untouched"
    );
}

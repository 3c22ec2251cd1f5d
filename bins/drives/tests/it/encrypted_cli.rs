//! Encrypted drives from the command line: `drives touch --encrypted`, `--encryption-key` /
//! `DRIVES_ENCRYPTION_KEY` on the commands, clear errors without the key, and a blind seeder (`drives download`
//! and `drives seed` without the key, on a local testnet) that holds no plaintext and serves a keyed reader
//! after the writer is gone.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{assert_same_tree, fixture, ok, run, Running};

const MARKER: &str = "PLAINTEXT-MARKER-cli-41b7";

/// Files under `dir` containing `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .expect("read")
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

fn line_value(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
        .to_string()
}

#[test]
fn encrypted_drive_blind_seeder_and_keyed_reader() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let src = cwd.join("src");
    fixture(&src, 200_000);
    std::fs::write(src.join("secret.txt"), MARKER.repeat(5000)).expect("write");
    std::fs::write(src.join("note.txt"), MARKER).expect("write");

    let out = ok(cwd, &["touch", "--encrypted", "--storage", "w"]);
    let key = line_value(&out, "New drive: ");
    let enc = line_value(&out, "Encryption key: ");
    assert_eq!(enc.len(), 52, "{out}");
    // The key through the environment variable.
    let status = common::drives()
        .args(["mirror", "./src", &key, "--storage", "w"])
        .env("DRIVES_ENCRYPTION_KEY", &enc)
        .current_dir(cwd)
        .output()
        .expect("mirror");
    assert!(status.status.success(), "{status:?}");
    // Read back with the flag.
    let got = ok(
        cwd,
        &[
            "get",
            &key,
            "/note.txt",
            "--storage",
            "w",
            "--encryption-key",
            &enc,
        ],
    );
    assert!(got.contains(MARKER));
    // Without the key (or with another), a clear error and exit 1; nothing decoded as garbage.
    for extra in [vec![], vec!["--encryption-key", &key]] {
        let mut args = vec!["ls", key.as_str(), "--storage", "w"];
        args.extend(extra.iter().copied());
        let out = run(cwd, &args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("encryption key"), "{err}");
    }
    assert_eq!(
        files_containing(&cwd.join("w"), MARKER.as_bytes()),
        Vec::<String>::new()
    );

    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let writer = Running::spawn(
        cwd,
        &[
            "seed",
            &key,
            "--storage",
            "w",
            "--encryption-key",
            &enc,
            "--bootstrap",
            &bootstrap,
        ],
    );
    writer.wait_for("Announced", Duration::from_secs(60));

    // The blind seeder: download without the key stores every block, encrypted.
    let out = ok(
        cwd,
        &[
            "download",
            &key,
            "--storage",
            "blind",
            "--bootstrap",
            &bootstrap,
        ],
    );
    assert!(out.contains("blocks, encrypted, no key given"), "{out}");
    let blobs: u64 = line_value(&out, "Download finished for blobs (")
        .trim_end_matches(" blocks)")
        .parse()
        .expect("blob blocks");
    assert!(blobs > 3, "{out}");
    let info = ok(cwd, &["info", &key, "--storage", "blind"]);
    assert!(
        info.contains(&format!("Blobs core length: {blobs}/{blobs}")),
        "{info}"
    );
    assert_eq!(
        files_containing(&cwd.join("blind"), MARKER.as_bytes()),
        Vec::<String>::new()
    );
    drop(writer);

    // The writer is gone: the blind seeder alone serves a reader with the key.
    let seeder = Running::spawn(
        cwd,
        &[
            "seed",
            &key,
            "--storage",
            "blind",
            "--bootstrap",
            &bootstrap,
        ],
    );
    seeder.wait_for("Announced", Duration::from_secs(60));
    ok(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--storage",
            "r",
            "--encryption-key",
            &enc,
            "--bootstrap",
            &bootstrap,
            "--timeout",
            "60",
        ],
    );
    assert_same_tree(&src, &cwd.join("copy"));
    // A replica without the key: a clear error once the header is fetched, exit 1.
    let out = run(
        cwd,
        &["ls", &key, "--storage", "r2", "--bootstrap", &bootstrap],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is encrypted: pass its key"), "{err}");
    // Nothing the seeder logged or stored holds plaintext.
    let logged: Vec<String> = seeder.lines.try_iter().collect();
    assert!(!logged.iter().any(|l| l.contains(MARKER)), "{logged:?}");
    drop(seeder);
    assert_eq!(
        files_containing(&cwd.join("blind"), MARKER.as_bytes()),
        Vec::<String>::new()
    );
}

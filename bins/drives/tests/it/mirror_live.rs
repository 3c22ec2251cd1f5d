//! `drives mirror KEY FOLDER --live` follows a writer in another process: the writer is `drives mirror
//! ./src KEY --live` (a folder imported live into the drive, which it seeds), on a local testnet; files
//! added, changed and removed in the writer's folder reach the reader's folder within seconds.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ok, Running};

/// Waits until `path` holds `want` (`None`: does not exist).
fn wait_file(path: &Path, want: Option<&[u8]>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(path).ok().as_deref() != want {
        assert!(
            Instant::now() < deadline,
            "{what}: {} not updated",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn live_mirror_of_a_key_follows_the_writer() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("src/sub")).expect("mkdir");
    std::fs::write(cwd.join("src/a.txt"), b"one").expect("write");
    std::fs::write(cwd.join("src/sub/b.txt"), b"bee").expect("write");
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let out = ok(cwd, &["touch", "--storage", "w"]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    let writer = Running::spawn(
        cwd,
        &[
            "mirror",
            "./src",
            &key,
            "--live",
            "--storage",
            "w",
            "--bootstrap",
            &bootstrap,
        ],
    );
    writer.wait_for("Total files: 2", Duration::from_secs(60));
    let reader = Running::spawn(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--live",
            "--storage",
            "r",
            "--bootstrap",
            &bootstrap,
        ],
    );
    reader.wait_for("Total files: 2", Duration::from_secs(90));
    assert_eq!(std::fs::read(cwd.join("copy/a.txt")).expect("a"), b"one");
    assert_eq!(
        std::fs::read(cwd.join("copy/sub/b.txt")).expect("b"),
        b"bee"
    );

    // The writer's folder changes; the writer's live mirror puts them into the drive; the reader follows.
    let start = Instant::now();
    std::fs::write(cwd.join("src/c.txt"), b"new file").expect("write");
    writer.wait_for("+ /c.txt", Duration::from_secs(30));
    reader.wait_for("+ /c.txt 8B", Duration::from_secs(30));
    wait_file(&cwd.join("copy/c.txt"), Some(b"new file"), "added");
    std::fs::write(cwd.join("src/a.txt"), b"one, longer").expect("write");
    writer.wait_for("~ /a.txt", Duration::from_secs(30));
    reader.wait_for("~ /a.txt", Duration::from_secs(30));
    wait_file(&cwd.join("copy/a.txt"), Some(b"one, longer"), "changed");
    std::fs::remove_file(cwd.join("src/sub/b.txt")).expect("rm");
    writer.wait_for("- /sub/b.txt", Duration::from_secs(30));
    reader.wait_for("- /sub/b.txt", Duration::from_secs(30));
    wait_file(&cwd.join("copy/sub/b.txt"), None, "removed");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "three changes took {took:?}"
    );
}

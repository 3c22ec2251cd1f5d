//! The `drives` binary on folders and local hyperdrives: output as JS drives 2.9.1, hostile drives, a corrupt
//! store, `serve` with ranges, and `mirror --live`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{assert_same_tree, fixture, ok, run, Running};

#[test]
fn folder_to_folder_output_and_idempotence() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("src"), 100_000);
    std::fs::create_dir_all(cwd.join("src/.git")).expect("mkdir");
    std::fs::write(cwd.join("src/.git/HEAD"), b"ref").expect("write");
    let out = ok(cwd, &["mirror", "./src", "./dst"]);
    assert!(out.contains("+ /readme.txt 13B"), "{out}");
    assert!(out.contains("+ /empty 0B"), "{out}");
    assert!(out.ends_with("✔ Total files: 26 (+26 -0 ~0)\n"), "{out}");
    assert!(!cwd.join("dst/.git").exists(), ".git is ignored");
    std::fs::remove_dir_all(cwd.join("src/.git")).expect("rm");
    assert_same_tree(&cwd.join("src"), &cwd.join("dst"));
    let out = ok(cwd, &["mirror", "./src", "./dst"]);
    assert_eq!(out, "✔ Total files: 26 (+0 -0 ~0)\n");
    std::fs::write(cwd.join("src/readme.txt"), b"hello drives, longer\n").expect("write");
    std::fs::remove_file(cwd.join("src/empty")).expect("rm");
    let out = ok(cwd, &["mirror", "./src", "./dst"]);
    assert_eq!(
        out,
        "- /empty 0B\n~ /readme.txt 21B +8B\n\n✔ Total files: 25 (+0 -1 ~1)\n"
    );
    let out = ok(cwd, &["ls", "./dst"]);
    assert!(out.contains("readme.txt (21B)\n"), "{out}");
}

#[test]
fn hyperdrive_round_trip_and_commands() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    fixture(&cwd.join("src"), 300_000);
    ok(cwd, &["init"]);
    assert!(cwd.join(".drives/corestore").is_dir());
    let out = ok(cwd, &["touch"]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string();
    assert_eq!(key.len(), 52);
    let out = ok(cwd, &["mirror", "./src", &key]);
    assert!(
        out.contains("Total files: 26 (+26 -0 ~0) | Version: "),
        "{out}"
    );
    let out = ok(cwd, &["mirror", "./src", &key]);
    assert!(out.contains("Total files: 26 (+0 -0 ~0)"), "{out}");
    ok(cwd, &["mirror", &key, "./out"]);
    assert_same_tree(&cwd.join("src"), &cwd.join("out"));
    let out = ok(cwd, &["get", &key, "/readme.txt"]);
    assert!(out.ends_with("hello drives\n\n"), "{out:?}");
    let out = ok(cwd, &["entry", &key, "/bin/run.sh"]);
    assert!(out.contains("Executable? true"), "{out}");
    let out = ok(cwd, &["put", &key, "/new.txt", "abc"]);
    assert!(out.contains("File saved."));
    let out = ok(cwd, &["ls", &key]);
    assert!(out.contains("new.txt (3B)"), "{out}");
    ok(cwd, &["rm", &key, "/many", "-r"]);
    let out = ok(cwd, &["ls", &key, "-r"]);
    assert!(!out.contains("/many/"), "{out}");
    let hex = hex_of(&key);
    let out = ok(cwd, &["info", &hex]);
    assert!(out.contains(&format!("Key: {key}")), "{out}");
    assert!(out.contains("Writable? true"), "{out}");
    ok(cwd, &["purge", &key]);
}

fn hex_of(z: &str) -> String {
    let k = holepunch::id_encoding::decode(z).expect("key");
    k.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn corrupt_store_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("s/corestore")).expect("mkdir");
    std::fs::write(cwd.join("s/corestore/primary-key"), b"short").expect("write");
    let out = run(cwd, &["touch", "--storage", "s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: cannot open the corestore at"),
        "{err}"
    );
}

#[test]
fn hostile_drive_never_writes_outside() {
    use holepunch::corestore::Corestore;
    use holepunch::drive::{Drive, WriteOptions};
    use holepunch::hyperdrive::{DriveOptions, EntryValue, Hyperdrive};
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let key = rt.block_on(async {
        let store = Corestore::open(cwd.join("s/corestore")).expect("store");
        let drive =
            Hyperdrive::open(&store.namespace("evil"), DriveOptions::default()).expect("drive");
        drive
            .put("/ok.txt", b"fine", WriteOptions::default())
            .await
            .expect("put");
        // A symlink out of the folder, then a file through it; raw keys with `..` written into the bee.
        drive
            .symlink_with("/link", "../../outside", None)
            .expect("symlink");
        let blob = drive
            .entry("/ok.txt")
            .await
            .expect("entry")
            .expect("some")
            .blob;
        let value = EntryValue {
            blob,
            ..EntryValue::default()
        }
        .encode();
        let db = drive.db().sub(holepunch::hyperdrive::FILES_PREFIX);
        db.put(b"/../escape.txt", Some(&value)).expect("raw put");
        db.put(b"/a/../../escape2.txt", Some(&value))
            .expect("raw put");
        db.put(b"/\xff\xfe", Some(&value)).expect("raw put");
        let key = holepunch::id_encoding::encode(&drive.key());
        drive.close();
        key
    });
    let target = cwd.join("deep/target");
    std::fs::create_dir_all(&target).expect("mkdir");
    let out = run(cwd, &["mirror", &key, "./deep/target", "--storage", "s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(std::fs::read(target.join("ok.txt")).expect("ok"), b"fine");
    assert!(
        !target.join("link").exists() && std::fs::symlink_metadata(target.join("link")).is_err(),
        "escaping link refused"
    );
    assert!(stderr.contains("Skipped /link"), "{stderr}");
    for p in [
        "escape.txt",
        "escape2.txt",
        "deep/escape.txt",
        "deep/escape2.txt",
        "outside",
    ] {
        assert!(!cwd.join(p).exists(), "{p} written outside");
    }
}

#[test]
fn serve_answers_ranges() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("site")).expect("mkdir");
    let body = common::data(5, 100_000);
    std::fs::write(cwd.join("site/video.mp4"), &body).expect("write");
    std::fs::write(cwd.join("site/index.html"), b"<h1>hi</h1>").expect("write");
    let server = Running::spawn(
        cwd,
        &["serve", "./site", "--host", "127.0.0.1", "--port", "0"],
    );
    let line = server.wait_for("HTTP server on", Duration::from_secs(30));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let get = |req: &str| -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        (
            String::from_utf8_lossy(&buf[..split]).into_owned(),
            buf[split..].to_vec(),
        )
    };
    let (head, b) = get(
        "GET /video.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-1999\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 1000-1999/100000"),
        "{head}"
    );
    assert!(head.contains("Content-Type: video/mp4"), "{head}");
    assert_eq!(b, &body[1000..2000]);
    let (head, b) = get("GET /video.mp4 HTTP/1.1\r\nRange: bytes=-10\r\nConnection: close\r\n\r\n");
    assert!(
        head.contains("Content-Range: bytes 99990-99999/100000"),
        "{head}"
    );
    assert_eq!(b, &body[99990..]);
    let (head, b) =
        get("GET /video.mp4 HTTP/1.1\r\nRange: bytes=99000-\r\nConnection: close\r\n\r\n");
    assert!(head.contains("Content-Length: 1000"), "{head}");
    assert_eq!(b.len(), 1000);
    let (head, b) = get("HEAD /index.html HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Content-Type: text/html") && head.contains("Content-Length: 11"),
        "{head}"
    );
    assert!(b.is_empty());
    let (head, b) = get("GET /index.html HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(head.contains("Accept-Ranges: bytes"), "{head}");
    assert_eq!(b, b"<h1>hi</h1>");
    let (head, _) = get("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = get("POST /index.html HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[test]
fn live_mirror_follows_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    std::fs::create_dir_all(cwd.join("src")).expect("mkdir");
    std::fs::write(cwd.join("src/a.txt"), b"one").expect("write");
    let live = Running::spawn(cwd, &["mirror", "./src", "./dst", "--live"]);
    live.wait_for("Total files: 1", Duration::from_secs(30));
    std::fs::write(cwd.join("src/b.txt"), b"two").expect("write");
    live.wait_for("+ /b.txt 3B", Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read(cwd.join("dst/b.txt")).ok().as_deref() != Some(&b"two"[..]) {
        assert!(std::time::Instant::now() < deadline, "b.txt not mirrored");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(cwd.join("src/a.txt")).expect("rm");
    live.wait_for("- /a.txt 3B", Duration::from_secs(10));
}

//! `drives serve KEY` with `?checkout=N` and `?drive=KEY`, answered as serve-drive 1 (drives 2.9.1) answers
//! them: older versions, the empty drive for `N <= 1`, 500 for a non-number, 404 for a version that does not
//! come, and the drive named by its key.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{ok, Running};

fn get(port: u16, target: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, buf[split..].to_vec())
}

#[test]
fn serve_checkout_and_drive_parameters() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    ok(cwd, &["init"]);
    let out = ok(cwd, &["touch"]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string();
    ok(cwd, &["put", &key, "/a.txt", "one"]);
    ok(cwd, &["put", &key, "/a.txt", "two"]);
    ok(cwd, &["put", &key, "/b.txt", "bee"]);
    // A dead loopback bootstrap keeps the swarm off the public network.
    let server = Running::spawn(
        cwd,
        &[
            "serve",
            &key,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--bootstrap",
            "127.0.0.1:9",
        ],
    );
    let line = server.wait_for("HTTP server on", Duration::from_secs(30));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    // Version 1 is the header; the puts are versions 2, 3 and 4.
    assert_eq!(get(port, "/a.txt"), (200, b"two".to_vec()));
    assert_eq!(get(port, "/a.txt?checkout=2"), (200, b"one".to_vec()));
    assert_eq!(get(port, "/a.txt?checkout=3"), (200, b"two".to_vec()));
    assert_eq!(get(port, "/b.txt?checkout=3"), (404, b"ENOENT".to_vec()));
    assert_eq!(get(port, "/b.txt?checkout=4"), (200, b"bee".to_vec()));
    assert_eq!(get(port, "/a.txt?checkout="), (200, b"two".to_vec()));
    assert_eq!(get(port, "/a.txt?checkout=2.5"), (200, b"one".to_vec()));
    assert_eq!(get(port, "/a.txt?checkout=02"), (200, b"one".to_vec()));
    for empty in ["0", "1", "-1"] {
        assert_eq!(
            get(port, &format!("/a.txt?checkout={empty}")),
            (404, b"ENOENT".to_vec()),
            "checkout={empty}"
        );
    }
    assert_eq!(
        get(port, "/a.txt?checkout=abc"),
        (500, b"ERR_ASSERTION".to_vec())
    );
    assert_eq!(
        get(port, "/a.txt?checkout=100"),
        (404, b"SNAPSHOT_NOT_AVAILABLE".to_vec())
    );
    assert_eq!(
        get(port, &format!("/a.txt?drive={key}&checkout=2")),
        (200, b"one".to_vec())
    );
    assert_eq!(
        get(port, "/a.txt?drive=someoneelse"),
        (404, b"DRIVE_NOT_FOUND".to_vec())
    );
}

//! The `hypercore-cat` example (holepunch::hyperswarm + replicator) on a local JS HyperDHT testnet: JS
//! (hyperswarm 4.17.2 + hypercore) seeds ->
//! `hypercore-cat get` writes the blocks byte-exact; `hypercore-cat seed` -> a JS hyperswarm reader gets the
//! same bytes; and Rust seed -> Rust get.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use holepunch::crypto::hash;
use interop::{built, node, JsTestnet};

const T: Duration = Duration::from_secs(90);

fn tmp(name: &str) -> PathBuf {
    interop::scratch_dir(&format!("hc-cat-{name}"))
}

fn block(i: u64) -> Vec<u8> {
    format!("block number {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

fn cat() -> Command {
    Command::new(built("debug", "examples/hypercore-cat"))
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hypercore-cat seed` with `input` on stdin; returns it and the key it printed.
fn rust_seed(testnet: &JsTestnet, input: Vec<u8>) -> (Proc, String) {
    let dir = tmp("seed");
    let mut child = cat()
        .args([
            "seed",
            dir.to_str().expect("utf8"),
            "--bootstrap",
            &testnet.bootstrap_arg(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hypercore-cat seed");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let key = rx.recv_timeout(T).expect("seed printed its key");
    let key = key.trim().to_string();
    assert_eq!(key.len(), 64, "key line {key:?}");
    (Proc(child), key)
}

/// Runs `hypercore-cat get KEY` and returns its stdout.
fn rust_get(testnet: &JsTestnet, key: &str) -> Vec<u8> {
    let dir = tmp("get");
    let mut child = Proc(
        cat()
            .args([
                "get",
                key,
                dir.to_str().expect("utf8"),
                "--bootstrap",
                &testnet.bootstrap_arg(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hypercore-cat get"),
    );
    let mut stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(T).expect("get finished in time");
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "hypercore-cat get exited with {status}");
    out
}

#[test]
fn js_seed_to_rust_get() {
    let testnet = JsTestnet::start(5);
    let dir = tmp("js-seed");
    let mut js = node(
        "hypercore_swarm.js",
        &[
            &testnet.bootstrap_arg(),
            "seed",
            dir.to_str().expect("utf8"),
            "300",
        ],
    );
    let line = js.line(T);
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    let key = v["key"].as_str().expect("key").to_string();
    let out = rust_get(&testnet, &key);
    let expected: Vec<u8> = (0..300).flat_map(block).collect();
    assert_eq!(out.len(), expected.len());
    assert!(out == expected, "bytes differ");
}

#[test]
fn rust_seed_to_js_get() {
    let testnet = JsTestnet::start(5);
    // Not a multiple of 64 KiB: the last block is short.
    let input: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 251) as u8).collect();
    let (_seed, key) = rust_seed(&testnet, input.clone());
    let dir = tmp("js-get");
    let mut js = node(
        "hypercore_swarm.js",
        &[
            &testnet.bootstrap_arg(),
            "get",
            &key,
            dir.to_str().expect("utf8"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&js.line(T)).expect("json");
    assert_eq!(v["length"], 16); // 15 full blocks of 64 KiB and one of 16963 bytes
    assert_eq!(
        v["hash"].as_str(),
        Some(hex::encode(hash(&[&input])).as_str())
    );
}

#[test]
fn rust_seed_to_rust_get() {
    let testnet = JsTestnet::start(5);
    let input: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (_seed, key) = rust_seed(&testnet, input.clone());
    let out = rust_get(&testnet, &key);
    assert!(
        out == input,
        "bytes differ ({} vs {})",
        out.len(),
        input.len()
    );
}

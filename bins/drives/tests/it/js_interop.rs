//! `drives` against JS hyperdrive 13 on a local JS testnet, both ways, file for file (bytes, executable bit,
//! empty files, nested folders, unicode names, a file of tens of MB).

use crate::common;

use std::time::Duration;

use common::{assert_same_tree, fixture, ok, Running};

const BIG: usize = 24 * 1024 * 1024;

#[test]
fn js_seeds_rust_mirrors() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let src = cwd.join("src");
    fixture(&src, BIG);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let store = cwd.join("js-store");
    let mut js = interop::node(
        "drives_peer.js",
        &[
            &bootstrap,
            "seed",
            store.to_str().expect("utf8"),
            src.to_str().expect("utf8"),
        ],
    );
    let line = js.line(Duration::from_secs(120));
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    let key = v["key"].as_str().expect("key").to_string();
    let out = ok(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--storage",
            "rs",
            "--bootstrap",
            &bootstrap,
        ],
    );
    assert!(out.contains("Total files: 26 (+26 -0 ~0)"), "{out}");
    assert_same_tree(&src, &cwd.join("copy"));
    // A second run compares and changes nothing.
    let out = ok(
        cwd,
        &[
            "mirror",
            &key,
            "./copy",
            "--storage",
            "rs",
            "--bootstrap",
            &bootstrap,
        ],
    );
    assert!(out.contains("Total files: 26 (+0 -0 ~0)"), "{out}");
    js.close_stdin();
}

#[test]
fn rust_seeds_js_mirrors() {
    interop::require_js();
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    let src = cwd.join("src");
    fixture(&src, BIG);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let out = ok(cwd, &["touch", "--storage", "rs"]);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key")
        .to_string();
    ok(cwd, &["mirror", "./src", &key, "--storage", "rs"]);
    let seed = Running::spawn(
        cwd,
        &["seed", &key, "--storage", "rs", "--bootstrap", &bootstrap],
    );
    seed.wait_for("Announced", Duration::from_secs(60));
    let copy = cwd.join("copy");
    let store = cwd.join("js-store");
    let mut js = interop::node(
        "drives_peer.js",
        &[
            &bootstrap,
            "mirror",
            &key,
            store.to_str().expect("utf8"),
            copy.to_str().expect("utf8"),
        ],
    );
    let line = js.line(Duration::from_secs(180));
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["files"], 26, "{line}");
    assert_same_tree(&src, &copy);
}

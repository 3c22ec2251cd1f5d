//! The committed JS vectors must be exactly what the generator scripts produce with the pinned packages in
//! `tests/interop/node_modules`: regenerates them into a temporary directory with node and compares.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn committed_vectors_match_the_generators() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let interop = root.join("../tests/interop");
    let out = std::env::temp_dir().join(format!("holepunch-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    for script in ["js/gen-vectors.js", "js/gen-crypto-vectors.js"] {
        let status = Command::new("node")
            .arg(script)
            .env("VECTORS_DIR", &out)
            .current_dir(&interop)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn node (Node 20 must be on PATH)");
        assert!(status.success(), "{script} failed: {status}");
    }
    for file in [
        "compact_encoding.json",
        "crypto.json",
        "id_encoding.json",
        "base32.json",
    ] {
        let fresh = std::fs::read(out.join(file)).expect("generated file");
        let committed =
            std::fs::read(root.join("tests/vectors").join(file)).expect("committed file");
        assert!(
            fresh == committed,
            "shared/tests/vectors/{file} is stale: run the generators in tests/interop/js"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

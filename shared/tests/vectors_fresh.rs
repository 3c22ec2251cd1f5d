//! The committed JS vectors must be exactly what the generator scripts produce with the pinned packages in
//! `tests/interop/node_modules`: regenerates them into a temporary directory with node and compares.

use std::path::PathBuf;
use std::time::Duration;

#[test]
fn committed_vectors_match_the_generators() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("holepunch-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    for script in ["gen-vectors.js", "gen-crypto-vectors.js"] {
        // No timeout before the harness: bounded generously now.
        let dir = out.to_str().expect("utf-8 temp dir");
        let status = interop::run(
            script,
            &[],
            &[("VECTORS_DIR", dir)],
            Duration::from_secs(600),
        )
        .status;
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

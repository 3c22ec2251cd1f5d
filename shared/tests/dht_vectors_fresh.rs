//! The committed dht-rpc / hyperdht vectors must be exactly what the generator scripts print with the pinned
//! packages in `tests/interop/node_modules`.

use std::path::PathBuf;
use std::time::Duration;

#[test]
fn committed_dht_vectors_match_the_generators() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (script, file) in [
        ("dht_vectors.js", "dht.txt"),
        ("dht_table_vectors.js", "dht_table.txt"),
    ] {
        // No timeout before the harness: bounded generously now.
        let out = interop::run(script, &[], &[], Duration::from_secs(600));
        assert!(out.status.success(), "{script} failed: {}", out.status);
        let committed =
            std::fs::read(root.join("tests/vectors").join(file)).expect("committed file");
        assert!(
            out.stdout == committed,
            "shared/tests/vectors/{file} is stale: run `node js/{script} > ../../shared/tests/vectors/{file}` in tests/interop"
        );
    }
}

//! The committed dht-rpc / hyperdht vectors must be exactly what the generator scripts print with the pinned
//! packages in `tests/interop/node_modules`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn committed_dht_vectors_match_the_generators() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let interop = root.join("../tests/interop");
    for (script, file) in [
        ("js/dht_vectors.js", "dht.txt"),
        ("js/dht_table_vectors.js", "dht_table.txt"),
    ] {
        let out = Command::new("node")
            .arg(script)
            .current_dir(&interop)
            .output()
            .expect("spawn node (Node 20 must be on PATH)");
        assert!(out.status.success(), "{script} failed: {}", out.status);
        let committed =
            std::fs::read(root.join("tests/vectors").join(file)).expect("committed file");
        assert!(
            out.stdout == committed,
            "shared/tests/vectors/{file} is stale: run `node {script} > ../../shared/tests/vectors/{file}` in tests/interop"
        );
    }
}

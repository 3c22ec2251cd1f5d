//! The two bases the autobase fuzz targets start from: `a` creates the base and adds `w` (as an indexer or
//! not), whose local core then takes the fuzzer's blocks.

use std::path::PathBuf;

use holepunch::autobase::base::{Autobase, AutobaseOptions};
use holepunch::autobase::kv::{Kv, KvOp};
use holepunch::corestore::Corestore;

pub type Base = Autobase<Kv>;

/// A fresh folder `name-<pid>` in the temporary directory, with `a` (the creator) and `w` (a writer `a` added).
pub fn pair(name: &str, indexer: bool) -> (PathBuf, Base, Base) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store =
        |n: &str, seed: u8| Corestore::open_with_primary_key(dir.join(n), [seed; 32]).unwrap();
    let mut a = Autobase::open(store("a", 1), Kv, AutobaseOptions::default()).unwrap();
    let w = Autobase::open(
        store("w", 2),
        Kv,
        AutobaseOptions {
            bootstrap: Some(a.key()),
            ..Default::default()
        },
    )
    .unwrap();
    let add = KvOp::AddWriter {
        key: w.local_key(),
        indexer,
    };
    a.append(Some(&add.to_json())).unwrap();
    (dir, a, w)
}

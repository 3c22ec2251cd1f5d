//! The writer of the autobase crash test (`tests/it/autobase_crash.rs`): opens (or creates) a one-writer
//! autobase-kv base over the corestore in DIR, then appends `put k<n> v<n>` (n = the local writer's length)
//! forever, printing `ok LENGTH` after each returned append, until the test kills it with SIGKILL.

use std::io::Write;
use std::path::PathBuf;

use holepunch_cores::autobase::base::{Autobase, AutobaseOptions};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::corestore::Corestore;

fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: autobase_crash_writer DIR"),
    );
    let store = Corestore::open_with_primary_key(&dir, [1; 32]).expect("store");
    let mut base = Autobase::open(store, Kv, AutobaseOptions::default()).expect("open");
    base.update().expect("update");
    let mut out = std::io::stdout().lock();
    loop {
        let n = base.local().length();
        let op = KvOp::Put {
            key: format!("k{n}"),
            value: format!("v{n}"),
        };
        base.append(Some(&op.to_json())).expect("append");
        writeln!(out, "ok {}", base.local().length()).expect("stdout");
        out.flush().expect("flush");
    }
}

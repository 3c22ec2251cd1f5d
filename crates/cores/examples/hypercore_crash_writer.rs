//! The writer of the hypercore crash test (`tests/it/hypercore_crash.rs`): opens or creates the core in DIR,
//! then appends batches forever (truncating a little every few batches), printing `ok LENGTH FORK` after each
//! returned call, until the test kills it with SIGKILL. `HYPERCORE_CRASH_NOSYNC` set: no fdatasync.

use std::io::Write;
use std::path::PathBuf;

use holepunch_cores::hypercore::{Durability, Hypercore};
use rand::{Rng, SeedableRng};

#[path = "../tests/it/crash_blocks.rs"]
mod crash_blocks;
use crash_blocks::{block, key_pair};

/// The writer: appends batches forever, truncating a little every few batches, reporting each returned call.
fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: hypercore_crash_writer DIR"),
    );
    let core = if dir.join("meta").exists() {
        Hypercore::open(&dir).expect("open")
    } else {
        Hypercore::create(&dir, key_pair()).expect("create")
    };
    if std::env::var("HYPERCORE_CRASH_NOSYNC").is_ok() {
        // kill -9 keeps what reached the OS, so the log must be whole without fdatasync too.
        core.set_durability(Durability::Process);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id().into());
    let mut out = std::io::stdout().lock();
    loop {
        if rng.gen_ratio(1, 8) && core.length() > 0 {
            let to = core.length().saturating_sub(rng.gen_range(1..5));
            core.truncate(to).expect("truncate");
        } else {
            let start = core.length();
            let fork = core.fork();
            let n = rng.gen_range(1..100u64);
            let blocks: Vec<Vec<u8>> = (start..start + n).map(|i| block(i, fork)).collect();
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            core.append(&refs).expect("append");
        }
        writeln!(out, "ok {} {}", core.length(), core.fork()).expect("stdout");
        out.flush().expect("flush");
    }
}

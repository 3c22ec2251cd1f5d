//! Replication throughput in one process, without network or encryption: a writer core of `MIB` MiB in
//! 64 KiB blocks, a reader downloading all of it over an in-memory protomux pair. Isolates the replicator,
//! proofs and storage from the transport.
//!
//! Usage: `cargo run --release -p holepunch --example hypercore_replicate_bench -- [MIB] [DIR] [sync]`
//! (`sync`: the reader syncs every stored block, [`Durability::Sync`]; default [`Durability::Process`].)

use std::time::Instant;

use holepunch::crypto::KeyPair;
use holepunch::hypercore::replicator::{replicate, Replicator};
use holepunch::hypercore::{Durability, Hypercore};
use holepunch::protomux::memory_pair;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join(format!("hc-rbench-{}", std::process::id())),
        Into::into,
    );
    let durability = match args.next().as_deref() {
        Some("sync") => Durability::Sync,
        _ => Durability::Process,
    };
    let _ = std::fs::remove_dir_all(&dir);
    let w = Hypercore::create(dir.join("w"), KeyPair::generate())?;
    w.set_durability(Durability::Process);
    let block = vec![7u8; 64 * 1024];
    for _ in 0..mib / 4 {
        w.append(&[&block[..]; 64])?;
    }
    let r = Hypercore::create_reader(dir.join("r"), w.key(), None)?;
    r.set_durability(durability);
    let (rw, rr) = (Replicator::new(w.clone()), Replicator::new(r.clone()));
    let (ta, tb) = memory_pair();
    let hh = [1u8; 64];
    let t0 = Instant::now();
    let _a = replicate(ta, true, &hh, std::slice::from_ref(&rw));
    let _b = replicate(tb, false, &hh, std::slice::from_ref(&rr));
    let len = rr.update().await;
    rr.download(0, len).await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} blocks, {mib} MiB in {secs:.2} s = {:.1} MB/s",
        len,
        mib as f64 * 1.048576 / secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

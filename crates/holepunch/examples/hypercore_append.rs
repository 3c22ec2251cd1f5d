//! Append benchmark: appends `--batches` batches of `--batch` blocks of `--size` bytes to a new core on disk
//! (every append durable: fdatasync before it returns) and prints appends/s and the CPU time (user+sys of the
//! process) the appends took. Used by `benches/hypercore-append.sh`.

use std::time::Instant;

use clap::Parser;
use holepunch::crypto::KeyPair;
use holepunch::hypercore::{Durability, Hypercore};

#[derive(Parser, Debug)]
struct Args {
    /// Directory for the core (must not hold one).
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Number of append calls.
    #[arg(long, default_value_t = 200)]
    batches: u64,
    /// Blocks per append call.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Bytes per block.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Skip the fdatasync per append (durable against process crashes only, like JS hypercore's RocksDB
    /// writes).
    #[arg(long)]
    no_sync: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let core = Hypercore::create(&args.dir, KeyPair::from_seed(&[7; 32]))?;
    if args.no_sync {
        core.set_durability(Durability::Process);
    }
    let block = vec![0xabu8; args.size];
    let blocks: Vec<&[u8]> = (0..args.batch).map(|_| block.as_slice()).collect();
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    for _ in 0..args.batches {
        core.append(&blocks)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let n = args.batches * args.batch as u64;
    println!(
        "rust{} blocks={n} batch={} size={} seconds={secs:.3} cpu_seconds={cpu:.3} appends_per_sec={:.0}",
        if args.no_sync { "-nosync" } else { "" },
        args.batch,
        args.size,
        n as f64 / secs
    );
    Ok(())
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

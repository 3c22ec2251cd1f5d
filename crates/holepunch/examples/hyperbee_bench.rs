//! Hyperbee throughput: N single puts (one block each), N puts in batches of 1000, then N gets of random
//! existing keys, on a core on disk with JS's durability (written to the OS, not fsynced). Used by
//! `benches/hyperbee.sh`, next to `tests/interop/js/bench-hyperbee.js` doing the same in JS.
//!
//! usage: hyperbee_bench DIR [N]      prints `puts_per_sec=… batch_puts_per_sec=… gets_per_sec=…`

use std::time::Instant;

use holepunch::crypto::KeyPair;
use holepunch::hyperbee::Hyperbee;
use holepunch::hypercore::{Durability, Hypercore};

fn key(i: u64) -> Vec<u8> {
    // Spread over the key space so inserts land all over the tree, as the JS bench does.
    format!("key-{:08}", i.wrapping_mul(2_654_435_761) % 100_000_000).into_bytes()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: hyperbee_bench DIR [N]"))?;
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let value = vec![0x61u8; 64];

    let core = Hypercore::create(format!("{dir}/single"), KeyPair::from_seed(&[7; 32]))?;
    core.set_durability(Durability::Process);
    let bee = Hyperbee::new(core);
    let t = Instant::now();
    for i in 0..n {
        bee.put(&key(i), Some(&value))?;
    }
    let puts = n as f64 / t.elapsed().as_secs_f64();

    let core = Hypercore::create(format!("{dir}/batch"), KeyPair::from_seed(&[8; 32]))?;
    core.set_durability(Durability::Process);
    let bee = Hyperbee::new(core);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = bee.batch()?;
        for _ in 0..1000.min(n - i) {
            b.put(&key(i), Some(&value))?;
            i += 1;
        }
        b.flush()?;
    }
    let batch_puts = n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut found = 0u64;
    for j in 0..n {
        let i = j.wrapping_mul(7919) % n;
        if bee.get(&key(i))?.is_some() {
            found += 1;
        }
    }
    let gets = n as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(found == n, "only {found} of {n} keys found");
    println!(
        "impl=rust n={n} puts_per_sec={puts:.0} batch_puts_per_sec={batch_puts:.0} gets_per_sec={gets:.0}"
    );
    Ok(())
}

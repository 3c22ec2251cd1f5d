//! Autobase apply throughput (issue #16): how fast a peer applies N nodes of three writers.
//!
//! Three writers on three corestores in one process, A (the creator, an indexer), B (an indexer) and C (not
//! an indexer), replicating in memory (`sync_writers`: every block copied as a verified proof). A adds B and
//! C; then each writer appends N/3 small autobase-kv puts (`{"op":"put","key":"<writer>/<i>","value":"<i>"}`)
//! in atomic batches of BATCH (default 100), round by round: each writer one batch, then every base gets the
//! others' new blocks and updates, and the indexers ack one after the other. Then a fourth peer, a reader with a fresh store, gets
//! every writer core and applies the whole DAG in one `update()`: that apply is the measurement (`readerMs`, one
//! per reader, READERS of them, and their median);
//! `writeMs` is the writers' rounds (each writer applies everything too, plus the copies between them).
//!
//! usage: autobase_reader_bench [N=30000] [DIR]
//! prints one JSON line: { n, batch, nodes, writeMs, readerMs: [..], readerMedianMs, readerCpuMs: [..] (user +
//! system CPU time of each reader's apply), readerNodesPerCpuSec (at the median CPU time),
//! systemLength, indexedLength, viewLength, entries }

use std::time::Instant;

use holepunch_cores::autobase::base::copy_core;
use holepunch_cores::hyperbee::RangeOptions;

#[path = "support/autobase_writers.rs"]
mod writers;
use writers::{batch_size, sync_all};

/// This process's CPU time (user + system), in milliseconds: the reader's apply is single-threaded, so on a
/// loaded machine this says more than the wall clock.
fn cpu_ms() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (n, dir, _tmp) = writers::args(30_000)?;
    let mut bases = writers::three_writers(&dir)?;
    let key = bases[0].key();
    let t0 = Instant::now();
    writers::write_rounds(&mut bases, n)?;
    sync_all(&mut bases)?;
    let write = t0.elapsed();

    // readers: every writer core copied into a fresh store, then one apply of the whole DAG; READERS (default
    // 3) of them, one after the other, to see the spread on a loaded machine
    let readers: usize = std::env::var("READERS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut last = None;
    let mut nodes = 0;
    for r in 0..readers {
        let mut reader = writers::open(&dir, &format!("reader{r}"), 4 + r as u8, Some(key))?;
        nodes = 0;
        for base in &bases {
            nodes += copy_core(base.local(), reader.store())?;
        }
        let t1 = Instant::now();
        let c1 = cpu_ms();
        reader.update()?;
        times.push(t1.elapsed().as_millis() as u64);
        cpu.push(cpu_ms() - c1);
        last = Some(reader);
    }
    let reader = last.ok_or("READERS=0")?;
    let entries = reader.view().range_vec(&RangeOptions::default())?.len();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let mut cpu_sorted = cpu.clone();
    cpu_sorted.sort_unstable();
    let cpu_median = cpu_sorted[cpu_sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "n": n,
            "batch": batch_size(),
            "nodes": nodes,
            "writeMs": write.as_millis(),
            "readerMs": times,
            "readerMedianMs": median,
            "readerCpuMs": cpu,
            "readerNodesPerCpuSec": (nodes as f64 * 1000.0 / cpu_median.max(1) as f64).round(),
            "systemLength": reader.system().core_length(),
            "indexedLength": reader.state().indexed_length(),
            "viewLength": reader.view().core().length(),
            "entries": entries,
        })
    );
    Ok(())
}

//! Autobase apply throughput (issue #16): how fast a peer applies N nodes of three writers.
//!
//! Three writers on three corestores in one process, A (the creator, an indexer), B (an indexer) and C (not
//! an indexer), replicating in memory (`sync_writers`: every block copied as a verified proof). A adds B and
//! C; then each writer appends N/3 small autobase-kv puts (`{"op":"put","key":"<writer>/<i>","value":"<i>"}`)
//! in atomic batches of BATCH (default 100), round by round: each writer one batch, then every base gets the
//! others' new blocks and updates, and the indexers ack. Then a fourth peer, a reader with a fresh store, gets
//! every writer core and applies the whole DAG in one `update()`: that apply is the measurement (`readerMs`, one
//! per reader, READERS of them, and their median);
//! `writeMs` is the writers' rounds (each writer applies everything too, plus the copies between them).
//!
//! usage: autobase_reader_bench [N=30000] [DIR]
//! prints one JSON line: { n, batch, nodes, writeMs, readerMs: [..], readerMedianMs, readerCpuMs: [..] (user +
//! system CPU time of each reader's apply), readerNodesPerCpuSec (at the median CPU time),
//! systemLength, indexedLength, viewLength, entries }

use std::time::Instant;

use holepunch_cores::autobase::base::{copy_core, sync_writers, Autobase, AutobaseOptions, Result};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::RangeOptions;

type Base = Autobase<Kv>;

fn batch_size() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(100)
}

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

fn sync_all(bases: &mut [Base]) -> Result<()> {
    for i in 0..bases.len() {
        for j in 0..bases.len() {
            if i != j {
                sync_writers(&bases[i], &bases[j])?;
            }
        }
    }
    for b in bases.iter_mut() {
        b.update()?;
    }
    Ok(())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let open = |name: &str, seed: u8, bootstrap| -> Result<Base> {
        let store = Corestore::open_with_primary_key(dir.join(name), [seed; 32])?;
        Autobase::open(store, Kv, AutobaseOptions { bootstrap })
    };
    let a = open("a", 1, None)?;
    let key = a.key();
    let b = open("b", 2, Some(key))?;
    let c = open("c", 3, Some(key))?;
    let mut bases = vec![a, b, c];

    // setup: B an indexer, C a writer, everyone knows it
    let add = |key: [u8; 32], indexer| KvOp::AddWriter { key, indexer }.to_json();
    let (kb, kc) = (bases[1].local_key(), bases[2].local_key());
    bases[0].append(Some(&add(kb, true)))?;
    bases[0].append(Some(&add(kc, false)))?;
    for _ in 0..20 {
        sync_all(&mut bases)?;
        for b in bases.iter_mut().take(2) {
            b.ack()?;
        }
        if bases.iter().all(|b| b.system().indexers.len() == 2)
            && bases[1].writable()?
            && bases[2].writable()?
        {
            break;
        }
    }
    sync_all(&mut bases)?;

    let share = n / 3;
    let counts = [n - 2 * share, share, share];
    let t0 = Instant::now();
    let mut next = [0usize; 3];
    while next.iter().zip(counts).any(|(i, c)| *i < c) {
        for (w, base) in bases.iter_mut().enumerate() {
            let end = (next[w] + batch_size()).min(counts[w]);
            let values: Vec<Vec<u8>> = (next[w]..end)
                .map(|i| {
                    let k = format!("{i:06}");
                    KvOp::Put {
                        key: format!("{}/{k}", ["a", "b", "c"][w]),
                        value: k,
                    }
                    .to_json()
                })
                .collect();
            next[w] = end;
            if !values.is_empty() {
                let refs: Vec<Option<&[u8]>> = values.iter().map(|v| Some(&v[..])).collect();
                base.append_batch(&refs)?;
            }
        }
        sync_all(&mut bases)?;
        for b in bases.iter_mut().take(2) {
            b.ack()?;
        }
    }
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
        let mut reader = open(&format!("reader{r}"), 4 + r as u8, Some(key))?;
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

//! The three writers both autobase benches start from (`autobase_bench`, `autobase_reader_bench`): A (the
//! creator, an indexer), B (an indexer) and C (not an indexer) on three corestores in one process, replicating
//! in memory (`sync_writers`: every block copied as a verified proof).

use std::path::{Path, PathBuf};

use holepunch_cores::autobase::base::{sync_writers, Autobase, AutobaseOptions, Result};
use holepunch_cores::autobase::kv::{Kv, KvOp};
use holepunch_cores::corestore::Corestore;

pub type Base = Autobase<Kv>;

/// Puts per atomic batch: `BATCH`, default 100.
pub fn batch_size() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(100)
}

/// `[N] [DIR]` from the command line (N defaults to `default_n`, DIR to a temporary folder kept alive by the
/// returned guard).
pub fn args(
    default_n: usize,
) -> std::result::Result<(usize, PathBuf, Option<tempfile::TempDir>), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(default_n);
    Ok(match args.next() {
        Some(d) => (n, PathBuf::from(d), None),
        None => {
            let tmp = tempfile::tempdir()?;
            (n, tmp.path().to_path_buf(), Some(tmp))
        }
    })
}

/// A base in `dir/name` with a store of primary key `[seed; 32]`.
pub fn open(dir: &Path, name: &str, seed: u8, bootstrap: Option<[u8; 32]>) -> Result<Base> {
    let store = Corestore::open_with_primary_key(dir.join(name), [seed; 32])?;
    Autobase::open(
        store,
        Kv,
        AutobaseOptions {
            bootstrap,
            ..Default::default()
        },
    )
}

/// Every base gets every other's writer blocks, then updates.
pub fn sync_all(bases: &mut [Base]) -> Result<()> {
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

/// The indexers ack one after the other, each seeing the other's ack first, as acks on timers in JS mostly
/// do. (Acks that cross, each linking the other's previous node, index nothing in JS either: a script of two
/// indexers acking at once after every sync stays at indexed length 8 in JS autobase 7.28.1.)
pub fn ack_round(bases: &mut [Base]) -> Result<()> {
    for i in 0..2 {
        bases[i].ack()?;
        sync_all(bases)?;
    }
    Ok(())
}

/// A, B and C, with B added as an indexer and C as a writer, once all three see both indexers.
pub fn three_writers(dir: &Path) -> Result<Vec<Base>> {
    let a = open(dir, "a", 1, None)?;
    let key = a.key();
    let b = open(dir, "b", 2, Some(key))?;
    let c = open(dir, "c", 3, Some(key))?;
    let mut bases = vec![a, b, c];
    let add = |key: [u8; 32], indexer| KvOp::AddWriter { key, indexer }.to_json();
    let (kb, kc) = (bases[1].local_key(), bases[2].local_key());
    bases[0].append(Some(&add(kb, true)))?;
    bases[0].append(Some(&add(kc, false)))?;
    loop {
        sync_all(&mut bases)?;
        ack_round(&mut bases)?;
        if bases.iter().all(|b| b.system().indexers.len() == 2)
            && bases[1].writable()?
            && bases[2].writable()?
        {
            break;
        }
    }
    sync_all(&mut bases)?;
    Ok(bases)
}

/// Each writer appends its share of `n` puts (`{"op":"put","key":"<writer>/<i>","value":"<i>"}`) in atomic
/// batches, round by round: each writer one batch, then a sync and an ack round.
pub fn write_rounds(bases: &mut [Base], n: usize) -> Result<()> {
    let share = n / 3;
    let counts = [n - 2 * share, share, share];
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
        sync_all(bases)?;
        ack_round(bases)?;
    }
    Ok(())
}

//! Autobase apply throughput (benches/autobase.sh, issue #16), the workload of `tests/interop/js/bench-autobase.js`
//! on the Rust `Autobase`: three writers on three corestores in one process, A (the creator, indexer), B
//! (indexer) and C (not an indexer), replicating in memory (`sync_writers`: every block copied as a verified
//! proof). Setup: A adds B and C, until all three see both indexers. Then each writer appends N/3 small puts
//! (`{"op":"put","key":"<writer>/<i>","value":"<i>"}`) in atomic batches of 100, round by round: each writer one
//! batch, then every base gets the others' new blocks and updates, and the indexers ack (the JS run acks in the
//! background every 100 ms). The run ends when every view has all N keys, the three agree on the heads, and
//! each view is indexed and signed (the indexers' checkpoints assembled into multi-signatures) to its length.
//!
//! usage: autobase_bench [N=100000] [DIR]
//! prints one JSON line: { n, appendMs, mergeMs, totalMs, viewLength, indexedLength, signedLength, firstKey,
//! lastKey }
//! (`appendMs` covers the rounds, `mergeMs` the syncs after the last append until converged.)

use std::time::Instant;

use holepunch_cores::autobase::base::{sync_writers, Autobase, AutobaseOptions, Result};
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

fn heads(b: &Base) -> Vec<([u8; 32], u64)> {
    let mut h: Vec<_> = b.system().heads.iter().map(|c| (c.key, c.length)).collect();
    h.sort();
    h
}

/// The view length the indexed system state names: what the indexers sign.
fn indexed_view_length(b: &Base) -> Result<u64> {
    let info = b.system().indexed_info(b.state().indexed_length())?;
    Ok(info.views.first().map_or(0, |v| v.length))
}

/// The indexers ack one after the other, each seeing the other's ack first, as acks on timers in JS mostly
/// do. (Acks that cross, each linking the other's previous node, index nothing in JS either: a script of two
/// indexers acking at once after every sync stays at indexed length 8 in JS autobase 7.28.1.)
fn ack_round(bases: &mut [Base]) -> Result<()> {
    for i in 0..2 {
        bases[i].ack()?;
        sync_all(bases)?;
    }
    Ok(())
}

fn count(b: &Base) -> Result<usize> {
    Ok(b.view().range_vec(&RangeOptions::default())?.len())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
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
        ack_round(&mut bases)?;
    }
    let t1 = Instant::now();
    loop {
        sync_all(&mut bases)?;
        ack_round(&mut bases)?;
        sync_all(&mut bases)?;
        let h = heads(&bases[0]);
        let mut converged = true;
        for b in &bases {
            let len = b.view().core().length();
            converged &= heads(b) == h
                && indexed_view_length(b)? == len
                && b.view().core().signed_length() == len;
        }
        if std::env::var_os("DEBUG").is_some() {
            for b in &bases {
                eprintln!(
                    "lin indexers {} size {} tip {} heads {:?} indexed {} / {} view {} / {} signed {} count {}",
                    b.linearizer().indexers().len(),
                    b.linearizer().size(),
                    b.linearizer().tip().len(),
                    heads(b).iter().map(|(k, l)| (k[0], *l)).collect::<Vec<_>>(),
                    b.state().indexed_length(),
                    b.system().core_length(),
                    indexed_view_length(b)?,
                    b.view().core().length(),
                    b.view().core().signed_length(),
                    count(b)?
                );
            }
        }
        if converged
            && bases
                .iter()
                .map(count)
                .collect::<Result<Vec<_>>>()?
                .iter()
                .all(|c| *c == n)
        {
            break;
        }
    }
    let t2 = Instant::now();
    let entries = bases[0].view().range_vec(&RangeOptions::default())?;
    let key_of = |e: Option<&holepunch_cores::hyperbee::Entry>| {
        e.map(|e| String::from_utf8_lossy(&e.key).into_owned())
    };
    let ms = |d: std::time::Duration| d.as_millis();
    println!(
        "{}",
        serde_json::json!({
            "n": n,
            "appendMs": ms(t1 - t0),
            "mergeMs": ms(t2 - t1),
            "totalMs": ms(t2 - t0),
            "viewLength": bases[0].view().core().length(),
            "indexedLength": indexed_view_length(&bases[0])?,
            "signedLength": bases[0].view().core().signed_length(),
            "firstKey": key_of(entries.first()),
            "lastKey": key_of(entries.last()),
        })
    );
    Ok(())
}

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

use holepunch_cores::autobase::base::Result;
use holepunch_cores::hyperbee::RangeOptions;

#[path = "support/autobase_writers.rs"]
mod writers;
use writers::{ack_round, sync_all, Base};

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

fn count(b: &Base) -> Result<usize> {
    Ok(b.view().range_vec(&RangeOptions::default())?.len())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (n, dir, _tmp) = writers::args(100_000)?;
    let mut bases = writers::three_writers(&dir)?;
    let t0 = Instant::now();
    writers::write_rounds(&mut bases, n)?;
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

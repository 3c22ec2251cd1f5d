//! Autobase linearizer throughput: W = 6 writers, the first 3 indexers, R rounds; in each round every writer
//! appends one node, writers in pairs (0-1, 2-3, 4-5) linking the DAG heads as they were before the pair (so
//! each pair's nodes are concurrent; if a whole round were, no indexer node would ever be acked), the indexers' nodes on odd rounds are acks (no value), then the linearizer updates and the
//! indexed nodes are shifted off their writers, as the apply does. Used by `benches/autobase-linearizer.sh`,
//! next to `tests/interop/js/bench-autobase-linearizer.js` doing the same with JS autobase 7.28.1's
//! `Linearizer`.
//!
//! usage: autobase_linearizer_bench [ROUNDS]   prints `nodes=… indexed=… tip=… ms=… nodes_per_sec=…`

use std::time::Instant;

use holepunch::autobase::linearizer::{Head, Linearizer, NodeInput};

const WRITERS: usize = 6;
const INDEXERS: usize = 3;

fn main() -> anyhow::Result<()> {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3000);
    let keys: Vec<[u8; 32]> = (0..WRITERS).map(|i| [i as u8 + 1; 32]).collect();
    let indexers: Vec<Head> = keys[..INDEXERS]
        .iter()
        .map(|&key| Head { key, length: 0 })
        .collect();
    let mut lin = Linearizer::new(&indexers, &[]);
    for &k in &keys {
        lin.add_writer(k, 0, false);
    }
    let mut next = [1u64; WRITERS];
    let mut indexed = 0usize;
    let start = Instant::now();
    for r in 0..rounds {
        let mut heads = Vec::new();
        for (w, &key) in keys.iter().enumerate() {
            if w % 2 == 0 {
                heads = lin.heads();
            }
            let value = if w < INDEXERS && r % 2 == 1 {
                None
            } else {
                Some(vec![r as u8; 8])
            };
            lin.add_node(NodeInput {
                key,
                length: next[w],
                heads: heads.clone(),
                batch: 1,
                value,
                optimistic: false,
            })?;
            next[w] += 1;
        }
        if let Some(u) = lin.update() {
            indexed += u.indexed.len();
            for &n in &u.indexed {
                if lin.node(n).batch == 1 {
                    let key = lin.node_head(n).key;
                    lin.shift_writer(&key);
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let nodes = rounds * WRITERS as u64;
    println!(
        "impl=rust nodes={nodes} indexed={indexed} tip={} ms={:.0} nodes_per_sec={:.0}",
        lin.tip().len(),
        secs * 1000.0,
        nodes as f64 / secs
    );
    Ok(())
}

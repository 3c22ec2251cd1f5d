//! Autobase's linearizer fed writer blocks from arbitrary bytes: the input is a sequence of `u8 op, u16 len,
//! len bytes` records; op `% 8` below 5 decodes the bytes as an `OplogMessage` and adds its node as the next
//! (or, op bits 3-4 set, a skewed) block of writer `op >> 5 & 3` (heads' keys are mapped onto the four writers
//! by their first byte, so they often name real nodes), 5 runs an update, 6 shifts a writer, 7 marks one removed.
//! Never a panic; refused nodes leave the DAG as it was: every node added is indexed once or in the tip.
#![no_main]

use holepunch::autobase::linearizer::{Head, Linearizer, NodeInput};
use holepunch::autobase::messages::OplogMessage;
use libfuzzer_sys::fuzz_target;

fn key(w: u8) -> [u8; 32] {
    [w & 3; 32]
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&n_idx, mut rest)) = bytes.split_first() else {
        return;
    };
    let indexers: Vec<Head> = (0..1 + n_idx % 3)
        .map(|i| Head {
            key: key(i),
            length: 0,
        })
        .collect();
    let mut lin = Linearizer::new(&indexers, &[]);
    for w in 0..4 {
        lin.add_writer(key(w), 0, false);
    }
    let mut next = [1u64; 4];
    let mut added = Vec::new();
    let mut indexed = Vec::new();
    while rest.len() >= 3 {
        let op = rest[0];
        let len = (usize::from(rest[1]) | usize::from(rest[2]) << 8).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let w = (op >> 5) & 3;
        match op % 8 {
            0..=4 => {
                let Ok(msg) = OplogMessage::decode(body) else {
                    continue;
                };
                let length = match (op >> 3) & 3 {
                    0 | 1 => next[w as usize],
                    2 => next[w as usize].saturating_sub(1),
                    _ => next[w as usize] + 1,
                };
                let input = NodeInput {
                    key: key(w),
                    length,
                    heads: msg
                        .node
                        .heads
                        .iter()
                        .map(|h| Head {
                            key: key(h.key[0]),
                            length: h.length,
                        })
                        .collect(),
                    batch: msg.node.batch,
                    value: msg.node.value,
                    optimistic: msg.optimistic,
                };
                if let Ok(ids) = lin.add_node(input) {
                    next[w as usize] = length + 1;
                    added.extend(ids);
                }
            }
            5 => {
                if let Some(u) = lin.update() {
                    assert_eq!(u.length, u.indexed.len() + u.tip.len());
                    for &n in &u.indexed {
                        let _ = lin.causal_dependencies(n);
                    }
                    indexed.extend(u.indexed);
                }
                for i in 0..4 {
                    let _ = lin.should_ack(&key(i), op & 8 != 0);
                }
            }
            6 => {
                lin.shift_writer(&key(w));
            }
            _ => lin.set_removed(&key(w), true),
        }
    }
    if let Some(u) = lin.update() {
        indexed.extend(u.indexed);
    }
    let mut all: Vec<usize> = indexed.iter().chain(lin.tip()).copied().collect();
    all.sort_unstable();
    added.sort_unstable();
    assert_eq!(all, added);
});

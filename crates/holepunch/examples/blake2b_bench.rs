//! BLAKE2b micro-benchmark: nanoseconds per hypercore leaf hash (`data_hash`) of a 64 KiB and a 1 KiB block, per
//! batch of leaf hashes (`data_hashes`: SIMD lanes, two threads over 512 KiB),
//! and per `parent_hash`. Used to choose the BLAKE2b implementation behind `holepunch::crypto`.

use std::hint::black_box;
use std::time::Instant;

use holepunch::crypto::{data_hash, parent_hash, TreeNode};

/// Prints the fastest of 30 rounds of `iters / 30` calls: the minimum is what survives a loaded machine.
fn time(label: &str, iters: u32, mut f: impl FnMut()) {
    f();
    let per_round = (iters / 30).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..30 {
        let start = Instant::now();
        for _ in 0..per_round {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(per_round));
    }
    println!("{label}: {best:.0} ns");
}

fn main() {
    let big = vec![0x5au8; 64 * 1024];
    let small = vec![0xa5u8; 1024];
    let a = TreeNode {
        index: 0,
        size: 1024,
        hash: [1; 32],
    };
    let b = TreeNode {
        index: 2,
        size: 1024,
        hash: [2; 32],
    };
    time("data_hash 64 KiB", 2000, || {
        black_box(data_hash(black_box(&big)));
    });
    time("blake2 crate, 64 KiB", 2000, || {
        use blake2::digest::{consts::U32, Digest};
        let mut h = blake2::Blake2b::<U32>::new();
        h.update([0u8]);
        h.update((big.len() as u64).to_le_bytes());
        h.update(black_box(&big));
        black_box(h.finalize());
    });
    time("blake2b_simd crate, 64 KiB", 2000, || {
        let mut h = blake2b_simd::Params::new().hash_length(32).to_state();
        h.update(&[0u8]);
        h.update(&(big.len() as u64).to_le_bytes());
        h.update(black_box(&big));
        black_box(h.finalize());
    });
    let blocks: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 64 * 1024]).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    time(
        "data_hash, 64 blocks of 64 KiB, one by one (per block)",
        3000,
        || {
            for b in &refs {
                black_box(data_hash(black_box(b)));
            }
        },
    );
    time(
        "data_hashes, 64 blocks of 64 KiB (SIMD lanes, 2 threads)",
        3000,
        || {
            black_box(holepunch::crypto::data_hashes(black_box(&refs)));
        },
    );
    time("data_hash, 7 blocks of 64 KiB, one by one", 3000, || {
        for b in &refs[..7] {
            black_box(data_hash(black_box(b)));
        }
    });
    time(
        "data_hashes, 7 blocks of 64 KiB (SIMD lanes, one thread)",
        3000,
        || {
            black_box(holepunch::crypto::data_hashes(black_box(&refs[..7])));
        },
    );
    time("data_hash 1 KiB", 100_000, || {
        black_box(data_hash(black_box(&small)));
    });
    time("parent_hash", 200_000, || {
        black_box(parent_hash(black_box(&a), black_box(&b)));
    });
}

//! The blocks and key pair of the crash test, shared by its writer process (`examples/hypercore_crash_writer.rs`,
//! which includes this file) and the checks in `hypercore_crash.rs`.

use holepunch_wire::crypto::KeyPair;
use rand::{Rng, SeedableRng};

pub fn key_pair() -> KeyPair {
    KeyPair::from_seed(&[42; 32])
}

/// Block `index` written on `fork`: a header naming both, then bytes derived from them.
pub fn block(index: u64, fork: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(index.wrapping_mul(1_000_003) ^ fork);
    let len = rng.gen_range(0..2048usize);
    let mut out = Vec::with_capacity(16 + len);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&fork.to_le_bytes());
    out.extend((0..len).map(|_| rng.gen::<u8>()));
    out
}

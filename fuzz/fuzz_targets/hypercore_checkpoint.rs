//! A native hypercore's index checkpoint (`index` beside its log) from arbitrary bytes (a damaged or foreign
//! file): decoding never panics. The bytes are sealed with their CRC-32 first so every body reaches the decoder,
//! and tried unsealed too.
#![no_main]

use holepunch::hypercore::checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = checkpoint::validate(bytes);
    let _ = checkpoint::validate(&checkpoint::seal(bytes.to_vec()));
});

//! Hyperblobs block maps (`{ uint version = 0, array { uint index, uint byteLength } }`, what a `blockMap: true`
//! blob's blocks hold) from arbitrary bytes: decoding never panics, and an accepted map re-encodes (in blocks
//! of 8192 entries, as JS writes them) to blocks that decode back to the same entries.
#![no_main]

use holepunch::hyperblobs::cdc::{encode_block_map, MAP_BLOCK_ENTRIES};
use holepunch::hyperblobs::decode_block_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(list) = decode_block_map(bytes) else {
        return;
    };
    let blocks = encode_block_map(&list);
    assert_eq!(blocks.len(), list.len().div_ceil(MAP_BLOCK_ENTRIES));
    let mut back = Vec::new();
    for b in &blocks {
        back.extend(decode_block_map(b).expect("re-encoded map decodes"));
    }
    assert_eq!(back, list);
});

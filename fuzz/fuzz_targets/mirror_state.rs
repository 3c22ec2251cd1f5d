//! The drives mirror's quick-check state file (`mirror_state::decode`) from arbitrary bytes: decoding never
//! panics, and what decodes re-encodes to the same bytes (the encoding is canonical: keys sorted, one
//! checksum).
#![no_main]

use holepunch::mirror_state::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(records) = decode(bytes) {
        let again = encode(&records);
        assert_eq!(decode(&again).as_ref(), Some(&records));
    }
});

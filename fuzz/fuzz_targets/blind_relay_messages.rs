#![no_main]
//! blind-relay's `pair` and `unpair` decoders on arbitrary bytes: never panic, and what decodes re-encodes to
//! something that decodes to the same message.
use holepunch::blind_relay::{Pair, Unpair};
use holepunch::compact_encoding::{Decode, Encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Pair::from_bytes(data) {
        assert_eq!(Pair::from_bytes_exact(&m.to_bytes()).ok(), Some(m));
    }
    if let Ok(m) = Unpair::from_bytes(data) {
        assert_eq!(Unpair::from_bytes_exact(&m.to_bytes()).ok(), Some(m));
    }
});

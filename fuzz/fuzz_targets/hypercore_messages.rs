//! Hypercore wire messages (`request`, `data`, manifest, multi-signature) from arbitrary bytes: decoding never
//! panics, and whatever decodes re-encodes to bytes that decode to the same value.
#![no_main]

use holepunch::compact_encoding::{Decode, Encode};
use holepunch::hypercore::messages::{Data, Manifest, MultiSignature, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(d) = Data::from_bytes(bytes) {
        assert_eq!(Data::from_bytes_exact(&d.to_bytes()), Ok(d));
    }
    if let Ok(r) = Request::from_bytes(bytes) {
        assert_eq!(Request::from_bytes_exact(&r.to_bytes()), Ok(r));
    }
    if let Ok(m) = Manifest::from_bytes(bytes) {
        assert_eq!(Manifest::from_bytes_exact(&m.to_bytes()), Ok(m));
    }
    if let Ok(s) = MultiSignature::from_bytes(bytes) {
        assert_eq!(MultiSignature::from_bytes_exact(&s.to_bytes()), Ok(s));
    }
});

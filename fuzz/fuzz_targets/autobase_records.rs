//! The smaller autobase records from arbitrary bytes, each decoder on the whole input: `Checkpoint`, `Digest`,
//! `Node`, `Trace` (the framed parts of a writer block), `LinearizerUpdate` and linearizer keys (local state),
//! `ManifestData` (view/anchor manifests) and `EncryptionDescriptor`. Decoding never panics; accepted values
//! re-encode to bytes that decode to the same value.
#![no_main]

use holepunch::autobase::messages::{
    decode_linearizer_key, encode_linearizer_key, Checkpoint, Digest, EncryptionDescriptor,
    LinearizerUpdate, ManifestData, Node, Trace,
};
use holepunch::compact_encoding::{Decode, Encode};
use libfuzzer_sys::fuzz_target;

fn check<T: for<'b> Decode<'b> + Encode + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::from_bytes(bytes) {
        assert_eq!(T::from_bytes(&v.to_bytes()), Ok(v));
    }
}

fuzz_target!(|bytes: &[u8]| {
    check::<Checkpoint>(bytes);
    check::<Digest>(bytes);
    check::<Node>(bytes);
    check::<Trace>(bytes);
    check::<LinearizerUpdate>(bytes);
    check::<ManifestData>(bytes);
    check::<EncryptionDescriptor>(bytes);
    if let Ok(seq) = decode_linearizer_key(bytes) {
        assert_eq!(decode_linearizer_key(&encode_linearizer_key(seq)), Ok(seq));
    }
});

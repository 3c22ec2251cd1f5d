//! What an autobase keeps or reads besides its records' codecs: the stored update records
//! (`base::decode_updates`, read from disk on reopen), the committed multi-signatures
//! (`base::decode_signed`, read from disk on reopen) and autobase-kv's JSON ops (`kv::KvOp::from_json`, from
//! any writer's blocks). Decoding never panics; accepted records re-encode to records that decode the same,
//! and an accepted op written back as JSON reads as the same op.
#![no_main]

use holepunch::autobase::base::{decode_signed, decode_updates, encode_signed, encode_updates};
use holepunch::autobase::kv::KvOp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(updates) = decode_updates(bytes) {
        assert_eq!(decode_updates(&encode_updates(&updates)), Ok(updates));
    }
    if let Ok(signed) = decode_signed(bytes) {
        assert_eq!(decode_signed(&encode_signed(&signed)), Ok(signed));
    }
    if let Some(op) = KvOp::from_json(bytes) {
        assert_eq!(KvOp::from_json(&op.to_json()), Some(op));
    }
});

//! The autobase system view's hyperbee entries from arbitrary bytes: keys (`SystemKey`), `Info` and `Member`
//! values. Decoding never panics; accepted values re-encode to bytes that decode to the same value.
#![no_main]

use holepunch::autobase::messages::{Info, Member, SystemKey};
use holepunch::compact_encoding::{Decode, Encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(k) = SystemKey::decode(bytes) {
        assert_eq!(k.to_bytes(), bytes);
    }
    if let Ok(i) = Info::decode(bytes) {
        let enc = i.to_bytes().expect("decoded versions encode");
        assert_eq!(Info::decode(&enc), Ok(i));
    }
    if let Ok(m) = Member::from_bytes(bytes) {
        assert_eq!(Member::from_bytes(&m.to_bytes()), Ok(m));
    }
});

//! Autobase writer blocks (`OplogMessage`, versions 0 to 2: what any peer's writer core may hold) from arbitrary
//! bytes: decoding never panics, and an accepted version 2 block re-encodes to bytes that decode to the same
//! message (versions 0 and 1 refuse to encode, as in JS).
#![no_main]

use holepunch::autobase::messages::OplogMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(m) = OplogMessage::decode(bytes) else {
        return;
    };
    match m.to_bytes() {
        Ok(b) => {
            assert_eq!(m.version, 2);
            assert_eq!(OplogMessage::decode(&b), Ok(m));
        }
        Err(e) => assert_eq!(e.version, m.version),
    }
});

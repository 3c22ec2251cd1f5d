//! Autobase wakeup messages (versions 0 and 1, from peers) from arbitrary bytes: decoding never panics, and an
//! accepted message re-encodes to bytes that decode to the same message.
#![no_main]

use holepunch::autobase::messages::Wakeup;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(w) = Wakeup::decode(bytes) {
        assert_eq!(Wakeup::decode(&w.to_bytes()), Ok(w));
    }
});

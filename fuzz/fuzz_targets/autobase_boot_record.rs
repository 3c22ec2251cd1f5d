//! Autobase boot records (the `autobase/boot` user data of a writer core) from arbitrary bytes: decoding never
//! panics, and an accepted record of version 1 to 3 re-encodes to bytes that decode to the same record.
#![no_main]

use holepunch::autobase::messages::BootRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(b) = BootRecord::decode(bytes) else {
        return;
    };
    if let Ok(enc) = b.to_bytes() {
        assert_eq!(BootRecord::decode(&enc), Ok(b));
    } else {
        assert_eq!(b.version, 0);
    }
});

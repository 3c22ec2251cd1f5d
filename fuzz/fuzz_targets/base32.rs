//! RFC 4648 base32 (hi-base32 semantics) and hyperbeam passphrases from arbitrary input: decoding never
//! panics, and encoding round-trips.
#![no_main]

use holepunch::base32;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let encoded = base32::encode(data);
    assert_eq!(base32::decode(&encoded).as_deref(), Ok(data));
    assert_eq!(
        base32::hyperbeam_decode(&base32::hyperbeam_encode(data)).as_deref(),
        Ok(data)
    );
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = base32::decode(s) {
        // Re-encoding gives the canonical form of the same bytes.
        assert_eq!(base32::decode(&base32::encode(&bytes)), Ok(bytes));
    }
    if let Ok(kp) = base32::hyperbeam_key_pair(s) {
        assert!(kp.is_valid());
    }
});

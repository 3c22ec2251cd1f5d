//! Hypercore ids and z-base-32 from arbitrary input: decoding never panics, and whatever decodes
//! normalises to an id that decodes to the same key.
#![no_main]

use holepunch::{id_encoding, z32};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = id_encoding::decode_bytes(data);
    assert_eq!(z32::decode(&z32::encode(data)).as_deref(), Ok(data));
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = id_encoding::decode(s) {
        let id = id_encoding::encode(&key);
        assert_eq!(id_encoding::normalize(s).as_deref(), Ok(id.as_str()));
        assert_eq!(id_encoding::decode(&id), Ok(key));
        assert!(id_encoding::is_valid(s));
    }
    if let Ok(bytes) = z32::decode(s) {
        let n = s.len();
        assert_eq!(bytes.len(), n / 8 * 5 + [0, 1, 1, 2, 2, 3, 4, 4][n % 8]);
    }
});

//! The drives mirror's quick-check state file from arbitrary bytes: decoding (`mirror_state::decode`, and
//! the record-by-record `StateReader` a mirror reads it with, over the same bytes in a file) never panics;
//! what decodes re-encodes to the same bytes (the encoding is canonical: keys sorted, one checksum), and the
//! reader finds exactly the decoded records (a file that does not decode whole reads as empty).
#![no_main]

use holepunch::mirror_state::{decode, encode, StateReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let records = decode(bytes);
    if let Some(records) = &records {
        let again = encode(records);
        assert_eq!(again, bytes);
    }
    let path = std::env::temp_dir().join(format!("mirror-state-fuzz-{}", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let mut reader = StateReader::open(&path);
    assert_eq!(reader.summary().is_some(), records.is_some());
    if let Some(records) = records {
        assert_eq!(reader.summary().map(|s| s.0), Some(records.len() as u64));
        for (k, fps) in &records {
            assert_eq!(reader.get(k).as_ref(), Some(fps));
        }
    } else {
        assert_eq!(reader.get("/"), None);
    }
});

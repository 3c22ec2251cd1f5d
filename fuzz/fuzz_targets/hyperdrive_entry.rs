//! Hyperdrive entries from arbitrary bytes: the JSON entry value, hyperblobs block maps and entry keys (paths).
//! Decoding never panics; accepted values re-encode to bytes that decode to the same value; normalized paths
//! are fixed points and never contain `..`.
#![no_main]

use holepunch::hyperblobs::decode_block_map;
use holepunch::hyperdrive::path::{is_normalized, normalize, resolve_from};
use holepunch::hyperdrive::EntryValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(v) = EntryValue::decode(bytes) {
        assert_eq!(EntryValue::decode(&v.encode()).as_ref(), Ok(&v));
    }
    let _ = decode_block_map(bytes);
    let text = String::from_utf8_lossy(bytes);
    if let Ok(p) = normalize(&text) {
        assert!(is_normalized(&p), "{p:?}");
        assert!(!p.split('/').any(|s| s == ".." || s == "."));
    }
    let _ = is_normalized(&text);
    if let Some((a, b)) = text.split_once('\n') {
        if let Ok(p) = resolve_from("/base/dir", a).and_then(|_| resolve_from(a, b)) {
            assert!(p.starts_with('/'));
        }
    }
});

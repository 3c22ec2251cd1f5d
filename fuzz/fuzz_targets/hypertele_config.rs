//! hypertele's configuration inputs from arbitrary bytes: conf.json, identity files, `.hyper-hosts` lines,
//! keys and seeds never panic, and what they accept is well-formed.
#![no_main]

use std::path::Path;

use hypertele_tool::config::{lookup_host, parse_identity, parse_key, parse_seed, ConfFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.json");
    let _ = ConfFile::parse(path, data);
    if let Ok(kp) = parse_identity(path, data) {
        assert!(kp.is_valid());
    }
    let text = String::from_utf8_lossy(data);
    let first = text.split(' ').next().unwrap_or_default();
    let _ = lookup_host(&text, first);
    if let Ok(key) = parse_key("key", &text) {
        assert_eq!(parse_key("key", &hex::encode(key)).ok(), Some(key));
    }
    let _ = parse_seed("seed", &text);
});

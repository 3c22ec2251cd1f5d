//! Hyperbee blocks (`Header`, `Node`, `YoloIndex`) from arbitrary bytes: decoding never panics, and whatever
//! decodes re-encodes to bytes that decode to the same value.
#![no_main]

use holepunch::hyperbee::messages::{Header, Node, YoloIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(h) = Header::decode(bytes) {
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }
    if let Ok(n) = Node::decode(bytes) {
        assert_eq!(Node::decode(&n.encode()), Ok(n));
    }
    if let Ok(i) = YoloIndex::decode(bytes) {
        let enc = i.encode();
        assert_eq!(enc.len(), i.encoded_len());
        assert_eq!(YoloIndex::decode(&enc), Ok(i));
    }
});

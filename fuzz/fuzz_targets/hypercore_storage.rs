//! The hypercore storage log's record frames and payloads from arbitrary bytes (a damaged or hostile log file):
//! decoding never panics, and block locations stay inside the payload.
#![no_main]

use holepunch::hypercore::storage::{parse_header, RecordView, FRAME_HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(header) = bytes.get(..FRAME_HEADER) {
        let _ = parse_header(header);
    }
    if let Ok(view) = RecordView::decode(bytes) {
        for (_, offset, len) in view.blocks {
            assert!(offset + len <= bytes.len());
        }
    }
});

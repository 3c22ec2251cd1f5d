//! The hypercore storage log's record frames and payloads from arbitrary bytes (a damaged or hostile log file):
//! decoding never panics, and block locations stay inside the payload.
#![no_main]

use holepunch::hypercore::storage::{parse_header, RecordView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(frame) = parse_header(bytes) {
        // A header of either version; its payload, if present, checks or not without panicking.
        if let Some(payload) = bytes.get(frame.header_len..) {
            let _ = frame.verify(payload);
        }
    }
    if let Ok(view) = RecordView::decode(bytes) {
        for (_, offset, len) in view.blocks {
            assert!(offset + len <= bytes.len());
        }
        if let Some(clear) = view.clear {
            assert!(clear.start <= clear.end);
        }
    }
});

//! hypertele `--compress` messages from the network: gunzipping arbitrary bytes never panics and hands out
//! bounded pieces, and gzip round-trips.
#![no_main]

use hypertele_tool::pipe::{gunzip, gunzip_chunks, gzip, CHUNK};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gunzip_chunks(data, |piece| {
        assert!(piece.len() <= CHUNK);
        Ok(())
    });
    assert_eq!(gunzip(&gzip(data)).ok().as_deref(), Some(data));
});

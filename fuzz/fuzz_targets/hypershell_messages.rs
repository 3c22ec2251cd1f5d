#![no_main]
//! Every hypershell message decoder and config parser on arbitrary bytes: errors, never panics.

use holepunch::compact_encoding::Decode;
use holepunch::hypershell::{
    decode_buffer, decode_uint, parse_authorized_peers, parse_known_peers, parse_seed_file,
    DownloadHandshake, DownloadHeader, ErrorMessage, LocalTunnel, Resize, SpawnHandshake,
    UploadHandshake,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SpawnHandshake::from_bytes(data);
    let _ = UploadHandshake::from_bytes(data);
    let _ = DownloadHandshake::from_bytes(data);
    let _ = DownloadHeader::from_bytes(data);
    let _ = ErrorMessage::from_bytes(data);
    let _ = Resize::from_bytes(data);
    let _ = decode_buffer(data);
    let _ = decode_uint(data);
    let text = String::from_utf8_lossy(data);
    let _ = parse_seed_file(&text);
    let _ = parse_authorized_peers(&text);
    let _ = parse_known_peers(&text);
    let _ = text.parse::<LocalTunnel>();
});

#![no_main]
//! The IPv6 path's probes and echoes (what a node's IPv6 socket reads from anyone): decoding arbitrary bytes
//! never panics, and what decodes re-encodes to the same bytes.
use holepunch::hyperdht::ipv6::ProbeMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(m) = ProbeMessage::decode(data) {
        assert_eq!(&m.encode()[..], data);
    }
});

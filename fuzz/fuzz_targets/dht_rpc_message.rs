#![no_main]
//! Decodes arbitrary datagrams as dht-rpc messages; a decoded message must re-encode and decode to itself.

use holepunch::compact_encoding::Encode;
use holepunch::dht_rpc::messages::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.to_bytes()).expect("re-encoded message decodes");
        // Empty closer-node lists are not written, so compare after normalising through one round trip.
        assert_eq!(Message::decode(&again.to_bytes()).ok(), Some(again));
    }
});

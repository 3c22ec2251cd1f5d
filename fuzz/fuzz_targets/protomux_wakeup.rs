//! protomux-wakeup messages (the handshake, lookup, announce and info a peer sends on a `wakeup` channel)
//! from arbitrary bytes: decoding never panics, and an accepted message re-encodes to bytes that decode to
//! the same message.
#![no_main]

use holepunch::protomux_wakeup::{decode_announce, encode_announce, Handshake, Info, Lookup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(h) = Handshake::decode(bytes) {
        assert_eq!(Handshake::decode(&h.encode()), Ok(h));
    }
    if let Ok(l) = Lookup::decode(bytes) {
        assert_eq!(Lookup::decode(&l.encode()), Ok(l));
    }
    if let Ok(i) = Info::decode(bytes) {
        assert_eq!(Info::decode(&i.encode()), Ok(i));
    }
    if let Ok(a) = decode_announce(bytes) {
        assert_eq!(decode_announce(&encode_announce(&a)), Ok(a));
    }
});

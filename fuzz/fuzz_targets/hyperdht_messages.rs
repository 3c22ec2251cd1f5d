#![no_main]
//! Decodes arbitrary bytes with every hyperdht message codec (selected by the first byte); decoded values
//! must survive a re-encode.

use holepunch::compact_encoding::{Decode, Encode};
use holepunch::hyperdht::messages::*;
use libfuzzer_sys::fuzz_target;

fn round<T: for<'a> Decode<'a> + Encode + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = T::from_bytes(data) {
        let bytes = v.to_bytes();
        let again = T::from_bytes(&bytes).expect("re-encoded value decodes");
        assert_eq!(again.to_bytes(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel % 13 {
        0 => round::<Handshake>(rest),
        1 => round::<Holepunch>(rest),
        2 => round::<HolepunchPayload>(rest),
        3 => round::<NoisePayload>(rest),
        4 => round::<Peer>(rest),
        5 => round::<Peers>(rest),
        6 => round::<LookupReply>(rest),
        7 => round::<Announce>(rest),
        8 => round::<MutableSignable>(rest),
        9 => round::<MutablePutRequest>(rest),
        10 => round::<MutableGetResponse>(rest),
        11 => round::<PluginRequest>(rest),
        _ => {
            let _ = decode_mutable_get_request(rest);
        }
    }
});

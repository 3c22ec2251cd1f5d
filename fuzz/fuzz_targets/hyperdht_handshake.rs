//! Arbitrary bytes as the routed hyperdht handshake a server or client receives: the `handshake` envelope,
//! the Noise IK message, (through a genuine Noise exchange) the decrypted `noisePayload`, and an encrypted
//! holepunch payload.
#![no_main]

use holepunch::compact_encoding::Decode;
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::constants::ns;
use holepunch::hyperdht::messages::{Handshake, NoisePayload};
use holepunch::hyperdht::noise_wrap::{noise_keypair, NoiseWrap};
use holepunch::hyperdht::SecurePayload;
use holepunch::noise::{Handshake as Noise, Pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let server = KeyPair::from_seed(&[1; 32]);
    let client = KeyPair::from_seed(&[2; 32]);
    match selector % 5 {
        // The envelope, then its noise as a first message.
        0 => {
            if let Ok(hs) = Handshake::from_bytes(msg) {
                if let Ok(mut r) = NoiseWrap::responder(&server) {
                    let _ = r.recv(&hs.noise);
                }
            }
        }
        // Raw first message at the server.
        1 => {
            if let Ok(mut r) = NoiseWrap::responder(&server) {
                if r.recv(msg).is_ok() {
                    let _ = r.send(&NoisePayload::default());
                    let _ = r.finish();
                }
            }
        }
        // A genuine first message whose payload is the fuzz input.
        2 => {
            let Ok(mut i) = Noise::new(
                Pattern::IK,
                true,
                &noise_keypair(&client),
                &ns::peer_handshake(),
                Some(&server.public),
            ) else {
                return;
            };
            if let (Ok(m1), Ok(mut r)) = (i.send(msg), NoiseWrap::responder(&server)) {
                let _ = r.recv(&m1);
            }
        }
        // An encrypted holepunch payload.
        4 => {
            let sp = SecurePayload::with_local_secret(&[7; 32], [3; 32]);
            let _ = sp.decrypt(msg);
        }
        // Raw second message at the client.
        _ => {
            if let Ok(mut i) = NoiseWrap::initiator(&client, &server.public) {
                if i.send(&NoisePayload::default()).is_ok() && i.recv(msg).is_ok() {
                    let _ = i.finish();
                }
            }
        }
    }
});

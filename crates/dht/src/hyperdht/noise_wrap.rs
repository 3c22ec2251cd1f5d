//! `hyperdht/lib/noise-wrap.js`: the Noise IK handshake a client and a server run through the DHT.
//!
//! Facts reproduced: pattern IK over Ed25519 (see [`crate::noise`]), prologue [`ns::peer_handshake`] (the
//! `hyperswarm/dht` namespace of command 0), every payload a [`NoisePayload`]. When complete, the holepunch
//! secret is `BLAKE2b-256(key = handshake hash, message = ns::peer_holepunch())` (libsodium
//! `crypto_generichash(out, NS.PEER_HOLEPUNCH, hash)`), and the handshake result is what secret-stream takes
//! as `opts.handshake`.

use super::constants::ns;
use super::messages::NoisePayload;
use crate::compact_encoding::{DecodeError, Encode};
use crate::crypto::KeyPair;
use crate::noise::{self, Handshake, HandshakeResult, NoiseError, Pattern};

/// Why a hyperdht handshake step failed.
#[derive(Debug, thiserror::Error)]
pub enum NoiseWrapError {
    /// The Noise layer rejected the message (tampered, wrong key, truncated, replayed out of order...).
    #[error("noise: {0}")]
    Noise(#[from] NoiseError),
    /// The decrypted payload is not a valid `noisePayload`.
    #[error("invalid handshake payload: {0}")]
    Payload(#[from] DecodeError),
    /// `finish` was called before the handshake completed (`HANDSHAKE_UNFINISHED`).
    #[error("HANDSHAKE_UNFINISHED: handshake not done")]
    Unfinished,
}

/// The library key pair as the Noise layer takes it.
pub fn noise_keypair(kp: &KeyPair) -> noise::Keypair {
    noise::Keypair {
        public_key: kp.public,
        secret_key: kp.secret,
    }
}

/// A finished handshake: the keys for secret-stream and the holepunch secret.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Keys, hash and public keys (secret-stream's `opts.handshake`).
    pub result: HandshakeResult,
    /// The key of holepunch payloads ([`super::secure_payload::SecurePayload`]).
    pub holepunch_secret: [u8; 32],
}

/// One side of the IK handshake.
#[derive(Debug)]
pub struct NoiseWrap {
    hs: Handshake,
}

impl NoiseWrap {
    /// The connecting side, which knows the server's public key.
    pub fn initiator(
        key_pair: &KeyPair,
        remote_public_key: &[u8; 32],
    ) -> Result<Self, NoiseWrapError> {
        let hs = Handshake::new(
            Pattern::IK,
            true,
            &noise_keypair(key_pair),
            &ns::peer_handshake(),
            Some(remote_public_key),
        )?;
        Ok(Self { hs })
    }

    /// The server side.
    pub fn responder(key_pair: &KeyPair) -> Result<Self, NoiseWrapError> {
        let hs = Handshake::new(
            Pattern::IK,
            false,
            &noise_keypair(key_pair),
            &ns::peer_handshake(),
            None,
        )?;
        Ok(Self { hs })
    }

    /// Encrypts the next handshake message carrying `payload`.
    pub fn send(&mut self, payload: &NoisePayload) -> Result<Vec<u8>, NoiseWrapError> {
        Ok(self.hs.send(&payload.to_bytes())?)
    }

    /// Decrypts the peer's handshake message and decodes its payload.
    pub fn recv(&mut self, message: &[u8]) -> Result<NoisePayload, NoiseWrapError> {
        let plain = self.hs.recv(message)?;
        Ok(super::messages::decode::<NoisePayload>(&plain)?)
    }

    /// The peer's static key, once received.
    pub fn remote_public_key(&self) -> Option<[u8; 32]> {
        self.hs.remote_public_key()
    }

    /// The result of the completed handshake.
    pub fn finish(&self) -> Result<Finished, NoiseWrapError> {
        let result = self
            .hs
            .result()
            .cloned()
            .ok_or(NoiseWrapError::Unfinished)?;
        Ok(Finished {
            holepunch_secret: holepunch_secret(&result.hash),
            result,
        })
    }
}

/// `crypto_generichash(out, NS.PEER_HOLEPUNCH, handshakeHash)`.
pub fn holepunch_secret(handshake_hash: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A 64-byte key and a 32-byte output are within BLAKE2b's limits.
    if crate::crypto::blake2b_into(&mut out, handshake_hash, &[&ns::peer_holepunch()]).is_err() {
        unreachable!("valid blake2b parameters");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperdht::messages::UdxInfo;

    #[test]
    fn ik_round_trip_and_wrong_key() {
        let server = KeyPair::from_seed(&[1; 32]);
        let client = KeyPair::from_seed(&[2; 32]);
        let mut c = NoiseWrap::initiator(&client, &server.public).expect("init");
        let mut s = NoiseWrap::responder(&server).expect("resp");
        let p = NoisePayload {
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: 7,
                seq: 0,
            }),
            ..NoisePayload::default()
        };
        let m1 = c.send(&p).expect("send");
        // A server with another key cannot read it.
        let other = KeyPair::from_seed(&[3; 32]);
        assert!(NoiseWrap::responder(&other).expect("r").recv(&m1).is_err());
        // Truncated messages fail cleanly.
        for n in 0..m1.len() {
            assert!(NoiseWrap::responder(&server)
                .expect("r")
                .recv(&m1[..n])
                .is_err());
        }
        assert_eq!(s.recv(&m1).expect("recv"), p);
        assert_eq!(s.remote_public_key(), Some(client.public));
        let m2 = s.send(&NoisePayload::default()).expect("send");
        assert_eq!(c.recv(&m2).expect("recv"), NoisePayload::default());
        let (a, b) = (c.finish().expect("c"), s.finish().expect("s"));
        assert_eq!(a.holepunch_secret, b.holepunch_secret);
        assert_eq!(a.result.tx, b.result.rx);
        assert_eq!(a.result.remote_public_key, server.public);
        // A replayed first message after completion is refused.
        assert!(s.recv(&m1).is_err());
    }

    proptest::proptest! {
        #[test]
        fn mutated_first_messages_fail_cleanly(pos in 0usize..200, bit in 0u8..8, junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let server = KeyPair::from_seed(&[1; 32]);
            let client = KeyPair::from_seed(&[2; 32]);
            let mut c = NoiseWrap::initiator(&client, &server.public).expect("init");
            let mut m1 = c.send(&NoisePayload::default()).expect("send");
            let i = pos % m1.len();
            m1[i] ^= 1 << bit;
            let mut s = NoiseWrap::responder(&server).expect("resp");
            proptest::prop_assert!(s.recv(&m1).is_err());
            let mut s = NoiseWrap::responder(&server).expect("resp");
            proptest::prop_assert!(s.recv(&junk).is_err());
            proptest::prop_assert!(c.recv(&junk).is_err());
        }
    }
}

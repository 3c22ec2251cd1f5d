//! `hyperdht/lib/secure-payload.js`: the encryption of holepunch payloads under the holepunch secret of the
//! handshake ([`super::noise_wrap::holepunch_secret`]), and the address tokens peers echo to prove they
//! received a message.
//!
//! Wire: `nonce (24 random bytes) || crypto_secretbox_easy(holepunchPayload)` (16-byte MAC, then the
//! ciphertext), XSalsa20-Poly1305 keyed with the shared secret. A token for an address is
//! `BLAKE2b-256(key = local secret, message = the host as a dotted string)`; the local secret is random
//! per session.

use std::net::Ipv4Addr;

use crypto_secretbox::{AeadInPlace, KeyInit, XSalsa20Poly1305};

use super::messages::HolepunchPayload;
use crate::compact_encoding::{Decode, Encode};

const NONCE_LEN: usize = 24;
const MAC_LEN: usize = 16;

/// Seals and opens one session's holepunch payloads.
pub struct SecurePayload {
    cipher: XSalsa20Poly1305,
    local_secret: [u8; 32],
}

impl std::fmt::Debug for SecurePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurePayload").finish_non_exhaustive()
    }
}

impl SecurePayload {
    /// A session keyed with the handshake's holepunch secret, with a random local secret.
    pub fn new(holepunch_secret: &[u8; 32]) -> Self {
        let mut local_secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut local_secret);
        Self::with_local_secret(holepunch_secret, local_secret)
    }

    /// A session with a chosen local secret (tests and vectors).
    pub fn with_local_secret(holepunch_secret: &[u8; 32], local_secret: [u8; 32]) -> Self {
        Self {
            cipher: XSalsa20Poly1305::new(&(*holepunch_secret).into()),
            local_secret,
        }
    }

    /// Encrypts a payload under a random nonce.
    pub fn encrypt(&self, payload: &HolepunchPayload) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        self.encrypt_with_nonce(payload, nonce)
    }

    /// Encrypts with a chosen nonce (tests and vectors only: never reuse a nonce).
    #[doc(hidden)]
    pub fn encrypt_with_nonce(
        &self,
        payload: &HolepunchPayload,
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut body = payload.to_bytes();
        let Ok(tag) = self
            .cipher
            .encrypt_in_place_detached(&nonce.into(), &[], &mut body)
        else {
            // Only inputs beyond 256 GiB fail; a payload is a few hundred bytes.
            unreachable!("holepunch payloads are small");
        };
        let mut out = Vec::with_capacity(NONCE_LEN + MAC_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&body);
        out
    }

    /// Opens and decodes a peer's payload; `None` when it is too short, unauthentic or undecodable (the JS
    /// returns null).
    pub fn decrypt(&self, buf: &[u8]) -> Option<HolepunchPayload> {
        if buf.len() <= NONCE_LEN + MAC_LEN {
            return None;
        }
        let (nonce, rest) = buf.split_at(NONCE_LEN);
        let (tag, ciphertext) = rest.split_at(MAC_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let tag: [u8; MAC_LEN] = tag.try_into().ok()?;
        let mut body = ciphertext.to_vec();
        self.cipher
            .decrypt_in_place_detached(&nonce.into(), &[], &mut body, &tag.into())
            .ok()?;
        HolepunchPayload::from_bytes(&body).ok()
    }

    /// The token of an address (`token(addr)`): keyed by our local secret, over the host string.
    pub fn token(&self, host: Ipv4Addr) -> [u8; 32] {
        let mut out = [0u8; 32];
        let host = host.to_string();
        if crate::crypto::blake2b_into(&mut out, &self.local_secret, &[host.as_bytes()]).is_err() {
            unreachable!("valid blake2b parameters");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HolepunchPayload {
        HolepunchPayload {
            error: crate::hyperdht::constants::ErrorCode::NONE,
            firewall: crate::hyperdht::constants::Firewall::CONSISTENT,
            round: 1,
            connected: false,
            punching: true,
            addresses: Some(vec!["1.2.3.4:5".parse().expect("addr")]),
            remote_address: None,
            token: Some([9; 32]),
            remote_token: None,
        }
    }

    /// Produced by `new SecurePayload(alloc(32, 7)).encrypt(sample)` and `token({ host: '127.0.0.1' })` with
    /// the local secret `alloc(32, 3)`, hyperdht 6.34.0.
    const JS_SEALED: &str = "1fe525ed03e116c820296a8f57f4465cfa3c7894e431f3ac066ee7273c6b49ca0224861cf742d290832ed475dae920112fd859f029d9de53ce4f158e83df1b1c5b73144723559b249c2fc9adc974a4f570b3f4";
    const JS_TOKEN: &str = "1d05082d97fa665bec60961c936413bfe0be2755cf411616dd562f087710112e";

    #[test]
    fn opens_js_and_matches_its_bytes() {
        let sp = SecurePayload::with_local_secret(&[7; 32], [3; 32]);
        let js = hex::decode(JS_SEALED).expect("hex");
        assert_eq!(sp.decrypt(&js), Some(sample()));
        let nonce: [u8; 24] = js[..24].try_into().expect("nonce");
        assert_eq!(sp.encrypt_with_nonce(&sample(), nonce), js);
        assert_eq!(hex::encode(sp.token(Ipv4Addr::LOCALHOST)), JS_TOKEN);
        // Round trip with a random nonce; other keys, truncations and bit flips are refused.
        let sealed = sp.encrypt(&sample());
        assert_eq!(sp.decrypt(&sealed), Some(sample()));
        assert_eq!(SecurePayload::new(&[8; 32]).decrypt(&sealed), None);
        for n in 0..sealed.len() {
            assert_eq!(sp.decrypt(&sealed[..n]), None);
        }
        for i in 0..sealed.len() {
            let mut m = sealed.clone();
            m[i] ^= 0x40;
            assert_eq!(sp.decrypt(&m), None, "flip at {i}");
        }
    }
}

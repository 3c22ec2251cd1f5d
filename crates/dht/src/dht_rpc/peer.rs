//! Node ids and request tokens, as dht-rpc derives them (`lib/peer.js`, `lib/io.js`).

use std::net::SocketAddrV4;

use super::hash::{blake2b256, blake2b256_keyed};
use super::messages::{encode_ipv4_peer, Id};

/// A node's id: BLAKE2b-256 of its 6-byte `ipv4Address` encoding (address bytes, little-endian port).
/// Persistent nodes must use this id, and receivers check it against the address the datagram came from.
pub fn node_id(addr: &SocketAddrV4) -> Id {
    blake2b256(&[&encode_ipv4_peer(addr)])
}

/// The rotating secrets behind request tokens.
///
/// A token for a host is `blake2b(host as a string, key = secret)`: the host's dotted-quad text, without
/// the port. Responses carry a token made with the newest secret (index 1); requests are accepted with
/// a token made from either secret. Every [`Self::ROTATE_EVERY`] drains (7.5 s each in dht-rpc) the
/// secrets rotate: the newest becomes the older one and the older one is replaced by its own hash.
#[derive(Clone)]
pub struct TokenSecrets {
    secrets: [[u8; 32]; 2],
    countdown: u32,
}

impl std::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("countdown", &self.countdown)
            .finish_non_exhaustive()
    }
}

impl TokenSecrets {
    /// Drains between two rotations.
    pub const ROTATE_EVERY: u32 = 10;

    /// Secrets from two random 32-byte values.
    pub fn new(older: [u8; 32], newer: [u8; 32]) -> Self {
        Self {
            secrets: [older, newer],
            countdown: Self::ROTATE_EVERY,
        }
    }

    /// The token for `host` made with secret `index` (0 = older, 1 = newer).
    pub fn token(&self, host: &std::net::Ipv4Addr, index: usize) -> Id {
        let secret = &self.secrets[index.min(1)];
        blake2b256_keyed(host.to_string().as_bytes(), secret)
    }

    /// True when `token` was made for `host` with either secret.
    pub fn verify(&self, host: &std::net::Ipv4Addr, token: &Id) -> bool {
        *token == self.token(host, 1) || *token == self.token(host, 0)
    }

    /// Rotates now: the newer secret becomes the older, the old one is replaced with its hash.
    pub fn rotate(&mut self) {
        let old = self.secrets[0];
        self.secrets[0] = self.secrets[1];
        self.secrets[1] = blake2b256(&[&old]);
    }

    /// Called on every drain tick; rotates every [`Self::ROTATE_EVERY`] calls.
    pub fn tick(&mut self) {
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown == 0 {
            self.countdown = Self::ROTATE_EVERY;
            self.rotate();
        }
    }
}

//! `hyperdht/lib/constants.js` and the handshake/holepunch modes of `lib/router.js`.

use crate::dht_rpc::hash::blake2b256;

/// The user commands hyperdht runs over dht-rpc (sent without the internal flag).
pub mod commands {
    /// Noise handshake forwarded to a server through the DHT.
    pub const PEER_HANDSHAKE: u64 = 0;
    /// Holepunch coordination message.
    pub const PEER_HOLEPUNCH: u64 = 1;
    /// Find the node a server announced itself to.
    pub const FIND_PEER: u64 = 2;
    /// Lookup of the peers announced under a topic.
    pub const LOOKUP: u64 = 3;
    /// Announce a peer under a topic.
    pub const ANNOUNCE: u64 = 4;
    /// Remove an announcement.
    pub const UNANNOUNCE: u64 = 5;
    /// Store a signed mutable value.
    pub const MUTABLE_PUT: u64 = 6;
    /// Fetch a signed mutable value.
    pub const MUTABLE_GET: u64 = 7;
    /// Store a content-addressed value.
    pub const IMMUTABLE_PUT: u64 = 8;
    /// Fetch a content-addressed value.
    pub const IMMUTABLE_GET: u64 = 9;
    /// A request to a named plugin.
    pub const PLUGIN: u64 = 10;
}

/// Firewall kinds carried in noise and holepunch payloads.
pub mod firewall {
    /// Not known yet.
    pub const UNKNOWN: u64 = 0;
    /// Reachable directly.
    pub const OPEN: u64 = 1;
    /// Behind a NAT that keeps the same external port.
    pub const CONSISTENT: u64 = 2;
    /// Behind a NAT that picks random ports.
    pub const RANDOM: u64 = 3;
}

/// Error codes of noise payloads and DHT replies.
pub mod errors {
    /// No error.
    pub const NONE: u64 = 0;
    /// The connection was aborted.
    pub const ABORTED: u64 = 1;
    /// The peer speaks another version.
    pub const VERSION_MISMATCH: u64 = 2;
    /// The peer is busy.
    pub const TRY_LATER: u64 = 3;
    /// A mutable put reused a sequence number with another value.
    pub const SEQ_REUSED: u64 = 16;
    /// A mutable put had a sequence number below the stored one.
    pub const SEQ_TOO_LOW: u64 = 17;
}

/// The `mode` of handshake and holepunch messages (`lib/router.js`).
pub mod mode {
    /// Sent by the connecting client.
    pub const FROM_CLIENT: u64 = 0;
    /// Sent by the server.
    pub const FROM_SERVER: u64 = 1;
    /// Forwarded by the DHT node the server announced to.
    pub const FROM_RELAY: u64 = 2;
    /// Forwarded a second time.
    pub const FROM_SECOND_RELAY: u64 = 3;
    /// The reply to the client.
    pub const REPLY: u64 = 4;
}

/// The public bootstrap nodes, as `suggested-ip@hostname:port`.
pub const BOOTSTRAP_NODES: [&str; 3] = [
    "88.99.3.86@node1.hyperdht.org:49737",
    "142.93.90.113@node2.hyperdht.org:49737",
    "138.68.147.8@node3.hyperdht.org:49737",
];

/// `hypercore-crypto`'s `namespace(name, id)`: `blake2b(blake2b(name) || id)`.
pub fn namespace(name: &[u8], id: u8) -> [u8; 32] {
    let ns = blake2b256(&[name]);
    blake2b256(&[&ns, &[id]])
}

fn dht_namespace(command: u64) -> [u8; 32] {
    // Command ids are all below 256.
    namespace(b"hyperswarm/dht", command as u8)
}

/// The signing namespaces (`NS` in constants.js), each the namespace of `hyperswarm/dht` and a command id.
pub mod ns {
    use super::{commands, dht_namespace};

    /// Prefix of announce signables.
    pub fn announce() -> [u8; 32] {
        dht_namespace(commands::ANNOUNCE)
    }
    /// Prefix of unannounce signables.
    pub fn unannounce() -> [u8; 32] {
        dht_namespace(commands::UNANNOUNCE)
    }
    /// Prefix of mutable-put signables.
    pub fn mutable_put() -> [u8; 32] {
        dht_namespace(commands::MUTABLE_PUT)
    }
    /// Noise prologue namespace of peer handshakes.
    pub fn peer_handshake() -> [u8; 32] {
        dht_namespace(commands::PEER_HANDSHAKE)
    }
    /// Namespace of holepunch secrets.
    pub fn peer_holepunch() -> [u8; 32] {
        dht_namespace(commands::PEER_HOLEPUNCH)
    }
    /// Namespace of plugin requests.
    pub fn plugin() -> [u8; 32] {
        dht_namespace(commands::PLUGIN)
    }
}

//! `hyperdht/lib/constants.js` and the handshake/holepunch modes of `lib/router.js`.

use crate::dht_rpc::hash::blake2b256;
use crate::dht_rpc::messages::ErrorCode as RpcErrorCode;
use crate::dht_rpc::wire_enum::wire_enum;

wire_enum! {
    /// The user commands hyperdht runs over dht-rpc (sent without the internal flag; the request's
    /// `command` number converts with `Command::from`).
    pub struct Command {
        /// Noise handshake forwarded to a server through the DHT.
        PEER_HANDSHAKE = 0,
        /// Holepunch coordination message.
        PEER_HOLEPUNCH = 1,
        /// Find the node a server announced itself to.
        FIND_PEER = 2,
        /// Lookup of the peers announced under a topic.
        LOOKUP = 3,
        /// Announce a peer under a topic.
        ANNOUNCE = 4,
        /// Remove an announcement.
        UNANNOUNCE = 5,
        /// Store a signed mutable value.
        MUTABLE_PUT = 6,
        /// Fetch a signed mutable value.
        MUTABLE_GET = 7,
        /// Store a content-addressed value.
        IMMUTABLE_PUT = 8,
        /// Fetch a content-addressed value.
        IMMUTABLE_GET = 9,
        /// A request to a named plugin.
        PLUGIN = 10,
    }
}

wire_enum! {
    /// Firewall kinds carried in noise and holepunch payloads.
    pub struct Firewall {
        /// Not known yet.
        UNKNOWN = 0,
        /// Reachable directly.
        OPEN = 1,
        /// Behind a NAT that keeps the same external port.
        CONSISTENT = 2,
        /// Behind a NAT that picks random ports.
        RANDOM = 3,
    }
}

wire_enum! {
    /// Error codes of noise and holepunch payloads and of hyperdht's DHT replies (there carried in
    /// dht-rpc's [`RpcErrorCode`] field, which converts with `From`).
    pub struct ErrorCode {
        /// No error.
        NONE = 0,
        /// The connection was aborted.
        ABORTED = 1,
        /// The peer speaks another version.
        VERSION_MISMATCH = 2,
        /// The peer is busy.
        TRY_LATER = 3,
        /// A mutable put reused a sequence number with another value.
        SEQ_REUSED = 16,
        /// A mutable put had a sequence number below the stored one.
        SEQ_TOO_LOW = 17,
    }
}

wire_enum! {
    /// The `mode` of handshake and holepunch messages (`lib/router.js`).
    pub struct Mode {
        /// Sent by the connecting client.
        FROM_CLIENT = 0,
        /// Sent by the server.
        FROM_SERVER = 1,
        /// Forwarded by the DHT node the server announced to.
        FROM_RELAY = 2,
        /// Forwarded a second time.
        FROM_SECOND_RELAY = 3,
        /// The reply to the client.
        REPLY = 4,
    }
}

impl Default for Firewall {
    /// [`Firewall::UNKNOWN`].
    fn default() -> Self {
        Self::UNKNOWN
    }
}

impl Default for ErrorCode {
    /// [`ErrorCode::NONE`].
    fn default() -> Self {
        Self::NONE
    }
}

impl From<ErrorCode> for RpcErrorCode {
    fn from(e: ErrorCode) -> Self {
        Self(e.0)
    }
}

impl From<RpcErrorCode> for ErrorCode {
    fn from(e: RpcErrorCode) -> Self {
        Self(e.0)
    }
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

fn dht_namespace(command: Command) -> [u8; 32] {
    // Command ids are all below 256.
    namespace(b"hyperswarm/dht", command.0 as u8)
}

/// The signing namespaces (`NS` in constants.js), each the namespace of `hyperswarm/dht` and a command id.
pub mod ns {
    use super::{dht_namespace, Command};

    /// Prefix of announce signables.
    pub fn announce() -> [u8; 32] {
        dht_namespace(Command::ANNOUNCE)
    }
    /// Prefix of unannounce signables.
    pub fn unannounce() -> [u8; 32] {
        dht_namespace(Command::UNANNOUNCE)
    }
    /// Prefix of mutable-put signables.
    pub fn mutable_put() -> [u8; 32] {
        dht_namespace(Command::MUTABLE_PUT)
    }
    /// Noise prologue namespace of peer handshakes.
    pub fn peer_handshake() -> [u8; 32] {
        dht_namespace(Command::PEER_HANDSHAKE)
    }
    /// Namespace of holepunch secrets.
    pub fn peer_holepunch() -> [u8; 32] {
        dht_namespace(Command::PEER_HOLEPUNCH)
    }
    /// Namespace of plugin requests.
    pub fn plugin() -> [u8; 32] {
        dht_namespace(Command::PLUGIN)
    }
}

//! Connections through a blind relay (`relayThrough` in `lib/connect.js` and `lib/server.js`, with
//! `lib/relay-connection.js`): a child module of `dht.rs`.
//!
//! Facts of hyperdht 6.34:
//! - A side with a relay configured puts `relayThrough { publicKey, token }` (a fresh random token) in its
//!   handshake payload. If either side named a relay, both pair through one relay: the server's if it named
//!   one (the server pairs as initiator, the client not), else the client's (the client pairs as
//!   initiator).
//! - Each side opens a HyperDHT connection to the relay (keep-alive `relayKeepAlive`, 5 s by default), opens
//!   a blind-relay channel named by its own public key, and pairs its connection's raw UDX stream with the
//!   token; the pairing must complete within 15 s. Once paired, the raw stream connects to the relay stream
//!   through the path of the connection to the relay and the secret stream starts on it.
//! - Direct connection, LAN shortcut and holepunching go on meanwhile. Whichever connects the raw stream
//!   first wins; a relay pairing that completes after the stream connected directly is dropped. A punch that
//!   succeeds after the relayed path is up moves the stream there (`changeRemote`), the application notices
//!   nothing, and the relay connection is closed. Relay traffic arriving on the old path after the move must
//!   not move the stream back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{HyperDht, HyperDhtError, Result};
use crate::blind_relay::{BlindRelayClient, Token};
use crate::hyperdht::messages::RelayThroughInfo;
use crate::udx::UdxStreamControl;

/// How long a relay pairing may take (hyperdht's 15 s relay timeout).
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(15);
/// Default keep-alive of the connection to the relay (`relayKeepAlive`).
pub const RELAY_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How often [`confirm_direct_upgrade`] looks for packets on the new path.
const CONFIRM_POLL: Duration = Duration::from_millis(50);
/// How long packets must keep arriving on the new path to confirm it without the peer's empty message.
/// Long, because packets the relay forwards to the same socket are not told apart from direct ones: a peer
/// that moves later than we do (its punch lands later) still sends through the relay meanwhile, and closing
/// the relay under it would strand what it sent before its move. The peer's empty message normally confirms
/// much sooner; this only bounds how long the relay stays if that message is lost. (With 2 s, a peer moving
/// 2 s after us lost its pre-move packets about one run in four on a loaded machine.)
pub const CONFIRM_FALLBACK: Duration = Duration::from_secs(10);

/// Which blind relay to use (`relayThrough`): the public key of a relay peer, or a function choosing one
/// (or none) for each connection.
#[derive(Clone)]
pub enum RelayThrough {
    /// Always this relay.
    Key([u8; 32]),
    /// Asked for each connection; `None` connects without a relay.
    Select(Arc<dyn Fn() -> Option<[u8; 32]> + Send + Sync>),
    /// Asked for each connection with whether our NAT randomizes ports (dht-rpc's `randomized`: the public
    /// host is known and the port is not consistent); hyperswarm's `relayThrough` is one of these.
    Randomized(Arc<dyn Fn(bool) -> Option<[u8; 32]> + Send + Sync>),
}

impl RelayThrough {
    /// The relay for one connection (`selectRelay`), where the NAT kind is not known
    /// ([`RelayThrough::Randomized`] is asked with `false`).
    pub fn select(&self) -> Option<[u8; 32]> {
        match self {
            Self::Key(k) => Some(*k),
            Self::Select(f) => f(),
            Self::Randomized(f) => f(false),
        }
    }

    /// The relay for one connection of `dht`.
    pub(super) async fn select_for(&self, dht: &HyperDht) -> Option<[u8; 32]> {
        match self {
            Self::Randomized(f) => f(dht.randomized().await),
            _ => self.select(),
        }
    }
}

impl std::fmt::Debug for RelayThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(k) => f.debug_tuple("Key").field(&hex::encode(k)).finish(),
            Self::Select(_) => f.write_str("Select(..)"),
            Self::Randomized(_) => f.write_str("Randomized(..)"),
        }
    }
}

impl From<[u8; 32]> for RelayThrough {
    fn from(k: [u8; 32]) -> Self {
        Self::Key(k)
    }
}

/// What a side pairs: `(is_initiator, relay key, token)`, from its own choice (`ours`: relay and token it
/// sent) and the remote's payload. `server` tells which side we are: the server's relay wins.
pub(super) fn plan(
    server: bool,
    ours: Option<([u8; 32], Token)>,
    theirs: Option<&RelayThroughInfo>,
) -> Option<(bool, [u8; 32], Token)> {
    if server {
        match (ours, theirs) {
            (Some((k, t)), _) => Some((true, k, t)),
            (None, Some(r)) => Some((false, r.public_key, r.token)),
            (None, None) => None,
        }
    } else {
        match (theirs, ours) {
            (Some(r), _) => Some((false, r.public_key, r.token)),
            (None, Some((k, t))) => Some((true, k, t)),
            (None, None) => None,
        }
    }
}

/// The relay info a side sends for its chosen relay.
pub(super) fn info(ours: Option<([u8; 32], Token)>) -> Option<RelayThroughInfo> {
    ours.map(|(public_key, token)| RelayThroughInfo {
        version: 1,
        public_key,
        token,
    })
}

/// What a raw stream's firewall knows of its relay path (hyperdht's `isRelay`): the relay's address once
/// the stream runs through it, and how many packets came from there on another socket than the stream's
/// (after the stream moved to a punched path: the peer's retransmits of what it sent through the relay
/// before it moved, and relay traffic still under way). Those packets are the stream's own and must be
/// accepted (the JS firewall lets them through, marking the upgrade not yet confirmed) without moving the
/// stream back.
#[derive(Debug, Default)]
pub(super) struct RelayPath {
    addr: Mutex<Option<SocketAddr>>,
    packets: AtomicU64,
}

impl RelayPath {
    /// The stream now runs through the relay at `addr`.
    pub fn set(&self, addr: SocketAddr) {
        if let Ok(mut a) = self.addr.lock() {
            *a = Some(addr);
        }
    }

    /// Whether the stream runs (or ran) through a relay.
    pub fn is_set(&self) -> bool {
        self.addr.lock().map(|a| a.is_some()).unwrap_or(false)
    }

    /// Whether a packet from `from` came through the relay (and counts it).
    pub fn is_relay_packet(&self, from: SocketAddr) -> bool {
        let relay = self.addr.lock().map(|a| *a == Some(from)).unwrap_or(false);
        if relay {
            self.packets.fetch_add(1, Ordering::Relaxed);
        }
        relay
    }

    /// Packets that came through the relay on another socket than the stream's.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }
}

/// hyperdht's `confirmDirectUpgrade`: once a relayed stream moved to a punched path, resolves when the
/// relay connection can close. First everything we sent before the move must be acknowledged (its
/// retransmits still go along the relay); then we send an empty UDX message along the new path (the JS
/// `trySend` of an empty buffer; secret streams ignore it), and the peer, JS or Rust, does the same once its
/// own pre-move packets are acknowledged: its empty message tells that nothing of the stream needs the relay
/// any more. Messages are unreliable: if none comes, packets arriving along the new path for
/// [`CONFIRM_FALLBACK`] after ours were acknowledged confirm it too (as the JS takes any direct packet).
/// Pends while neither happens (the relay stays as long as the stream); resolves at once if the stream is
/// gone.
pub(super) async fn confirm_direct_upgrade(control: &UdxStreamControl, relay: &RelayPath) {
    if control.remote_changed().await.is_err() {
        return;
    }
    let direct = || {
        control
            .stats()
            .map(|s| s.packets_received.saturating_sub(relay.packets()))
    };
    let Ok(start) = direct() else { return };
    let _ = control.send_message(&[]);
    let peer_confirmed = async {
        loop {
            match control.recv_message().await {
                Ok(m) if m.is_empty() => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    let fallback = async {
        // Direct packets for a while after ours were acknowledged.
        let mut first_direct = None;
        loop {
            tokio::time::sleep(CONFIRM_POLL).await;
            match direct() {
                Ok(n) if n == start => {}
                Ok(_) => {
                    let t = *first_direct.get_or_insert_with(tokio::time::Instant::now);
                    if t.elapsed() >= CONFIRM_FALLBACK {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        () = peer_confirmed => tracing::debug!("the peer confirmed the direct path"),
        () = fallback => tracing::debug!("direct packets confirmed the direct path"),
    }
}

/// A completed pairing: the relay client (holding the connection to the relay open), the stream carrying
/// that connection, and the id of our relay stream at the relay.
#[derive(Debug)]
pub(super) struct RelayLink {
    /// Keeps the connection to the relay (and the pairing) alive.
    pub _client: BlindRelayClient,
    pub control: UdxStreamControl,
    pub remote_id: u32,
    /// The relay's address on the connection to it: where relayed packets come from.
    pub addr: SocketAddr,
}

/// Connects to the relay and pairs `stream_id` as `is_initiator` of `token` (`_relayConnection`).
pub(super) async fn pair(
    dht: HyperDht,
    relay_key: [u8; 32],
    is_initiator: bool,
    token: Token,
    stream_id: u32,
    keep_alive: Duration,
) -> Result<RelayLink> {
    let work = async {
        let mut conn = dht
            .connect_opts(&relay_key, super::ConnectOpts::default())
            .await?;
        conn.set_keep_alive(Some(keep_alive));
        let control = conn.get_ref().control();
        let addr = control.remote().map(|(_, a)| a).ok_or_else(|| {
            HyperDhtError::RelayAborted("the connection to the relay is not connected".into())
        })?;
        let id = *conn.public_key();
        let client = BlindRelayClient::new(conn, Some(&id)).map_err(relay_error)?;
        let remote_id = client
            .pair(is_initiator, token, stream_id)
            .await
            .map_err(relay_error)?;
        Ok(RelayLink {
            _client: client,
            control,
            remote_id,
            addr,
        })
    };
    tokio::time::timeout(RELAY_TIMEOUT, work)
        .await
        .map_err(|_| HyperDhtError::RelayAborted("the relay pairing timed out".into()))?
}

fn relay_error(e: crate::blind_relay::BlindRelayError) -> HyperDhtError {
    HyperDhtError::RelayAborted(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_relay_wins() {
        let theirs = RelayThroughInfo {
            version: 1,
            public_key: [1; 32],
            token: [2; 32],
        };
        let ours = Some(([3; 32], [4; 32]));
        assert_eq!(
            plan(true, ours, Some(&theirs)),
            Some((true, [3; 32], [4; 32]))
        );
        assert_eq!(
            plan(false, ours, Some(&theirs)),
            Some((false, [1; 32], [2; 32]))
        );
        assert_eq!(plan(false, ours, None), Some((true, [3; 32], [4; 32])));
        assert_eq!(
            plan(true, None, Some(&theirs)),
            Some((false, [1; 32], [2; 32]))
        );
        assert_eq!(plan(true, None, None), None);
        assert_eq!(
            RelayThrough::Select(Arc::new(|| Some([9; 32]))).select(),
            Some([9; 32])
        );
    }
}

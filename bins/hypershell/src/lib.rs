//! The hypershell tools (`hypershell`, `hypershell-server`, `hypershell-keygen`, `hypershell-copy`): their
//! command lines ([`cli`], also read by the docs generator), key files ([`keys`]), the shell channel
//! ([`shell`]), file transfers ([`transfer`]) and local port forwarding ([`tunnel`]), wire compatible with JS hypershell 0.0.15 (see
//! [`holepunch::hypershell`] for the protocol).

pub mod cli;
pub mod keys;
pub mod shell;
pub mod transfer;
pub mod tunnel;

use std::time::Duration;

use anyhow::Context;
use bin_support::bootstrap::{self, BootstrapNode};
use holepunch::hyperdht::{
    ConnectOpts, Connection, HyperDht, HyperDhtError, HyperDhtOpts, RelayThrough,
};

/// Keep-alive of hypershell connections (the JS `setKeepAlive(5000)`).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long closing the node may take at exit.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts a DHT node on the given bootstrap list, with LAN discovery if `lan` (`cli.dht.net.lan()`).
pub async fn open_dht(
    nodes: &[BootstrapNode],
    lan: Option<holepunch::lan_discovery::LanOpts>,
) -> anyhow::Result<HyperDht> {
    let bootstrap = bootstrap::resolve(nodes).await?;
    let dht = HyperDht::bind(HyperDhtOpts {
        host: bootstrap::bind_host(&bootstrap),
        bootstrap,
        lan,
        ..HyperDhtOpts::default()
    })
    .await
    .context("starting the DHT node")?;
    Ok(dht)
}

/// Connects to `server` as `key_pair` (through the blind relay `relay` as well, if any), with the JS
/// client's messages for the usual failures.
pub async fn connect(
    dht: &HyperDht,
    server: &[u8; 32],
    key_pair: &holepunch::crypto::KeyPair,
    relay: Option<[u8; 32]>,
) -> anyhow::Result<Connection> {
    let opts = ConnectOpts {
        key_pair: Some(key_pair.clone()),
        relay_through: relay.map(RelayThrough::Key),
        ..ConnectOpts::default()
    };
    match dht.connect_opts(server, opts).await {
        Ok(mut conn) => {
            bin_support::relay::report_path("hypershell", dht, &conn);
            conn.set_keep_alive(Some(KEEP_ALIVE));
            Ok(conn)
        }
        Err(HyperDhtError::PeerConnectionFailed) => Err(anyhow::anyhow!(
            "could not connect to {}: the server did not answer (probably firewalled: is this client's public key \
             {} in the server's authorized_peers?)",
            holepunch::hypershell::format_key(server),
            holepunch::hypershell::format_key(&key_pair.public)
        )),
        Err(HyperDhtError::PeerNotFound) => Err(anyhow::anyhow!(
            "could not find the server {} on the DHT (is hypershell-server running?)",
            holepunch::hypershell::format_key(server)
        )),
        Err(e) => Err(anyhow::Error::from(e).context("connecting to the server")),
    }
}

//! The client side (`hypertele`): listens on a local TCP port (or Unix socket) and gives every local
//! connection its own end-to-end encrypted HyperDHT connection to the server, all from one DHT node.
//!
//! [`Proxy`] is also what `hyperssh` runs ssh through.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{ConnectOpts, HyperDht, HyperDhtOpts, RelayThrough};
use tokio::net::{TcpListener, UnixListener};

use crate::cli::ClientCli;
use crate::config::{parse_key, parse_seed, read_identity, ConfFile, ConfigError, KeepAlive};
use crate::pipe::{pipe, Local, Stats};
use bin_support::Signals;

use crate::{bind_host, DEBUG_INTERVAL};

/// Pause after a failed accept before the next.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (host, port; port 0 picks a free one).
    Tcp(String, u16),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

/// Everything the client needs, from the command line and the files.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to listen.
    pub listen: Listen,
    /// The server's public key.
    pub peer: [u8; 32],
    /// The key pair to connect with (random when `None`).
    pub key_pair: Option<KeyPair>,
    /// `--compress`.
    pub compress: bool,
    /// Connection keep-alive.
    pub keep_alive: KeepAlive,
    /// `--debug`: print connection counts.
    pub debug: bool,
    /// A blind relay to pair connections through as well (`--relay`, `HYPERDHT_RELAY`).
    pub relay: Option<[u8; 32]>,
    /// LAN discovery (`--no-lan`, `HYPERDHT_NO_LAN` turn it off).
    pub lan: Option<holepunch::lan_discovery::LanOpts>,
}

impl ClientConfig {
    /// Builds the configuration as the JS bin does: `-i` or `--private` for the key pair, `-s` (a key, a
    /// `.hyper-hosts` name, or with `--private` the server's seed) for the server, then the configuration
    /// file's keys over them. `resolve` maps a `-s` name to a key (see [`crate::config::resolve_host`]).
    pub fn from_cli(
        cli: &ClientCli,
        resolve: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut key_pair = match &cli.identity {
            Some(path) => Some(read_identity(path)?),
            None => None,
        };
        let mut peer = None;
        if let Some(s) = &cli.server {
            if cli.private {
                let kp = KeyPair::from_seed(&parse_seed("seed (-s with --private)", s)?);
                peer = Some(kp.public);
                key_pair = Some(kp);
            } else {
                let key = resolve(s).ok_or_else(|| ConfigError::HostWithoutKey(s.clone()))?;
                let what = if key == *s {
                    "peer (-s)".to_owned()
                } else {
                    format!("peer (.hyper-hosts entry for {s:?})")
                };
                peer = Some(parse_key(&what, &key)?);
            }
        }
        let file = match &cli.conf {
            Some(path) => ConfFile::read(path)?,
            None => ConfFile::default(),
        };
        if let (Some(p), Some(path)) = (&file.peer, &cli.conf) {
            peer = Some(parse_key("conf.peer", p).map_err(|e| e.in_file(path))?);
        }
        let listen = match (&cli.unix, cli.port) {
            (Some(path), _) => Listen::Unix(path.clone()),
            (None, port) => Listen::Tcp(cli.address.clone(), port.unwrap_or(0)),
        };
        Ok(Self {
            listen,
            peer: peer.ok_or(ConfigError::MissingPeer)?,
            key_pair,
            compress: cli.compress || file.compress.unwrap_or(false),
            keep_alive: file.keep_alive.unwrap_or_default(),
            debug: cli.debug,
            relay: cli.relay.relay.map(|k| k.0),
            lan: cli.net.lan(),
        })
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// The local listener and the DHT node behind it.
#[derive(Debug)]
pub struct Proxy {
    dht: HyperDht,
    listener: Listener,
    peer: [u8; 32],
    key_pair: KeyPair,
    compress: bool,
    relay: Option<[u8; 32]>,
    stats: Arc<Stats>,
}

impl Proxy {
    /// Binds the DHT node (on `bootstrap`) and the local listener.
    pub async fn bind(cfg: &ClientConfig, bootstrap: Vec<SocketAddrV4>) -> anyhow::Result<Self> {
        let listener = match &cfg.listen {
            Listen::Tcp(host, port) => Listener::Tcp(
                TcpListener::bind((host.as_str(), *port))
                    .await
                    .with_context(|| format!("listening on {host}:{port}"))?,
            ),
            Listen::Unix(path) => Listener::Unix(
                UnixListener::bind(path)
                    .with_context(|| format!("listening on {}", path.display()))?,
                path.clone(),
            ),
        };
        let key_pair = cfg.key_pair.clone().unwrap_or_else(KeyPair::generate);
        let dht = HyperDht::bind(HyperDhtOpts {
            host: bind_host(&bootstrap),
            bootstrap,
            lan: cfg.lan.clone(),
            key_pair: Some(key_pair.clone()),
            connection_keep_alive: cfg.keep_alive.as_option(),
            ..HyperDhtOpts::default()
        })
        .await
        .context("starting the DHT node")?;
        Ok(Self {
            dht,
            listener,
            peer: cfg.peer,
            key_pair,
            compress: cfg.compress,
            relay: cfg.relay,
            stats: Arc::new(Stats::default()),
        })
    }

    /// Where it listens, as the JS prints it: `HOST:PORT` or the socket path.
    pub fn local_addr(&self) -> String {
        match &self.listener {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| format!("{}:{}", a.ip(), a.port()))
                .unwrap_or_default(),
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }

    /// The live connection counts.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Accepts local connections forever (until the future is dropped), each piped through its own
    /// connection to the server. A connection that cannot reach the server is closed, with one line on
    /// stderr. Failed accepts (out of file descriptors...) are reported and retried after a pause.
    pub async fn serve(&self) -> anyhow::Result<()> {
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().await.map(|(local, _)| {
                    let _ = local.set_nodelay(true);
                    self.spawn_pipe(local);
                }),
                Listener::Unix(l, _) => l.accept().await.map(|(local, _)| self.spawn_pipe(local)),
            };
            if let Err(e) = accepted {
                eprintln!("hypertele: accepting a local connection: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }

    fn spawn_pipe<L>(&self, local: L)
    where
        L: Local + Send + 'static,
        L::Read: Send,
        L::Write: Send,
    {
        let dht = self.dht.clone();
        let peer = self.peer;
        let key_pair = self.key_pair.clone();
        let compress = self.compress;
        let stats = self.stats.clone();
        let opts = ConnectOpts {
            key_pair: Some(key_pair),
            relay_through: self.relay.map(RelayThrough::Key),
            ..ConnectOpts::default()
        };
        tokio::spawn(async move {
            match dht.connect_opts(&peer, opts).await {
                Ok(conn) => {
                    bin_support::relay::report_path("hypertele", &dht, &conn);
                    if let Err(e) = pipe(local, conn, compress, stats).await {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                Err(e) => eprintln!("hypertele: cannot connect to {}: {e}", hex::encode(peer)),
            }
        });
    }

    /// Stops: removes the Unix socket file and marks the DHT node destroyed.
    pub async fn close(self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
        self.dht.destroy().await;
    }
}

/// Runs the client until SIGINT/SIGTERM: prints `Server ready @ADDRESS` on stdout once listening.
pub async fn run(cfg: ClientConfig, bootstrap: Vec<SocketAddrV4>) -> anyhow::Result<()> {
    let mut interrupt = Signals::listen()?;
    let proxy = Proxy::bind(&cfg, bootstrap).await?;
    println!("Server ready @{}", proxy.local_addr());
    let mut tick = tokio::time::interval(DEBUG_INTERVAL);
    tick.tick().await;
    let result = {
        let serve = proxy.serve();
        tokio::pin!(serve);
        loop {
            tokio::select! {
                r = &mut serve => break r,
                _ = tick.tick(), if cfg.debug => println!("{}", proxy.stats().line()),
                _ = interrupt.recv() => break Ok(()),
            }
        }
    };
    proxy.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> anyhow::Result<ClientCli> {
        Ok(ClientCli::try_parse_from(
            std::iter::once("hypertele").chain(args.iter().copied()),
        )?)
    }

    #[test]
    fn configuration() -> anyhow::Result<()> {
        let key = [9u8; 32];
        let hex_key = hex::encode(key);
        let cfg =
            ClientConfig::from_cli(&cli(&["-p", "0", "-s", &hex_key])?, |s| Some(s.to_owned()))?;
        assert_eq!(cfg.peer, key);
        assert_eq!(cfg.listen, Listen::Tcp("127.0.0.1".into(), 0));
        assert!(cfg.key_pair.is_none());

        // A name from the hosts file.
        let cfg = ClientConfig::from_cli(&cli(&["-u", "/s", "-s", "box"])?, |s| {
            (s == "box").then(|| hex_key.clone())
        })?;
        assert_eq!(cfg.peer, key);
        assert_eq!(cfg.listen, Listen::Unix("/s".into()));

        // --private: -s is the seed; the client connects as the server's key pair.
        let seed = hex::encode([4u8; 32]);
        let cfg = ClientConfig::from_cli(&cli(&["-p", "1", "--private", "-s", &seed])?, |_| None)?;
        let kp = KeyPair::from_seed(&[4u8; 32]);
        assert_eq!(cfg.peer, kp.public);
        assert_eq!(cfg.key_pair.map(|k| k.public), Some(kp.public));

        assert!(matches!(
            ClientConfig::from_cli(&cli(&["-p", "1"])?, |_| None),
            Err(ConfigError::MissingPeer)
        ));
        assert!(matches!(
            ClientConfig::from_cli(&cli(&["-p", "1", "-s", "nokey"])?, |_| None),
            Err(ConfigError::HostWithoutKey(_))
        ));
        assert!(matches!(
            ClientConfig::from_cli(&cli(&["-p", "1", "-s", "short"])?, |s| Some(s.into())),
            Err(ConfigError::BadKey { .. })
        ));
        assert!(matches!(
            ClientConfig::from_cli(&cli(&["-p", "1", "-s", "x", "-i", "/nonexistent"])?, |s| {
                Some(s.into())
            }),
            Err(ConfigError::Identity { .. })
        ));
        Ok(())
    }
}

//! The server side (`hypertele-server`): listens on the key pair derived from the seed and pipes every peer
//! connection to a new connection to the service (TCP `--address:-l` or the Unix socket `-u`).
//!
//! Access: with an allow list, only the listed client public keys get in; with `--private`, only peers that
//! connect with the server's own key pair (derived from the seed, which is then the capability); otherwise
//! anyone who knows the public key. Rejected peers get no answer (as from the JS server), so their connect
//! fails; the server prints one line per rejected peer on stderr.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{Connection, HyperDht, HyperDhtOpts, RelayThrough};
use tokio::net::{TcpStream, UnixStream};

use crate::cli::ServerCli;
use crate::config::{parse_key, parse_seed, ConfFile, ConfigError, KeepAlive};
use crate::pipe::{pipe, Stats};
use bin_support::Signals;

use crate::{bind_host, CLOSE_TIMEOUT, DEBUG_INTERVAL};

/// Where the service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A TCP service: host (name or address) and port.
    Tcp(String, u16),
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(host, port) => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Who may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone who knows the public key.
    Open,
    /// Only these client public keys.
    Allow(Vec<[u8; 32]>),
    /// Only peers holding the server's own key pair (`--private`).
    Private,
}

impl Access {
    /// Why `remote` is rejected, or `None` to let it in (the firewall of the JS server).
    pub fn reject_reason(&self, own: &[u8; 32], remote: &[u8; 32]) -> Option<&'static str> {
        match self {
            Self::Open => None,
            Self::Allow(keys) => (!keys.contains(remote)).then_some("not in the allow list"),
            Self::Private => (remote != own)
                .then_some("it does not hold the private server's key pair (--private)"),
        }
    }
}

/// Everything the server needs, from the command line and the configuration file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The service.
    pub service: Service,
    /// The seed the key pair is derived from.
    pub seed: [u8; 32],
    /// Who may connect.
    pub access: Access,
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

impl ServerConfig {
    /// Builds the configuration as the JS bin does: flags first, then the configuration file's keys over
    /// them.
    pub fn from_cli(cli: &ServerCli) -> Result<Self, ConfigError> {
        let file = match &cli.conf {
            Some(path) => ConfFile::read(path)?,
            None => ConfFile::default(),
        };
        // Errors in values of the file name it.
        let in_file = |e: ConfigError| match &cli.conf {
            Some(path) => e.in_file(path),
            None => e,
        };
        let seed = match (file.seed.as_deref(), cli.seed.as_deref()) {
            (Some(s), _) => parse_seed("conf.seed", s).map_err(in_file)?,
            (None, Some(s)) => parse_seed("conf.seed", s)?,
            (None, None) => return Err(ConfigError::MissingSeed),
        };
        let allow = file
            .allow
            .as_ref()
            .map(|keys| {
                keys.iter()
                    .map(|k| parse_key("allow list entry", k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(in_file)?;
        let access = match (cli.private, allow) {
            (true, Some(_)) => return Err(ConfigError::PrivateWithAllowList),
            (true, None) => Access::Private,
            (false, Some(keys)) => Access::Allow(keys),
            (false, None) => Access::Open,
        };
        let service = match (&cli.unix, cli.port) {
            (Some(path), _) => Service::Unix(path.clone()),
            (None, Some(port)) => Service::Tcp(cli.address.clone(), port),
            // clap requires one of them
            (None, None) => Service::Tcp(cli.address.clone(), 0),
        };
        Ok(Self {
            service,
            seed,
            access,
            compress: cli.compress || file.compress.unwrap_or(false),
            keep_alive: file.keep_alive.unwrap_or_default(),
            debug: cli.debug,
            relay: cli.relay.relay.map(|k| k.0),
            lan: cli.net.lan(),
        })
    }

    /// The server's key pair.
    pub fn key_pair(&self) -> KeyPair {
        KeyPair::from_seed(&self.seed)
    }

    /// The line printed once listening (the JS bin's).
    pub fn ready_line(&self) -> String {
        let public = hex::encode(self.key_pair().public);
        match self.access {
            Access::Private => format!(
                "hypertele (private): connect with seed {} (listening on {public})",
                hex::encode(self.seed)
            ),
            _ => format!("hypertele: {public}"),
        }
    }
}

/// Runs the server until SIGINT/SIGTERM: binds a DHT node on `bootstrap`, announces, prints the ready line
/// on stdout and serves.
pub async fn run(cfg: ServerConfig, bootstrap: Vec<SocketAddrV4>) -> anyhow::Result<()> {
    let mut interrupt = Signals::listen()?;
    let dht = HyperDht::bind(HyperDhtOpts {
        host: bind_host(&bootstrap),
        bootstrap,
        lan: cfg.lan.clone(),
        connection_keep_alive: cfg.keep_alive.as_option(),
        ..HyperDhtOpts::default()
    })
    .await
    .context("starting the DHT node")?;
    let key_pair = cfg.key_pair();
    let own = key_pair.public;
    let access = cfg.access.clone();
    let mut server = dht.create_server(move |remote, _| match access.reject_reason(&own, remote) {
        Some(why) => {
            eprintln!(
                "hypertele: rejected a connection from {}: {why}",
                hex::encode(remote)
            );
            true
        }
        None => false,
    });
    server.set_relay_through(cfg.relay.map(RelayThrough::Key));
    let listened = tokio::select! {
        r = server.listen(key_pair) => Some(r),
        _ = interrupt.recv() => None,
    };
    if let Some(r) = listened {
        r.context("announcing the server")?;
        println!("{}", cfg.ready_line());
        let stats = Arc::new(Stats::default());
        let cfg = Arc::new(cfg);
        let mut tick = tokio::time::interval(DEBUG_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                conn = server.accept() => {
                    let Some(conn) = conn else { break };
                    tokio::spawn(serve(conn, cfg.clone(), stats.clone()));
                }
                _ = tick.tick(), if cfg.debug => println!("{}", stats.line()),
                _ = interrupt.recv() => break,
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, server.close()).await;
    dht.destroy().await;
    Ok(())
}

/// One peer: connect to the service and pipe.
async fn serve(conn: Connection, cfg: Arc<ServerConfig>, stats: Arc<Stats>) {
    let peer = hex::encode(conn.remote_public_key());
    let result = match &cfg.service {
        Service::Tcp(host, port) => match TcpStream::connect((host.as_str(), *port)).await {
            Ok(local) => {
                let _ = local.set_nodelay(true);
                pipe(local, conn, cfg.compress, stats).await
            }
            Err(e) => {
                eprintln!(
                    "hypertele: cannot connect to the service at {}: {e}",
                    cfg.service
                );
                conn.get_ref().destroy();
                return;
            }
        },
        Service::Unix(path) => match UnixStream::connect(path).await {
            Ok(local) => pipe(local, conn, cfg.compress, stats).await,
            Err(e) => {
                eprintln!(
                    "hypertele: cannot connect to the service at {}: {e}",
                    cfg.service
                );
                conn.get_ref().destroy();
                return;
            }
        },
    };
    if let Err(e) = result {
        if cfg.debug {
            eprintln!("hypertele: connection from {peer} ended: {e}");
        }
        tracing::debug!("connection from {peer} ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn access() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(Access::Open.reject_reason(&a, &b), None);
        assert_eq!(Access::Allow(vec![b]).reject_reason(&a, &b), None);
        assert!(Access::Allow(vec![a]).reject_reason(&a, &b).is_some());
        assert!(Access::Private.reject_reason(&a, &b).is_some());
        assert_eq!(Access::Private.reject_reason(&a, &a), None);
    }

    #[test]
    fn configuration() -> anyhow::Result<()> {
        let seed = hex::encode([5u8; 32]);
        let cli = ServerCli::try_parse_from(["s", "-l", "8080", "--seed", &seed])?;
        let cfg = ServerConfig::from_cli(&cli)?;
        assert_eq!(cfg.service, Service::Tcp("127.0.0.1".into(), 8080));
        assert_eq!(cfg.access, Access::Open);
        let public = hex::encode(KeyPair::from_seed(&[5u8; 32]).public);
        assert_eq!(cfg.ready_line(), format!("hypertele: {public}"));
        let cli = ServerCli::try_parse_from(["s", "-u", "/x", "--seed", &seed, "--private"])?;
        let cfg = ServerConfig::from_cli(&cli)?;
        assert_eq!(cfg.access, Access::Private);
        assert_eq!(
            cfg.ready_line(),
            format!("hypertele (private): connect with seed {seed} (listening on {public})")
        );
        let cli = ServerCli::try_parse_from(["s", "-l", "1"])?;
        assert!(matches!(
            ServerConfig::from_cli(&cli),
            Err(ConfigError::MissingSeed)
        ));
        let cli = ServerCli::try_parse_from(["s", "-l", "1", "--seed", "abc"])?;
        assert!(matches!(
            ServerConfig::from_cli(&cli),
            Err(ConfigError::BadSeed { .. })
        ));
        Ok(())
    }
}

//! The command lines of `hypertele-server` and `hypertele`: the JS hypertele 1.1.4 bins' flags, with
//! `--bootstrap` taking a full list (the JS takes one port on 127.0.0.1, which is also accepted).

use std::path::PathBuf;

use bin_support::bootstrap::BootstrapArgs;
use bin_support::relay::RelayArgs;
use clap::{CommandFactory, Parser};

fn parse_service_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("proxy port invalid: expected a port number from 1 to 65535".into()),
    }
}

const BOOTSTRAP_HELP: &str = "\
Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT (the JS bins' test option). \
Without --bootstrap, the HYPERDHT_BOOTSTRAP environment variable (same form) is used, else the public \
bootstrap nodes. When every bootstrap node is on 127.0.0.1 (a local testnet), the DHT binds to 127.0.0.1.";

const SERVER_AFTER_HELP: &str = "\
Configuration file (-c), JSON; its keys override the flags:
  {\"seed\": \"<64 hex digits>\", \"allow\": [\"<client public key>\", ...], \"compress\": true, \"keepAlive\": 5000}

Prints `hypertele: <public key>` once announced; clients connect with `hypertele -s <public key>`. With \
--private, prints the seed to give to clients instead: they connect with `hypertele --private -s <seed>` and \
must hold the key pair derived from it, so the public key alone grants no access.

Exit status: 0 after SIGINT/SIGTERM, 1 on an error (bad configuration, DHT failure), 2 on bad usage.

Examples:
  hypertele-server -l 22 -c config-server.json
  hypertele-server -l 22 --seed $(openssl rand -hex 32)
  hypertele-server -u /run/app.sock --seed SEED --private";

/// Exposes a local TCP service (or Unix socket) to HyperDHT peers.
///
/// Compatible with the JavaScript `hypertele-server` (hypertele 1.1.4): same flags, configuration file and
/// output, same wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hypertele-server",
    version,
    after_help = format!("{SERVER_AFTER_HELP}\n\n{BOOTSTRAP_HELP}")
)]
pub struct ServerCli {
    /// Port of the TCP service to expose to the peers.
    #[arg(short = 'l', value_name = "PORT", value_parser = parse_service_port,
          required_unless_present = "unix", conflicts_with = "unix")]
    pub port: Option<u16>,

    /// Unix domain socket of the service to expose, instead of a TCP port.
    #[arg(short = 'u', value_name = "SOCKET")]
    pub unix: Option<PathBuf>,

    /// Host of the TCP service.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub address: String,

    /// Configuration file (JSON: seed, allow, compress, keepAlive).
    #[arg(short = 'c', value_name = "CONF")]
    pub conf: Option<PathBuf>,

    /// Seed of the server's key pair, 64 hex digits (the configuration file's `seed` wins).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<String>,

    /// Make the proxy private: only peers holding the key pair derived from the seed get in.
    #[arg(long)]
    pub private: bool,

    /// Compress the traffic (one gzip member per message); the client must use --compress too.
    #[arg(long)]
    pub compress: bool,

    /// Accepted for compatibility; has no effect (the JS turns off TLS checks of Node, which has no
    /// bearing on a plain TCP proxy).
    #[arg(long = "cert-skip", hide = true)]
    pub cert_skip: bool,

    /// Print connection counts every 5 seconds.
    #[arg(long)]
    pub debug: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,
}

const CLIENT_AFTER_HELP: &str = "\
The server key (-s) is 64 hex digits or 52 z-base-32 characters, or a name from a .hyper-hosts file (lines \
of `NAME KEY`; looked up in ./, /home/$USER, $HOME, Users/$USER and /etc, first file found).

Configuration file (-c), JSON; its keys override the flags:
  {\"peer\": \"<server public key>\", \"compress\": true, \"keepAlive\": 5000}

Identity file (-i), JSON: {\"secretKey\": \"<128 hex digits>\", \"publicKey\": \"<64 hex digits>\"}; \
without it a random key pair is used.

Prints `Server ready @HOST:PORT` (or `Server ready @SOCKET`) once listening; every local connection gets \
its own end-to-end encrypted connection to the server.

Exit status: 0 after SIGINT/SIGTERM, 1 on an error, 2 on bad usage.

Examples:
  hypertele -p 1337 -c config-client.json
  hypertele -p 1337 -s PUBKEY_FROM_SERVER -i keypair.json
  hypertele -p 2222 --private -s SEED_FROM_SERVER";

/// Connects local TCP (or Unix socket) clients to a hypertele-server over HyperDHT.
///
/// Compatible with the JavaScript `hypertele` (hypertele 1.1.4): same flags, configuration files and
/// output, same wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hypertele",
    version,
    after_help = format!("{CLIENT_AFTER_HELP}\n\n{BOOTSTRAP_HELP}")
)]
pub struct ClientCli {
    /// Local port to listen on (0 picks a free one).
    #[arg(
        short = 'p',
        value_name = "PORT",
        required_unless_present = "unix",
        conflicts_with = "unix"
    )]
    pub port: Option<u16>,

    /// Local Unix domain socket to listen on, instead of a TCP port.
    #[arg(short = 'u', value_name = "SOCKET")]
    pub unix: Option<PathBuf>,

    /// Local address to listen on.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub address: String,

    /// Configuration file (JSON: peer, compress, keepAlive).
    #[arg(short = 'c', value_name = "CONF")]
    pub conf: Option<PathBuf>,

    /// Identity file: the key pair this client connects with.
    #[arg(short = 'i', value_name = "IDENTITY", conflicts_with = "private")]
    pub identity: Option<PathBuf>,

    /// The server: its public key or a .hyper-hosts name; with --private, the server's seed.
    #[arg(short = 's', value_name = "KEY|NAME")]
    pub server: Option<String>,

    /// Access a private server: -s is the server's seed, and this client connects with the key pair derived
    /// from it.
    #[arg(long, requires = "server")]
    pub private: bool,

    /// Compress the traffic (one gzip member per message); the server must use --compress too.
    #[arg(long)]
    pub compress: bool,

    /// Print connection counts every 5 seconds.
    #[arg(long)]
    pub debug: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,
}

/// The clap command of `hypertele-server` (for the docs generator).
pub fn server_command() -> clap::Command {
    ServerCli::command()
}

/// The clap command of `hypertele` (for the docs generator).
pub fn client_command() -> clap::Command {
    ClientCli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(args: &[&str]) -> Result<ServerCli, clap::Error> {
        ServerCli::try_parse_from(std::iter::once("hypertele-server").chain(args.iter().copied()))
    }

    fn client(args: &[&str]) -> Result<ClientCli, clap::Error> {
        ClientCli::try_parse_from(std::iter::once("hypertele").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        server_command().debug_assert();
        client_command().debug_assert();
    }

    #[test]
    fn server_arguments() -> Result<(), clap::Error> {
        let s = server(&["-l", "22", "--seed", "ab", "--compress"])?;
        assert_eq!(s.port, Some(22));
        assert_eq!(s.address, "127.0.0.1");
        assert!(s.compress && !s.private);
        let s = server(&[
            "-u",
            "/tmp/s",
            "-c",
            "c.json",
            "--private",
            "--address",
            "10.0.0.1",
        ])?;
        assert_eq!(s.unix, Some(PathBuf::from("/tmp/s")));
        assert!(s.private);
        assert!(server(&[]).is_err(), "a port or socket is required");
        assert!(server(&["-l", "0"]).is_err(), "port 0 is invalid");
        assert!(server(&["-l", "x"]).is_err());
        assert!(server(&["-l", "1", "-u", "/s"]).is_err(), "not both");
        assert!(server(&["-l", "1", "--cert-skip", "--debug"]).is_ok());
        Ok(())
    }

    #[test]
    fn client_arguments() -> Result<(), clap::Error> {
        let c = client(&["-p", "0", "-s", "name"])?;
        assert_eq!(c.port, Some(0));
        assert_eq!(c.server.as_deref(), Some("name"));
        let c = client(&["-u", "/tmp/c", "-s", "k", "--private", "--compress"])?;
        assert!(c.private && c.compress);
        assert!(client(&[]).is_err());
        assert!(client(&["-p", "1", "-u", "/s"]).is_err());
        assert!(
            client(&["-p", "1", "--private"]).is_err(),
            "--private needs -s"
        );
        assert!(
            client(&["-p", "1", "-s", "k", "--private", "-i", "id.json"]).is_err(),
            "--private and -i exclude each other"
        );
        Ok(())
    }

    #[test]
    fn bootstrap() -> Result<(), clap::Error> {
        let c = client(&["-p", "1", "--bootstrap", "49737"])?;
        assert_eq!(
            c.net.bootstrap.map(|l| l.0),
            bin_support::bootstrap::parse_list("127.0.0.1:49737")
                .ok()
                .map(|l| l.0)
        );
        let s = server(&["-l", "1", "--bootstrap", "1.2.3.4:5,6"])?;
        assert_eq!(s.net.bootstrap.map(|l| l.0.len()), Some(2));
        assert!(!client(&["-p", "1"])?.net.is_given());
        assert!(client(&["-p", "1", "--bootstrap", "x:y"]).is_err());
        Ok(())
    }
}

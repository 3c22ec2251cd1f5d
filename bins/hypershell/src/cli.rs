//! The command lines of the hypershell tools (the JS `hypershell` 0.0.15 bins: `hypershell`,
//! `hypershell-server`, `hypershell-keygen`, `hypershell-copy`) plus `--bootstrap`.

use std::path::PathBuf;

use bin_support::bootstrap::{self, BootstrapArgs, BootstrapNode};
use bin_support::relay::RelayArgs;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser};
use holepunch::hypershell::LocalTunnel;

/// The bootstrap node `--testnet` uses (the JS bins' fixed local testnet).
pub const TESTNET_BOOTSTRAP: &str = "127.0.0.1:40838";

/// The DHT options every tool takes.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("bootstrap", |a| a.help(
    "Bootstrap nodes of the DHT to use (default: HYPERDHT_BOOTSTRAP, else the public nodes)"
)))]
pub struct DhtArgs {
    /// Use a local testnet (bootstrap 127.0.0.1:40838).
    #[arg(long, conflicts_with = "bootstrap")]
    pub testnet: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,
}

impl DhtArgs {
    /// The bootstrap list: `--testnet` (127.0.0.1:40838, whatever `HYPERDHT_BOOTSTRAP` says), then the flag,
    /// then `HYPERDHT_BOOTSTRAP`, then the public nodes. A bad `HYPERDHT_BOOTSTRAP` is a usage error of `cmd`
    /// (exit 2).
    pub fn bootstrap_nodes(&self, cmd: clap::Command) -> Result<Vec<BootstrapNode>, clap::Error> {
        if self.testnet {
            let mut cmd = cmd;
            return bootstrap::parse_list(TESTNET_BOOTSTRAP)
                .map(|l| l.0)
                .map_err(|e| cmd.error(ErrorKind::InvalidValue, e.to_string()));
        }
        self.net.nodes_or_usage(cmd)
    }

    /// The blind relay: `--relay`, else `HYPERDHT_RELAY`, else none. A bad `HYPERDHT_RELAY` is a usage error
    /// of `cmd` (exit 2).
    pub fn relay(&self, cmd: clap::Command) -> Result<Option<[u8; 32]>, clap::Error> {
        self.relay.key_or_usage(cmd)
    }
}

const CLIENT_AFTER_HELP: &str = "\
The server is a public key (64 hex digits or 52 z-base32 characters) or a name from ~/.hypershell/known_peers \
(lines of `<name> <public key>`). Without a command after `--`, the server's shell runs (in a terminal when \
stdin is one). The exit status is the remote command's.

If the key file does not exist, a new key is generated into it first.

Examples:
  hypershell my-server                         interactive shell
  hypershell my-server -- uname -a             run one command
  hypershell my-server -L 8080:localhost:80    forward local port 8080 to the server's port 80";

/// Connect to a P2P shell.
#[derive(Debug, Clone, Parser)]
#[command(name = "hypershell", version, after_help = CLIENT_AFTER_HELP)]
pub struct ClientCli {
    /// Public key or name of the server.
    #[arg(value_name = "SERVER")]
    pub server: String,

    /// Filename of the client seed key.
    #[arg(short = 'f', value_name = "FILENAME")]
    pub keyfile: Option<PathBuf>,

    /// Local port forwarding: [address:]port:host:hostport (repeatable).
    #[arg(short = 'L', value_name = "[ADDRESS:]PORT:HOST:HOSTPORT")]
    pub local: Vec<LocalTunnel>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub dht: DhtArgs,

    /// The command to run and its arguments (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The protocols a server may serve.
pub const PROTOCOLS: [&str; 4] = ["shell", "upload", "download", "tunnel"];

const SERVER_AFTER_HELP: &str = "\
Only peers whose public key is in the firewall file (default ~/.hypershell/authorized_peers, one key a line, \
`#` comments) may connect; the file is read again for every connection, so edits apply at once. If the key \
file does not exist, a new key is generated into it first.";

/// Create a P2P shell server.
#[derive(Debug, Clone, Parser)]
#[command(name = "hypershell-server", version, after_help = SERVER_AFTER_HELP)]
pub struct ServerCli {
    /// Filename of the server seed key.
    #[arg(short = 'f', value_name = "FILENAME")]
    pub keyfile: Option<PathBuf>,

    /// List of allowed public keys.
    #[arg(long, value_name = "FILENAME")]
    pub firewall: Option<PathBuf>,

    /// Allow anyone to connect.
    #[arg(long)]
    pub disable_firewall: bool,

    /// List of allowed protocols (shell, upload, download, tunnel).
    #[arg(long, value_name = "NAME", num_args = 1.., value_parser = clap::builder::PossibleValuesParser::new(PROTOCOLS))]
    pub protocol: Option<Vec<String>>,

    /// Restrict tunneling to a limited set of hosts.
    #[arg(long, value_name = "ADDRESS", num_args = 1..)]
    pub tunnel_host: Option<Vec<String>>,

    /// Restrict tunneling to a limited set of ports (numbers or ranges like 8000-8100).
    #[arg(long, value_name = "PORT", num_args = 1..)]
    pub tunnel_port: Option<Vec<String>>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub dht: DhtArgs,
}

impl ServerCli {
    /// Whether `protocol` (one of [`PROTOCOLS`]) is served.
    pub fn serves(&self, protocol: &str) -> bool {
        self.protocol
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p == protocol))
    }
}

/// Create keys of type ed25519 for use by hypershell.
#[derive(Debug, Clone, Parser)]
#[command(name = "hypershell-keygen", version)]
pub struct KeygenCli {
    /// Filename of the seed key file (asked for when not given).
    #[arg(short = 'f', value_name = "FILENAME")]
    pub keyfile: Option<PathBuf>,

    /// Provides a new comment.
    #[arg(short = 'c', value_name = "COMMENT")]
    pub comment: Option<String>,
}

const COPY_AFTER_HELP: &str = "\
One of SOURCE and TARGET is remote: `@name:path` (name from ~/.hypershell/known_peers) or `KEY:path`. Files \
and folders are copied, in both directions. Remote paths are relative to the server's working directory.

Examples:
  hypershell-copy ./notes.txt @my-server:/tmp/notes.txt      upload
  hypershell-copy @my-server:/var/log ./logs                 download a folder";

/// Transfers files using a P2P shell server as transport.
#[derive(Debug, Clone, Parser)]
#[command(name = "hypershell-copy", version, after_help = COPY_AFTER_HELP)]
pub struct CopyCli {
    /// Source.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// Target.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Filename of the client seed key.
    #[arg(short = 'f', value_name = "FILENAME")]
    pub keyfile: Option<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub dht: DhtArgs,
}

/// A remote path `@name:path` or `KEY:path`: `(server, path)`; `None` for a local path.
pub fn parse_remote_path(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('@') {
        let (host, path) = rest.split_once(':')?;
        return Some((host.to_owned(), path.to_owned()));
    }
    let (host, path) = s.split_once(':')?;
    let is_key = (host.len() == 64 && host.bytes().all(|b| b.is_ascii_hexdigit()))
        || (host.len() == 52
            && host
                .to_ascii_lowercase()
                .bytes()
                .all(|b| b"ybndrfg8ejkmcpqxot1uwisza345h769".contains(&b)));
    is_key.then(|| (host.to_owned(), path.to_owned()))
}

/// The `hypershell` clap command (for the docs generator).
pub fn client_command() -> clap::Command {
    ClientCli::command()
}

/// The `hypershell-server` clap command (for the docs generator).
pub fn server_command() -> clap::Command {
    ServerCli::command()
}

/// The `hypershell-keygen` clap command (for the docs generator).
pub fn keygen_command() -> clap::Command {
    KeygenCli::command()
}

/// The `hypershell-copy` clap command (for the docs generator).
pub fn copy_command() -> clap::Command {
    CopyCli::command()
}

/// The clap commands: `(bin name, command)`.
pub fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("hypershell", ClientCli::command()),
        ("hypershell-server", ServerCli::command()),
        ("hypershell-keygen", KeygenCli::command()),
        ("hypershell-copy", CopyCli::command()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        for (_, c) in commands() {
            c.debug_assert();
        }
    }

    #[test]
    fn client_arguments() -> Result<(), clap::Error> {
        let cli = ClientCli::try_parse_from(["hypershell", "box", "-f", "k", "--", "ls", "-la"])?;
        assert_eq!(cli.server, "box");
        assert_eq!(cli.command, ["ls", "-la"]);
        assert_eq!(cli.keyfile, Some(PathBuf::from("k")));
        let cli = ClientCli::try_parse_from(["hypershell", "box", "-L", "1:h:2", "-L", "3:h:4"])?;
        assert_eq!(cli.local.len(), 2);
        assert!(ClientCli::try_parse_from(["hypershell", "box", "-L", "x"]).is_err());
        assert!(ClientCli::try_parse_from(["hypershell"]).is_err());
        let cli = ClientCli::try_parse_from(["hypershell", "box", "--testnet"])?;
        let nodes = cli.dht.bootstrap_nodes(ClientCli::command())?;
        assert_eq!(
            nodes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [TESTNET_BOOTSTRAP]
        );
        assert!(
            ClientCli::try_parse_from(["hypershell", "box", "--testnet", "--bootstrap", "1"])
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn server_arguments() -> Result<(), clap::Error> {
        let cli = ServerCli::try_parse_from(["hypershell-server"])?;
        assert!(PROTOCOLS.iter().all(|p| cli.serves(p)));
        let cli =
            ServerCli::try_parse_from(["hypershell-server", "--protocol", "shell", "upload"])?;
        assert!(cli.serves("upload") && !cli.serves("tunnel"));
        assert!(ServerCli::try_parse_from(["hypershell-server", "--protocol", "ftp"]).is_err());
        let cli = ServerCli::try_parse_from(["hypershell-server", "--tunnel-port", "22", "80-90"])?;
        assert_eq!(cli.tunnel_port.map(|v| v.len()), Some(2));
        Ok(())
    }

    #[test]
    fn remote_paths() {
        let key = "a".repeat(64);
        assert_eq!(
            parse_remote_path(&format!("{key}:/tmp")),
            Some((key.clone(), "/tmp".into()))
        );
        assert_eq!(
            parse_remote_path("@box:~/x"),
            Some(("box".into(), "~/x".into()))
        );
        assert_eq!(parse_remote_path("./local:file"), None);
        assert_eq!(parse_remote_path("/tmp/x"), None);
        assert_eq!(parse_remote_path("@box"), None);
    }
}

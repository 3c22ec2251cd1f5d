//! The command line of `hyperdht`: the flags of the JS `hyperdht` 6.34.0 bin (`--bootstrap`, `--nodes`,
//! `--port`, `--host`) plus `--testnet N`, `--relay [--seed HEX]` (a blind relay, as blind-relay 1.6.1
//! on hyperdht: what `relayThrough` names) and the `doctor` subcommand (a connectivity check).

use std::ffi::OsString;
use std::net::Ipv4Addr;

use bin_support::bootstrap::{self, BootstrapList, BootstrapNode};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

/// The port a bootstrap node binds when `--port` is not given (as the JS bin).
pub const DEFAULT_BOOTSTRAP_PORT: u16 = 49737;

fn parse_seed(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s).map_err(|e| format!("{s:?} is not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("a seed is 32 bytes (64 hex digits), not {}", b.len()))
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of nodes (1 or more)")),
    }
}

const AFTER_HELP: &str = "\
Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT and HOST may be a name \
(resolved at start) or hyperdht's IP@NAME form. Without --bootstrap, the HYPERDHT_BOOTSTRAP environment \
variable (same form) is used, else the public bootstrap nodes node1/node2/node3.hyperdht.org:49737.

Examples:
  hyperdht --bootstrap --host 203.0.113.7 --port 49737   run a bootstrap node
  hyperdht --nodes 4                                      run 4 nodes on the public network
  hyperdht --bootstrap 127.0.0.1:49737                    join a private network
  hyperdht --testnet 5                                    a local 5-node network; prints its bootstrap list
  hyperdht --relay --seed $(openssl rand -hex 32)         a blind relay; prints its public key (hex)
  hyperdht doctor [--relay KEY]                           check this machine's connectivity to the DHT

A relay (--relay) joins the network (--bootstrap list, the environment or the public nodes) as a HyperDHT \
server and relays the raw streams of peers that name its public key (hyperdht's relayThrough): every \
connection to it gets a blind-relay session, and two streams paired with one token are joined. It prints \
its public key in hex as the first line of stdout, then one line per completed pairing.";

/// Run HyperDHT nodes, a bootstrap node, or a local testnet.
///
/// Compatible with the JavaScript `hyperdht` command (hyperdht 6.34.0): same flags, same output.
/// Runs until interrupted (Ctrl-C or SIGTERM), then exits 0.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hyperdht",
    version,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand instead of running nodes.
    #[command(subcommand)]
    pub command: Option<Sub>,

    /// Without a value (or followed by another flag): run a bootstrap node at --host/--port. With a
    /// list: join the network of those bootstrap nodes.
    // Not bin_support's flattened `BootstrapArgs`: here the flag without a value is a mode of its own.
    #[arg(
        long,
        value_name = bootstrap::VALUE_NAME,
        num_args = 0..=1,
        value_parser = bootstrap::parse_list
    )]
    pub bootstrap: Option<Option<BootstrapList>>,

    /// How many DHT nodes to run.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub nodes: Option<usize>,

    /// UDP port to bind (default: any free port for nodes, 49737 for a bootstrap node; the first node's
    /// port with --testnet). Only with a single node.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Address to bind (default 0.0.0.0); for a bootstrap node, its public IPv4 address (required).
    #[arg(long, value_name = "IP")]
    pub host: Option<Ipv4Addr>,

    /// Run a local network of N nodes on 127.0.0.1 and print its bootstrap list
    /// (HOST:PORT[,HOST:PORT...]) as the first line of stdout.
    #[arg(
        long,
        value_name = "N",
        value_parser = parse_count,
        conflicts_with_all = ["bootstrap", "nodes", "host"]
    )]
    pub testnet: Option<usize>,

    /// Run a blind relay (blind-relay 1.6.1 on a HyperDHT server) that peers name with relayThrough;
    /// prints its public key (hex) as the first line of stdout.
    #[arg(long, conflicts_with_all = ["nodes", "testnet"])]
    pub relay: bool,

    /// The relay's key pair seed (64 hex digits), for a stable public key (default: a random key pair).
    #[arg(long, value_name = "HEX", value_parser = parse_seed, requires = "relay")]
    pub seed: Option<[u8; 32]>,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Sub {
    /// Check this machine's connectivity to the DHT: UDP reachability, the NAT kind as the DHT sees it,
    /// the public address and port mapping, the latency to each bootstrap node, IPv6, and a relay.
    ///
    /// Prints one line per check. Exit code 0 when healthy, 1 when the DHT is unreachable (no bootstrap
    /// node answers) or the relay named with --relay does not answer.
    Doctor(DoctorArgs),
}

/// `hyperdht doctor`'s flags (`--no-lan` of the shared network flags means nothing here: hidden).
#[derive(Debug, Clone, Args)]
#[command(mut_arg("no_lan", |a| a.hide(true)))]
pub struct DoctorArgs {
    #[command(flatten)]
    pub bootstrap: bootstrap::BootstrapArgs,

    /// Also check that this blind relay (its public key, hex or z-base32) answers: connect to it through
    /// the DHT.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub relay: Option<[u8; 32]>,

    /// How long to wait for the DHT and the relay, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
}

fn parse_key(s: &str) -> Result<[u8; 32], String> {
    holepunch::id_encoding::decode(s)
        .map_err(|e| format!("{s:?} is not a key (hex or z-base32): {e}"))
}

/// What to run, once the flags and the environment are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A bootstrap node (`--bootstrap` without a list).
    Bootstrap {
        /// The node's public address (also bound when it is a local address).
        host: Ipv4Addr,
        /// The port.
        port: u16,
    },
    /// `count` DHT nodes joining the network of `bootstrap`.
    Nodes {
        /// How many nodes.
        count: usize,
        /// Address to bind.
        host: Ipv4Addr,
        /// Port to bind (0 = any).
        port: u16,
        /// The network's bootstrap nodes.
        bootstrap: Vec<BootstrapNode>,
    },
    /// A blind relay server joining the network of `bootstrap`.
    Relay {
        /// The key pair seed (random when `None`).
        seed: Option<[u8; 32]>,
        /// Address to bind.
        host: Ipv4Addr,
        /// Port to bind (0 = any).
        port: u16,
        /// The network's bootstrap nodes.
        bootstrap: Vec<BootstrapNode>,
    },
    /// A local testnet of `size` nodes on 127.0.0.1.
    Testnet {
        /// How many nodes.
        size: usize,
        /// The first node's port (0 = any).
        port: u16,
    },
    /// `hyperdht doctor`: a connectivity check against the network of `bootstrap`.
    Doctor {
        /// The network's bootstrap nodes.
        bootstrap: Vec<BootstrapNode>,
        /// A relay to check.
        relay: Option<[u8; 32]>,
        /// How long to wait for the DHT and the relay.
        timeout: std::time::Duration,
    },
}

fn usage(kind: ErrorKind, msg: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(kind, msg)
}

impl Cli {
    /// The list to join: the flag's, else `env` (the value of `HYPERDHT_BOOTSTRAP`), else the public nodes.
    fn bootstrap_list(&self, env: Option<OsString>) -> Result<Vec<BootstrapNode>, clap::Error> {
        let flag = self.bootstrap.as_ref().and_then(Option::as_ref);
        bootstrap::choose(flag, env).map_err(|e| bootstrap::usage_error(Cli::command(), &e))
    }

    /// Checks the flag combinations the parser cannot express and picks the bootstrap list (flag, then
    /// `env`, the value of `HYPERDHT_BOOTSTRAP`, then the public nodes). Errors are usage errors (exit 2).
    pub fn mode(&self, env: Option<OsString>) -> Result<Mode, clap::Error> {
        if let Some(Sub::Doctor(d)) = &self.command {
            let bootstrap = bootstrap::choose(d.bootstrap.bootstrap.as_ref(), env)
                .map_err(|e| bootstrap::usage_error(Cli::command(), &e))?;
            return Ok(Mode::Doctor {
                bootstrap,
                relay: d.relay,
                timeout: std::time::Duration::from_secs(d.timeout.max(1)),
            });
        }
        if let Some(size) = self.testnet {
            return Ok(Mode::Testnet {
                size,
                port: self.port.unwrap_or(0),
            });
        }
        if self.relay {
            if let Some(None) = &self.bootstrap {
                return Err(usage(
                    ErrorKind::InvalidValue,
                    "--relay joins a network: give --bootstrap a list (or none, for the public nodes)",
                ));
            }
            let bootstrap = self.bootstrap_list(env)?;
            return Ok(Mode::Relay {
                seed: self.seed,
                host: self.host.unwrap_or(Ipv4Addr::UNSPECIFIED),
                port: self.port.unwrap_or(0),
                bootstrap,
            });
        }
        match &self.bootstrap {
            Some(None) => {
                if self.nodes.is_some() {
                    return Err(usage(
                        ErrorKind::ArgumentConflict,
                        "--nodes cannot be used with --bootstrap without a list (a bootstrap node)",
                    ));
                }
                let Some(host) = self.host else {
                    return Err(usage(
                        ErrorKind::MissingRequiredArgument,
                        "You need to specify --host <node ip> (the bootstrap node's public IPv4 address)",
                    ));
                };
                if host.is_unspecified() {
                    return Err(usage(
                        ErrorKind::InvalidValue,
                        "a bootstrap node's --host must be its address, not 0.0.0.0",
                    ));
                }
                Ok(Mode::Bootstrap {
                    host,
                    port: self
                        .port
                        .filter(|p| *p != 0)
                        .unwrap_or(DEFAULT_BOOTSTRAP_PORT),
                })
            }
            _ => {
                let count = self.nodes.unwrap_or(1);
                let port = self.port.unwrap_or(0);
                if port != 0 && count != 1 {
                    return Err(usage(
                        ErrorKind::ArgumentConflict,
                        "--port is only valid when running a single node",
                    ));
                }
                let bootstrap = self.bootstrap_list(env)?;
                Ok(Mode::Nodes {
                    count,
                    host: self.host.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    port,
                    bootstrap,
                })
            }
        }
    }
}

/// The clap command, for the docs generator.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> Result<Mode, clap::Error> {
        let mut argv = vec!["hyperdht"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.mode(None)
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn bootstrap_node() {
        let want = Mode::Bootstrap {
            host: Ipv4Addr::LOCALHOST,
            port: 5000,
        };
        let got = mode(&["--bootstrap", "--host", "127.0.0.1", "--port", "5000"]);
        assert_eq!(got.ok(), Some(want.clone()));
        let got = mode(&["--host", "127.0.0.1", "--port", "5000", "--bootstrap"]);
        assert_eq!(got.ok(), Some(want));
        let got = mode(&["--bootstrap", "--host", "10.1.2.3"]);
        assert_eq!(
            got.ok(),
            Some(Mode::Bootstrap {
                host: Ipv4Addr::new(10, 1, 2, 3),
                port: DEFAULT_BOOTSTRAP_PORT
            })
        );
        let err = mode(&["--bootstrap"]).expect_err("host required");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), 2);
        assert!(mode(&["--bootstrap", "--host", "0.0.0.0"]).is_err());
    }

    #[test]
    fn nodes() {
        let got = mode(&["--bootstrap", "7,10.0.0.1:8", "--nodes", "3"]).expect("valid");
        let Mode::Nodes {
            count,
            host,
            port,
            bootstrap,
        } = got
        else {
            panic!("nodes mode")
        };
        assert_eq!((count, host, port), (3, Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(
            bootstrap
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["127.0.0.1:7", "10.0.0.1:8"]
        );
        let err = mode(&["--nodes", "2", "--port", "5"]).expect_err("port with 2 nodes");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        assert!(mode(&["--nodes", "0"]).is_err());
        assert!(mode(&["--bootstrap", "x:y"]).is_err());
    }

    #[test]
    fn environment_and_default() {
        let cli = Cli::try_parse_from(["hyperdht"]).expect("no flags");
        let Ok(Mode::Nodes { bootstrap, .. }) = cli.mode(Some("9".into())) else {
            panic!("nodes mode")
        };
        assert_eq!(bootstrap[0].to_string(), "127.0.0.1:9");
        let Ok(Mode::Nodes { bootstrap, .. }) = cli.mode(None) else {
            panic!("nodes mode")
        };
        assert_eq!(bootstrap, bootstrap::default_nodes());
        assert!(cli.mode(Some("bad:port".into())).is_err());
        // The flag wins over the environment.
        let cli = Cli::try_parse_from(["hyperdht", "--bootstrap", "1"]).expect("flag");
        let Ok(Mode::Nodes { bootstrap, .. }) = cli.mode(Some("9".into())) else {
            panic!("nodes mode")
        };
        assert_eq!(bootstrap[0].to_string(), "127.0.0.1:1");
    }

    #[test]
    fn testnet() {
        assert_eq!(
            mode(&["--testnet", "5"]).ok(),
            Some(Mode::Testnet { size: 5, port: 0 })
        );
        assert_eq!(
            mode(&["--testnet", "3", "--port", "4000"]).ok(),
            Some(Mode::Testnet {
                size: 3,
                port: 4000
            })
        );
        let err = mode(&["--testnet", "3", "--bootstrap"]).expect_err("conflict");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        assert!(mode(&["--testnet", "3", "--nodes", "2"]).is_err());
    }

    #[test]
    fn relay() {
        let seed = "ab".repeat(32);
        let got = mode(&[
            "--relay",
            "--seed",
            &seed,
            "--bootstrap",
            "7",
            "--host",
            "127.0.0.1",
        ]);
        let Ok(Mode::Relay {
            seed: Some(s),
            host,
            port: 0,
            bootstrap,
        }) = got
        else {
            panic!("relay mode: {got:?}")
        };
        assert_eq!((s, host), ([0xab; 32], Ipv4Addr::LOCALHOST));
        assert_eq!(bootstrap[0].to_string(), "127.0.0.1:7");
        assert!(matches!(
            mode(&["--relay"]),
            Ok(Mode::Relay { seed: None, .. })
        ));
        assert!(mode(&["--seed", &seed]).is_err(), "--seed without --relay");
        assert!(
            mode(&["--relay", "--seed", "abcd"]).is_err(),
            "a short seed"
        );
        assert!(
            mode(&["--relay", "--seed", &"zz".repeat(32)]).is_err(),
            "not hex"
        );
        assert!(
            mode(&["--relay", "--bootstrap"]).is_err(),
            "a relay is no bootstrap node"
        );
        assert!(mode(&["--relay", "--testnet", "3"]).is_err());
    }

    #[test]
    fn doctor() {
        let key = "ab".repeat(32);
        let Ok(Mode::Doctor {
            bootstrap,
            relay,
            timeout,
        }) = mode(&["doctor", "--bootstrap", "7", "--relay", &key])
        else {
            panic!("doctor mode")
        };
        assert_eq!(bootstrap[0].to_string(), "127.0.0.1:7");
        assert_eq!(relay, Some([0xab; 32]));
        assert_eq!(timeout, std::time::Duration::from_secs(15));
        let Ok(Mode::Doctor { bootstrap, .. }) = mode(&["doctor"]) else {
            panic!("doctor mode")
        };
        assert_eq!(bootstrap, bootstrap::default_nodes());
        assert!(mode(&["doctor", "--relay", "abcd"]).is_err(), "a short key");
        assert!(
            mode(&["--nodes", "2", "doctor"]).is_err(),
            "flags of the node mode"
        );
        assert!(mode(&["doctor", "--bootstrap", "x:y"]).is_err());
    }
}

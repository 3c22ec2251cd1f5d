//! The command line of `hyperbeam`: the JS `hyperbeam` 3.1.0 bin (`hyperbeam [PASSPHRASE] [-r]`) plus
//! `--bootstrap`.

use bin_support::bootstrap::BootstrapArgs;
use bin_support::relay::RelayArgs;
use clap::{CommandFactory, Parser};

const AFTER_HELP: &str = "\
Without a passphrase, a new one is generated and this side announces itself; run hyperbeam with that \
passphrase on the other side to connect. Bytes from stdin go to the peer, bytes from the peer to stdout; \
when stdin ends the write side is closed, and the program exits once the peer ends its side.

Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT. Without --bootstrap, the \
HYPERDHT_BOOTSTRAP environment variable (same form) is used, else the public bootstrap nodes.

Ctrl-C before a peer connected shuts down; after, it ends this side of the pipe, and the program exits once \
the peer ends its side too. A second Ctrl-C exits at once with status 130.

HYPERBEAM_RELAY: the public key (hex or z-base-32) of a blind relay: the connection is paired through it \
as well (hyperdht's relayThrough), so it works when holepunching fails, and moves to a punched path later.

Exit status: 0 when the pipe ended (or was shut down), 1 on an error, 2 on bad usage, 130 after a second \
Ctrl-C.

Examples:
  hyperbeam < file.tar                      announce; prints the passphrase to give the other side
  hyperbeam PASSPHRASE > file.tar           connect to it
  hyperbeam PASSPHRASE -r                   restart the announcing side with the same passphrase";

/// Creates a 1-1 end-to-end encrypted network pipe.
///
/// Compatible with the JavaScript `hyperbeam` command (hyperbeam 3.1.0): same arguments, same messages on
/// stderr, same wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "hyperbeam", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The pipe's passphrase (base32 of a 32-byte seed). If not supplied, a new one is created and this
    /// side begins listening.
    #[arg(value_name = "PASSPHRASE")]
    pub passphrase: Option<String>,

    /// Announce (listen) with the given passphrase instead of connecting: restarts the listening side of a
    /// pipe.
    #[arg(short = 'r', long = "reuse", requires = "passphrase")]
    pub reuse: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,
}

/// The clap command (for the docs generator).
pub fn command() -> clap::Command {
    Cli::command()
}

impl Cli {
    /// Whether this side announces: when no passphrase is given, or with `-r`.
    pub fn announces(&self) -> bool {
        self.passphrase.is_none() || self.reuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hyperbeam").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn arguments() -> Result<(), clap::Error> {
        let cli = parse(&[])?;
        assert!(cli.passphrase.is_none());
        assert!(cli.announces());
        let cli = parse(&["abc"])?;
        assert_eq!(cli.passphrase.as_deref(), Some("abc"));
        assert!(!cli.announces());
        let cli = parse(&["abc", "-r"])?;
        assert!(cli.announces());
        let cli = parse(&["-r", "abc"])?;
        assert!(cli.announces());
        assert!(parse(&["-r"]).is_err());
        assert!(parse(&["a", "b"]).is_err());
        Ok(())
    }

    #[test]
    fn bootstrap_flag() -> Result<(), clap::Error> {
        let cli = parse(&["--bootstrap", "127.0.0.1:1234"])?;
        assert_eq!(
            cli.net.bootstrap.map(|l| l.0),
            bin_support::bootstrap::parse_list("127.0.0.1:1234")
                .ok()
                .map(|l| l.0)
        );
        assert!(!parse(&[])?.net.is_given());
        assert!(parse(&["--bootstrap", ""]).is_err());
        Ok(())
    }
}

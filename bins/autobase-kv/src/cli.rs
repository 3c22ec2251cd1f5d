//! The command line of `autobase-kv`: the commands of issue #16 and of the JS twin
//! (`tests/interop/js/autobase-kv.js`), with the same arguments and output.

use bin_support::bootstrap::BootstrapArgs;
use clap::{CommandFactory, Parser, Subcommand};

const AFTER_HELP: &str = "\
DIR is a corestore folder holding one base: `create` makes a new base there, `join` a writer for an \
existing one (give the printed writer key to a writer of the base, who runs `add-writer`). Every other \
command opens the base the folder holds.

Writer blocks are JSON: {\"op\":\"put\",\"key\":K,\"value\":V}, {\"op\":\"del\",\"key\":K}, \
{\"op\":\"add-writer\",\"key\":HEX,\"indexer\":BOOL} and {\"op\":\"remove-writer\",\"key\":HEX}; the view is a \
hyperbee named `view` with utf-8 keys and values. Only `sync` uses the network: it joins the swarm on the \
base's discovery key, replicates the writers', system and view cores with every peer (also with the \
JavaScript twin, on autobase 7; a peer far behind fast-forwards to the state the indexers signed), and \
after --seconds (or on Ctrl-C) applies what it received and exits.

Exit status: 0 on success, 1 on an error (one line on stderr) and when `get` finds no such key, 2 on bad \
usage.

Examples:
  autobase-kv create ./a                    prints the base key, then a's writer key
  autobase-kv create ./e --encryption-key HEX   an encrypted base
  autobase-kv join BASE_KEY ./b             prints b's writer key
  autobase-kv add-writer ./a B_KEY --indexer
  autobase-kv sync ./a --seconds 20 &  autobase-kv sync ./b --seconds 20
  autobase-kv put ./b greeting hello
  autobase-kv put ./c hi there --optimistic   c is not a writer: peers apply it once they sync with c
  autobase-kv list ./a";

/// A multi-writer key-value store on one autobase view.
///
/// Several writers, each with its own folder, append puts and deletes to their own cores; every peer
/// orders all writers' blocks the same way (autobase 7's linearizer) and applies them to one view.
#[derive(Debug, Clone, Parser)]
#[command(name = "autobase-kv", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create a base in DIR: prints the base key, then the local writer key.
    Create {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// Encrypt the base with this key (64 hex characters; JS autobase's `encryptionKey`): writer,
        /// system and view blocks are stored encrypted. Kept in the store: later commands need not repeat it.
        #[arg(long, value_name = "HEX", value_parser = parse_key)]
        encryption_key: Option<[u8; 32]>,
    },
    /// Join the base BASE_KEY with a new writer in DIR: prints the local writer key.
    Join {
        /// The base's key (64 hex characters).
        #[arg(value_name = "BASE_KEY", value_parser = parse_key)]
        key: [u8; 32],
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// The base's encryption key (64 hex characters), when it is encrypted. Kept in the store.
        #[arg(long, value_name = "HEX", value_parser = parse_key)]
        encryption_key: Option<[u8; 32]>,
    },
    /// Add a writer (its key from `join`) to the base.
    AddWriter {
        /// The store folder (of a writer of the base).
        #[arg(value_name = "DIR")]
        dir: String,
        /// The writer's key (64 hex characters).
        #[arg(value_name = "WRITER_KEY", value_parser = parse_key)]
        key: [u8; 32],
        /// Make it an indexer (one of the writers whose acks make the order final).
        #[arg(long)]
        indexer: bool,
    },
    /// Remove a writer: its blocks after the removal are not applied.
    RemoveWriter {
        /// The store folder (of a writer of the base).
        #[arg(value_name = "DIR")]
        dir: String,
        /// The writer's key (64 hex characters).
        #[arg(value_name = "WRITER_KEY", value_parser = parse_key)]
        key: [u8; 32],
    },
    /// Set KEY to VALUE.
    Put {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// The key.
        #[arg(value_name = "KEY")]
        key: String,
        /// The value.
        #[arg(value_name = "VALUE")]
        value: String,
        /// Append optimistically (JS `append(value, { optimistic: true })`), also from a store that is not a
        /// writer of the base: peers apply the put and ack its writer (a removed member at that length, so
        /// it stays unable to write plainly); any other optimistic op is dropped.
        #[arg(long)]
        optimistic: bool,
    },
    /// Delete KEY.
    Del {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// The key.
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Print KEY's value (exit status 1 when it is not set).
    Get {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// The key.
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Print every entry as KEY<TAB>VALUE, in key order.
    List {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
    },
    /// Print the base's state as one JSON line: keys, writability, view and system lengths, the system's
    /// indexers, heads and members, and how many blocks of each member's core the store holds.
    Info {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
    },
    /// Replicate with the base's peers for N seconds (or until Ctrl-C), then apply what arrived and exit;
    /// prints {"fastForward":{"to":N,"from":M}} when the base fast-forwards to a peer's signed state.
    Sync {
        /// The store folder.
        #[arg(value_name = "DIR")]
        dir: String,
        /// How long to stay connected.
        #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        #[command(flatten)]
        #[allow(missing_docs)]
        net: BootstrapArgs,
    },
}

/// A 32-byte key as 64 hex characters.
pub fn parse_key(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s).map_err(|_| format!("not a 64-character hex key: {s}"))?;
    bytes
        .try_into()
        .map_err(|_| format!("not a 64-character hex key: {s}"))
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok(n),
        _ => Err("--seconds takes a number".into()),
    }
}

/// The clap command (for the docs generator).
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("autobase-kv").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn arguments() -> Result<(), clap::Error> {
        let k = "ab".repeat(32);
        assert!(matches!(
            parse(&["add-writer", "d", &k, "--indexer"])?.command,
            Command::AddWriter { indexer: true, .. }
        ));
        assert!(matches!(
            parse(&["add-writer", "d", &k])?.command,
            Command::AddWriter { indexer: false, .. }
        ));
        assert!(parse(&["add-writer", "d", "abc"]).is_err());
        assert!(parse(&["join", &k[2..], "d"]).is_err());
        assert!(parse(&["put", "d", "k"]).is_err());
        assert!(matches!(
            parse(&["put", "d", "k", "v", "--optimistic"])?.command,
            Command::Put {
                optimistic: true,
                ..
            }
        ));
        match parse(&["sync", "d", "--seconds", "2.5"])?.command {
            Command::Sync { seconds, .. } => assert!((seconds - 2.5).abs() < f64::EPSILON),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["sync", "d", "--seconds", "-1"]).is_err());
        Ok(())
    }
}

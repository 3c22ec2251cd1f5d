//! The command line of `drives`: the JS `drives` 2.9.1 CLI (same commands, flags and output) plus
//! `--bootstrap`/`HYPERDHT_BOOTSTRAP` on every command that uses the network.

use std::path::PathBuf;

use bin_support::bootstrap::{BootstrapArgs, BootstrapNode};
use bin_support::relay::RelayArgs;
use clap::{Args, CommandFactory, Parser, Subcommand};
use holepunch::hyperdrive::EncryptionKey;

const AFTER_HELP: &str = "\
A drive is either a folder (any argument with a `/` or a `.`, or not 52/64 characters long) or a hyperdrive \
key (52 characters of z-base-32 or 64 hex digits).

Storage: --storage DIR uses DIR/corestore; otherwise the first ./.drives/corestore found going up from the \
current folder, else ~/.drives/corestore. `drives init` creates ./.drives/corestore.

Ignored everywhere: .drives, .git, .github, .DS_Store, package-lock.json (as JS drives). Mirroring a folder also \
honours a .drivesignore file at its root: one --filter pattern per line, `#` comments.

Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT. Without --bootstrap, the \
HYPERDHT_BOOTSTRAP environment variable (same form) is used, else the public bootstrap nodes.

Exit status: 0 on success, 1 on an error (one line on stderr), 2 on bad usage.

Examples:
  drives touch                         create a writable hyperdrive, print its key
  drives mirror ./folder KEY           import a folder into the drive
  drives seed KEY                      share it
  drives seed --all                    share every drive of the store from one process
  drives mirror KEY ./copy             download it into a folder (exits when the folder matches)
  drives serve KEY --port 8080         HTTP server with range requests
  drives touch --encrypted             create an encrypted drive, print its key and encryption key

Encrypted drives: every command takes --encryption-key KEY (or DRIVES_ENCRYPTION_KEY). `drives seed KEY`, \
`drives download KEY`, `info` and `purge` without it handle the drive blind: they store and serve its \
encrypted blocks without reading them.";

/// CLI to seed, mirror, and serve a Hyperdrive or Localdrive.
///
/// Compatible with the JavaScript `drives` command (drives 2.9.1): same commands, flags and output, same
/// hyperdrive wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "drives", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,

    /// Encryption key of the drive (hyperdrive 13 `encryptionKey`; z-base-32 or hex). It is not stored: give
    /// it on every command. Without it, seed, download, info and purge of an encrypted drive work blind.
    #[arg(
        long,
        global = true,
        env = "DRIVES_ENCRYPTION_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub encryption_key: Option<EncryptionKey>,
}

/// `--storage`.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArg {
    /// Storage path (the corestore is DIR/corestore).
    #[arg(long, value_name = "DIR")]
    pub storage: Option<PathBuf>,
}

/// `--timeout`.
#[derive(Debug, Clone, Default, Args)]
pub struct TimeoutArg {
    /// Give up (exit 1, nothing written) when no peer of a remote drive is found within SECONDS (default:
    /// wait as long as it takes, as JS drives)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

impl TimeoutArg {
    /// The limit, if any.
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.timeout.map(std::time::Duration::from_secs)
    }
}

/// `--bootstrap`.
#[derive(Debug, Clone, Default, Args)]
#[command(mut_arg("bootstrap", |a| a.help(
    "Bootstrap nodes of the DHT to use (a bare PORT is 127.0.0.1:PORT, as JS drives' test flag)"
)))]
pub struct NetArg {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bootstrap: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Initializes a new storage on the cwd.
    Init,
    /// Create a writable Hyperdrive.
    Touch {
        /// Use cwd as the namespace.
        #[arg(long)]
        use_cwd: bool,
        /// Encrypt the drive with a new random encryption key (printed; or the --encryption-key given).
        #[arg(long)]
        encrypted: bool,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Mirror a drive into another drive.
    Mirror {
        /// Source drive (key or path).
        src: String,
        /// Destination drive (key or path).
        dst: String,
        /// Enables real-time sharing (keep following the source).
        #[arg(long)]
        live: bool,
        /// Prefix entries path.
        #[arg(long, value_name = "PATH")]
        prefix: Option<String>,
        /// Ignore entries (globs; without a leading `/` they match at any depth).
        #[arg(long, value_name = "IGNORE", num_args = 0..)]
        filter: Option<Vec<String>>,
        /// Disables writing.
        #[arg(long)]
        dry_run: bool,
        /// Use a specific version of the source.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Print less information.
        #[arg(long)]
        silent: bool,
        /// Print more information.
        #[arg(long)]
        verbose: bool,
        /// Write big files in fixed 64 KiB blocks (no content-defined chunking, no block maps: a changed
        /// file is written whole again).
        #[arg(long)]
        no_chunking: bool,
        #[command(flatten)]
        timeout: TimeoutArg,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// List files of the drive.
    Ls {
        /// Source drive (key or path).
        src: String,
        /// Folder to list.
        path: Option<String>,
        /// Recursive listing.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Prefix entries path.
        #[arg(long, value_name = "PATH")]
        prefix: Option<String>,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Seed a Hyperdrive to the DHT network.
    Seed {
        /// Drive public keys, seeded on one swarm (default: a new drive).
        #[arg(value_name = "KEY")]
        keys: Vec<String>,
        /// Seed every drive of the store (one swarm, one status line per drive).
        #[arg(long, conflicts_with = "keys")]
        all: bool,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Archive download a Hyperdrive by key.
    Download {
        /// Drive public key.
        key: String,
        #[command(flatten)]
        timeout: TimeoutArg,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Creates a HTTP drive server.
    Serve {
        /// Source drive (key or path).
        src: String,
        /// Bind to address.
        #[arg(long, value_name = "ADDRESS")]
        host: Option<String>,
        /// Bind to port.
        #[arg(long, value_name = "NUMBER", default_value_t = 7000)]
        port: u16,
        /// Disable random port if port in use.
        #[arg(long)]
        disable_any_port: bool,
        /// Print more information.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Create a file.
    Put {
        /// Source drive (key or path).
        src: String,
        /// Filename.
        path: String,
        /// Content.
        blob: String,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Show a single entry file.
    Entry {
        /// Source drive (key or path).
        src: String,
        /// Filename.
        path: String,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Show the file content.
    Get {
        /// Source drive (key or path).
        src: String,
        /// Filename.
        path: String,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Delete a file.
    Rm {
        /// Source drive (key or path).
        src: String,
        /// Filename.
        path: String,
        /// Recursively delete all sub files.
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Show info about the Hyperdrive.
    Info {
        /// Drive public key.
        key: String,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Mount a hyperdrive as a folder (FUSE), in the foreground until unmounted.
    ///
    /// A drive of this store's writer is read-write (a file becomes a new version when closed or
    /// fsynced); any other drive, or --version, is read-only and sparse (blocks are fetched from peers
    /// when read) and shows new versions as they arrive. Unmounts on SIGINT/SIGTERM/SIGHUP or
    /// `fusermount -u DIR`.
    Mount {
        /// Drive public key (a drive of the store, or one to fetch from peers).
        src: String,
        /// Mount point (an existing, empty folder).
        dir: PathBuf,
        /// Mount this version, read-only.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// How long a read waits for a block no peer sends before it fails with EIO (default: 60)
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        net: NetArg,
    },
    /// Delete all local storage of the drive.
    Purge {
        /// Drive public key.
        key: String,
        #[command(flatten)]
        storage: StorageArg,
    },
}

/// The clap command (for the docs generator).
pub fn command() -> clap::Command {
    Cli::command()
}

impl NetArg {
    /// The bootstrap list: the flag, then `HYPERDHT_BOOTSTRAP`, then the public nodes. A bad
    /// `HYPERDHT_BOOTSTRAP` is a usage error (`error: HYPERDHT_BOOTSTRAP: ...`).
    pub fn nodes(&self) -> Result<Vec<BootstrapNode>, clap::Error> {
        self.bootstrap.nodes_or_usage(Cli::command())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("drives").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn mirror_flags() -> Result<(), clap::Error> {
        let cli = parse(&[
            "mirror",
            "a",
            "b",
            "--live",
            "--filter",
            "x",
            "*.tmp",
            "--dry-run",
            "--version",
            "3",
        ])?;
        let Command::Mirror {
            src,
            dst,
            live,
            filter,
            dry_run,
            version,
            ..
        } = cli.command
        else {
            panic!("not mirror")
        };
        assert_eq!(
            (src.as_str(), dst.as_str(), live, dry_run),
            ("a", "b", true, true)
        );
        assert_eq!(filter, Some(vec!["x".to_string(), "*.tmp".to_string()]));
        assert_eq!(version.as_deref(), Some("3"));
        assert!(parse(&["mirror", "a"]).is_err());
        let cli = parse(&["ls", ".", "-r"])?;
        assert!(matches!(
            cli.command,
            Command::Ls {
                recursive: true,
                ..
            }
        ));
        let cli = parse(&["mirror", "k", "./f", "--bootstrap", "4000"])?;
        let Command::Mirror { net, .. } = cli.command else {
            panic!("not mirror")
        };
        assert!(net.bootstrap.is_given());
        Ok(())
    }
}

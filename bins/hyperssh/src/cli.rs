//! The command lines of `hyperssh` and `hyperssh-fuse`: the JS hyperssh 5.0.4 bins (`hyperssh -s KEY
//! [-u USER] [-i identity] [-e CMD] [--rdp]`, `hyperssh-fuse -s KEY -m MOUNTPOINT [-u USER] [-i identity]`)
//! plus `--bootstrap`, a remote folder for sshfs (`-r`) and ssh/sshfs options after `--`.

use std::path::PathBuf;

use bin_support::bootstrap::BootstrapArgs;
use bin_support::relay::RelayArgs;
use clap::{CommandFactory, Parser};

const AFTER_HELP: &str = "\
Starts a local proxy to the hypertele-server with that key (as `hypertele` does) and runs \
`ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p PORT [SSH_OPTIONS] USER@localhost [CMD]` \
through it; exits with ssh's exit status. The key (-s) is 64 hex digits or 52 z-base-32 characters, or a name \
from a .hyper-hosts file. The server side is `hypertele-server --seed SEED -l 22`.

Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT. Without --bootstrap, the \
HYPERDHT_BOOTSTRAP environment variable (same form) is used, else the public bootstrap nodes.

Exit status: ssh's (255 when ssh cannot connect), 1 on an error before ssh starts, 2 on bad usage.

Examples:
  hyperssh -s ab01f... -u maf
  hyperssh -s myserver -u maf -i keypair.json -e 'uptime'
  hyperssh -s ab01f... -- -i ~/.ssh/other_key -L 8080:localhost:80";

/// SSH over HyperDHT.
///
/// Compatible with the JavaScript `hyperssh` command (hyperssh 5.0.4): same arguments and behaviour, same
/// wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "hyperssh", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The server: its public key or a .hyper-hosts name.
    #[arg(short = 's', value_name = "KEY|NAME")]
    pub server: String,

    /// The user to log in as (default: the current user).
    #[arg(short = 'u', value_name = "USER")]
    pub user: Option<String>,

    /// Identity file: the key pair this client connects to the server with (random without it).
    #[arg(short = 'i', value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,

    /// Command to run on the server instead of a login shell.
    #[arg(short = 'e', value_name = "CMD")]
    pub command: Option<String>,

    /// Do not run ssh: listen on 127.0.0.1:3389 for an RDP client instead.
    #[arg(long)]
    pub rdp: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,

    /// Options passed to ssh before the destination (after `--`).
    #[arg(last = true, value_name = "SSH_OPTIONS")]
    pub ssh_options: Vec<String>,
}

/// The clap command (for the docs generator).
pub fn command() -> clap::Command {
    Cli::command()
}

/// The ssh command line: options first (as the JS bin builds it), then `extra`, the destination and the
/// command if any.
pub fn ssh_args(user: &str, port: u16, extra: &[String], command: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(port.to_string());
    args.extend(extra.iter().cloned());
    args.push(format!("{user}@localhost"));
    args.extend(command.map(str::to_owned));
    args
}

const FUSE_AFTER_HELP: &str = "\
Starts a local proxy to the hypertele-server with that key (as `hyperssh` does) and mounts the server's \
folder with `sshfs -f -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p PORT \
USER@localhost:REMOTE MOUNTPOINT [SSHFS_OPTIONS]` through it. Stays in the foreground, printing \
`Mounted USER@localhost:REMOTE on MOUNTPOINT` once the mount is up, until the folder is unmounted \
(`fusermount -u MOUNTPOINT`) or this command gets SIGINT (Ctrl-C) or SIGTERM, which unmount it \
(fusermount3 -u, else fusermount -u). Needs sshfs and FUSE (/dev/fuse); the server side is \
`hypertele-server --seed SEED -l 22` in front of an sshd with the sftp subsystem.

The key (-s) is 64 hex digits or 52 z-base-32 characters, or a name from a .hyper-hosts file.

Bootstrap list: HOST:PORT[,HOST:PORT...], where a bare PORT means 127.0.0.1:PORT. Without --bootstrap, the \
HYPERDHT_BOOTSTRAP environment variable (same form) is used, else the public bootstrap nodes.

Exit status: 0 once unmounted, sshfs's status when it fails (1 when it cannot connect or log in), 1 on an \
error before sshfs starts (sshfs or /dev/fuse missing, bad mount point, bad key), 2 on bad usage.

Examples:
  hyperssh-fuse -s ab01f... -u maf -m ~/remote
  hyperssh-fuse -s myserver -m /mnt/box -r /var/www -- -o IdentityFile=~/.ssh/box -o reconnect";

/// Mount a folder of an SSH server over HyperDHT (sshfs).
///
/// Compatible with the JavaScript `hyperssh-fuse` command (hyperssh 5.0.4): same arguments, same wire
/// protocol; stays in the foreground and unmounts on Ctrl-C.
#[derive(Debug, Clone, Parser)]
#[command(name = "hyperssh-fuse", version, after_help = FUSE_AFTER_HELP)]
pub struct FuseCli {
    /// The server: its public key or a .hyper-hosts name.
    #[arg(short = 's', value_name = "KEY|NAME")]
    pub server: String,

    /// The empty folder to mount on.
    #[arg(short = 'm', value_name = "MOUNTPOINT")]
    pub mount: PathBuf,

    /// The user to log in as (default: the current user).
    #[arg(short = 'u', value_name = "USER")]
    pub user: Option<String>,

    /// Identity file: the key pair this client connects to the server with (random without it).
    #[arg(short = 'i', value_name = "IDENTITY")]
    pub identity: Option<PathBuf>,

    /// The folder on the server to mount (default: the user's home, as the JS).
    #[arg(short = 'r', value_name = "REMOTE_PATH", default_value = "")]
    pub remote: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub net: BootstrapArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub relay: RelayArgs,

    /// Options passed to sshfs after the mount point (after `--`), e.g. `-o IdentityFile=KEY`.
    #[arg(last = true, value_name = "SSHFS_OPTIONS")]
    pub sshfs_options: Vec<String>,
}

/// The clap command of `hyperssh-fuse` (for the docs generator).
pub fn fuse_command() -> clap::Command {
    FuseCli::command()
}

/// The sshfs command line: `-f` (foreground, so the mount lives as long as the process), the host key
/// options of [`ssh_args`], the port, the source and the mount point, then `extra`.
pub fn sshfs_args(
    user: &str,
    port: u16,
    remote: &str,
    mount: &std::path::Path,
    extra: &[String],
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "-f",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(port.to_string().into());
    args.push(format!("{user}@localhost:{remote}").into());
    args.push(mount.into());
    args.extend(extra.iter().map(Into::into));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hyperssh").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn arguments() -> Result<(), clap::Error> {
        let cli = parse(&[
            "-s", "key", "-u", "maf", "-e", "uptime", "--", "-v", "-i", "k",
        ])?;
        assert_eq!(cli.server, "key");
        assert_eq!(cli.user.as_deref(), Some("maf"));
        assert_eq!(cli.command.as_deref(), Some("uptime"));
        assert_eq!(cli.ssh_options, ["-v", "-i", "k"]);
        assert!(parse(&[]).is_err(), "-s is required");
        assert!(parse(&["-s", "k", "--bootstrap", ""]).is_err());
        Ok(())
    }

    #[test]
    fn ssh_command_line() {
        assert_eq!(
            ssh_args("maf", 4000, &[], None),
            [
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-p",
                "4000",
                "maf@localhost"
            ]
        );
        let args = ssh_args("u", 1, &["-v".to_owned()], Some("ls -la"));
        assert_eq!(args[6..], ["-v", "u@localhost", "ls -la"]);
    }

    #[test]
    fn fuse_definition_is_consistent() {
        fuse_command().debug_assert();
    }

    #[test]
    fn fuse_arguments() -> Result<(), clap::Error> {
        let parse = |args: &[&str]| {
            FuseCli::try_parse_from(std::iter::once("hyperssh-fuse").chain(args.iter().copied()))
        };
        let cli = parse(&[
            "-s",
            "key",
            "-m",
            "/mnt/x",
            "-u",
            "maf",
            "--",
            "-o",
            "reconnect",
        ])?;
        assert_eq!(cli.server, "key");
        assert_eq!(cli.mount, PathBuf::from("/mnt/x"));
        assert_eq!(cli.user.as_deref(), Some("maf"));
        assert_eq!(cli.remote, "", "the home folder by default, as the JS");
        assert_eq!(cli.sshfs_options, ["-o", "reconnect"]);
        assert_eq!(parse(&["-s", "k", "-m", "m", "-r", "/srv"])?.remote, "/srv");
        assert!(parse(&["-s", "k"]).is_err(), "-m is required");
        assert!(parse(&["-m", "m"]).is_err(), "-s is required");
        Ok(())
    }

    #[test]
    fn sshfs_command_line() {
        let args = sshfs_args("maf", 4000, "", std::path::Path::new("/mnt/x"), &[]);
        assert_eq!(
            args,
            [
                "-f",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-p",
                "4000",
                "maf@localhost:",
                "/mnt/x"
            ]
        );
        let args = sshfs_args(
            "u",
            1,
            "/srv",
            std::path::Path::new("m"),
            &["-o".into(), "ro".into()],
        );
        assert_eq!(args[7..], ["u@localhost:/srv", "m", "-o", "ro"]);
    }
}

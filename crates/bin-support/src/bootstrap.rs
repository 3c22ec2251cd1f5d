//! The bootstrap list every tool takes: `--bootstrap HOST:PORT[,HOST:PORT...]`, else the
//! `HYPERDHT_BOOTSTRAP` environment variable in the same form, else the public bootstrap nodes. A bare `PORT`
//! means `127.0.0.1:PORT` (a local testnet, the JS bins' test option), host names are resolved when the tool
//! starts, and hyperdht's `IP@NAME:PORT` is accepted (see [`holepunch_dht::hyperdht::bootstrap`], which parses
//! and resolves; this module only wires it to clap and the environment).
//!
//! A bad `--bootstrap` value is clap's usage error (`error: invalid value ...`, exit 2) at parse time. The
//! environment variable is read only when the list is needed ([`BootstrapArgs::nodes`]), so a tool run that
//! does not use the network (`hyperdht --testnet`, `hypershell --testnet`, most `drives` commands) neither
//! reads it nor fails on a bad value; a bad value is reported as `HYPERDHT_BOOTSTRAP: <why>`
//! ([`usage_error`]: a usage error, exit 2). The variable is deliberately not clap's `env` of the flag: clap
//! counts a value from the environment as given for `conflicts_with`, so `hyperdht --testnet` and
//! `hypershell --testnet` would refuse to run while `HYPERDHT_BOOTSTRAP` is exported, and a bad value would
//! fail every command at parse time.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4};

use clap::error::ErrorKind;
use holepunch_dht::hyperdht::bootstrap;

pub use holepunch_dht::hyperdht::bootstrap::{
    default_nodes, format_list, BootstrapError, BootstrapNode, ENV,
};

/// The flag's value name in help, usage and man pages.
pub const VALUE_NAME: &str = "HOST:PORT[,HOST:PORT...]";

/// A parsed `--bootstrap` list (a newtype, so that clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapList(pub Vec<BootstrapNode>);

/// The `--bootstrap` value parser (`value_parser = bin_support::bootstrap::parse_list`): a comma-separated
/// list of `PORT`, `HOST:PORT` or `IP@NAME:PORT`.
pub fn parse_list(s: &str) -> Result<BootstrapList, BootstrapError> {
    bootstrap::parse_list(s).map(BootstrapList)
}

/// `--bootstrap HOST:PORT[,HOST:PORT...]`, to flatten into a tool's command line
/// (`#[command(flatten)] pub bootstrap: BootstrapArgs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BootstrapArgs {
    /// Bootstrap nodes of the DHT to use.
    #[arg(long, value_name = VALUE_NAME, value_parser = parse_list)]
    pub bootstrap: Option<BootstrapList>,
    /// Do not look for peers on the local network, nor answer for this side there. LAN discovery (on by
    /// default, Rust peers only) connects peers on one LAN when no DHT node is reachable.
    #[arg(long, env = NO_LAN_ENV, value_parser = clap::builder::FalseyValueParser::new())]
    pub no_lan: bool,
}

/// The environment variable that turns LAN discovery off (`1`; `0` or empty leave it on), as `--no-lan`.
pub const NO_LAN_ENV: &str = "HYPERDHT_NO_LAN";

impl BootstrapArgs {
    /// LAN discovery's options for [`HyperDhtOpts::lan`](holepunch_dht::hyperdht::HyperDhtOpts::lan):
    /// the defaults, or `None` with `--no-lan` / `HYPERDHT_NO_LAN=1`.
    pub fn lan(&self) -> Option<holepunch_dht::lan_discovery::LanOpts> {
        (!self.no_lan).then(holepunch_dht::lan_discovery::LanOpts::default)
    }

    /// Whether `--bootstrap` was given.
    pub fn is_given(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// The list: the flag, else `HYPERDHT_BOOTSTRAP`, else the public nodes. Fails only on a bad value of
    /// the variable (the flag was checked when parsing).
    pub fn nodes(&self) -> Result<Vec<BootstrapNode>, BootstrapError> {
        choose(self.bootstrap.as_ref(), env())
    }

    /// [`nodes`](Self::nodes) with a bad variable as a usage error of `cmd` (`error: HYPERDHT_BOOTSTRAP:
    /// <why>` and the usage line; exit 2). Pass the tool's `Cli::command()`.
    pub fn nodes_or_usage(&self, cmd: clap::Command) -> Result<Vec<BootstrapNode>, clap::Error> {
        self.nodes().map_err(|e| usage_error(cmd, &e))
    }
}

/// The value of `HYPERDHT_BOOTSTRAP`, if set (the one place the tools read it).
pub fn env() -> Option<OsString> {
    std::env::var_os(ENV)
}

/// The list: `flag` if given, else `env` (the value of `HYPERDHT_BOOTSTRAP`) if set, else the public nodes.
pub fn choose(
    flag: Option<&BootstrapList>,
    env: Option<OsString>,
) -> Result<Vec<BootstrapNode>, BootstrapError> {
    bootstrap::choose(flag.map(|l| l.0.clone()), env)
}

/// A bad `HYPERDHT_BOOTSTRAP` as a usage error of `cmd`: `error: HYPERDHT_BOOTSTRAP: <why>`, the usage line,
/// exit 2.
pub fn usage_error(mut cmd: clap::Command, e: &BootstrapError) -> clap::Error {
    cmd.error(ErrorKind::InvalidValue, format!("{ENV}: {e}"))
}

/// Resolves a list to addresses (names through the system resolver, at start), skipping the nodes that do
/// not resolve; fails only when none does. The tools' one call of the library's resolver.
pub async fn resolve(nodes: &[BootstrapNode]) -> Result<Vec<SocketAddrV4>, BootstrapError> {
    bootstrap::resolve(nodes).await
}

/// The address the DHT binds to: 127.0.0.1 when every bootstrap node is on loopback (a local testnet, so
/// nothing leaves the machine and the addresses we announce are ones the other local peers reach), else every
/// interface.
pub fn bind_host(bootstrap: &[SocketAddrV4]) -> Ipv4Addr {
    if !bootstrap.is_empty() && bootstrap.iter().all(|a| a.ip().is_loopback()) {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn loopback_testnets_bind_to_loopback() {
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        let public = SocketAddrV4::new(Ipv4Addr::new(88, 99, 3, 86), 49737);
        assert_eq!(bind_host(&[local, local]), Ipv4Addr::LOCALHOST);
        assert_eq!(bind_host(&[local, public]), Ipv4Addr::UNSPECIFIED);
        assert_eq!(bind_host(&[]), Ipv4Addr::UNSPECIFIED);
    }

    /// A tool with the flag flattened in, as the bins have it.
    #[derive(Debug, Parser)]
    #[command(name = "tool")]
    struct Tool {
        #[command(flatten)]
        net: BootstrapArgs,
    }

    fn parse(args: &[&str]) -> Result<Tool, clap::Error> {
        Tool::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
    }

    fn list(nodes: &[BootstrapNode]) -> Vec<String> {
        nodes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn definition_is_consistent() {
        Tool::command().debug_assert();
    }

    #[test]
    fn bare_port_is_loopback() -> Result<(), clap::Error> {
        let t = parse(&["--bootstrap", "49737"])?;
        assert!(t.net.is_given());
        assert_eq!(
            list(&choose(t.net.bootstrap.as_ref(), None).expect("flag")),
            ["127.0.0.1:49737"]
        );
        Ok(())
    }

    #[test]
    fn host_port_and_lists() -> Result<(), clap::Error> {
        let t = parse(&["--bootstrap", "10.0.0.1:5"])?;
        assert_eq!(list(&t.net.bootstrap.expect("given").0), ["10.0.0.1:5"]);
        let t =
            parse(&["--bootstrap=7, 10.0.0.2:8,localhost:9,88.99.3.86@node1.hyperdht.org:49737"])?;
        assert_eq!(
            list(&t.net.bootstrap.expect("given").0),
            [
                "127.0.0.1:7",
                "10.0.0.2:8",
                "localhost:9",
                "88.99.3.86@node1.hyperdht.org:49737"
            ]
        );
        Ok(())
    }

    #[test]
    fn flag_then_environment_then_public_nodes() -> Result<(), clap::Error> {
        let flag = parse(&["--bootstrap", "1"])?;
        let none = parse(&[])?;
        assert!(!none.net.is_given());
        // The flag wins over the variable.
        let got = choose(flag.net.bootstrap.as_ref(), Some("2".into())).expect("flag");
        assert_eq!(list(&got), ["127.0.0.1:1"]);
        let got = choose(none.net.bootstrap.as_ref(), Some("2,10.0.0.3:4".into())).expect("env");
        assert_eq!(list(&got), ["127.0.0.1:2", "10.0.0.3:4"]);
        let got = choose(none.net.bootstrap.as_ref(), None).expect("default");
        assert_eq!(got, bootstrap::default_nodes());
        assert_eq!(got.len(), 3);
        Ok(())
    }

    #[test]
    fn bad_flag_is_clap_usage_error() {
        for bad in ["x:y", "", "1,,2", "0", "65536", "a b:1", "nope@host:5"] {
            let err = parse(&["--bootstrap", bad]).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
            assert_eq!(err.exit_code(), 2, "{bad}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "error: invalid value '{bad}' for '--bootstrap <{VALUE_NAME}>': "
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_environment_is_usage_error_naming_the_variable() {
        let e = choose(None, Some("x:y".into())).expect_err("bad env");
        let err = usage_error(Tool::command(), &e);
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "error: HYPERDHT_BOOTSTRAP: bad port in bootstrap node \"x:y\" (expected HOST:PORT or PORT)\n\n\
             Usage: tool [OPTIONS]\n\nFor more information, try '--help'.\n"
        );
        assert_eq!(choose(None, Some("".into())), Err(BootstrapError::Empty));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let not_utf8 = OsString::from_vec(vec![0xff, b'1']);
            assert_eq!(
                choose(None, Some(not_utf8)),
                Err(BootstrapError::NotUnicode)
            );
        }
    }

    #[test]
    fn help_names_the_flag() {
        let help = Tool::command().render_help().to_string();
        assert!(
            help.contains("--bootstrap <HOST:PORT[,HOST:PORT...]>"),
            "{help}"
        );
        assert!(help.contains("Bootstrap nodes of the DHT to use"), "{help}");
    }

    /// A tool's own words for the flag (drives, hypershell).
    #[derive(Debug, clap::Args)]
    #[command(mut_arg("bootstrap", |a| a.help("Bootstrap nodes, own words.")))]
    struct Own {
        #[command(flatten)]
        net: BootstrapArgs,
    }

    #[derive(Debug, Parser)]
    #[command(name = "own")]
    struct OwnTool {
        #[command(flatten)]
        own: Own,
    }

    #[test]
    fn help_can_be_reworded() {
        let help = OwnTool::command().render_help().to_string();
        assert!(help.contains("Bootstrap nodes, own words."), "{help}");
    }

    #[tokio::test]
    async fn resolves_addresses_without_lookups() {
        let nodes = bootstrap::parse_list("5,127.0.0.1:5,127.0.0.2:6").expect("parse");
        let got = resolve(&nodes).await.expect("resolve");
        assert_eq!(bootstrap::format_list(&got), "127.0.0.1:5,127.0.0.2:6");
    }
}

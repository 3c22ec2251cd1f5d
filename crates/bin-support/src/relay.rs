//! The blind relay every tool takes: `--relay KEY`, else the `HYPERDHT_RELAY` environment variable (and, for
//! hyperbeam, its older `HYPERBEAM_RELAY`), else none. KEY is the relay's public key, 64 hex digits or 52
//! z-base-32 characters; `hyperdht --relay` runs a relay and prints its key.
//!
//! With a relay, a connection pairs through it as well as trying the direct and holepunched paths
//! (HyperDHT's `relayThrough`): it opens at once through the relay and moves to a punched path when one
//! opens, so two peers behind NATs that cannot be punched (two port-randomizing NATs, a carrier-grade NAT)
//! still connect. The tools on hyperswarm (drives) relay as JS hyperswarm's `relayThrough` does: when our
//! NAT randomizes ports, or after a dial failed in a way only a relay fixes.
//!
//! As with `HYPERDHT_BOOTSTRAP`, the variable is read only when a tool needs it ([`RelayArgs::key`]), and a
//! bad value is a usage error naming the variable (exit 2); a bad `--relay` is clap's usage error.
//!
//! [`report_path`]: with `HYPERDHT_DEBUG` set, a tool prints how each connection reaches its peer
//! (`[tool] path: direct|holepunch|relay ADDR`); the NAT lab (tests/nat/run) reads that line.

use std::ffi::OsString;

use clap::error::ErrorKind;
use holepunch_dht::hyperdht::{Connection, HyperDht};

/// The environment variable every tool reads when `--relay` is not given.
pub const ENV: &str = "HYPERDHT_RELAY";
/// The environment variable that makes tools print each connection's path.
pub const DEBUG_ENV: &str = "HYPERDHT_DEBUG";

/// A relay's public key, as clap parses `--relay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayKey(pub [u8; 32]);

/// Why a relay key is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a public key (64 hex digits or 52 z-base-32 characters): {0}")]
pub struct RelayKeyError(String);

/// The `--relay` value parser: hex or z-base-32.
pub fn parse_key(s: &str) -> Result<RelayKey, RelayKeyError> {
    holepunch_wire::id_encoding::decode(s.trim())
        .map(RelayKey)
        .map_err(|e| RelayKeyError(e.to_string()))
}

/// `--relay KEY`, to flatten into a tool's command line (`#[command(flatten)] pub relay: RelayArgs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct RelayArgs {
    /// Pair connections through this blind relay as well (its public key, hex or z-base-32; `hyperdht
    /// --relay` runs one): peers behind NATs that cannot be holepunched still connect, and move to a direct
    /// path when a punch succeeds. Default: $HYPERDHT_RELAY.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub relay: Option<RelayKey>,
}

impl RelayArgs {
    /// The relay: the flag, else `HYPERDHT_RELAY`, else none. Fails only on a bad value of the variable.
    pub fn key(&self) -> Result<Option<[u8; 32]>, String> {
        choose(self.relay, &[(ENV, std::env::var_os(ENV))])
    }

    /// [`key`](Self::key), also reading `legacy` (an older tool-specific variable, e.g. `HYPERBEAM_RELAY`)
    /// after `HYPERDHT_RELAY`.
    pub fn key_or_legacy(&self, legacy: &str) -> Result<Option<[u8; 32]>, String> {
        choose(
            self.relay,
            &[
                (ENV, std::env::var_os(ENV)),
                (legacy, std::env::var_os(legacy)),
            ],
        )
    }

    /// [`key`](Self::key) with a bad variable as a usage error of `cmd` (`error: HYPERDHT_RELAY: <why>`,
    /// exit 2). Pass the tool's `Cli::command()`.
    pub fn key_or_usage(&self, cmd: clap::Command) -> Result<Option<[u8; 32]>, clap::Error> {
        self.key().map_err(|e| usage_error(cmd, &e))
    }
}

/// The relay: `flag` if given, else the first of `vars` (name, value) that is set and not empty.
pub fn choose(
    flag: Option<RelayKey>,
    vars: &[(&str, Option<OsString>)],
) -> Result<Option<[u8; 32]>, String> {
    if let Some(k) = flag {
        return Ok(Some(k.0));
    }
    for (name, value) in vars {
        let Some(v) = value else { continue };
        if v.is_empty() {
            continue;
        }
        let s = v
            .to_str()
            .ok_or_else(|| format!("{name}: not valid UTF-8"))?;
        return parse_key(s)
            .map(|k| Some(k.0))
            .map_err(|e| format!("{name}: {e}"));
    }
    Ok(None)
}

/// A bad relay variable as a usage error of `cmd`, exit 2.
pub fn usage_error(mut cmd: clap::Command, why: &str) -> clap::Error {
    cmd.error(ErrorKind::InvalidValue, why.to_string())
}

/// Whether `HYPERDHT_DEBUG` is set.
pub fn debug() -> bool {
    std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty())
}

/// With `HYPERDHT_DEBUG` set, prints `[tool] path: direct|holepunch|relay ADDR` for `conn` on stderr.
pub fn report_path(tool: &str, dht: &HyperDht, conn: &Connection) {
    if debug() {
        let (path, remote) = dht.connection_path(conn);
        let remote = remote.map_or_else(|| "?".to_string(), |a| a.to_string());
        eprintln!("[{tool}] path: {path} {remote}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "tool")]
    struct Tool {
        #[command(flatten)]
        relay: RelayArgs,
    }

    const HEX: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    #[test]
    fn definition_is_consistent() {
        Tool::command().debug_assert();
    }

    #[test]
    fn flag_takes_hex_and_z32() -> Result<(), clap::Error> {
        let t = Tool::try_parse_from(["tool", "--relay", HEX])?;
        assert_eq!(t.relay.relay, Some(RelayKey([1; 32])));
        let z = holepunch_wire::id_encoding::encode(&[1; 32]);
        let t = Tool::try_parse_from(["tool", "--relay", &z])?;
        assert_eq!(t.relay.relay, Some(RelayKey([1; 32])));
        let t = Tool::try_parse_from(["tool"])?;
        assert_eq!(t.relay.relay, None);
        Ok(())
    }

    #[test]
    fn bad_flag_is_clap_usage_error() {
        let e = Tool::try_parse_from(["tool", "--relay", "nope"]).expect_err("bad key");
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn flag_then_variables_in_order() {
        let two = "02".repeat(32);
        let vars = |a: Option<&str>, b: Option<&str>| {
            vec![
                (ENV, a.map(OsString::from)),
                ("HYPERBEAM_RELAY", b.map(OsString::from)),
            ]
        };
        assert_eq!(
            choose(Some(RelayKey([3; 32])), &vars(Some(HEX), None)),
            Ok(Some([3; 32]))
        );
        assert_eq!(
            choose(None, &vars(Some(HEX), Some(&two))),
            Ok(Some([1; 32]))
        );
        assert_eq!(choose(None, &vars(Some(""), Some(&two))), Ok(Some([2; 32])));
        assert_eq!(choose(None, &vars(None, None)), Ok(None));
        let e = choose(None, &vars(None, Some("xyz"))).expect_err("bad");
        assert!(e.starts_with("HYPERBEAM_RELAY: "), "{e}");
        let e = usage_error(Tool::command(), &e);
        assert_eq!(e.exit_code(), 2);
    }
}

//! The bootstrap-node list every tool takes: `--bootstrap HOST:PORT[,HOST:PORT...]` or the
//! [`ENV`] (`HYPERDHT_BOOTSTRAP`) environment variable in the same form, defaulting to the public
//! bootstrap nodes ([`BOOTSTRAP_NODES`]).
//!
//! The entries and their parsing and resolving are dht-rpc's (re-exported here): `PORT`, `A.B.C.D:PORT`, `NAME:PORT` and hyperdht's own `A.B.C.D@NAME:PORT`, comma-separated.
//! This module adds hyperdht's public nodes and the tools' choice between flag, environment and those.

pub use crate::dht_rpc::bootstrap::{
    format_list, parse_list, parse_node, resolve, resolve_node, BootstrapError, BootstrapNode,
};

use super::constants::BOOTSTRAP_NODES;

/// The environment variable holding a bootstrap list (same form as `--bootstrap`).
pub const ENV: &str = "HYPERDHT_BOOTSTRAP";

/// The public bootstrap nodes ([`BOOTSTRAP_NODES`]).
pub fn default_nodes() -> Vec<BootstrapNode> {
    BOOTSTRAP_NODES
        .iter()
        .filter_map(|s| parse_node(s).ok())
        .collect()
}

/// The list a tool uses: `flag` (the `--bootstrap` value) if given, else `env` (the value of [`ENV`]) if
/// set, else the public nodes. Pass `std::env::var_os(ENV)` as `env`.
pub fn choose(
    flag: Option<Vec<BootstrapNode>>,
    env: Option<std::ffi::OsString>,
) -> Result<Vec<BootstrapNode>, BootstrapError> {
    if let Some(list) = flag {
        return Ok(list);
    }
    match env {
        Some(v) => parse_list(v.to_str().ok_or(BootstrapError::NotUnicode)?),
        None => Ok(default_nodes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> BootstrapNode {
        BootstrapNode::Addr(s.parse().expect("addr"))
    }

    #[test]
    fn defaults_and_precedence() {
        let d = default_nodes();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            BOOTSTRAP_NODES.to_vec()
        );
        let flag = vec![addr("127.0.0.1:1")];
        assert_eq!(
            choose(Some(flag.clone()), Some("2".into())),
            Ok(flag.clone())
        );
        assert_eq!(
            choose(None, Some("2".into())),
            Ok(vec![addr("127.0.0.1:2")])
        );
        assert_eq!(choose(None, Some("".into())), Err(BootstrapError::Empty));
        assert_eq!(choose(None, None), Ok(d));
    }

    #[cfg(unix)]
    #[test]
    fn env_not_unicode() {
        use std::os::unix::ffi::OsStringExt;
        let env = std::ffi::OsString::from_vec(vec![b'1', 0xff]);
        assert_eq!(choose(None, Some(env)), Err(BootstrapError::NotUnicode));
    }

    #[tokio::test]
    async fn public_nodes_resolve_without_network() {
        // Suggested addresses are used as they are: no lookup of the public names.
        let got = resolve(&default_nodes()).await.expect("resolve");
        assert_eq!(
            format_list(&got),
            "88.99.3.86:49737,142.93.90.113:49737,138.68.147.8:49737"
        );
    }
}

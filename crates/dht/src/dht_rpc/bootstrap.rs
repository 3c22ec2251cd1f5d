//! Bootstrap nodes as dht-rpc takes them: written by the user (a `--bootstrap` flag, an environment
//! variable, a protocol's list of public nodes such as hyperdht's), parsed ([`parse_list`]) and resolved to
//! the IPv4 addresses [`super::node::Config::bootstrap`] holds ([`resolve`]).
//!
//! A list is comma-separated entries, each one of
//! * `PORT` — shorthand for `127.0.0.1:PORT` (a local testnet);
//! * `A.B.C.D:PORT` — an IPv4 address;
//! * `NAME:PORT` — a host name, resolved when the tool starts ([`resolve`]);
//! * `A.B.C.D@NAME:PORT` — a suggested address for a host name, used as is (the JS dht-rpc pings it first
//!   and falls back to resolving the name).
//!
//! Whitespace around entries is ignored, empty entries are errors.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// One bootstrap node as written by the user, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BootstrapNode {
    /// An IPv4 address (also what a bare port becomes).
    Addr(SocketAddrV4),
    /// A host name to resolve, with an optional suggested address (`IP@NAME:PORT`).
    Name {
        /// The host name.
        host: String,
        /// The UDP port.
        port: u16,
        /// The address to use instead of resolving `host`.
        suggested: Option<Ipv4Addr>,
    },
}

impl fmt::Display for BootstrapNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Name {
                host,
                port,
                suggested: Some(ip),
            } => write!(f, "{ip}@{host}:{port}"),
            Self::Name {
                host,
                port,
                suggested: None,
            } => write!(f, "{host}:{port}"),
        }
    }
}

/// Why a bootstrap list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// The list has no entries.
    #[error("empty bootstrap list")]
    Empty,
    /// An entry is empty (`a:1,,b:2`).
    #[error("empty entry in bootstrap list")]
    EmptyEntry,
    /// An entry's port is missing or not a number in 1..=65535.
    #[error("bad port in bootstrap node {0:?} (expected HOST:PORT or PORT)")]
    BadPort(String),
    /// An entry's host is empty or not a plausible host name.
    #[error("bad host in bootstrap node {0:?} (expected HOST:PORT or PORT)")]
    BadHost(String),
    /// The suggested address of an `IP@NAME:PORT` entry is not an IPv4 address.
    #[error("bad suggested address in bootstrap node {0:?} (expected IP@NAME:PORT)")]
    BadSuggested(String),
    /// The list (an environment variable's value, say) is not valid UTF-8.
    #[error("bootstrap list is not valid UTF-8")]
    NotUnicode,
    /// No entry could be resolved to an IPv4 address.
    #[error("cannot resolve any bootstrap node: {0}")]
    Unresolved(String),
}

fn parse_port(s: &str, entry: &str) -> Result<u16, BootstrapError> {
    // `u16::from_str` accepts a leading '+'; a port is digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BootstrapError::BadPort(entry.to_owned()));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(BootstrapError::BadPort(entry.to_owned())),
        Ok(p) => Ok(p),
    }
}

fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// Parses one entry (see the module docs).
pub fn parse_node(entry: &str) -> Result<BootstrapNode, BootstrapError> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(BootstrapError::EmptyEntry);
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        let port = parse_port(entry, entry)?;
        return Ok(BootstrapNode::Addr(SocketAddrV4::new(
            Ipv4Addr::LOCALHOST,
            port,
        )));
    };
    let port = parse_port(port, entry)?;
    let (suggested, host) = match host.split_once('@') {
        Some((ip, name)) => {
            let ip = ip
                .parse::<Ipv4Addr>()
                .map_err(|_| BootstrapError::BadSuggested(entry.to_owned()))?;
            (Some(ip), name)
        }
        None => (None, host),
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(match suggested {
            None => BootstrapNode::Addr(SocketAddrV4::new(ip, port)),
            Some(_) => BootstrapNode::Name {
                host: host.to_owned(),
                port,
                suggested,
            },
        });
    }
    if !valid_host_name(host) {
        return Err(BootstrapError::BadHost(entry.to_owned()));
    }
    Ok(BootstrapNode::Name {
        host: host.to_owned(),
        port,
        suggested,
    })
}

/// Parses a comma-separated bootstrap list (see the module docs).
pub fn parse_list(list: &str) -> Result<Vec<BootstrapNode>, BootstrapError> {
    if list.trim().is_empty() {
        return Err(BootstrapError::Empty);
    }
    list.split(',').map(parse_node).collect()
}

/// Resolves one node to an IPv4 address: addresses and suggested addresses as they are, host names
/// through the system resolver (first IPv4 answer).
pub async fn resolve_node(node: &BootstrapNode) -> std::io::Result<SocketAddrV4> {
    match node {
        BootstrapNode::Addr(a) => Ok(*a),
        BootstrapNode::Name {
            suggested: Some(ip),
            port,
            ..
        } => Ok(SocketAddrV4::new(*ip, *port)),
        BootstrapNode::Name {
            host,
            port,
            suggested: None,
        } => tokio::net::lookup_host((host.as_str(), *port))
            .await?
            .find_map(|a| match a {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no IPv4 address"),
                )
            }),
    }
}

/// Resolves a list, skipping the nodes that do not resolve (as the JS skips unreachable bootstrap
/// nodes); fails only when none does. Duplicates are removed, order kept.
pub async fn resolve(nodes: &[BootstrapNode]) -> Result<Vec<SocketAddrV4>, BootstrapError> {
    let mut out = Vec::with_capacity(nodes.len());
    let mut errors = Vec::new();
    for node in nodes {
        match resolve_node(node).await {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => {}
            Err(e) => errors.push(format!("{node}: {e}")),
        }
    }
    if out.is_empty() && !nodes.is_empty() {
        return Err(BootstrapError::Unresolved(errors.join("; ")));
    }
    Ok(out)
}

/// Formats addresses as a bootstrap list (`HOST:PORT,HOST:PORT`), the form [`parse_list`] reads.
pub fn format_list(addrs: &[SocketAddrV4]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> BootstrapNode {
        BootstrapNode::Addr(s.parse().expect("addr"))
    }

    #[test]
    fn forms() {
        assert_eq!(parse_list("49737"), Ok(vec![addr("127.0.0.1:49737")]));
        assert_eq!(
            parse_list("10.0.0.1:1, 2 ,localhost:3"),
            Ok(vec![
                addr("10.0.0.1:1"),
                addr("127.0.0.1:2"),
                BootstrapNode::Name {
                    host: "localhost".into(),
                    port: 3,
                    suggested: None
                }
            ])
        );
        assert_eq!(
            parse_node("88.99.3.86@node1.example.org:49737"),
            Ok(BootstrapNode::Name {
                host: "node1.example.org".into(),
                port: 49737,
                suggested: Some(Ipv4Addr::new(88, 99, 3, 86)),
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_list(""), Err(BootstrapError::Empty));
        assert_eq!(parse_list("  "), Err(BootstrapError::Empty));
        assert_eq!(parse_list("1,,2"), Err(BootstrapError::EmptyEntry));
        assert_eq!(parse_list("1,"), Err(BootstrapError::EmptyEntry));
        for bad in [
            "0",
            "65536",
            "a:0",
            "a:",
            "a:+5",
            "a:x",
            "x",
            "1.2.3.4:-1",
            "127.0.0.1",
            "127.0.0.1:99999",
        ] {
            assert!(
                matches!(parse_list(bad), Err(BootstrapError::BadPort(_))),
                "{bad}"
            );
        }
        for bad in [":5", "a b:5", "[::1]:5", "a/b:5"] {
            assert!(
                matches!(parse_list(bad), Err(BootstrapError::BadHost(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_list("nope@host:5"),
            Err(BootstrapError::BadSuggested(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:5",
            "example.org:49737",
            "88.99.3.86@node1.example.org:49737",
        ] {
            let n = parse_node(s).expect("parse");
            assert_eq!(n.to_string(), s);
            assert_eq!(parse_node(&n.to_string()), Ok(n));
        }
    }

    #[tokio::test]
    async fn resolves_without_network() {
        // Suggested addresses are used as they are: no lookup of the names.
        let list =
            parse_list("10.1.2.3@node1.invalid:49737,10.1.2.4@node2.invalid:7").expect("parse");
        let got = resolve(&list).await.expect("resolve");
        assert_eq!(format_list(&got), "10.1.2.3:49737,10.1.2.4:7");
        assert_eq!(
            resolve_node(&parse_node("localhost:7").expect("parse"))
                .await
                .ok(),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7))
        );
        let list = parse_list("5,127.0.0.1:5,localhost:6").expect("parse");
        let got = resolve(&list).await.expect("resolve");
        assert_eq!(format_list(&got), "127.0.0.1:5,127.0.0.1:6");
        assert_eq!(parse_list(&format_list(&got)).map(|l| l.len()), Ok(2));
        assert_eq!(resolve(&[]).await, Ok(Vec::new()));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = parse_list(&s);
        }

        #[test]
        fn mutated_lists_never_panic(
            ports in proptest::collection::vec(1u16.., 1..5),
            cut in 0usize..64,
            byte in any::<u8>(),
        ) {
            let list = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
            let parsed = parse_list(&list).expect("valid list");
            prop_assert_eq!(parsed.len(), ports.len());
            let mut bytes = list.into_bytes();
            let i = cut % bytes.len();
            bytes.truncate(i.max(1));
            let _ = parse_list(&String::from_utf8_lossy(&bytes));
            bytes.push(byte);
            let _ = parse_list(&String::from_utf8_lossy(&bytes));
        }
    }
}

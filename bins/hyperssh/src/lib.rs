//! The `hyperssh` and `hyperssh-fuse` tools' command lines, as a library so that man pages and shell
//! completions are generated from the same definitions (`cargo run -p xtask -- gen-docs`), and the mount
//! handling of `hyperssh-fuse`.

pub mod cli;
pub mod mount;

use std::path::Path;

use hypertele_tool::client::{ClientConfig, Listen};
use hypertele_tool::config::{parse_key, read_identity, resolve_host, ConfigError, KeepAlive};

/// The local proxy both tools run their ssh/sshfs through: on 127.0.0.1:`port` (0 picks a free port), to
/// the server `server` (a key or a `.hyper-hosts` name), as the key pair in the `identity` file if any.
pub fn proxy_config(
    server: &str,
    identity: Option<&Path>,
    port: u16,
) -> Result<ClientConfig, ConfigError> {
    let key = resolve_host(server).ok_or_else(|| ConfigError::HostWithoutKey(server.to_owned()))?;
    let peer = parse_key("peer (-s)", &key)?;
    let key_pair = identity.map(read_identity).transpose()?;
    Ok(ClientConfig {
        listen: Listen::Tcp("127.0.0.1".into(), port),
        peer,
        key_pair,
        compress: false,
        keep_alive: KeepAlive::default(),
        debug: false,
        relay: None,
        lan: Some(holepunch::lan_discovery::LanOpts::default()),
    })
}

/// The current user's name, as `os.userInfo().username`.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

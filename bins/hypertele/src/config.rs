//! The files hypertele 1.1.4 reads, read the same way (`hyper-cmd-lib-utils`, `hyper-cmd-lib-keys`):
//!
//! - the configuration file (`-c conf.json`): a JSON object whose keys override the command line's, as the
//!   JS `readConf` merges them. Keys used: `seed` (hex, the server's 32-byte seed), `allow` (array of client
//!   public keys the server lets in), `peer` (the server key the client connects to), `compress` (bool),
//!   `keepAlive` (connection keep-alive in ms, `false` to turn it off; `0` means the default 5000 as in
//!   hyperdht). Other keys are ignored.
//! - the identity file (`-i identity.json`, as `hyper-cmd-util-keygen` writes it):
//!   `{"secretKey": "<128 hex digits>", "publicKey": "<64 hex digits>"}`.
//! - the hosts file `.hyper-hosts`, lines of `NAME KEY` separated by one space, looked up in `./`,
//!   `/home/$USER`, `Users/$USER` (relative, as the JS has it) and `/etc` in that order; the first file that
//!   exists is the only one read. `$HOME` is searched after `/home/$USER` when it differs (a Rust addition, so
//!   root's `~/.hyper-hosts` is found too). A name with no line is used as the key itself.
//!
//! Keys are accepted as 64 hex digits (what the JS takes) or as 52 z-base-32 characters (hypercore-id-encoding).

use std::path::{Path, PathBuf};
use std::time::Duration;

use holepunch::crypto::{KeyPair, SECRET_KEY_LEN, SEED_LEN};
use holepunch::id_encoding;
use serde_json::Value;

/// The connection keep-alive hyperdht uses unless told otherwise (`connectionKeepAlive`).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_millis(5000);

/// The hosts file's name.
pub const HOSTS_FILE: &str = ".hyper-hosts";

/// Why a configuration, identity or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value read from a configuration file is invalid (the file is named first).
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with the value.
        error: Box<ConfigError>,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// The JSON is not an object.
    #[error("{path}: expected a JSON object")]
    NotObject {
        /// The file.
        path: PathBuf,
    },
    /// A key has a value of the wrong type.
    #[error("{path}: \"{field}\" must be {expected}")]
    FieldType {
        /// The file.
        path: PathBuf,
        /// The key.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A key is not 32 bytes in hex or z-base-32.
    #[error(
        "{what} invalid: {value:?} is not a 32-byte key (64 hex digits or 52 z-base-32 characters)"
    )]
    BadKey {
        /// What the key is for.
        what: String,
        /// The value given.
        value: String,
    },
    /// A seed is not 64 hex digits.
    #[error("{what} invalid: expected 64 hex digits (a 32-byte seed)")]
    BadSeed {
        /// Where the seed came from.
        what: &'static str,
    },
    /// No seed on the command line nor in the configuration file (the JS `conf.seed invalid`).
    #[error("conf.seed invalid: give --seed or a \"seed\" in the configuration file")]
    MissingSeed,
    /// No server key on the command line nor in the configuration file (the JS `peer is invalid`).
    #[error("peer is invalid: give -s or a \"peer\" in the configuration file")]
    MissingPeer,
    /// A hosts file line names the host but gives no key.
    #[error("peer is invalid: the .hyper-hosts line for {0:?} has no key")]
    HostWithoutKey(String),
    /// `--private` with an allow list.
    #[error("--private flag is not compatible with an allow list, as the private key derived from the seed is the capability")]
    PrivateWithAllowList,
    /// The identity file does not hold a valid key pair.
    #[error("identity file {path} invalid: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The connection keep-alive a configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// `keepAlive: false`: no keep-alive messages.
    Off,
    /// Every this long.
    Every(Duration),
}

impl KeepAlive {
    /// As [`holepunch::hyperdht::HyperDhtOpts::connection_keep_alive`] takes it.
    pub fn as_option(self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::Every(d) => Some(d),
        }
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self::Every(DEFAULT_KEEP_ALIVE)
    }
}

/// The keys of a configuration file that hypertele uses (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    /// `seed`: the server's seed, hex.
    pub seed: Option<String>,
    /// `allow`: the client public keys a server lets in.
    pub allow: Option<Vec<String>>,
    /// `peer`: the server key a client connects to.
    pub peer: Option<String>,
    /// `compress`.
    pub compress: Option<bool>,
    /// `keepAlive`.
    pub keep_alive: Option<KeepAlive>,
}

fn field_type(path: &Path, field: &str, expected: &'static str) -> ConfigError {
    ConfigError::FieldType {
        path: path.to_path_buf(),
        field: field.to_owned(),
        expected,
    }
}

fn optional_string(
    path: &Path,
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field_type(path, key, "a string")),
    }
}

impl ConfFile {
    /// Parses the JSON text of a configuration file; `path` names it in errors.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_slice(text).map_err(|source| ConfigError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let Value::Object(obj) = value else {
            return Err(ConfigError::NotObject {
                path: path.to_path_buf(),
            });
        };
        let allow = match obj.get("allow") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(field_type(path, "allow", "an array of key strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(field_type(path, "allow", "an array of key strings")),
        };
        let compress = match obj.get("compress") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(field_type(path, "compress", "true or false")),
        };
        let keep_alive = match obj.get("keepAlive") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(false)) => Some(KeepAlive::Off),
            Some(Value::Number(n)) => match n.as_f64() {
                // hyperdht: `opts.connectionKeepAlive || 5000`
                Some(0.0) => Some(KeepAlive::default()),
                Some(ms) if ms > 0.0 && ms.is_finite() && ms <= 86_400_000.0 => {
                    Some(KeepAlive::Every(Duration::from_secs_f64(ms / 1000.0)))
                }
                _ => {
                    return Err(field_type(
                        path,
                        "keepAlive",
                        "a number of milliseconds (at most a day) or false",
                    ))
                }
            },
            Some(_) => {
                return Err(field_type(
                    path,
                    "keepAlive",
                    "a number of milliseconds (at most a day) or false",
                ))
            }
        };
        Ok(Self {
            seed: optional_string(path, &obj, "seed")?,
            allow,
            peer: optional_string(path, &obj, "peer")?,
            compress,
            keep_alive,
        })
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }
}

impl ConfigError {
    /// This error, about a value read from the file `path`.
    pub fn in_file(self, path: &Path) -> Self {
        ConfigError::InFile {
            path: path.to_path_buf(),
            error: Box::new(self),
        }
    }
}

/// Reads a 32-byte key: 64 hex digits or 52 z-base-32 characters. `what` names it in the error.
pub fn parse_key(what: &str, value: &str) -> Result<[u8; 32], ConfigError> {
    let trimmed = value.trim();
    let bad = || ConfigError::BadKey {
        what: what.to_owned(),
        value: value.to_owned(),
    };
    if trimmed.len() != 64 && trimmed.len() != 52 {
        return Err(bad());
    }
    id_encoding::decode(trimmed).map_err(|_| bad())
}

/// Reads a seed: 64 hex digits. `what` names it in the error.
pub fn parse_seed(what: &'static str, value: &str) -> Result<[u8; SEED_LEN], ConfigError> {
    let mut seed = [0u8; SEED_LEN];
    hex::decode_to_slice(value.trim(), &mut seed).map_err(|_| ConfigError::BadSeed { what })?;
    Ok(seed)
}

/// Parses an identity file's text (`{"secretKey": hex, "publicKey": hex}`); `path` names it in errors. The
/// public key must be the one the secret key holds.
pub fn parse_identity(path: &Path, text: &[u8]) -> Result<KeyPair, ConfigError> {
    let bad = |reason: &str| ConfigError::Identity {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let value: Value = serde_json::from_slice(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let field = |name: &str| -> Result<String, ConfigError> {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("\"{name}\" is missing or not a string")))
    };
    let mut secret = [0u8; SECRET_KEY_LEN];
    hex::decode_to_slice(field("secretKey")?.trim(), &mut secret)
        .map_err(|_| bad("\"secretKey\" is not 128 hex digits (64 bytes)"))?;
    let mut public = [0u8; 32];
    hex::decode_to_slice(field("publicKey")?.trim(), &mut public)
        .map_err(|_| bad("\"publicKey\" is not 64 hex digits (32 bytes)"))?;
    let from_seed = KeyPair::from_secret_key(&secret);
    let seed = from_seed.seed();
    if KeyPair::from_seed(&seed).public != public || from_seed.public != public {
        return Err(bad("\"publicKey\" does not belong to \"secretKey\""));
    }
    Ok(from_seed)
}

/// Reads an identity file. A missing file gives the JS's message (`identity file invalid`).
pub fn read_identity(path: &Path) -> Result<KeyPair, ConfigError> {
    let text = std::fs::read(path).map_err(|e| ConfigError::Identity {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_identity(path, &text)
}

/// The hosts file lookup of `resolveHostToKey`: the key on the first line whose first space-separated field
/// is `name`. `Some(None)` when that line has no second field (the JS then has no peer).
pub fn lookup_host(hosts: &str, name: &str) -> Option<Option<String>> {
    hosts.split('\n').find_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut fields = line.split(' ');
        (fields.next() == Some(name)).then(|| fields.next().map(str::to_owned))
    })
}

/// Where `.hyper-hosts` is looked for, in order (see the module docs).
pub fn hosts_search_path(user: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("./")];
    if let Some(user) = user {
        dirs.push(PathBuf::from(format!("/home/{user}")));
        if let Some(home) = home.filter(|h| *h != Path::new(&format!("/home/{user}"))) {
            dirs.push(home.to_path_buf());
        }
        dirs.push(PathBuf::from(format!("Users/{user}")));
    } else if let Some(home) = home {
        dirs.push(home.to_path_buf());
    }
    dirs.push(PathBuf::from("/etc"));
    dirs.into_iter().map(|d| d.join(HOSTS_FILE)).collect()
}

/// The first hosts file of `paths` that exists, with its text (`None` if none exists or it is unreadable).
pub fn find_hosts_file(paths: &[PathBuf]) -> Option<(PathBuf, String)> {
    let path = paths.iter().find(|p| p.exists())?;
    std::fs::read_to_string(path)
        .ok()
        .map(|t| (path.clone(), t))
}

/// `resolveHostToKey`: the key `name` stands for in the first hosts file found on the default search path,
/// or `name` itself. `None` when the matching line has no key.
pub fn resolve_host(name: &str) -> Option<String> {
    let user = std::env::var("USER")
        .ok()
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|u| !u.is_empty());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let paths = hosts_search_path(user.as_deref(), home.as_deref());
    match find_hosts_file(&paths) {
        Some((_, text)) => lookup_host(&text, name).unwrap_or_else(|| Some(name.to_owned())),
        None => Some(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("conf.json")
    }

    #[test]
    fn conf_file_keys() {
        let c = ConfFile::parse(
            p(),
            br#"{"seed":"ab","allow":["k1","k2"],"peer":"pp","compress":true,"keepAlive":1500,"other":1}"#,
        )
        .unwrap_or_default();
        assert_eq!(c.seed.as_deref(), Some("ab"));
        assert_eq!(c.allow, Some(vec!["k1".to_string(), "k2".to_string()]));
        assert_eq!(c.peer.as_deref(), Some("pp"));
        assert_eq!(c.compress, Some(true));
        assert_eq!(
            c.keep_alive,
            Some(KeepAlive::Every(Duration::from_millis(1500)))
        );
        let c = ConfFile::parse(p(), br#"{"keepAlive":false}"#).unwrap_or_default();
        assert_eq!(c.keep_alive, Some(KeepAlive::Off));
        let c = ConfFile::parse(p(), br#"{"keepAlive":0}"#).unwrap_or_default();
        assert_eq!(c.keep_alive, Some(KeepAlive::default()));
        assert_eq!(
            ConfFile::parse(p(), b"{}").unwrap_or_else(|_| ConfFile {
                seed: Some("x".into()),
                ..ConfFile::default()
            }),
            ConfFile::default()
        );
    }

    #[test]
    fn conf_file_errors() {
        for (text, want) in [
            (&b"{"[..], "not valid JSON"),
            (b"[1]", "expected a JSON object"),
            (br#"{"seed":1}"#, "\"seed\" must be a string"),
            (br#"{"allow":"k"}"#, "\"allow\" must be an array"),
            (br#"{"allow":[1]}"#, "\"allow\" must be an array"),
            (
                br#"{"compress":"yes"}"#,
                "\"compress\" must be true or false",
            ),
            (br#"{"keepAlive":-1}"#, "\"keepAlive\" must be a number"),
            (br#"{"keepAlive":true}"#, "\"keepAlive\" must be a number"),
            (br#"{"peer":[]}"#, "\"peer\" must be a string"),
        ] {
            match ConfFile::parse(p(), text) {
                Ok(c) => panic!("{text:?} parsed: {c:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{e} lacks {want}"),
            }
        }
        let missing = ConfFile::read(Path::new("/nonexistent/conf.json"));
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn keys_and_seeds() {
        let key = [7u8; 32];
        let hex_key = hex::encode(key);
        assert_eq!(parse_key("peer", &hex_key).ok(), Some(key));
        assert_eq!(
            parse_key("peer", &id_encoding::encode(&key)).ok(),
            Some(key)
        );
        assert!(parse_key("peer", "abcd").is_err());
        assert!(parse_key("peer", &hex_key[1..]).is_err());
        let e = parse_key("peer", &format!("{}zz", &hex_key[2..]));
        assert!(matches!(e, Err(ConfigError::BadKey { .. })));
        assert_eq!(parse_seed("seed", &hex_key).ok(), Some(key));
        assert!(parse_seed("seed", &id_encoding::encode(&key)).is_err());
        assert!(parse_seed("seed", "00").is_err());
    }

    #[test]
    fn identity() {
        let kp = KeyPair::from_seed(&[3u8; 32]);
        let text = format!(
            r#"{{"secretKey":"{}","publicKey":"{}"}}"#,
            hex::encode(kp.secret),
            hex::encode(kp.public)
        );
        let read = parse_identity(p(), text.as_bytes());
        assert_eq!(read.ok().map(|k| k.public), Some(kp.public));
        let other = KeyPair::from_seed(&[4u8; 32]);
        let mismatched = format!(
            r#"{{"secretKey":"{}","publicKey":"{}"}}"#,
            hex::encode(kp.secret),
            hex::encode(other.public)
        );
        for bad in [
            "",
            "{}",
            r#"{"secretKey":"00","publicKey":"00"}"#,
            mismatched.as_str(),
        ] {
            assert!(matches!(
                parse_identity(p(), bad.as_bytes()),
                Err(ConfigError::Identity { .. })
            ));
        }
        assert!(read_identity(Path::new("/nonexistent/id.json")).is_err());
    }

    #[test]
    fn hosts() {
        let hosts = "alpha aaaa\r\nbeta bbbb extra\nnokey\n\nbeta second\n";
        assert_eq!(lookup_host(hosts, "alpha"), Some(Some("aaaa".into())));
        assert_eq!(lookup_host(hosts, "beta"), Some(Some("bbbb".into())));
        assert_eq!(lookup_host(hosts, "nokey"), Some(None));
        assert_eq!(lookup_host(hosts, "gamma"), None);
        let paths = hosts_search_path(Some("bob"), Some(Path::new("/root")));
        assert_eq!(
            paths,
            [
                "./.hyper-hosts",
                "/home/bob/.hyper-hosts",
                "/root/.hyper-hosts",
                "Users/bob/.hyper-hosts",
                "/etc/.hyper-hosts"
            ]
            .map(PathBuf::from)
        );
        let paths = hosts_search_path(Some("bob"), Some(Path::new("/home/bob")));
        assert_eq!(paths.len(), 4);
    }

    proptest! {
        #[test]
        fn conf_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ConfFile::parse(p(), &bytes);
            let _ = parse_identity(p(), &bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = lookup_host(&text, "a");
            let _ = parse_key("k", &text);
            let _ = parse_seed("s", &text);
        }

        #[test]
        fn mutated_conf_never_panics(
            pos in 0usize..80,
            byte in any::<u8>(),
            cut in 0usize..80,
        ) {
            let mut text = br#"{"seed":"00","allow":["a"],"compress":true,"keepAlive":10}"#.to_vec();
            if let Some(b) = text.get_mut(pos) {
                *b = byte;
            }
            text.truncate(cut.min(text.len()));
            let _ = ConfFile::parse(p(), &text);
        }
    }
}

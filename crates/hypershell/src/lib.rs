//! Compatibility with the JavaScript `hypershell` 0.0.15: the protomux channels it opens over a HyperDHT
//! connection, their messages, and the formats of its key and config files.
//!
//! Channels (all with id `null`), opened by the client; the server pairs them (`mux.pair`) and answers
//! with an open of its own:
//!
//! | protocol | client handshake | messages (by type number) |
//! | --- | --- | --- |
//! | `hypershell` | [`SpawnHandshake`] | 0 stdin (buffer), 1 stdout (buffer), 2 stderr (buffer), 3 exit code (uint), 4 [`Resize`] |
//! | `hypershell-upload` | [`UploadHandshake`] | 0 unused, 1 [`ErrorMessage`], 2 tar data (raw; empty = end) |
//! | `hypershell-download` | [`DownloadHandshake`] | 0 [`DownloadHeader`], 1 [`ErrorMessage`], 2 tar data (raw; empty = end) |
//! | `hypershell-tunnel-local` | JSON `{host, port}` | 0 JSON `{clientId, serverId}` |
//!
//! The server's handshake is the same structure encoded from an empty object. The JS server, on
//! `compact-encoding` 2.11, encodes the spawn handshake's missing width and height as 9-byte uints of
//! zero (`ff` + 8 zero bytes); [`SpawnHandshake::decode`] accepts that as any uint. This crate's server
//! sends width and height 0 in their one-byte form.
//!
//! Files transfer as a tar stream (the JS uses `tar-fs`): a directory packs as an entry `.` for itself
//! followed by its contents relative to it; a single file packs as one entry named `.`, which the
//! receiver renames to the target's file name.
//!
//! Key and config files (`~/.hypershell/`): a seed file holds a 32-byte seed in hex or z-base32, optionally
//! followed by ` # comment`; `authorized_peers` lists one public key a line; `known_peers` lists
//! `<name> <public key>` lines. In the lists, `#` starts a comment, runs of whitespace count as one space,
//! and lines that do not fit are skipped ([`parse_config`], the `tiny-configs` module).

use holepunch_wire::compact_encoding::{Decode, DecodeError, Encode, Reader, Writer};
use holepunch_wire::crypto::KeyPair;
use holepunch_wire::id_encoding;

/// The shell channel's protocol name.
pub const PROTOCOL_SHELL: &str = "hypershell";
/// The upload channel's protocol name (client to server files).
pub const PROTOCOL_UPLOAD: &str = "hypershell-upload";
/// The download channel's protocol name (server to client files).
pub const PROTOCOL_DOWNLOAD: &str = "hypershell-download";
/// The local tunnel channel's protocol name (`-L`).
pub const PROTOCOL_TUNNEL_LOCAL: &str = "hypershell-tunnel-local";

/// Shell channel message types.
pub mod shell_message {
    /// Bytes for the remote terminal (client to server).
    pub const STDIN: u64 = 0;
    /// Terminal output (server to client).
    pub const STDOUT: u64 = 1;
    /// Error output (server to client).
    pub const STDERR: u64 = 2;
    /// The exit code (server to client), a uint.
    pub const EXIT_CODE: u64 = 3;
    /// A new terminal size (client to server), [`super::Resize`].
    pub const RESIZE: u64 = 4;
    /// Number of message types.
    pub const COUNT: u64 = 5;
}

/// Transfer channel message types (upload and download).
pub mod transfer_message {
    /// The download header ([`super::DownloadHeader`]); unused by uploads.
    pub const HEADER: u64 = 0;
    /// An error ([`super::ErrorMessage`]).
    pub const ERROR: u64 = 1;
    /// A chunk of the tar stream; an empty one ends it.
    pub const DATA: u64 = 2;
    /// Number of message types.
    pub const COUNT: u64 = 3;
}

/// The tunnel channel's message type (`{clientId, serverId}` JSON).
pub const TUNNEL_MESSAGE_STREAM_ID: u64 = 0;

/// Handshake of the `hypershell` channel: what to spawn and the terminal size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnHandshake {
    /// The program; empty for the server's default shell.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Terminal columns (0 when unknown).
    pub width: u64,
    /// Terminal rows (0 when unknown).
    pub height: u64,
}

impl Encode for SpawnHandshake {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.command);
        w.uint(self.args.len() as u64);
        for a in &self.args {
            w.string(a);
        }
        w.uint(self.width).uint(self.height);
    }
}

impl<'a> Decode<'a> for SpawnHandshake {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let command = r.string()?.to_owned();
        let args = r.array(|r| r.string().map(str::to_owned))?;
        Ok(Self {
            command,
            args,
            width: r.uint()?,
            height: r.uint()?,
        })
    }
}

/// Handshake of the `hypershell-upload` channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadHandshake {
    /// Where the server writes (a path on the server; `~/` is not expanded by the JS server).
    pub target: String,
    /// Whether the source is a directory.
    pub is_directory: bool,
}

impl Encode for UploadHandshake {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.target).bool(self.is_directory);
    }
}

impl<'a> Decode<'a> for UploadHandshake {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            target: r.string()?.to_owned(),
            is_directory: r.bool()?,
        })
    }
}

/// Handshake of the `hypershell-download` channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadHandshake {
    /// What the server sends (a path on the server).
    pub source: String,
}

impl Encode for DownloadHandshake {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.source);
    }
}

impl<'a> Decode<'a> for DownloadHandshake {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            source: r.string()?.to_owned(),
        })
    }
}

/// First message of a download: whether the source is a directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadHeader {
    /// Whether the source is a directory.
    pub is_directory: bool,
}

impl Encode for DownloadHeader {
    fn encode(&self, w: &mut Writer) {
        w.bool(self.is_directory);
    }
}

impl<'a> Decode<'a> for DownloadHeader {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            is_directory: r.bool()?,
        })
    }
}

/// An error of a transfer (the fields of a Node.js `Error`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The error code (`ENOENT`...), empty if none.
    pub code: String,
    /// The path concerned, empty if none.
    pub path: String,
    /// The message.
    pub message: String,
}

impl Encode for ErrorMessage {
    fn encode(&self, w: &mut Writer) {
        w.string(&self.code)
            .string(&self.path)
            .string(&self.message);
    }
}

impl<'a> Decode<'a> for ErrorMessage {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            code: r.string()?.to_owned(),
            path: r.string()?.to_owned(),
            message: r.string()?.to_owned(),
        })
    }
}

impl std::fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == "ENOENT" {
            write!(f, "{}: No such file or directory", self.path)
        } else if self.message.is_empty() {
            write!(f, "{} {}", self.code, self.path)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// A terminal size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resize {
    /// Columns.
    pub width: u64,
    /// Rows.
    pub height: u64,
}

impl Encode for Resize {
    fn encode(&self, w: &mut Writer) {
        w.uint(self.width).uint(self.height);
    }
}

impl<'a> Decode<'a> for Resize {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            width: r.uint()?,
            height: r.uint()?,
        })
    }
}

/// Encodes a `c.buffer` message (length-prefixed bytes), as the shell channel's stdin/stdout/stderr.
pub fn encode_buffer(data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.buffer(data);
    w.into_vec()
}

/// Decodes a `c.buffer` message. The JS decodes an empty buffer as `null`; both give an empty vector here.
pub fn decode_buffer(payload: &[u8]) -> Result<&[u8], DecodeError> {
    let mut r = Reader::new(payload);
    let data = r.buffer()?;
    Ok(data)
}

/// Encodes a `c.uint` message (the exit code).
pub fn encode_uint(n: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.uint(n);
    w.into_vec()
}

/// Decodes a `c.uint` message.
pub fn decode_uint(payload: &[u8]) -> Result<u64, DecodeError> {
    Reader::new(payload).uint()
}

/// A bad key or config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key file holds no key.
    #[error("no key in the file")]
    Empty,
    /// The key is not 64 hex digits or 52 z-base32 characters.
    #[error("invalid key {key:?}: expected 64 hex digits or 52 z-base32 characters")]
    InvalidKey {
        /// The text that is not a key.
        key: String,
    },
}

/// Parses a key (hex or z-base32) as `hypercore-id-encoding` does.
pub fn parse_key(s: &str) -> Result<[u8; 32], ConfigError> {
    id_encoding::decode(s).map_err(|_| ConfigError::InvalidKey { key: s.to_owned() })
}

/// Formats a key as the JS does (z-base32).
pub fn format_key(key: &[u8; 32]) -> String {
    id_encoding::encode(key)
}

/// The lines of a config file as `tiny-configs` parses them: whitespace runs become one space, `#` starts
/// a comment, empty lines are dropped. With `split`, each line splits at single spaces and lines whose
/// field count differs from `fields` are dropped.
pub fn parse_config(text: &str, fields: Option<usize>) -> Vec<Vec<String>> {
    text.split('\n')
        .filter_map(|line| {
            let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
            let line = collapsed.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                return None;
            }
            match fields {
                None => Some(vec![line.to_owned()]),
                Some(n) => {
                    let parts: Vec<String> = line.split(' ').map(str::to_owned).collect();
                    (parts.len() == n).then_some(parts)
                }
            }
        })
        .collect()
}

/// Reads a seed file's text (the JS: `HypercoreId.decode(text.trim())`, where a trailing ` # comment` is
/// part of what this crate's and the JS keygen write; the JS decode ignores nothing, so a commented file
/// only works with keygen's own format, which this parser accepts: the key is the first word).
pub fn parse_seed_file(text: &str) -> Result<KeyPair, ConfigError> {
    let key = text
        .split('#')
        .next()
        .and_then(|t| t.split_whitespace().next())
        .ok_or(ConfigError::Empty)?;
    let seed = parse_key(key)?;
    Ok(KeyPair::from_seed(&seed))
}

/// The text of a new seed file: the key (z-base32), ` # comment` if any, newline.
pub fn format_seed_file(seed: &[u8; 32], comment: Option<&str>) -> String {
    match comment {
        Some(c) => format!("{} # {c}\n", format_key(seed)),
        None => format!("{}\n", format_key(seed)),
    }
}

/// Parses `authorized_peers`: one key a line. A line that is not a key is an error (the JS throws too).
pub fn parse_authorized_peers(text: &str) -> Result<Vec<[u8; 32]>, ConfigError> {
    parse_config(text, None)
        .into_iter()
        .filter_map(|l| l.into_iter().next())
        .map(|k| parse_key(&k))
        .collect()
}

/// Parses `known_peers`: `<name> <public key>` lines, as `(name, key text)` (keys are decoded when used).
pub fn parse_known_peers(text: &str) -> Vec<(String, String)> {
    parse_config(text, Some(2))
        .into_iter()
        .filter_map(|l| {
            let mut it = l.into_iter();
            Some((it.next()?, it.next()?))
        })
        .collect()
}

/// Resolves a server given as a name from `known_peers` or as a key.
pub fn resolve_peer(host: &str, known_peers: &[(String, String)]) -> Result<[u8; 32], ConfigError> {
    let key = known_peers
        .iter()
        .find(|(name, _)| name == host)
        .map_or(host, |(_, key)| key.as_str());
    parse_key(key)
}

/// A `-L [address:]port:host:hostport` local forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTunnel {
    /// Local address to listen on (default `0.0.0.0`).
    pub local_host: String,
    /// Local port.
    pub local_port: u16,
    /// Host the server connects to.
    pub remote_host: String,
    /// Port the server connects to.
    pub remote_port: u16,
}

impl std::str::FromStr for LocalTunnel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.rsplitn(3, ':').collect();
        let port = |p: &str, what: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{what} port {p:?} is not a port number"))
        };
        // hostport, host, rest = [address:]port
        let [remote_port, remote_host, rest] = parts.as_slice() else {
            return Err("expected [address:]port:host:hostport".into());
        };
        if remote_host.is_empty() {
            return Err("remote host is required".into());
        }
        let (local_host, local_port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => ("0.0.0.0".to_owned(), *rest),
        };
        Ok(Self {
            local_host: if local_host.is_empty() {
                "0.0.0.0".into()
            } else {
                local_host
            },
            local_port: port(local_port, "local")?,
            remote_host: (*remote_host).to_owned(),
            remote_port: port(remote_port, "remote")?,
        })
    }
}

/// Whether `port` is allowed by a `--tunnel-port` list (`8080` or ranges `8000-8100`); no list allows all.
pub fn tunnel_port_allowed(allowed: Option<&[String]>, port: u16) -> bool {
    let Some(list) = allowed else { return true };
    list.iter().any(|p| match p.split_once('-') {
        Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&port),
            _ => false,
        },
        None => p.trim().parse::<u16>() == Ok(port),
    })
}

/// Whether `host` is allowed by a `--tunnel-host` list (exact match); no list allows all.
pub fn tunnel_host_allowed(allowed: Option<&[String]>, host: &str) -> bool {
    allowed.is_none_or(|l| l.iter().any(|h| h == host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(v: &impl Encode) -> String {
        hex::encode(v.to_bytes())
    }

    /// Vectors printed by hypershell 0.0.15's messages.js on compact-encoding 2.11.0.
    #[test]
    fn js_vectors() -> Result<(), DecodeError> {
        let spawn = SpawnHandshake {
            command: "ls".into(),
            args: vec!["-la".into(), "/tmp".into()],
            width: 80,
            height: 300,
        };
        assert_eq!(hex(&spawn), "026c7302032d6c61042f746d7050fd2c01");
        assert_eq!(
            SpawnHandshake::from_bytes(
                &hex::decode("026c7302032d6c61042f746d7050fd2c01").unwrap_or_default()
            )?,
            spawn
        );
        // The JS server's handshake ({}): width and height undefined become 9-byte zeros.
        let empty = hex::decode("0000ff0000000000000000ff0000000000000000").unwrap_or_default();
        assert_eq!(
            SpawnHandshake::from_bytes(&empty)?,
            SpawnHandshake::default()
        );
        assert_eq!(hex(&SpawnHandshake::default()), "00000000");
        let up = UploadHandshake {
            target: "/tmp/x".into(),
            is_directory: true,
        };
        assert_eq!(hex(&up), "062f746d702f7801");
        assert_eq!(hex(&UploadHandshake::default()), "0000");
        assert_eq!(
            hex(&DownloadHandshake {
                source: "~/a".into()
            }),
            "037e2f61"
        );
        assert_eq!(hex(&DownloadHandshake::default()), "00");
        assert_eq!(hex(&DownloadHeader::default()), "00");
        let err = ErrorMessage {
            code: "ENOENT".into(),
            path: "/x".into(),
            message: "no such".into(),
        };
        assert_eq!(hex(&err), "06454e4f454e54022f78076e6f2073756368");
        assert_eq!(err.to_string(), "/x: No such file or directory");
        let rs = Resize {
            width: 1000,
            height: 70000,
        };
        assert_eq!(hex(&rs), "fde803fe70110100");
        assert_eq!(Resize::from_bytes(&rs.to_bytes())?, rs);
        assert_eq!(hex::encode(encode_uint(130)), "82");
        assert_eq!(decode_uint(&[0x82])?, 130);
        assert_eq!(decode_buffer(&encode_buffer(b"hey"))?, b"hey");
        Ok(())
    }

    #[test]
    fn configs() {
        let kp = KeyPair::from_seed(&[7; 32]);
        let file = format_seed_file(&kp.seed(), Some("me@host"));
        assert!(file.ends_with(" # me@host\n"));
        assert_eq!(parse_seed_file(&file).map(|k| k.public), Ok(kp.public));
        let hexfile = format!("  {}  \n", hex::encode(kp.seed()));
        assert_eq!(parse_seed_file(&hexfile).map(|k| k.public), Ok(kp.public));
        assert_eq!(
            parse_seed_file("# nothing\n").err(),
            Some(ConfigError::Empty)
        );
        assert!(matches!(
            parse_seed_file("nope"),
            Err(ConfigError::InvalidKey { .. })
        ));

        let pk = format_key(&kp.public);
        let text = format!(
            "# <public key>\n{pk}\n\n   {}   # laptop\n",
            hex::encode([1u8; 32])
        );
        assert_eq!(parse_authorized_peers(&text), Ok(vec![kp.public, [1; 32]]));
        assert!(parse_authorized_peers("garbage\n").is_err());

        let known = parse_known_peers(&format!(
            "# <name> <public key>\nbox   {pk}\nbad line here x\n"
        ));
        assert_eq!(known, vec![("box".to_owned(), pk.clone())]);
        assert_eq!(resolve_peer("box", &known), Ok(kp.public));
        assert_eq!(resolve_peer(&pk, &known), Ok(kp.public));
        assert!(resolve_peer("other", &known).is_err());
    }

    #[test]
    fn tunnels() {
        let t: LocalTunnel = "8080:localhost:80"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t,
            LocalTunnel {
                local_host: "0.0.0.0".into(),
                local_port: 8080,
                remote_host: "localhost".into(),
                remote_port: 80
            }
        );
        let t: LocalTunnel = "127.0.0.1:1:10.0.0.1:2"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.local_host.as_str(), t.local_port), ("127.0.0.1", 1));
        assert_eq!((t.remote_host.as_str(), t.remote_port), ("10.0.0.1", 2));
        assert!("80".parse::<LocalTunnel>().is_err());
        assert!("a:b:c".parse::<LocalTunnel>().is_err());
        assert!("1::2".parse::<LocalTunnel>().is_err());
        let ports = vec!["22".to_owned(), "8000-8010".to_owned()];
        assert!(tunnel_port_allowed(Some(&ports), 8005));
        assert!(tunnel_port_allowed(Some(&ports), 22));
        assert!(!tunnel_port_allowed(Some(&ports), 23));
        assert!(tunnel_port_allowed(None, 1));
        assert!(tunnel_host_allowed(None, "x"));
        assert!(!tunnel_host_allowed(Some(&["a".to_owned()]), "x"));
    }

    fn decode_all(bytes: &[u8]) {
        let _ = SpawnHandshake::from_bytes(bytes);
        let _ = UploadHandshake::from_bytes(bytes);
        let _ = DownloadHandshake::from_bytes(bytes);
        let _ = DownloadHeader::from_bytes(bytes);
        let _ = ErrorMessage::from_bytes(bytes);
        let _ = Resize::from_bytes(bytes);
        let _ = decode_buffer(bytes);
        let _ = decode_uint(bytes);
    }

    proptest! {
        #[test]
        fn truncated_inputs_error(cmd in ".{0,8}", args in proptest::collection::vec(".{0,5}", 0..4), w: u64, h: u64) {
            let bytes = SpawnHandshake { command: cmd, args, width: w, height: h }.to_bytes();
            for n in 0..bytes.len() {
                prop_assert!(SpawnHandshake::from_bytes(bytes.get(..n).unwrap_or_default()).is_err());
            }
            let e = ErrorMessage { code: "E".into(), path: "p".into(), message: "m".into() }.to_bytes();
            for n in 0..e.len() {
                prop_assert!(ErrorMessage::from_bytes(e.get(..n).unwrap_or_default()).is_err());
            }
        }

        #[test]
        fn random_inputs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            decode_all(&bytes);
        }
    }
}

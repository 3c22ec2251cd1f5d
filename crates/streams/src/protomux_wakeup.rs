//! protomux-wakeup 2.9.0: the "wakeup" protocol autobase 7 uses to tell peers which writers have new blocks, so
//! a peer learns of heads it cannot see in the system view yet (a writer added but not indexed, a late joiner).
//!
//! One protomux channel per topic and stream: protocol `wakeup`, id the topic's discovery key (autobase: the
//! discovery key of the base key), three message types, and a handshake that proves the capability (the base
//! key) without revealing it. The facts, from `protomux-wakeup/index.js` and its hyperschema spec:
//!
//! - **Handshake** (`@wakeup/handshake`): `uint version (0), fixed32 capability, uint flags (1: active)`. The
//!   capability proof is `hash(ns[initiator ? 0 : 1], capability, handshakeHash)` with `ns =
//!   crypto.namespace('wakeup', 2)`, the stream's Noise handshake hash and our role on it; a peer checks the
//!   remote's proof against its own computation for the other role and closes the channel when it differs.
//! - Message 0, **lookup** (`@wakeup/lookup`): `uint flags (1: hash), fixed32 hash?`: "tell me your heads".
//! - Message 1, **announce** (`@wakeup/announce`): `array(fixed32 key, uint length)`: writers and lengths.
//! - Message 2, **info** (`@wakeup/info`): `uint flags (1: active)`: the sender's topic became (in)active.
//!
//! Decoders read untrusted bytes through [`Reader`] and never panic; as in JS, bytes after a message are
//! ignored (a later version may append fields). [`WakeupChannel`] runs the protocol over a [`Mux`].

use crate::compact_encoding::{Reader, Result, Writer};
use crate::crypto;
use crate::protomux::{Channel, ChannelOptions, Mux, ProtomuxError};

/// The protomux protocol name.
pub const PROTOCOL: &str = "wakeup";
/// Message type of a [`Lookup`].
pub const MSG_LOOKUP: u64 = 0;
/// Message type of an announce ([`encode_announce`]).
pub const MSG_ANNOUNCE: u64 = 1;
/// Message type of an [`Info`].
pub const MSG_INFO: u64 = 2;
/// The handshake version protomux-wakeup 2 writes.
pub const VERSION: u64 = 0;

/// `@wakeup/handshake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Protocol version (0).
    pub version: u64,
    /// The capability proof (see [`capability_proof`]).
    pub capability: [u8; 32],
    /// Whether the sender's topic is active.
    pub active: bool,
}

impl Handshake {
    /// The encoded handshake.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(self.version)
            .fixed32(&self.capability)
            .uint(u64::from(self.active));
        w.into_vec()
    }

    /// Decodes a handshake (trailing bytes ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = r.uint()?;
        let capability = r.fixed32()?;
        let flags = r.uint()?;
        Ok(Self {
            version,
            capability,
            active: flags & 1 != 0,
        })
    }
}

/// `@wakeup/info`: the sender's topic became active or inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Active.
    pub active: bool,
}

impl Info {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(u64::from(self.active));
        w.into_vec()
    }

    /// Decodes the message (trailing bytes ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            active: r.uint()? & 1 != 0,
        })
    }
}

/// `@wakeup/lookup`: asks the peer to announce its writers (`hash`: an optional filter the JS peers pass
/// through to their handlers; autobase sends none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lookup {
    /// Optional hash.
    pub hash: Option<[u8; 32]>,
}

impl Lookup {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(u64::from(self.hash.is_some()));
        if let Some(h) = &self.hash {
            w.fixed32(h);
        }
        w.into_vec()
    }

    /// Decodes the message (trailing bytes ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let flags = r.uint()?;
        let hash = if flags & 1 != 0 {
            Some(r.fixed32()?)
        } else {
            None
        };
        Ok(Self { hash })
    }
}

/// `@wakeup/writer`: a writer core and its length (one entry of an announce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriterHint {
    /// The writer core's key.
    pub key: [u8; 32],
    /// Its length.
    pub length: u64,
}

/// Encodes `@wakeup/announce`: `array(writer)`.
pub fn encode_announce(writers: &[WriterHint]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(writers, |w, h| {
        w.fixed32(&h.key).uint(h.length);
    });
    w.into_vec()
}

/// Decodes `@wakeup/announce` (trailing bytes ignored; the array's length is checked against the bytes
/// left before anything is allocated).
pub fn decode_announce(bytes: &[u8]) -> Result<Vec<WriterHint>> {
    let mut r = Reader::new(bytes);
    r.array(|r| {
        Ok(WriterHint {
            key: r.fixed32()?,
            length: r.uint()?,
        })
    })
}

/// The capability proof a peer sends in its handshake: `hash(ns, capability, handshake_hash)` where `ns` is
/// `namespace('wakeup', 2)[0]` for the stream's initiator and `[1]` for its responder.
pub fn capability_proof(
    is_initiator: bool,
    capability: &[u8; 32],
    handshake_hash: &[u8],
) -> [u8; 32] {
    let ns = crypto::namespace(b"wakeup", &[0, 1]);
    let tag = ns
        .get(usize::from(!is_initiator))
        .copied()
        .unwrap_or([0; 32]);
    crypto::hash(&[&tag, capability, handshake_hash])
}

/// What a [`WakeupChannel`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeupMessage {
    /// The peer asks for our writers.
    Lookup(Lookup),
    /// The peer's writers and their lengths.
    Announce(Vec<WriterHint>),
    /// The peer's topic became active or inactive.
    Info(Info),
}

/// Why a wakeup channel did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeupError {
    /// The channel was rejected or closed, or the stream failed.
    #[error("wakeup channel: {0}")]
    Protomux(#[from] ProtomuxError),
    /// The peer's handshake did not decode.
    #[error("wakeup channel: bad handshake")]
    BadHandshake,
    /// The peer does not know the capability (its proof differs from ours); the channel was closed.
    #[error("wakeup channel: the peer's capability proof is wrong")]
    WrongCapability,
}

/// One peer of one wakeup topic: a `wakeup` channel over a [`Mux`], opened with our capability proof.
#[derive(Debug)]
pub struct WakeupChannel {
    channel: Channel,
    is_initiator: bool,
    capability: [u8; 32],
    handshake_hash: Vec<u8>,
    remote_active: bool,
}

impl WakeupChannel {
    /// Opens the topic's channel on `mux`, where we are `is_initiator` on a stream whose Noise handshake hash
    /// is `handshake_hash`; `discovery_key` is the topic (autobase: the base's discovery key) and
    /// `capability` what proves membership (autobase: the base key). `None` when the mux already has this
    /// channel open or is closed. Wait for [`WakeupChannel::opened`] before sending.
    pub fn open(
        mux: &Mux,
        discovery_key: &[u8; 32],
        capability: &[u8; 32],
        is_initiator: bool,
        handshake_hash: &[u8],
        active: bool,
    ) -> Option<Self> {
        let channel = mux.create_channel(
            ChannelOptions::new(PROTOCOL)
                .id(discovery_key.to_vec())
                .messages(3),
        )?;
        let handshake = Handshake {
            version: VERSION,
            capability: capability_proof(is_initiator, capability, handshake_hash),
            active,
        };
        channel.open(&handshake.encode()).ok()?;
        Some(Self {
            channel,
            is_initiator,
            capability: *capability,
            handshake_hash: handshake_hash.to_vec(),
            remote_active: false,
        })
    }

    /// Waits for the peer's open and checks its capability proof (closing the channel when it is wrong).
    pub async fn opened(&mut self) -> std::result::Result<(), WakeupError> {
        let hs = self.channel.opened().await?;
        let Ok(hs) = Handshake::decode(&hs) else {
            self.channel.close();
            return Err(WakeupError::BadHandshake);
        };
        let want = capability_proof(!self.is_initiator, &self.capability, &self.handshake_hash);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&hs.capability[..], &want[..])) {
            self.channel.close();
            return Err(WakeupError::WrongCapability);
        }
        self.remote_active = hs.active;
        Ok(())
    }

    /// Whether the peer's topic is active (from its handshake and its later infos).
    pub fn remote_active(&self) -> bool {
        self.remote_active
    }

    /// Asks the peer for its writers.
    pub async fn lookup(&self, hash: Option<[u8; 32]>) -> std::result::Result<(), ProtomuxError> {
        self.channel
            .send(MSG_LOOKUP, &Lookup { hash }.encode())
            .await
    }

    /// Tells the peer our writers and their lengths.
    pub async fn announce(&self, writers: &[WriterHint]) -> std::result::Result<(), ProtomuxError> {
        self.channel
            .send(MSG_ANNOUNCE, &encode_announce(writers))
            .await
    }

    /// Tells the peer whether our topic is active.
    pub async fn info(&self, active: bool) -> std::result::Result<(), ProtomuxError> {
        self.channel.send(MSG_INFO, &Info { active }.encode()).await
    }

    /// The next message; `None` once the channel closed. A message that does not decode closes the channel
    /// (protomux's JS peers destroy the stream on a decode error; closing our channel is the milder
    /// equivalent) and ends the messages.
    pub async fn recv(&mut self) -> Option<WakeupMessage> {
        let (kind, bytes) = self.channel.recv().await?;
        let msg = match kind {
            MSG_LOOKUP => Lookup::decode(&bytes).map(WakeupMessage::Lookup),
            MSG_ANNOUNCE => decode_announce(&bytes).map(WakeupMessage::Announce),
            MSG_INFO => Info::decode(&bytes).map(WakeupMessage::Info),
            _ => return None,
        };
        match msg {
            Ok(m) => {
                if let WakeupMessage::Info(i) = &m {
                    self.remote_active = i.active;
                }
                Some(m)
            }
            Err(_) => {
                self.channel.close();
                None
            }
        }
    }

    /// Closes the channel.
    pub fn close(&self) {
        self.channel.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let hs = Handshake {
            version: 0,
            capability: [7; 32],
            active: true,
        };
        assert_eq!(Handshake::decode(&hs.encode()), Ok(hs));
        for active in [false, true] {
            assert_eq!(Info::decode(&Info { active }.encode()), Ok(Info { active }));
        }
        for hash in [None, Some([3; 32])] {
            assert_eq!(
                Lookup::decode(&Lookup { hash }.encode()),
                Ok(Lookup { hash })
            );
        }
        let hints = vec![
            WriterHint {
                key: [1; 32],
                length: 0,
            },
            WriterHint {
                key: [2; 32],
                length: 1 << 40,
            },
        ];
        assert_eq!(decode_announce(&encode_announce(&hints)), Ok(hints));
        assert_eq!(decode_announce(&encode_announce(&[])), Ok(vec![]));
    }

    #[test]
    fn the_bytes_js_writes() {
        // @wakeup/lookup {hash: null} and {hash: 32 x 0xaa}; @wakeup/info {active: true}.
        assert_eq!(Lookup::default().encode(), vec![0]);
        let mut with_hash = vec![1];
        with_hash.extend_from_slice(&[0xaa; 32]);
        assert_eq!(
            Lookup {
                hash: Some([0xaa; 32])
            }
            .encode(),
            with_hash
        );
        assert_eq!(Info { active: true }.encode(), vec![1]);
        // an announce of one writer with length 300: array length 1, key, uint 300 (0xfd 0x2c 0x01)
        let mut one = vec![1];
        one.extend_from_slice(&[9; 32]);
        one.extend_from_slice(&[0xfd, 0x2c, 0x01]);
        assert_eq!(
            encode_announce(&[WriterHint {
                key: [9; 32],
                length: 300
            }]),
            one
        );
    }

    #[test]
    fn decoding_garbage_does_not_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = Handshake::decode(&bytes);
            let _ = Info::decode(&bytes);
            let _ = Lookup::decode(&bytes);
            let _ = decode_announce(&bytes);
        }
        // a huge array length with no bytes behind it is an error, not an allocation
        assert!(decode_announce(&[0xfe, 0xff, 0xff, 0xff, 0x7f]).is_err());
        // flags set with the hash missing
        assert!(Lookup::decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn proofs_differ_by_role_and_stream() {
        let cap = [5; 32];
        let a = capability_proof(true, &cap, b"hh");
        assert_ne!(a, capability_proof(false, &cap, b"hh"));
        assert_ne!(a, capability_proof(true, &cap, b"other"));
        assert_ne!(a, capability_proof(true, &[6; 32], b"hh"));
    }
}

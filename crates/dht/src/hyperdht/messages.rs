//! The hyperdht message codecs (`hyperdht/lib/messages.js`) and the signables of `lib/persistent.js`.
//!
//! Addresses in hyperdht messages are `ipv4Address` (4 bytes + `uint16` port) or `ipv6Address` (16 + 2).
//! Encoders write what the JS writes, including its quirks: optional lists are only flagged when non-empty
//! (`addresses4`/`addresses6`), version fields are always written as 1. The JS pre-encoders assume the small
//! `uint` fields (flags, mode, error, firewall, round) take one byte each; the JS therefore cannot encode
//! values above 252 there, while ours can (and the JS decodes them fine).

use std::net::{SocketAddrV4, SocketAddrV6};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::constants::{ns, ErrorCode, Firewall, Mode};
use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Result, Writer};
use crate::dht_rpc::hash::blake2b256;

/// A 32-byte key, token or hash.
pub type Key = [u8; 32];

fn ipv4_array(r: &mut Reader<'_>) -> Result<Vec<SocketAddrV4>> {
    r.array(|r| r.ipv4_address())
}

fn write_ipv4_array(w: &mut Writer, a: &[SocketAddrV4]) {
    w.array(a, |w, a| {
        w.ipv4_address(a);
    });
}

fn opt<T>(present: bool, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    if present {
        f().map(Some)
    } else {
        Ok(None)
    }
}

macro_rules! codec {
    ($t:ty) => {
        impl<'a> Decode<'a> for $t {
            fn decode(r: &mut Reader<'a>) -> Result<Self> {
                <$t>::read(r)
            }
        }
        impl Encode for $t {
            fn encode(&self, w: &mut Writer) {
                self.write(w)
            }
        }
    };
}

/// `handshake`: a Noise message routed through the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Who sends it.
    pub mode: Mode,
    /// The Noise handshake message.
    pub noise: Vec<u8>,
    /// The peer's address as the relaying node saw it.
    pub peer_address: Option<SocketAddrV4>,
    /// The address of the node relaying it.
    pub relay_address: Option<SocketAddrV4>,
}

impl Handshake {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        let mode = Mode::decode(r)?;
        let noise = r.buffer()?.to_vec();
        let peer_address = opt(flags & 1 != 0, || r.ipv4_address())?;
        let relay_address = opt(flags & 2 != 0, || r.ipv4_address())?;
        Ok(Self {
            mode,
            noise,
            peer_address,
            relay_address,
        })
    }
    fn write(&self, w: &mut Writer) {
        let flags =
            u64::from(self.peer_address.is_some()) | u64::from(self.relay_address.is_some()) << 1;
        w.uint(flags).encode(&self.mode).buffer(&self.noise);
        if let Some(a) = &self.peer_address {
            w.ipv4_address(a);
        }
        if let Some(a) = &self.relay_address {
            w.ipv4_address(a);
        }
    }
}
codec!(Handshake);

/// `relayInfo`: a relay and the peer address it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayInfo {
    /// The relaying node.
    pub relay_address: SocketAddrV4,
    /// The peer's address as seen by the relay.
    pub peer_address: SocketAddrV4,
}

impl RelayInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            relay_address: r.ipv4_address()?,
            peer_address: r.ipv4_address()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.ipv4_address(&self.relay_address)
            .ipv4_address(&self.peer_address);
    }
}
codec!(RelayInfo);

/// `holepunchInfo`: the holepunch session id and the relays that can carry holepunch messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolepunchInfo {
    /// Session id.
    pub id: u64,
    /// Relays.
    pub relays: Vec<RelayInfo>,
}

impl HolepunchInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            id: r.uint()?,
            relays: r.array(RelayInfo::read)?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(self.id).array(&self.relays, |w, x| x.write(w));
    }
}
codec!(HolepunchInfo);

/// `udxInfo`: the UDX stream the peer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdxInfo {
    /// Version read from the wire (always written as 1).
    pub version: u64,
    /// Feature bit 0: the socket may be reused for other streams.
    pub reusable_socket: bool,
    /// UDX stream id.
    pub id: u64,
    /// Initial sequence number.
    pub seq: u64,
}

impl UdxInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let version = r.uint()?;
        let features = r.uint()?;
        Ok(Self {
            version,
            reusable_socket: features & 1 != 0,
            id: r.uint()?,
            seq: r.uint()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(1)
            .uint(u64::from(self.reusable_socket))
            .uint(self.id)
            .uint(self.seq);
    }
}
codec!(UdxInfo);

/// `secretStreamInfo`: the secret-stream version the peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretStreamInfo {
    /// Version read from the wire (always written as 1).
    pub version: u64,
}

impl SecretStreamInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { version: r.uint()? })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(1);
    }
}
codec!(SecretStreamInfo);

/// `relayThroughInfo`: connect through a blind relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayThroughInfo {
    /// Version read from the wire (always written as 1, followed by a zero flags `uint`).
    pub version: u64,
    /// The relay's public key.
    pub public_key: Key,
    /// The pairing token.
    pub token: Key,
}

impl RelayThroughInfo {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let version = r.uint()?;
        r.uint()?; // flags, unused
        Ok(Self {
            version,
            public_key: r.fixed32()?,
            token: r.fixed32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(1).uint(0).bytes(&self.public_key).bytes(&self.token);
    }
}
codec!(RelayThroughInfo);

/// `noisePayload`: the payload inside the Noise handshake messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoisePayload {
    /// Version read from the wire. Only version 1 has a body; for any other the rest is left undecoded
    /// (as the JS does, so the caller can answer with a version mismatch). Always written as 1.
    pub version: u64,
    /// Error code.
    pub error: ErrorCode,
    /// Firewall kind.
    pub firewall: Firewall,
    /// Holepunch session info.
    pub holepunch: Option<HolepunchInfo>,
    /// IPv4 addresses (flagged only when non-empty).
    pub addresses4: Vec<SocketAddrV4>,
    /// IPv6 addresses (flagged only when non-empty).
    pub addresses6: Vec<SocketAddrV6>,
    /// UDX stream info.
    pub udx: Option<UdxInfo>,
    /// Secret-stream info.
    pub secret_stream: Option<SecretStreamInfo>,
    /// Blind-relay info.
    pub relay_through: Option<RelayThroughInfo>,
    /// Relay addresses.
    pub relay_addresses: Option<Vec<SocketAddrV4>>,
}

impl Default for NoisePayload {
    fn default() -> Self {
        Self {
            version: 1,
            error: ErrorCode::NONE,
            firewall: Firewall::UNKNOWN,
            holepunch: None,
            addresses4: Vec::new(),
            addresses6: Vec::new(),
            udx: None,
            secret_stream: None,
            relay_through: None,
            relay_addresses: None,
        }
    }
}

impl NoisePayload {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let version = r.uint()?;
        if version != 1 {
            return Ok(Self {
                version,
                ..Self::default()
            });
        }
        let flags = r.uint()?;
        let error = ErrorCode::decode(r)?;
        let firewall = Firewall::decode(r)?;
        Ok(Self {
            version,
            error,
            firewall,
            holepunch: opt(flags & 1 != 0, || HolepunchInfo::read(r))?,
            addresses4: if flags & 2 != 0 {
                ipv4_array(r)?
            } else {
                Vec::new()
            },
            addresses6: if flags & 4 != 0 {
                r.array(|r| r.ipv6_address())?
            } else {
                Vec::new()
            },
            udx: opt(flags & 8 != 0, || UdxInfo::read(r))?,
            secret_stream: opt(flags & 16 != 0, || SecretStreamInfo::read(r))?,
            relay_through: opt(flags & 32 != 0, || RelayThroughInfo::read(r))?,
            relay_addresses: opt(flags & 64 != 0, || ipv4_array(r))?,
        })
    }
    fn write(&self, w: &mut Writer) {
        let flags = u64::from(self.holepunch.is_some())
            | u64::from(!self.addresses4.is_empty()) << 1
            | u64::from(!self.addresses6.is_empty()) << 2
            | u64::from(self.udx.is_some()) << 3
            | u64::from(self.secret_stream.is_some()) << 4
            | u64::from(self.relay_through.is_some()) << 5
            | u64::from(self.relay_addresses.is_some()) << 6;
        w.uint(1)
            .uint(flags)
            .encode(&self.error)
            .encode(&self.firewall);
        if let Some(h) = &self.holepunch {
            h.write(w);
        }
        if !self.addresses4.is_empty() {
            write_ipv4_array(w, &self.addresses4);
        }
        if !self.addresses6.is_empty() {
            w.array(&self.addresses6, |w, a| {
                w.ipv6_address(a);
            });
        }
        if let Some(u) = &self.udx {
            u.write(w);
        }
        if let Some(s) = &self.secret_stream {
            s.write(w);
        }
        if let Some(t) = &self.relay_through {
            t.write(w);
        }
        if let Some(a) = &self.relay_addresses {
            write_ipv4_array(w, a);
        }
    }
}
codec!(NoisePayload);

/// `holepunch`: a holepunch message routed through the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holepunch {
    /// Who sends it.
    pub mode: Mode,
    /// Holepunch session id.
    pub id: u64,
    /// The encrypted [`HolepunchPayload`].
    pub payload: Vec<u8>,
    /// The peer's address as the relay saw it.
    pub peer_address: Option<SocketAddrV4>,
}

impl Holepunch {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        let mode = Mode::decode(r)?;
        let id = r.uint()?;
        let payload = r.buffer()?.to_vec();
        let peer_address = opt(flags & 1 != 0, || r.ipv4_address())?;
        Ok(Self {
            mode,
            id,
            payload,
            peer_address,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(u64::from(self.peer_address.is_some()))
            .encode(&self.mode)
            .uint(self.id)
            .buffer(&self.payload);
        if let Some(a) = &self.peer_address {
            w.ipv4_address(a);
        }
    }
}
codec!(Holepunch);

/// `holepunchPayload`: the (decrypted) body of a holepunch message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolepunchPayload {
    /// Error code.
    pub error: ErrorCode,
    /// Firewall kind of the sender.
    pub firewall: Firewall,
    /// Holepunch round.
    pub round: u64,
    /// The sender already has a connection.
    pub connected: bool,
    /// The sender is punching.
    pub punching: bool,
    /// The sender's candidate addresses.
    pub addresses: Option<Vec<SocketAddrV4>>,
    /// The receiver's address as the sender sees it.
    pub remote_address: Option<SocketAddrV4>,
    /// The sender's token.
    pub token: Option<Key>,
    /// The receiver's token, echoed.
    pub remote_token: Option<Key>,
}

impl HolepunchPayload {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        Ok(Self {
            error: ErrorCode::decode(r)?,
            firewall: Firewall::decode(r)?,
            round: r.uint()?,
            connected: flags & 1 != 0,
            punching: flags & 2 != 0,
            addresses: opt(flags & 4 != 0, || ipv4_array(r))?,
            remote_address: opt(flags & 8 != 0, || r.ipv4_address())?,
            token: opt(flags & 16 != 0, || r.fixed32())?,
            remote_token: opt(flags & 32 != 0, || r.fixed32())?,
        })
    }
    fn write(&self, w: &mut Writer) {
        let flags = u64::from(self.connected)
            | u64::from(self.punching) << 1
            | u64::from(self.addresses.is_some()) << 2
            | u64::from(self.remote_address.is_some()) << 3
            | u64::from(self.token.is_some()) << 4
            | u64::from(self.remote_token.is_some()) << 5;
        w.uint(flags)
            .encode(&self.error)
            .encode(&self.firewall)
            .uint(self.round);
        if let Some(a) = &self.addresses {
            write_ipv4_array(w, a);
        }
        if let Some(a) = &self.remote_address {
            w.ipv4_address(a);
        }
        if let Some(t) = &self.token {
            w.bytes(t);
        }
        if let Some(t) = &self.remote_token {
            w.bytes(t);
        }
    }
}
codec!(HolepunchPayload);

/// `peer`: a public key and the relay addresses it can be reached through (an announcement record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's public key.
    pub public_key: Key,
    /// Nodes relaying to it.
    pub relay_addresses: Vec<SocketAddrV4>,
}

impl Peer {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            public_key: r.fixed32()?,
            relay_addresses: ipv4_array(r)?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.bytes(&self.public_key);
        write_ipv4_array(w, &self.relay_addresses);
    }
}
codec!(Peer);

/// `peers`: an array of [`Peer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers(pub Vec<Peer>);

impl Peers {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self(r.array(Peer::read)?))
    }
    fn write(&self, w: &mut Writer) {
        w.array(&self.0, |w, p| p.write(w));
    }
}
codec!(Peers);

/// `lookupRawReply`: the reply to a LOOKUP, the announced peers and the newest bump timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupReply {
    /// The records (each a [`Peer`]).
    pub peers: Vec<Peer>,
    /// Bump timestamp; absent on the wire from older nodes, then 0.
    pub bump: u64,
}

impl LookupReply {
    /// Encodes a reply from already-encoded [`Peer`] records, as DHT nodes store them
    /// (`lookupRawReply` with raw records).
    pub fn encode_raw(records: &[&[u8]], bump: u64) -> Vec<u8> {
        let mut w = Writer::new();
        w.array(records, |w, r| {
            w.bytes(r);
        });
        w.uint(bump);
        w.into_vec()
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let peers = r.array(Peer::read)?;
        let bump = if r.is_empty() { 0 } else { r.uint()? };
        Ok(Self { peers, bump })
    }
    fn write(&self, w: &mut Writer) {
        // The JS writes already-encoded records raw; a raw record is exactly an encoded `peer`.
        w.array(&self.peers, |w, p| p.write(w));
        w.uint(self.bump);
    }
}
codec!(LookupReply);

/// `announce`: the value of ANNOUNCE and UNANNOUNCE requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The announced record.
    pub peer: Option<Peer>,
    /// A refresh token (`fixed32`).
    pub refresh: Option<Key>,
    /// The Ed25519 signature over [`announce_signable`].
    pub signature: Option<[u8; 64]>,
    /// Bump timestamp, written only when non-zero.
    pub bump: u64,
}

impl Announce {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        Ok(Self {
            peer: opt(flags & 1 != 0, || Peer::read(r))?,
            refresh: opt(flags & 2 != 0, || r.fixed32())?,
            signature: opt(flags & 4 != 0, || r.fixed64())?,
            bump: if flags & 8 != 0 { r.uint()? } else { 0 },
        })
    }
    fn write(&self, w: &mut Writer) {
        let flags = u64::from(self.peer.is_some())
            | u64::from(self.refresh.is_some()) << 1
            | u64::from(self.signature.is_some()) << 2
            | u64::from(self.bump != 0) << 3;
        w.uint(flags);
        if let Some(p) = &self.peer {
            p.write(w);
        }
        if let Some(x) = &self.refresh {
            w.bytes(x);
        }
        if let Some(s) = &self.signature {
            w.bytes(s);
        }
        if self.bump != 0 {
            w.uint(self.bump);
        }
    }
}
codec!(Announce);

/// `mutableSignable`: what a mutable value's signature covers (hashed, see [`mutable_signable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableSignable {
    /// Sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
}

impl MutableSignable {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(self.seq).buffer(&self.value);
    }
}
codec!(MutableSignable);

/// `mutablePutRequest`: the value of a MUTABLE_PUT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutablePutRequest {
    /// The signer's public key (the target is its hash).
    pub public_key: Key,
    /// Sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
    /// Signature over [`mutable_signable`].
    pub signature: [u8; 64],
}

impl MutablePutRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            public_key: r.fixed32()?,
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
            signature: r.fixed64()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.bytes(&self.public_key)
            .uint(self.seq)
            .buffer(&self.value)
            .bytes(&self.signature);
    }
}
codec!(MutablePutRequest);

/// `mutableGetResponse`: the reply to a MUTABLE_GET (also how nodes store mutable values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableGetResponse {
    /// Sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
    /// Signature over [`mutable_signable`].
    pub signature: [u8; 64],
}

impl MutableGetResponse {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            seq: r.uint()?,
            value: r.buffer()?.to_vec(),
            signature: r.fixed64()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.uint(self.seq).buffer(&self.value).bytes(&self.signature);
    }
}
codec!(MutableGetResponse);

/// `pluginRequest`: the value of a PLUGIN request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRequest {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: u64,
    /// Plugin command.
    pub command: u64,
    /// Payload.
    pub value: Option<Vec<u8>>,
}

impl PluginRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let plugin = r.string()?.to_owned();
        let version = r.uint()?;
        let command = r.uint()?;
        let flags = r.uint()?;
        let value = opt(flags & 1 != 0, || Ok(r.buffer()?.to_vec()))?;
        Ok(Self {
            plugin,
            version,
            command,
            value,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.string(&self.plugin)
            .uint(self.version)
            .uint(self.command)
            .uint(u64::from(self.value.is_some()));
        if let Some(v) = &self.value {
            w.buffer(v);
        }
    }
}
codec!(PluginRequest);

/// The value of a MUTABLE_GET request: the lowest sequence number wanted (`c.uint`).
pub fn decode_mutable_get_request(value: &[u8]) -> Result<u64> {
    Reader::new(value).uint()
}

/// The 64 bytes a mutable value's Ed25519 signature covers: `NS.MUTABLE_PUT || blake2b(mutableSignable)`.
pub fn mutable_signable(seq: u64, value: &[u8]) -> [u8; 64] {
    let body = MutableSignable {
        seq,
        value: value.to_vec(),
    }
    .to_bytes();
    join(&ns::mutable_put(), &blake2b256(&[&body]))
}

/// The 64 bytes an (un)announce signature covers:
/// `ns || blake2b(target || node id || token || encode(peer) || refresh)`. `ns` is [`ns::announce`] or
/// [`ns::unannounce`]; `node_id` and `token` are those of the DHT node the announcement is sent to.
pub fn announce_signable(
    target: &Key,
    token: &Key,
    node_id: &Key,
    peer: &Peer,
    refresh: Option<&Key>,
    namespace: &Key,
) -> [u8; 64] {
    let peer = peer.to_bytes();
    let refresh: &[u8] = refresh.map_or(&[], |r| r.as_slice());
    join(
        namespace,
        &blake2b256(&[target, node_id, token, &peer, refresh]),
    )
}

fn join(a: &[u8; 32], b: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(a);
    out[32..].copy_from_slice(b);
    out
}

/// Signs a signable with an Ed25519 key (`crypto_sign_detached`).
pub fn sign(signable: &[u8; 64], key: &SigningKey) -> [u8; 64] {
    key.sign(signable).to_bytes()
}

/// Verifies an Ed25519 signature over a signable; false for a malformed key or a bad signature.
pub fn verify(signature: &[u8; 64], signable: &[u8; 64], public_key: &Key) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify(signable, &Signature::from_bytes(signature))
        .is_ok()
}

/// Decodes a message where the JS would (`c.decode`): trailing bytes are ignored.
pub fn decode<'a, T: Decode<'a>>(buf: &'a [u8]) -> Result<T, DecodeError> {
    T::from_bytes(buf)
}

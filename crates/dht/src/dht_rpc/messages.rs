//! The dht-rpc datagram layout (dht-rpc 6.x, `lib/io.js` and `lib/peer.js`).
//!
//! Every datagram starts with a type byte: [`REQUEST_ID`] (`0x03`) or [`RESPONSE_ID`] (`0x13`), the low
//! nibble being the protocol version 3. Then a `uint` flags bitfield, the `uint16` transaction id, the
//! receiver's address as the sender sees it (6 bytes, `ipv4Address`) and the optional fields the flags
//! announce, in this order:
//!
//! * request: id (`fixed32`, bit 0), token (`fixed32`, bit 1), internal (bit 2, no data), command (`uint`,
//!   always), target (`fixed32`, bit 3), value (`buffer`, bit 4);
//! * response: id (bit 0), token (bit 1), closer nodes (`array(ipv4Address)`, bit 2), error (`uint`, bit 3),
//!   value (`buffer`, bit 4).
//!
//! As the JS, the decoder ignores unknown flag bits and trailing bytes.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::wire_enum::wire_enum;
use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Result, Writer};

/// The protocol version, the low nibble of the type byte.
pub const VERSION: u8 = 0b11;
/// Type byte of a request.
pub const REQUEST_ID: u8 = VERSION;
/// Type byte of a response.
pub const RESPONSE_ID: u8 = (0b0001 << 4) | VERSION;

wire_enum! {
    /// The commands dht-rpc itself handles (sent with the internal flag set), `lib/commands.js`. A
    /// request's `command` number is one of these when its `internal` flag is set; without it the number
    /// is the user's (hyperdht's commands, say), in a space of its own.
    pub struct InternalCommand {
        /// Keep-alive, answered with an empty reply.
        PING = 0,
        /// "Reply to the port in my value": checks whether our server socket is reachable.
        PING_NAT = 1,
        /// Iterative lookup step: answered with the closer nodes to the target.
        FIND_NODE = 2,
        /// "The node at the address in my value looks down": the receiver pings it.
        DOWN_HINT = 3,
        /// A ping answered after the `uint32` milliseconds in the value.
        DELAYED_PING = 4,
    }
}

wire_enum! {
    /// Error codes carried in responses, `lib/errors.js`. A protocol on dht-rpc may answer with codes of
    /// its own (hyperdht's `SEQ_REUSED`, say): those print as `Unknown(n)` here and pass through unchanged.
    pub struct ErrorCode {
        /// No error.
        OK = 0,
        /// The receiver does not handle the command.
        UNKNOWN_COMMAND = 1,
        /// The token in the request is not one the receiver handed out.
        INVALID_TOKEN = 2,
    }
}

/// A 32-byte node id, target or token.
pub type Id = [u8; 32];

/// A dht-rpc request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Transaction id, echoed by the response.
    pub tid: u16,
    /// The receiver's address as the sender sees it (lets the receiver learn its public address).
    pub to: SocketAddrV4,
    /// The sender's node id; only persistent (non-ephemeral) nodes send it.
    pub id: Option<Id>,
    /// A token previously handed out by the receiver (for commands that store state).
    pub token: Option<Id>,
    /// True for dht-rpc's own commands ([`InternalCommand`]), false for user commands.
    pub internal: bool,
    /// The command number.
    pub command: u64,
    /// The lookup target.
    pub target: Option<Id>,
    /// The command's payload.
    pub value: Option<Vec<u8>>,
}

/// A dht-rpc response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Transaction id of the request this answers.
    pub tid: u16,
    /// The requester's address as the responder sees it.
    pub to: SocketAddrV4,
    /// The responder's node id, when it is persistent.
    pub id: Option<Id>,
    /// A token the requester may present in a later request to the responder.
    pub token: Option<Id>,
    /// Nodes the responder knows closer to the request's target (`None` when the flag is unset).
    pub closer_nodes: Option<Vec<SocketAddrV4>>,
    /// Error code, [`ErrorCode::OK`] for success.
    pub error: ErrorCode,
    /// The reply payload.
    pub value: Option<Vec<u8>>,
}

/// Either kind of dht-rpc datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// The unspecified address `0.0.0.0:0`, a placeholder.
pub const UNSPECIFIED: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

fn optional_fixed32(r: &mut Reader<'_>, present: bool) -> Result<Option<Id>> {
    if present {
        Ok(Some(r.fixed32()?))
    } else {
        Ok(None)
    }
}

impl Request {
    /// Decodes the body after the type byte.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        let tid = r.uint16()?;
        let to = r.ipv4_address()?;
        let id = optional_fixed32(r, flags & 1 != 0)?;
        let token = optional_fixed32(r, flags & 2 != 0)?;
        let internal = flags & 4 != 0;
        let command = r.uint()?;
        let target = optional_fixed32(r, flags & 8 != 0)?;
        let value = if flags & 16 != 0 {
            Some(r.buffer()?.to_vec())
        } else {
            None
        };
        Ok(Self {
            tid,
            to,
            id,
            token,
            internal,
            command,
            target,
            value,
        })
    }

    /// The flags byte this request is written with.
    pub fn flags(&self) -> u8 {
        u8::from(self.id.is_some())
            | u8::from(self.token.is_some()) << 1
            | u8::from(self.internal) << 2
            | u8::from(self.target.is_some()) << 3
            | u8::from(self.value.is_some()) << 4
    }
}

impl Encode for Request {
    fn encode(&self, w: &mut Writer) {
        w.uint8(REQUEST_ID)
            .uint8(self.flags())
            .uint16(self.tid)
            .ipv4_address(&self.to);
        if let Some(id) = &self.id {
            w.bytes(id);
        }
        if let Some(token) = &self.token {
            w.bytes(token);
        }
        w.uint(self.command);
        if let Some(target) = &self.target {
            w.bytes(target);
        }
        if let Some(value) = &self.value {
            w.buffer(value);
        }
    }
}

impl Response {
    /// Decodes the body after the type byte.
    pub fn decode_body(r: &mut Reader<'_>) -> Result<Self> {
        let flags = r.uint()?;
        let tid = r.uint16()?;
        let to = r.ipv4_address()?;
        let id = optional_fixed32(r, flags & 1 != 0)?;
        let token = optional_fixed32(r, flags & 2 != 0)?;
        let closer_nodes = if flags & 4 != 0 {
            Some(r.array(|r| r.ipv4_address())?)
        } else {
            None
        };
        let error = ErrorCode(if flags & 8 != 0 { r.uint()? } else { 0 });
        let value = if flags & 16 != 0 {
            Some(r.buffer()?.to_vec())
        } else {
            None
        };
        Ok(Self {
            tid,
            to,
            id,
            token,
            closer_nodes,
            error,
            value,
        })
    }

    fn has_closer_nodes(&self) -> bool {
        self.closer_nodes.as_ref().is_some_and(|n| !n.is_empty())
    }

    /// The flags byte this response is written with. As the JS, an empty closer-nodes list and error 0
    /// are not written at all.
    pub fn flags(&self) -> u8 {
        u8::from(self.id.is_some())
            | u8::from(self.token.is_some()) << 1
            | u8::from(self.has_closer_nodes()) << 2
            | u8::from(self.error != ErrorCode::OK) << 3
            | u8::from(self.value.is_some()) << 4
    }
}

impl Encode for Response {
    fn encode(&self, w: &mut Writer) {
        w.uint8(RESPONSE_ID)
            .uint8(self.flags())
            .uint16(self.tid)
            .ipv4_address(&self.to);
        if let Some(id) = &self.id {
            w.bytes(id);
        }
        if let Some(token) = &self.token {
            w.bytes(token);
        }
        if let Some(nodes) = self.closer_nodes.as_ref().filter(|n| !n.is_empty()) {
            w.array(nodes, |w, n| {
                w.ipv4_address(n);
            });
        }
        if self.error != ErrorCode::OK {
            w.uint(self.error.0);
        }
        if let Some(value) = &self.value {
            w.buffer(value);
        }
    }
}

impl Message {
    /// Decodes a datagram. Like the JS, datagrams shorter than two bytes or with an unknown type byte are
    /// refused, and trailing bytes are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() < 2 {
            return Err(DecodeError::OutOfBounds {
                needed: 2,
                remaining: buf.len(),
            });
        }
        let mut r = Reader::new(buf);
        match r.uint8()? {
            REQUEST_ID => Ok(Self::Request(Request::decode_body(&mut r)?)),
            RESPONSE_ID => Ok(Self::Response(Response::decode_body(&mut r)?)),
            _ => Err(DecodeError::Invalid("dht-rpc message type")),
        }
    }
}

impl Encode for Message {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Request(m) => m.encode(w),
            Self::Response(m) => m.encode(w),
        }
    }
}

impl<'a> Decode<'a> for Message {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let m = Message::decode(r.rest())?;
        r.raw();
        Ok(m)
    }
}

/// `peer.ipv4` encoding of an address: four address bytes and the little-endian port.
pub fn encode_ipv4_peer(addr: &SocketAddrV4) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&addr.ip().octets());
    out[4..].copy_from_slice(&addr.port().to_le_bytes());
    out
}

/// Decodes a 6-byte `peer.ipv4` address from the start of `buf`.
pub fn decode_ipv4_peer(buf: &[u8]) -> Result<SocketAddrV4> {
    Reader::new(buf).ipv4_address()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_bytes() {
        assert_eq!(REQUEST_ID, 0x03);
        assert_eq!(RESPONSE_ID, 0x13);
    }

    #[test]
    fn short_or_unknown_is_refused() {
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[3]).is_err());
        assert!(Message::decode(&[0x23, 0]).is_err());
    }

    #[test]
    fn empty_closer_nodes_are_not_written() {
        let res = Response {
            tid: 1,
            to: UNSPECIFIED,
            id: None,
            token: None,
            closer_nodes: Some(vec![]),
            error: ErrorCode::OK,
            value: None,
        };
        assert_eq!(res.to_bytes(), vec![RESPONSE_ID, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    }
}

//! The LAN discovery packets (a Rust-only protocol; no JS peer sends or reads them).
//!
//! Every packet starts with the magic `HDLN` and the version 1, then its type:
//!
//! - QUERY (1): a random `nonce` (uint32 LE) and up to [`MAX_IDS`] ids (a compact-encoding array of 32-byte
//!   ids). Sent to the multicast group.
//! - ANSWER (2): the query's `nonce` and up to [`MAX_RECORDS`] records, each: the `id` it answers (32
//!   bytes), a flags uint (bit 0: a public key follows), the announcing peer's public key (32 bytes, topic
//!   records only), the port of the peer's DHT server socket (uint16 LE) and up to [`MAX_ADDRESSES`] IPv4
//!   addresses of the peer (a compact-encoding array of 4-byte addresses). Sent by unicast to the querier.
//!
//! An id is what the DHT already shows its observers: `hash(public key)` (the FIND_PEER target) for a
//! server, the topic itself (the LOOKUP/ANNOUNCE target) for a hyperswarm topic, whose records carry the
//! announcing peer's public key as the DHT's announce records do. A server's public key is never sent.
//!
//! Decoding checks every length and count and rejects trailing bytes; it never panics.

use std::net::Ipv4Addr;

use crate::compact_encoding::{Reader, Writer};

/// The first four bytes of every packet.
pub const MAGIC: [u8; 4] = *b"HDLN";
/// The protocol version.
pub const VERSION: u8 = 1;
/// Most ids in a query.
pub const MAX_IDS: usize = 8;
/// Most records in an answer.
pub const MAX_RECORDS: usize = 16;
/// Most addresses in a record.
pub const MAX_ADDRESSES: usize = 8;

const TYPE_QUERY: u8 = 1;
const TYPE_ANSWER: u8 = 2;
const FLAG_PUBLIC_KEY: u64 = 1;

/// A question to the LAN: who serves one of these ids?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Echoed by answers.
    pub nonce: u32,
    /// `hash(public key)` of servers or topics.
    pub ids: Vec<[u8; 32]>,
}

/// One answered id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The id answered.
    pub id: [u8; 32],
    /// The announcing peer's public key (topic records).
    pub public_key: Option<[u8; 32]>,
    /// The port of the peer's DHT server socket.
    pub port: u16,
    /// The peer's IPv4 addresses.
    pub addresses: Vec<Ipv4Addr>,
}

/// An answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The query's nonce.
    pub nonce: u32,
    /// What the peer serves of the query's ids.
    pub records: Vec<Record>,
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A query.
    Query(Query),
    /// An answer.
    Answer(Answer),
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a LAN discovery packet of this version.
    #[error("not a LAN discovery packet")]
    NotOurs,
    /// Unknown packet type.
    #[error("unknown packet type {0}")]
    UnknownType(u8),
    /// More ids, records or addresses than allowed, or none where one is needed.
    #[error("bad count")]
    BadCount,
    /// Truncated or trailing bytes, or a bad field.
    #[error("malformed: {0}")]
    Malformed(String),
}

impl From<crate::compact_encoding::DecodeError> for DecodeError {
    fn from(e: crate::compact_encoding::DecodeError) -> Self {
        DecodeError::Malformed(e.to_string())
    }
}

fn header(w: &mut Writer, kind: u8) {
    w.bytes(&MAGIC).uint8(VERSION).uint8(kind);
}

impl Packet {
    /// The packet's bytes. Ids, records and addresses past the limits are left out.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Packet::Query(q) => {
                header(&mut w, TYPE_QUERY);
                w.uint32(q.nonce);
                let ids = q.ids.get(..q.ids.len().min(MAX_IDS)).unwrap_or_default();
                w.array(ids, |w, id| {
                    w.bytes(id);
                });
            }
            Packet::Answer(a) => {
                header(&mut w, TYPE_ANSWER);
                w.uint32(a.nonce);
                let records = a
                    .records
                    .get(..a.records.len().min(MAX_RECORDS))
                    .unwrap_or_default();
                w.array(records, |w, r| {
                    w.bytes(&r.id);
                    match &r.public_key {
                        Some(pk) => {
                            w.uint(FLAG_PUBLIC_KEY).bytes(pk);
                        }
                        None => {
                            w.uint(0);
                        }
                    }
                    w.uint16(r.port);
                    let addrs = r
                        .addresses
                        .get(..r.addresses.len().min(MAX_ADDRESSES))
                        .unwrap_or_default();
                    w.array(addrs, |w, ip| {
                        w.bytes(&ip.octets());
                    });
                });
            }
        }
        w.into_vec()
    }

    /// Reads a packet; an error for anything else (never panics).
    pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(buf);
        let magic = r.fixed::<4>().map_err(|_| DecodeError::NotOurs)?;
        let version = r.uint8().map_err(|_| DecodeError::NotOurs)?;
        if magic != MAGIC || version != VERSION {
            return Err(DecodeError::NotOurs);
        }
        let kind = r.uint8()?;
        let packet = match kind {
            TYPE_QUERY => {
                let nonce = r.uint32()?;
                let n = r.array_len()?;
                if n == 0 || n > MAX_IDS {
                    return Err(DecodeError::BadCount);
                }
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.fixed32()?);
                }
                Packet::Query(Query { nonce, ids })
            }
            TYPE_ANSWER => {
                let nonce = r.uint32()?;
                let n = r.array_len()?;
                if n > MAX_RECORDS {
                    return Err(DecodeError::BadCount);
                }
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.fixed32()?;
                    let flags = r.uint()?;
                    if flags & !FLAG_PUBLIC_KEY != 0 {
                        return Err(DecodeError::Malformed(format!("unknown flags {flags}")));
                    }
                    let public_key = if flags & FLAG_PUBLIC_KEY != 0 {
                        Some(r.fixed32()?)
                    } else {
                        None
                    };
                    let port = r.uint16()?;
                    let m = r.array_len()?;
                    if m > MAX_ADDRESSES {
                        return Err(DecodeError::BadCount);
                    }
                    let mut addresses = Vec::with_capacity(m);
                    for _ in 0..m {
                        addresses.push(Ipv4Addr::from(r.fixed::<4>()?));
                    }
                    records.push(Record {
                        id,
                        public_key,
                        port,
                        addresses,
                    });
                }
                Packet::Answer(Answer { nonce, records })
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(packet)
    }
}

//! The UDX datagram format, as libudx puts it on the wire.
//!
//! Every UDX datagram starts with a 20-byte header, all integers little-endian:
//!
//! | offset | size | field                                                     |
//! |--------|------|-----------------------------------------------------------|
//! | 0      | 1    | magic, `0xff`                                             |
//! | 1      | 1    | version, `1`                                              |
//! | 2      | 1    | type flags ([`flags`])                                    |
//! | 3      | 1    | data offset: bytes between the header and the payload     |
//! | 4      | 4    | id of the stream the datagram is addressed to             |
//! | 8      | 4    | the sender's receive window in bytes                      |
//! | 12     | 4    | sequence number                                           |
//! | 16     | 4    | cumulative ack (next sequence number expected)            |
//!
//! After the header come `data_offset` bytes the receiver skips (libudx fills them with zeros to pad MTU
//! probes), then the payload. A datagram with the [`flags::SACK`] flag carries selective-ack ranges instead:
//! pairs of `(start, end)` u32 LE sequence numbers, `end` exclusive, filling the payload (or the first
//! `data_offset` bytes when `0 < data_offset < payload length`).

use std::fmt;

/// First byte of every UDX datagram.
pub const MAGIC: u8 = 0xff;
/// Second byte of every UDX datagram.
pub const VERSION: u8 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The path MTU libudx assumes at first (IP + UDP + UDX headers included).
pub const MTU_BASE: usize = 1200;
/// The largest path MTU libudx probes for.
pub const MTU_MAX: usize = 1500;
/// How much each successful MTU probe raises the probed size.
pub const MTU_STEP: usize = 32;
/// How many lost probes of one size end the MTU search.
pub const MTU_MAX_PROBES: u32 = 3;
/// IPv4 + UDP + UDX header bytes, subtracted from the MTU to get the payload size.
pub const IPV4_HEADER_OVERHEAD: usize = 20 + 8 + HEADER_LEN;
/// IPv6 + UDP + UDX header bytes, subtracted from the MTU to get the payload size.
pub const IPV6_HEADER_OVERHEAD: usize = 40 + 8 + HEADER_LEN;
/// At most this many SACK ranges go in one libudx ack (libudx `UDX_MAX_SACKS`). libudx reads every range an
/// ack carries, so ours carry up to [`MAX_SACK_RANGES`].
pub const MAX_SACKS: usize = 50;
/// Size of one encoded SACK range.
pub const SACK_RANGE_LEN: usize = 8;
/// At most this many SACK ranges go in one of our acks: as many as fit a datagram at the base MTU over IPv6.
/// Under heavy random loss 50 ranges do not reach the packets sent last, and a sender that never hears of
/// them cannot tell that the holes before them were lost.
pub const MAX_SACK_RANGES: usize = (MTU_BASE - IPV6_HEADER_OVERHEAD) / SACK_RANGE_LEN;
/// At most this many SACK ranges of a received ack are processed (as many as fit the largest MTU).
pub const MAX_SACK_RANGES_IN: usize = (MTU_MAX - IPV4_HEADER_OVERHEAD) / SACK_RANGE_LEN;

/// The type flags of the header's third byte. A datagram may combine several.
pub mod flags {
    /// Carries stream payload and consumes a sequence number.
    pub const DATA: u8 = 0b00_0001;
    /// Half-close: the sender will write nothing after this sequence number (consumes a sequence number).
    pub const END: u8 = 0b00_0010;
    /// The payload holds selective-ack ranges.
    pub const SACK: u8 = 0b00_0100;
    /// An unordered, unreliable datagram; does not consume a sequence number.
    pub const MESSAGE: u8 = 0b00_1000;
    /// The sender destroyed the stream.
    pub const DESTROY: u8 = 0b01_0000;
    /// A keepalive / zero-window probe; the receiver answers with an ack.
    pub const HEARTBEAT: u8 = 0b10_0000;
}

/// Why a datagram is not a UDX packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the 20-byte header.
    #[error("datagram of {0} bytes is shorter than the UDX header")]
    TooShort(usize),
    /// The first byte is not [`MAGIC`].
    #[error("bad magic byte {0:#04x}")]
    BadMagic(u8),
    /// The second byte is not [`VERSION`].
    #[error("unsupported UDX version {0}")]
    BadVersion(u8),
}

/// The fixed 20-byte UDX header.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// [`flags`] bits.
    pub type_flags: u8,
    /// Bytes to skip between the header and the payload.
    pub data_offset: u8,
    /// The id of the stream this datagram is addressed to (the receiver's local id).
    pub remote_id: u32,
    /// The sender's advertised receive window, in bytes.
    pub recv_window: u32,
    /// Sequence number.
    pub seq: u32,
    /// Cumulative ack: the next sequence number the sender expects.
    pub ack: u32,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("type_flags", &format_args!("{:#08b}", self.type_flags))
            .field("data_offset", &self.data_offset)
            .field("remote_id", &self.remote_id)
            .field("recv_window", &self.recv_window)
            .field("seq", &self.seq)
            .field("ack", &self.ack)
            .finish()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

impl Header {
    /// Parses the header of `datagram`; returns it with the bytes that follow it (padding + payload, or SACK
    /// ranges).
    pub fn decode(datagram: &[u8]) -> Result<(Header, &[u8]), PacketError> {
        let (head, rest) = datagram
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(PacketError::TooShort(datagram.len()))?;
        if head[0] != MAGIC {
            return Err(PacketError::BadMagic(head[0]));
        }
        if head[1] != VERSION {
            return Err(PacketError::BadVersion(head[1]));
        }
        let h = Header {
            type_flags: head[2],
            data_offset: head[3],
            remote_id: u32_at(head, 4),
            recv_window: u32_at(head, 8),
            seq: u32_at(head, 12),
            ack: u32_at(head, 16),
        };
        Ok((h, rest))
    }

    /// Appends the 20 header bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The 20 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = MAGIC;
        b[1] = VERSION;
        b[2] = self.type_flags;
        b[3] = self.data_offset;
        b[4..8].copy_from_slice(&self.remote_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.recv_window.to_le_bytes());
        b[12..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.ack.to_le_bytes());
        b
    }

    /// True when every bit of `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.type_flags & flag == flag
    }

    /// The payload after the `data_offset` padding, given the bytes [`Header::decode`] returned; `None` when the
    /// data offset points past the end of the datagram (libudx drops the payload then).
    pub fn payload<'a>(&self, rest: &'a [u8]) -> Option<&'a [u8]> {
        rest.get(usize::from(self.data_offset)..)
    }

    /// The SACK ranges of an ack, given the bytes [`Header::decode`] returned. Empty unless the SACK flag is
    /// set. As libudx does, the ranges fill the rest of the datagram, or its first `data_offset` bytes when
    /// `0 < data_offset < rest.len()`; a trailing partial range is ignored.
    pub fn sack_ranges<'a>(&self, rest: &'a [u8]) -> SackRanges<'a> {
        if self.type_flags & flags::SACK == 0 {
            return SackRanges { bytes: &[] };
        }
        let off = usize::from(self.data_offset);
        let len = if off > 0 && off < rest.len() {
            off
        } else {
            rest.len()
        };
        let len = len - len % SACK_RANGE_LEN;
        SackRanges {
            bytes: rest.get(..len).unwrap_or(&[]),
        }
    }
}

/// Iterator over the `(start, end)` SACK ranges of an ack (`end` exclusive). See [`Header::sack_ranges`].
#[derive(Debug, Clone)]
pub struct SackRanges<'a> {
    bytes: &'a [u8],
}

impl Iterator for SackRanges<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        let (range, rest) = self.bytes.split_first_chunk::<SACK_RANGE_LEN>()?;
        self.bytes = rest;
        Some((u32_at(range, 0), u32_at(range, 4)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / SACK_RANGE_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SackRanges<'_> {}

/// Appends one SACK range (`end` exclusive) to `out`.
pub fn encode_sack_range(out: &mut Vec<u8>, start: u32, end: u32) {
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&end.to_le_bytes());
}

/// True when libudx would treat `datagram` as a UDX packet: at least 20 bytes, magic `0xff`, version 1.
/// (Other datagrams on a UDX socket are handed to the application as plain UDP messages.)
pub fn is_udx(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] == MAGIC && datagram[1] == VERSION
}

/// The local stream id a UDX datagram is addressed to, or `None` when it is not a UDX packet.
pub fn destination_id(datagram: &[u8]) -> Option<u32> {
    is_udx(datagram).then(|| u32_at(datagram, 4))
}

/// Sequence-number arithmetic on wrapping u32s (as libudx `seq_diff`/`seq_compare`).
pub mod seq {
    /// `a - b` as a signed distance.
    #[inline]
    pub fn diff(a: u32, b: u32) -> i32 {
        a.wrapping_sub(b) as i32
    }

    /// `a < b` in sequence space.
    #[inline]
    pub fn lt(a: u32, b: u32) -> bool {
        diff(a, b) < 0
    }

    /// `a <= b` in sequence space.
    #[inline]
    pub fn le(a: u32, b: u32) -> bool {
        diff(a, b) <= 0
    }

    /// `a > b` in sequence space.
    #[inline]
    pub fn gt(a: u32, b: u32) -> bool {
        diff(a, b) > 0
    }

    /// `a >= b` in sequence space.
    #[inline]
    pub fn ge(a: u32, b: u32) -> bool {
        diff(a, b) >= 0
    }

    /// The later of two sequence numbers.
    #[inline]
    pub fn max(a: u32, b: u32) -> u32 {
        if lt(a, b) {
            b
        } else {
            a
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            type_flags: flags::DATA | flags::END,
            data_offset: 3,
            remote_id: 0xdead_beef,
            recv_window: 4 * 1024 * 1024,
            seq: u32::MAX,
            ack: 7,
        };
        let mut out = Vec::new();
        h.encode(&mut out);
        out.extend_from_slice(b"pad");
        out.extend_from_slice(b"hello");
        let (d, rest) = Header::decode(&out).unwrap();
        assert_eq!(d, h);
        assert_eq!(d.payload(rest), Some(&b"hello"[..]));
    }

    /// A DATA packet exactly as libudx `udx_write_header` lays it out: stream 1 -> remote id 2, default window
    /// 4 MiB, seq 0, ack 0, followed by the payload.
    #[test]
    fn libudx_data_vector() {
        let bytes: [u8; 22] = [
            0xff, 0x01, 0x01, 0x00, // magic, version, DATA, data offset
            0x02, 0x00, 0x00, 0x00, // remote id 2
            0x00, 0x00, 0x40, 0x00, // rwnd 4194304
            0x00, 0x00, 0x00, 0x00, // seq 0
            0x00, 0x00, 0x00, 0x00, // ack 0
            b'h', b'i',
        ];
        let (h, rest) = Header::decode(&bytes).unwrap();
        assert_eq!(
            h,
            Header {
                type_flags: flags::DATA,
                data_offset: 0,
                remote_id: 2,
                recv_window: 4 * 1024 * 1024,
                seq: 0,
                ack: 0
            }
        );
        assert_eq!(h.payload(rest), Some(&b"hi"[..]));
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, bytes[..20]);
        assert_eq!(destination_id(&bytes), Some(2));
    }

    /// A SACK ack as libudx `send_ack` builds it: flag SACK, ranges [5,7) and [9,10) after the header.
    #[test]
    fn libudx_sack_vector() {
        let bytes: [u8; 36] = [
            0xff, 0x01, 0x04, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x0a, 0x00,
            0x00, 0x00, 0x03, 0x00, 0x00,
            0x00, // header: SACK, rid 9, rwnd 4MiB, seq 10, ack 3
            0x05, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, // [5, 7)
            0x09, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, // [9, 10)
        ];
        let (h, rest) = Header::decode(&bytes).unwrap();
        assert_eq!(h.seq, 10);
        assert_eq!(h.ack, 3);
        assert!(h.has(flags::SACK));
        let ranges: Vec<_> = h.sack_ranges(rest).collect();
        assert_eq!(ranges, vec![(5, 7), (9, 10)]);

        let mut out = Vec::new();
        h.encode(&mut out);
        encode_sack_range(&mut out, 5, 7);
        encode_sack_range(&mut out, 9, 10);
        assert_eq!(out, bytes);
    }

    #[test]
    fn sack_ranges_respect_data_offset_and_partial() {
        let h = Header {
            type_flags: flags::SACK,
            data_offset: 8,
            ..Header::default()
        };
        let mut rest = Vec::new();
        encode_sack_range(&mut rest, 1, 2);
        encode_sack_range(&mut rest, 3, 4);
        assert_eq!(h.sack_ranges(&rest).collect::<Vec<_>>(), vec![(1, 2)]);
        let h = Header {
            type_flags: flags::SACK,
            ..Header::default()
        };
        assert_eq!(h.sack_ranges(&rest[..12]).collect::<Vec<_>>(), vec![(1, 2)]);
        let h = Header::default();
        assert_eq!(h.sack_ranges(&rest).count(), 0);
    }

    #[test]
    fn rejects_non_udx() {
        assert_eq!(Header::decode(&[0xff; 19]), Err(PacketError::TooShort(19)));
        let mut b = [0u8; 20];
        assert_eq!(Header::decode(&b), Err(PacketError::BadMagic(0)));
        b[0] = 0xff;
        b[1] = 2;
        assert_eq!(Header::decode(&b), Err(PacketError::BadVersion(2)));
        assert!(!is_udx(&b));
        assert_eq!(destination_id(&b), None);
        b[1] = 1;
        assert!(is_udx(&b));
    }

    #[test]
    fn payload_offset_past_end() {
        let h = Header {
            type_flags: flags::DATA,
            data_offset: 10,
            ..Header::default()
        };
        assert_eq!(h.payload(&[0; 9]), None);
        assert_eq!(h.payload(&[0; 10]), Some(&[][..]));
    }

    #[test]
    fn seq_wraps() {
        assert!(seq::lt(u32::MAX, 0));
        assert!(seq::gt(0, u32::MAX));
        assert_eq!(seq::diff(2, u32::MAX - 1), 4);
        assert_eq!(seq::max(u32::MAX, 1), 1);
        assert!(seq::le(5, 5) && seq::ge(5, 5));
        assert!(seq::lt(0x7fff_fffe, 0x8000_0001));
    }
}

//! The wire codecs of the JavaScript `compact-encoding` package (3.x), the encoding every Holepunch message
//! is written in.
//!
//! Decoding goes through [`Reader`], a cursor over untrusted bytes: every read is bounds-checked and returns
//! [`DecodeError`] instead of panicking, so a decoder built from its methods cannot panic on hostile input.
//! Encoding goes through [`Writer`], which appends to a `Vec<u8>`.
//!
//! Naming follows the JS package: `uint` is the variable-length unsigned integer (one byte up to `0xfc`, then
//! `0xfd` + u16, `0xfe` + u32, `0xff` + u64, all little-endian), `uint8`..`uint64` are fixed-width
//! little-endian, `int` is zig-zag over `uint`, `buffer` is a `uint` length followed by the bytes, `string` is
//! a UTF-8 `buffer`, `fixed32` is 32 raw bytes, and so on.
//!
//! Every codec here is checked byte for byte against the JS package by `tests/compact_encoding_vectors.rs`
//! (vectors from `tests/interop/js/gen-vectors.js`). Where the JS decoder is looser or narrower, this one
//! differs on purpose, and only on input JS never writes:
//! - integers above 2^53 - 1 are read (JS refuses them: it has no exact number for them);
//! - a `string` that is not valid UTF-8 is refused (JS decodes it with replacement characters);
//! - an `ip`/`ipAddress` family byte other than 4 or 6 is refused (JS reads it as IPv6);
//! - `lexint` values in 2^32..2^32 + 251, which JS encodes into bytes no decoder can read, are written with
//!   exponent 0 instead (readable by JS too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Arrays longer than this are refused, as the JS `c.array` does (`Array is too big`).
pub const MAX_ARRAY_LEN: u64 = 0x10_0000;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("out of bounds: needed {needed} more bytes, {remaining} left")]
    OutOfBounds { needed: u64, remaining: usize },
    /// A string was not valid UTF-8.
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    /// An array length above [`MAX_ARRAY_LEN`].
    #[error("array is too big ({0} elements)")]
    ArrayTooBig(u64),
    /// A value that does not fit the type it is decoded into.
    #[error("value out of range for {0}")]
    OutOfRange(&'static str),
    /// A value the format does not allow (an unknown enum tag, a bad flag combination...).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes were left over where the message should have ended.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

/// Result of a decode.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// A checked cursor over bytes to decode.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// How far into the buffer the reader is.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// Takes `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::OutOfBounds {
                needed: n as u64,
                remaining: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes every remaining byte (`c.raw`).
    pub fn raw(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// `c.fixed(N)`: exactly `N` raw bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// `c.fixed32`.
    pub fn fixed32(&mut self) -> Result<[u8; 32]> {
        self.fixed::<32>()
    }

    /// `c.fixed64`.
    pub fn fixed64(&mut self) -> Result<[u8; 64]> {
        self.fixed::<64>()
    }

    /// `c.uint8`.
    pub fn uint8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// `c.uint16` (little-endian).
    pub fn uint16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }

    /// `c.uint24` (little-endian).
    pub fn uint24(&mut self) -> Result<u32> {
        let b = self.bytes(3)?;
        Ok(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    }

    /// `c.uint32` (little-endian).
    pub fn uint32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    /// `c.uint32be`.
    pub fn uint32be(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.fixed()?))
    }

    /// `c.uint64` (little-endian).
    pub fn uint64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    /// `c.uint`: the variable-length unsigned integer.
    pub fn uint(&mut self) -> Result<u64> {
        match self.uint8()? {
            n @ 0..=0xfc => Ok(u64::from(n)),
            0xfd => Ok(u64::from(self.uint16()?)),
            0xfe => Ok(u64::from(self.uint32()?)),
            _ => self.uint64(),
        }
    }

    /// `c.uint`, refused unless it fits a `u32`.
    pub fn uint_u32(&mut self) -> Result<u32> {
        u32::try_from(self.uint()?).map_err(|_| DecodeError::OutOfRange("u32"))
    }

    /// `c.uint`, refused unless it fits a `usize`.
    pub fn uint_usize(&mut self) -> Result<usize> {
        usize::try_from(self.uint()?).map_err(|_| DecodeError::OutOfRange("usize"))
    }

    /// `c.int`: zig-zag over `c.uint`.
    pub fn int(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.uint()?))
    }

    /// `c.bool`: one byte, true only when it is 1 (as the JS reads it).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.uint8()? == 1)
    }

    /// `c.float64` (little-endian).
    pub fn float64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.fixed()?))
    }

    /// `c.buffer`: a `uint` length, then that many bytes.
    pub fn buffer(&mut self) -> Result<&'a [u8]> {
        let len = self.uint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::OutOfBounds {
            needed: len,
            remaining: self.remaining(),
        })?;
        self.bytes(len)
    }

    /// `c.optionalBuffer` (and `c.buffer` where the JS treats an empty buffer as null).
    pub fn optional_buffer(&mut self) -> Result<Option<&'a [u8]>> {
        let b = self.buffer()?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// `c.string` / `c.utf8`.
    pub fn string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.buffer()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// The length prefix of `c.array(...)`, checked against [`MAX_ARRAY_LEN`].
    pub fn array_len(&mut self) -> Result<usize> {
        let n = self.uint()?;
        if n > MAX_ARRAY_LEN {
            return Err(DecodeError::ArrayTooBig(n));
        }
        // Every element takes at least one byte: a longer claim is a lie we can catch before allocating.
        if n > self.remaining() as u64 {
            return Err(DecodeError::OutOfBounds {
                needed: n,
                remaining: self.remaining(),
            });
        }
        Ok(n as usize)
    }

    /// `c.array(enc)`, decoding each element with `f`.
    pub fn array<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let n = self.array_len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// `c.ipv4`: four bytes.
    pub fn ipv4(&mut self) -> Result<Ipv4Addr> {
        Ok(Ipv4Addr::from(self.fixed::<4>()?))
    }

    /// `c.ipv6`: sixteen bytes.
    pub fn ipv6(&mut self) -> Result<Ipv6Addr> {
        Ok(Ipv6Addr::from(self.fixed::<16>()?))
    }

    /// `c.ipv4Address` (compact-encoding-net's too): four bytes and a `uint16` port.
    pub fn ipv4_address(&mut self) -> Result<SocketAddrV4> {
        let ip = self.ipv4()?;
        Ok(SocketAddrV4::new(ip, self.uint16()?))
    }

    /// `c.ipv6Address`: sixteen bytes and a `uint16` port.
    pub fn ipv6_address(&mut self) -> Result<SocketAddrV6> {
        let ip = self.ipv6()?;
        Ok(SocketAddrV6::new(ip, self.uint16()?, 0, 0))
    }

    /// `c.ipAddress`: a family byte (4 or 6), then the address and port.
    pub fn ip_address(&mut self) -> Result<SocketAddr> {
        match self.uint8()? {
            4 => Ok(SocketAddr::V4(self.ipv4_address()?)),
            6 => Ok(SocketAddr::V6(self.ipv6_address()?)),
            _ => Err(DecodeError::Invalid("address family")),
        }
    }

    /// `c.uint40` (little-endian).
    pub fn uint40(&mut self) -> Result<u64> {
        self.uint_le_n(5)
    }

    /// `c.uint48` (little-endian).
    pub fn uint48(&mut self) -> Result<u64> {
        self.uint_le_n(6)
    }

    /// `c.uint56` (little-endian).
    pub fn uint56(&mut self) -> Result<u64> {
        self.uint_le_n(7)
    }

    /// `c.uint64be`.
    pub fn uint64be(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.fixed()?))
    }

    fn uint_le_n(&mut self, n: usize) -> Result<u64> {
        let b = self.bytes(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    }

    /// `c.int8`: zig-zag over `c.uint8`.
    pub fn int8(&mut self) -> Result<i8> {
        let u = self.uint8()?;
        Ok(((u >> 1) as i8) ^ -((u & 1) as i8))
    }

    /// `c.int16`: zig-zag over `c.uint16`.
    pub fn int16(&mut self) -> Result<i16> {
        let u = self.uint16()?;
        Ok(((u >> 1) as i16) ^ -((u & 1) as i16))
    }

    /// `c.int24`: zig-zag over `c.uint24`.
    pub fn int24(&mut self) -> Result<i32> {
        let u = self.uint24()?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    /// `c.int32`: zig-zag over `c.uint32`.
    pub fn int32(&mut self) -> Result<i32> {
        let u = self.uint32()?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    /// `c.int40`: zig-zag over `c.uint40`.
    pub fn int40(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.uint40()?))
    }

    /// `c.int48`: zig-zag over `c.uint48`.
    pub fn int48(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.uint48()?))
    }

    /// `c.int56`: zig-zag over `c.uint56`.
    pub fn int56(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.uint56()?))
    }

    /// `c.int64` / `c.bigint64`: zig-zag over `c.uint64`.
    pub fn int64(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.uint64()?))
    }

    /// `c.float32` (little-endian).
    pub fn float32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.fixed()?))
    }

    /// `c.bitarray`: a `uint` count of bits, then the bits packed eight to a byte, least significant first.
    pub fn bitarray(&mut self) -> Result<Vec<bool>> {
        let n = self.uint()?;
        let byte_len = n.div_ceil(8);
        if byte_len > self.remaining() as u64 {
            return Err(DecodeError::OutOfBounds {
                needed: byte_len,
                remaining: self.remaining(),
            });
        }
        // `n <= 8 * remaining`, so this fits a usize and the allocation is bounded by the input.
        let n = n as usize;
        let bytes = self.bytes(byte_len as usize)?;
        Ok((0..n)
            .map(|i| bytes.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
            .collect())
    }

    /// `compact-encoding-bitfield`'s `bitfield(length)`: one byte when the first byte is at most `0xfc`,
    /// else a `0xfd`/`0xfe`/`0xff` prefix and 2, 4 or 8 bytes. Returns the bytes as the JS does: only the
    /// first one when `length <= 8`.
    pub fn bitfield(&mut self, length: u32) -> Result<&'a [u8]> {
        let first = *self.rest().first().ok_or(DecodeError::OutOfBounds {
            needed: 1,
            remaining: 0,
        })?;
        let n = match first {
            0..=0xfc => 1,
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
        };
        if n > 1 {
            self.pos += 1;
        }
        let b = self.bytes(n)?;
        Ok(if length <= 8 { &b[..1] } else { b })
    }

    /// `c.lexint`: the lexicographically sortable integer encoding. Values from 2^32 on are stored as a
    /// 44-bit mantissa and an exponent, so they come back rounded down exactly as the JS decoder returns them.
    pub fn lexint(&mut self) -> Result<u64> {
        const MAX: u64 = 251;
        let flag = self.uint8()?;
        match flag {
            0..=250 => Ok(u64::from(flag)),
            251 => Ok(u64::from(self.uint8()?) + MAX),
            252 => Ok(u64::from(u16::from_be_bytes(self.fixed()?)) + MAX),
            253 => {
                let b = self.fixed::<3>()?;
                Ok((u64::from(b[0]) << 16 | u64::from(b[1]) << 8 | u64::from(b[2])) + MAX)
            }
            254 => Ok(u64::from(u32::from_be_bytes(self.fixed()?)) + MAX),
            255 => {
                // The exponent is itself a lexint; anything that does not fit one byte's worth is nonsense
                // (and the JS recursion would only make it worse), so it is refused here.
                let exp = match self.uint8()? {
                    e @ 0..=250 => u32::from(e),
                    251 => u32::from(self.uint8()?) + 251,
                    _ => return Err(DecodeError::OutOfRange("lexint exponent")),
                };
                let b = self.fixed::<6>()?;
                let rem = b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
                let value = if exp >= 11 {
                    let shift = exp - 11;
                    if shift >= 64 || rem.leading_zeros() < shift {
                        return Err(DecodeError::OutOfRange("lexint"));
                    }
                    rem << shift
                } else {
                    let shift = 11 - exp;
                    if rem & ((1 << shift) - 1) != 0 {
                        return Err(DecodeError::Invalid("lexint (fractional value)"));
                    }
                    rem >> shift
                };
                value
                    .checked_add(MAX)
                    .ok_or(DecodeError::OutOfRange("lexint"))
            }
        }
    }

    /// `c.uint16array`: a `uint` element count, then that many little-endian `u16`s.
    pub fn uint16_array(&mut self) -> Result<Vec<u16>> {
        let b = self.typed_array_bytes(2)?;
        Ok(b.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    /// `c.uint32array`: a `uint` element count, then that many little-endian `u32`s.
    pub fn uint32_array(&mut self) -> Result<Vec<u32>> {
        let b = self.typed_array_bytes(4)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The bytes of a typed array of `width`-byte elements, after its element count.
    fn typed_array_bytes(&mut self, width: u64) -> Result<&'a [u8]> {
        let n = self.uint()?;
        let len = n.saturating_mul(width);
        match usize::try_from(len) {
            Ok(len) => self.bytes(len),
            Err(_) => Err(DecodeError::OutOfBounds {
                needed: len,
                remaining: self.remaining(),
            }),
        }
    }

    /// `c.frame(enc)`: a `uint` byte length, then a value decoded by `f` from exactly those bytes. Bytes of the
    /// frame that `f` leaves unread are skipped, as in JS.
    pub fn frame<T>(&mut self, f: impl FnOnce(&mut Reader<'a>) -> Result<T>) -> Result<T> {
        let inner = self.buffer()?;
        f(&mut Reader::new(inner))
    }

    /// `c.ip`: a family byte (4 or 6), then the address. (JS reads any family byte other than 4 as IPv6; it
    /// only ever writes 4 or 6, and other bytes are refused here.)
    pub fn ip(&mut self) -> Result<IpAddr> {
        match self.uint8()? {
            4 => Ok(IpAddr::V4(self.ipv4()?)),
            6 => Ok(IpAddr::V6(self.ipv6()?)),
            _ => Err(DecodeError::Invalid("address family")),
        }
    }

    /// Decodes a value with its [`Decode`] impl.
    pub fn decode<T: Decode<'a>>(&mut self) -> Result<T> {
        T::decode(self)
    }
}

/// Appends encoded values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Continues writing at the end of `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The bytes written.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Raw bytes, no length prefix (`c.raw`, `c.fixed(N)`).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// `c.uint8`.
    pub fn uint8(&mut self, n: u8) -> &mut Self {
        self.buf.push(n);
        self
    }

    /// `c.uint16`.
    pub fn uint16(&mut self, n: u16) -> &mut Self {
        self.bytes(&n.to_le_bytes())
    }

    /// `c.uint24`; the top byte of `n` must be zero and is dropped.
    pub fn uint24(&mut self, n: u32) -> &mut Self {
        self.bytes(&n.to_le_bytes()[..3])
    }

    /// `c.uint32`.
    pub fn uint32(&mut self, n: u32) -> &mut Self {
        self.bytes(&n.to_le_bytes())
    }

    /// `c.uint32be`.
    pub fn uint32be(&mut self, n: u32) -> &mut Self {
        self.bytes(&n.to_be_bytes())
    }

    /// `c.uint64`.
    pub fn uint64(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes())
    }

    /// `c.uint`.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        if n <= 0xfc {
            self.uint8(n as u8)
        } else if n <= 0xffff {
            self.uint8(0xfd).uint16(n as u16)
        } else if n <= 0xffff_ffff {
            self.uint8(0xfe).uint32(n as u32)
        } else {
            self.uint8(0xff).uint64(n)
        }
    }

    /// `c.int`.
    pub fn int(&mut self, n: i64) -> &mut Self {
        self.uint(zigzag_encode(n))
    }

    /// `c.bool`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.uint8(u8::from(b))
    }

    /// `c.float64`.
    pub fn float64(&mut self, f: f64) -> &mut Self {
        self.bytes(&f.to_le_bytes())
    }

    /// `c.buffer`: length, then bytes.
    pub fn buffer(&mut self, b: &[u8]) -> &mut Self {
        self.uint(b.len() as u64).bytes(b)
    }

    /// `c.optionalBuffer`: `None` is written as length 0.
    pub fn optional_buffer(&mut self, b: Option<&[u8]>) -> &mut Self {
        self.buffer(b.unwrap_or_default())
    }

    /// `c.string`.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buffer(s.as_bytes())
    }

    /// `c.array(enc)`: the length, then each element written by `f`.
    pub fn array<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.uint(items.len() as u64);
        for item in items {
            f(self, item);
        }
        self
    }

    /// `c.ipv4Address`.
    pub fn ipv4_address(&mut self, a: &SocketAddrV4) -> &mut Self {
        self.bytes(&a.ip().octets()).uint16(a.port())
    }

    /// `c.ipv6Address`.
    pub fn ipv6_address(&mut self, a: &SocketAddrV6) -> &mut Self {
        self.bytes(&a.ip().octets()).uint16(a.port())
    }

    /// `c.ipAddress`: family byte, address, port.
    pub fn ip_address(&mut self, a: &SocketAddr) -> &mut Self {
        match a {
            SocketAddr::V4(a) => self.uint8(4).ipv4_address(a),
            SocketAddr::V6(a) => self.uint8(6).ipv6_address(a),
        }
    }

    /// `c.uint40`; bits above the 40th are dropped.
    pub fn uint40(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes()[..5])
    }

    /// `c.uint48`; bits above the 48th are dropped.
    pub fn uint48(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes()[..6])
    }

    /// `c.uint56`; bits above the 56th are dropped.
    pub fn uint56(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes()[..7])
    }

    /// `c.uint64be`.
    pub fn uint64be(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_be_bytes())
    }

    /// `c.int8`.
    pub fn int8(&mut self, n: i8) -> &mut Self {
        self.uint8(((n << 1) ^ (n >> 7)) as u8)
    }

    /// `c.int16`.
    pub fn int16(&mut self, n: i16) -> &mut Self {
        self.uint16(((n << 1) ^ (n >> 15)) as u16)
    }

    /// `c.int24`; `n` must lie in -2^23..2^23.
    pub fn int24(&mut self, n: i32) -> &mut Self {
        self.uint24(((n << 1) ^ (n >> 31)) as u32)
    }

    /// `c.int32`.
    pub fn int32(&mut self, n: i32) -> &mut Self {
        self.uint32(((n << 1) ^ (n >> 31)) as u32)
    }

    /// `c.int40`; `n` must lie in -2^39..2^39.
    pub fn int40(&mut self, n: i64) -> &mut Self {
        self.uint40(zigzag_encode(n))
    }

    /// `c.int48`; `n` must lie in -2^47..2^47.
    pub fn int48(&mut self, n: i64) -> &mut Self {
        self.uint48(zigzag_encode(n))
    }

    /// `c.int56`; `n` must lie in -2^55..2^55.
    pub fn int56(&mut self, n: i64) -> &mut Self {
        self.uint56(zigzag_encode(n))
    }

    /// `c.int64` / `c.bigint64`.
    pub fn int64(&mut self, n: i64) -> &mut Self {
        self.uint64(zigzag_encode(n))
    }

    /// `c.float32`.
    pub fn float32(&mut self, f: f32) -> &mut Self {
        self.bytes(&f.to_le_bytes())
    }

    /// `c.fixed32`.
    pub fn fixed32(&mut self, b: &[u8; 32]) -> &mut Self {
        self.bytes(b)
    }

    /// `c.fixed64`.
    pub fn fixed64(&mut self, b: &[u8; 64]) -> &mut Self {
        self.bytes(b)
    }

    /// `c.bitarray`: the number of bits, then the bits packed eight to a byte, least significant first.
    pub fn bitarray(&mut self, bits: &[bool]) -> &mut Self {
        self.uint(bits.len() as u64);
        for chunk in bits.chunks(8) {
            let byte = chunk
                .iter()
                .enumerate()
                .fold(0u8, |acc, (j, &b)| acc | u8::from(b) << j);
            self.uint8(byte);
        }
        self
    }

    /// `compact-encoding-bitfield`'s `bitfield(length)` with the bits given as a number: one byte when
    /// `length < 8`, else a `0xfd`/`0xfe`/`0xff` prefix and 2, 4 or 8 little-endian bytes (`length` up to 16,
    /// 32, 64; JS refuses lengths above 64, here they are written as 64). Bits that do not fit are dropped.
    pub fn bitfield(&mut self, length: u32, bits: u64) -> &mut Self {
        match length {
            0..=7 => self.uint8(bits as u8),
            8..=16 => self.uint8(0xfd).uint16(bits as u16),
            17..=32 => self.uint8(0xfe).uint32(bits as u32),
            _ => self.uint8(0xff).uint64(bits),
        }
    }

    /// `c.lexint`. Values from 2^32 on keep their top 44 bits only, as in JS. (JS writes an unreadable
    /// exponent for 2^32..2^32+251; those are written here with exponent 0, which JS decodes correctly.)
    pub fn lexint(&mut self, n: u64) -> &mut Self {
        const MAX: u64 = 251;
        if n < MAX {
            return self.uint8(n as u8);
        }
        let x = n - MAX;
        if n < 0x100 {
            self.uint8(251).uint8(x as u8)
        } else if n < 0x1_0000 {
            self.uint8(252).bytes(&(x as u16).to_be_bytes())
        } else if n < 0x100_0000 {
            self.uint8(253).bytes(&(x as u32).to_be_bytes()[1..])
        } else if n < 0x1_0000_0000 {
            self.uint8(254).bytes(&(x as u32).to_be_bytes())
        } else {
            // As JS computes it, in floating point: exp = floor(ln(x) / ln(2)) - 32, then the low 48 bits of
            // the integer part of x / 2^(exp - 11). The float logarithm rounds up just below powers of two
            // (giving a smaller mantissa there), which is part of the format as JS writes it.
            let xf = x as f64;
            let exp = ((xf.ln() / std::f64::consts::LN_2).floor() - 32.0).max(0.0);
            let rem = (xf / (exp - 11.0).exp2()).floor() as u64;
            self.uint8(0xff)
                .lexint(exp as u64)
                .bytes(&rem.to_be_bytes()[2..])
        }
    }

    /// `c.uint16array`: the element count, then each element little-endian.
    pub fn uint16_array(&mut self, items: &[u16]) -> &mut Self {
        self.uint(items.len() as u64);
        for n in items {
            self.uint16(*n);
        }
        self
    }

    /// `c.uint32array`: the element count, then each element little-endian.
    pub fn uint32_array(&mut self, items: &[u32]) -> &mut Self {
        self.uint(items.len() as u64);
        for n in items {
            self.uint32(*n);
        }
        self
    }

    /// `c.frame(enc)`: the byte length of what `f` writes, then those bytes.
    pub fn frame(&mut self, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::new();
        f(&mut inner);
        self.buffer(inner.as_slice())
    }

    /// `c.ipv4`: the four address bytes.
    pub fn ipv4(&mut self, ip: &Ipv4Addr) -> &mut Self {
        self.bytes(&ip.octets())
    }

    /// `c.ipv6`: the sixteen address bytes.
    pub fn ipv6(&mut self, ip: &Ipv6Addr) -> &mut Self {
        self.bytes(&ip.octets())
    }

    /// `c.ip`: family byte, then the address.
    pub fn ip(&mut self, ip: &IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(ip) => self.uint8(4).ipv4(ip),
            IpAddr::V6(ip) => self.uint8(6).ipv6(ip),
        }
    }

    /// Encodes a value with its [`Encode`] impl.
    pub fn encode<T: Encode + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }
}

/// A value with a compact-encoding wire form.
pub trait Encode {
    /// Appends the value's bytes.
    fn encode(&self, w: &mut Writer);

    /// The value's bytes in a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_vec()
    }
}

/// A value that can be read from untrusted bytes.
pub trait Decode<'a>: Sized {
    /// Reads the value, leaving the reader after it.
    fn decode(r: &mut Reader<'a>) -> Result<Self>;

    /// Reads the value from the start of `buf`; trailing bytes are ignored, as `c.decode` does in JS.
    fn from_bytes(buf: &'a [u8]) -> Result<Self> {
        Self::decode(&mut Reader::new(buf))
    }

    /// Reads the value and fails unless it takes every byte of `buf`.
    fn from_bytes_exact(buf: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Number of bytes `c.uint` takes for `n`.
pub fn uint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Zig-zag maps signed to unsigned: 0, -1, 1, -2... to 0, 1, 2, 3...
pub fn zigzag_encode(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The inverse of [`zigzag_encode`].
pub fn zigzag_decode(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries() {
        for (n, hex) in [
            (0u64, "00"),
            (0xfc, "fc"),
            (0xfd, "fdfd00"),
            (0xffff, "fdffff"),
            (0x1_0000, "fe00000100"),
            (0xffff_ffff, "feffffffff"),
            (0x1_0000_0000, "ff0000000001000000"),
        ] {
            let mut w = Writer::new();
            w.uint(n);
            assert_eq!(hex::encode(w.as_slice()), hex, "{n}");
            assert_eq!(uint_len(n), w.len());
            assert_eq!(Reader::new(w.as_slice()).uint(), Ok(n));
        }
    }

    #[test]
    fn zigzag() {
        for (i, u) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag_encode(i), u);
            assert_eq!(zigzag_decode(u), i);
        }
    }

    #[test]
    fn short_input_is_an_error() {
        assert!(Reader::new(&[0xfd, 1]).uint().is_err());
        assert!(Reader::new(&[5, 1, 2]).buffer().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .buffer()
                .is_err()
        );
        assert!(Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff])
            .array_len()
            .is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).string().is_err());
        assert!(Reader::new(&[4, 1, 2, 3]).ip_address().is_err());
    }

    #[test]
    fn addresses_round_trip() {
        let a: SocketAddr = "10.1.2.3:49737".parse().expect("addr");
        let b: SocketAddr = "[fe80::1:2]:80".parse().expect("addr");
        let mut w = Writer::new();
        w.ip_address(&a).ip_address(&b);
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.ip_address(), Ok(a));
        assert_eq!(r.ip_address(), Ok(b));
        assert!(r.finish().is_ok());
    }
}

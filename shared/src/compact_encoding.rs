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

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

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

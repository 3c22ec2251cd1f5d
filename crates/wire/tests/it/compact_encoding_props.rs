//! Property tests for `holepunch_wire::compact_encoding`: every codec round-trips, and no `Reader` method panics or
//! over-reads on arbitrary, truncated or mutated bytes.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use holepunch_wire::compact_encoding::{uint_len, DecodeError, Reader, Writer};
use proptest::prelude::*;

/// A value of one of the codecs, to write and read back.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Uint(u64),
    Uint8(u8),
    Uint16(u16),
    Uint24(u32),
    Uint32(u32),
    Uint32be(u32),
    Uint40(u64),
    Uint48(u64),
    Uint56(u64),
    Uint64(u64),
    Uint64be(u64),
    Int(i64),
    Int8(i8),
    Int16(i16),
    Int24(i32),
    Int32(i32),
    Int40(i64),
    Int48(i64),
    Int56(i64),
    Int64(i64),
    Bool(bool),
    Float32(u32),
    Float64(u64),
    Buffer(Vec<u8>),
    OptionalBuffer(Option<Vec<u8>>),
    String(String),
    Fixed32([u8; 32]),
    Fixed64(Vec<u8>),
    ArrayUint(Vec<u64>),
    Ip(IpAddr),
    IpAddress(SocketAddr),
    Ipv4Address(SocketAddrV4),
    Ipv6Address(SocketAddrV6),
    Bitarray(Vec<bool>),
    Bitfield7(u8),
    Bitfield16(u16),
    Bitfield32(u32),
    Bitfield64(u64),
    Lexint(u32),
    FrameString(String),
    Uint16Array(Vec<u16>),
    Uint32Array(Vec<u32>),
}

fn item() -> impl Strategy<Value = Item> {
    let ipv6 = any::<u128>().prop_map(Ipv6Addr::from);
    prop_oneof![
        any::<u64>().prop_map(Item::Uint),
        any::<u8>().prop_map(Item::Uint8),
        any::<u16>().prop_map(Item::Uint16),
        (0u32..1 << 24).prop_map(Item::Uint24),
        any::<u32>().prop_map(Item::Uint32),
        any::<u32>().prop_map(Item::Uint32be),
        (0u64..1 << 40).prop_map(Item::Uint40),
        (0u64..1 << 48).prop_map(Item::Uint48),
        (0u64..1 << 56).prop_map(Item::Uint56),
        any::<u64>().prop_map(Item::Uint64),
        any::<u64>().prop_map(Item::Uint64be),
        any::<i64>().prop_map(Item::Int),
        any::<i8>().prop_map(Item::Int8),
        any::<i16>().prop_map(Item::Int16),
        (-(1i32 << 23)..1 << 23).prop_map(Item::Int24),
        any::<i32>().prop_map(Item::Int32),
        (-(1i64 << 39)..1 << 39).prop_map(Item::Int40),
        (-(1i64 << 47)..1 << 47).prop_map(Item::Int48),
        (-(1i64 << 55)..1 << 55).prop_map(Item::Int56),
        any::<i64>().prop_map(Item::Int64),
        any::<bool>().prop_map(Item::Bool),
        any::<u32>().prop_map(Item::Float32),
        any::<u64>().prop_map(Item::Float64),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Item::Buffer),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(Item::OptionalBuffer),
        any::<String>().prop_map(Item::String),
        any::<[u8; 32]>().prop_map(Item::Fixed32),
        proptest::collection::vec(any::<u8>(), 64).prop_map(Item::Fixed64),
        proptest::collection::vec(any::<u64>(), 0..20).prop_map(Item::ArrayUint),
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            ipv6.clone().prop_map(IpAddr::V6)
        ]
        .prop_map(Item::Ip),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| Item::IpAddress(SocketAddr::from((ip, port)))),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| Item::Ipv4Address(SocketAddrV4::new(ip.into(), port))),
        (ipv6, any::<u16>())
            .prop_map(|(ip, port)| Item::Ipv6Address(SocketAddrV6::new(ip, port, 0, 0))),
        proptest::collection::vec(any::<bool>(), 0..100).prop_map(Item::Bitarray),
        (0u8..0x80).prop_map(Item::Bitfield7),
        any::<u16>().prop_map(Item::Bitfield16),
        any::<u32>().prop_map(Item::Bitfield32),
        any::<u64>().prop_map(Item::Bitfield64),
        any::<u32>().prop_map(Item::Lexint),
        any::<String>().prop_map(Item::FrameString),
        proptest::collection::vec(any::<u16>(), 0..20).prop_map(Item::Uint16Array),
        proptest::collection::vec(any::<u32>(), 0..20).prop_map(Item::Uint32Array),
    ]
}

fn write(w: &mut Writer, item: &Item) {
    match item {
        Item::Uint(n) => w.uint(*n),
        Item::Uint8(n) => w.uint8(*n),
        Item::Uint16(n) => w.uint16(*n),
        Item::Uint24(n) => w.uint24(*n),
        Item::Uint32(n) => w.uint32(*n),
        Item::Uint32be(n) => w.uint32be(*n),
        Item::Uint40(n) => w.uint40(*n),
        Item::Uint48(n) => w.uint48(*n),
        Item::Uint56(n) => w.uint56(*n),
        Item::Uint64(n) => w.uint64(*n),
        Item::Uint64be(n) => w.uint64be(*n),
        Item::Int(n) => w.int(*n),
        Item::Int8(n) => w.int8(*n),
        Item::Int16(n) => w.int16(*n),
        Item::Int24(n) => w.int24(*n),
        Item::Int32(n) => w.int32(*n),
        Item::Int40(n) => w.int40(*n),
        Item::Int48(n) => w.int48(*n),
        Item::Int56(n) => w.int56(*n),
        Item::Int64(n) => w.int64(*n),
        Item::Bool(b) => w.bool(*b),
        Item::Float32(bits) => w.float32(f32::from_bits(*bits)),
        Item::Float64(bits) => w.float64(f64::from_bits(*bits)),
        Item::Buffer(b) => w.buffer(b),
        Item::OptionalBuffer(b) => w.optional_buffer(b.as_deref()),
        Item::String(s) => w.string(s),
        Item::Fixed32(b) => w.fixed32(b),
        Item::Fixed64(b) => w.bytes(b),
        Item::ArrayUint(v) => w.array(v, |w, n| {
            w.uint(*n);
        }),
        Item::Ip(ip) => w.ip(ip),
        Item::IpAddress(a) => w.ip_address(a),
        Item::Ipv4Address(a) => w.ipv4_address(a),
        Item::Ipv6Address(a) => w.ipv6_address(a),
        Item::Bitarray(bits) => w.bitarray(bits),
        Item::Bitfield7(n) => w.bitfield(7, u64::from(*n)),
        Item::Bitfield16(n) => w.bitfield(16, u64::from(*n)),
        Item::Bitfield32(n) => w.bitfield(32, u64::from(*n)),
        Item::Bitfield64(n) => w.bitfield(64, *n),
        Item::Lexint(n) => w.lexint(u64::from(*n)),
        Item::FrameString(s) => w.frame(|w| {
            w.string(s);
        }),
        Item::Uint16Array(v) => w.uint16_array(v),
        Item::Uint32Array(v) => w.uint32_array(v),
    };
}

const MISMATCH: DecodeError = DecodeError::Invalid("test: not the shape written");

fn read(r: &mut Reader<'_>, like: &Item) -> Result<Item, DecodeError> {
    Ok(match like {
        Item::Uint(_) => Item::Uint(r.uint()?),
        Item::Uint8(_) => Item::Uint8(r.uint8()?),
        Item::Uint16(_) => Item::Uint16(r.uint16()?),
        Item::Uint24(_) => Item::Uint24(r.uint24()?),
        Item::Uint32(_) => Item::Uint32(r.uint32()?),
        Item::Uint32be(_) => Item::Uint32be(r.uint32be()?),
        Item::Uint40(_) => Item::Uint40(r.uint40()?),
        Item::Uint48(_) => Item::Uint48(r.uint48()?),
        Item::Uint56(_) => Item::Uint56(r.uint56()?),
        Item::Uint64(_) => Item::Uint64(r.uint64()?),
        Item::Uint64be(_) => Item::Uint64be(r.uint64be()?),
        Item::Int(_) => Item::Int(r.int()?),
        Item::Int8(_) => Item::Int8(r.int8()?),
        Item::Int16(_) => Item::Int16(r.int16()?),
        Item::Int24(_) => Item::Int24(r.int24()?),
        Item::Int32(_) => Item::Int32(r.int32()?),
        Item::Int40(_) => Item::Int40(r.int40()?),
        Item::Int48(_) => Item::Int48(r.int48()?),
        Item::Int56(_) => Item::Int56(r.int56()?),
        Item::Int64(_) => Item::Int64(r.int64()?),
        Item::Bool(_) => Item::Bool(r.bool()?),
        Item::Float32(_) => Item::Float32(r.float32()?.to_bits()),
        Item::Float64(_) => Item::Float64(r.float64()?.to_bits()),
        Item::Buffer(_) => Item::Buffer(r.buffer()?.to_vec()),
        Item::OptionalBuffer(_) => Item::OptionalBuffer(r.optional_buffer()?.map(<[u8]>::to_vec)),
        Item::String(_) => Item::String(r.string()?.to_owned()),
        Item::Fixed32(_) => Item::Fixed32(r.fixed32()?),
        Item::Fixed64(_) => Item::Fixed64(r.fixed64()?.to_vec()),
        Item::ArrayUint(_) => Item::ArrayUint(r.array(Reader::uint)?),
        Item::Ip(_) => Item::Ip(r.ip()?),
        Item::IpAddress(_) => Item::IpAddress(r.ip_address()?),
        Item::Ipv4Address(_) => Item::Ipv4Address(r.ipv4_address()?),
        Item::Ipv6Address(_) => Item::Ipv6Address(r.ipv6_address()?),
        Item::Bitarray(_) => Item::Bitarray(r.bitarray()?),
        // Mutated input can change a bitfield's width or a lexint's size: that is a mismatch, not a panic.
        Item::Bitfield7(_) => Item::Bitfield7(*r.bitfield(7)?.first().ok_or(MISMATCH)?),
        Item::Bitfield16(_) => Item::Bitfield16(u16::from_le_bytes(
            r.bitfield(16)?.try_into().map_err(|_| MISMATCH)?,
        )),
        Item::Bitfield32(_) => Item::Bitfield32(u32::from_le_bytes(
            r.bitfield(32)?.try_into().map_err(|_| MISMATCH)?,
        )),
        Item::Bitfield64(_) => Item::Bitfield64(u64::from_le_bytes(
            r.bitfield(64)?.try_into().map_err(|_| MISMATCH)?,
        )),
        Item::Lexint(_) => Item::Lexint(u32::try_from(r.lexint()?).map_err(|_| MISMATCH)?),
        Item::FrameString(_) => Item::FrameString(r.frame(|r| r.string().map(str::to_owned))?),
        Item::Uint16Array(_) => Item::Uint16Array(r.uint16_array()?),
        Item::Uint32Array(_) => Item::Uint32Array(r.uint32_array()?),
    })
}

/// Calls every `Reader` method once, in turn, on whatever is left, ignoring errors. Used to check that no
/// sequence of reads panics, and that the cursor never moves past the end.
fn read_everything(buf: &[u8]) {
    let mut r = Reader::new(buf);
    let ops: &[fn(&mut Reader<'_>)] = &[
        |r| drop(r.uint()),
        |r| drop(r.uint8()),
        |r| drop(r.uint16()),
        |r| drop(r.uint24()),
        |r| drop(r.uint32()),
        |r| drop(r.uint32be()),
        |r| drop(r.uint40()),
        |r| drop(r.uint48()),
        |r| drop(r.uint56()),
        |r| drop(r.uint64()),
        |r| drop(r.uint64be()),
        |r| drop(r.uint_u32()),
        |r| drop(r.uint_usize()),
        |r| drop(r.int()),
        |r| drop(r.int8()),
        |r| drop(r.int16()),
        |r| drop(r.int24()),
        |r| drop(r.int32()),
        |r| drop(r.int40()),
        |r| drop(r.int48()),
        |r| drop(r.int56()),
        |r| drop(r.int64()),
        |r| drop(r.bool()),
        |r| drop(r.float32()),
        |r| drop(r.float64()),
        |r| drop(r.buffer()),
        |r| drop(r.optional_buffer()),
        |r| drop(r.string()),
        |r| drop(r.fixed32()),
        |r| drop(r.fixed64()),
        |r| drop(r.fixed::<3>()),
        |r| drop(r.array_len()),
        |r| drop(r.array(Reader::uint)),
        |r| drop(r.array(|r| r.array(Reader::string))),
        |r| drop(r.ipv4()),
        |r| drop(r.ipv6()),
        |r| drop(r.ip()),
        |r| drop(r.ipv4_address()),
        |r| drop(r.ipv6_address()),
        |r| drop(r.ip_address()),
        |r| drop(r.bitarray()),
        |r| drop(r.bitfield(7)),
        |r| drop(r.bitfield(64)),
        |r| drop(r.lexint()),
        |r| drop(r.frame(|r| r.array(Reader::buffer))),
        |r| drop(r.uint16_array()),
        |r| drop(r.uint32_array()),
        |r| drop(r.bytes(5)),
    ];
    // Each method on the whole input, then all of them one after the other.
    for op in ops {
        let mut fresh = Reader::new(buf);
        op(&mut fresh);
        assert!(fresh.position() <= buf.len());
    }
    for op in ops {
        op(&mut r);
        assert!(r.position() <= buf.len());
        assert_eq!(r.remaining(), buf.len() - r.position());
    }
    let _ = r.raw();
    assert!(r.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn sequences_round_trip(items in proptest::collection::vec(item(), 1..12)) {
        let mut w = Writer::new();
        for item in &items {
            write(&mut w, item);
        }
        let buf = w.into_vec();
        let mut r = Reader::new(&buf);
        for item in &items {
            let got = read(&mut r, item);
            // An empty optional buffer reads back as None, by design.
            let want = match item {
                Item::OptionalBuffer(Some(b)) if b.is_empty() => Item::OptionalBuffer(None),
                other => other.clone(),
            };
            prop_assert_eq!(got, Ok(want));
        }
        prop_assert!(r.finish().is_ok());

        // Truncating the last item makes its read fail, never panic.
        if let Some(last) = items.last() {
            let mut w = Writer::new();
            for item in &items[..items.len() - 1] {
                write(&mut w, item);
            }
            let start = w.len();
            let mut r = Reader::new(&buf[..buf.len() - 1]);
            for item in &items[..items.len() - 1] {
                prop_assert!(read(&mut r, item).is_ok());
            }
            prop_assert_eq!(r.position(), start);
            prop_assert!(read(&mut r, last).is_err());
        }
    }

    #[test]
    fn uint_len_matches_encoding(n in any::<u64>()) {
        let mut w = Writer::new();
        w.uint(n);
        prop_assert_eq!(w.len(), uint_len(n));
    }

    #[test]
    fn lexint_keeps_order(a in any::<u64>(), b in any::<u64>()) {
        // The point of lexint: byte order follows numeric order (for the values JS can represent).
        let (a, b) = (a >> 11, b >> 11);
        let ea = Writer::new().lexint(a).as_slice().to_vec();
        let eb = Writer::new().lexint(b).as_slice().to_vec();
        let da = Reader::new(&ea).lexint();
        let db = Reader::new(&eb).lexint();
        prop_assert!(da.is_ok() && db.is_ok());
        if a < b {
            prop_assert!(ea <= eb);
        }
    }

    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        read_everything(&buf);
    }

    #[test]
    fn mutated_encodings_never_panic(
        items in proptest::collection::vec(item(), 1..6),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut w = Writer::new();
        for item in &items {
            write(&mut w, item);
        }
        let mut buf = w.into_vec();
        for (at, x) in flips {
            let i = at.index(buf.len());
            buf[i] ^= x;
        }
        let buf = &buf[..cut.index(buf.len() + 1)];
        read_everything(buf);
        let mut r = Reader::new(buf);
        for item in &items {
            if read(&mut r, item).is_err() {
                break;
            }
        }
    }
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    // A u64::MAX length for a buffer, an array and a bit array.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(Reader::new(&huge).buffer().is_err());
    assert!(Reader::new(&huge).array(Reader::uint8).is_err());
    assert!(Reader::new(&huge).bitarray().is_err());
    assert!(Reader::new(&huge).frame(|r| r.uint()).is_err());
    assert!(Reader::new(&huge).uint16_array().is_err());
    assert!(Reader::new(&huge).uint32_array().is_err());
    // A lexint whose exponent is itself a big lexint.
    assert!(Reader::new(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0])
        .lexint()
        .is_err());
    assert!(Reader::new(&[0xff, 0xfc, 0, 0, 0, 0, 0, 0, 0])
        .lexint()
        .is_err());
}

#[test]
fn wider_than_js_where_documented() {
    // JS refuses uint64 values above 2^53 - 1 (it has no exact number for them); this crate reads them.
    assert_eq!(Reader::new(&[0xff; 9]).uint(), Ok(u64::MAX));
    // JS decodes invalid UTF-8 with replacement characters; this crate refuses it.
    assert!(Reader::new(&[2, 0xc3, 0x28]).string().is_err());
    // JS reads any family byte other than 4 as IPv6; this crate accepts only 4 and 6.
    let mut five = vec![5];
    five.extend_from_slice(&[0; 18]);
    assert!(Reader::new(&five).ip_address().is_err());
    assert!(Reader::new(&five).ip().is_err());
}

//! Drives every `compact_encoding::Reader` method over arbitrary bytes: each method alone on the whole
//! input, then an op-code program read from the input itself, so that any interleaving of reads can be
//! reached. Decoded values must re-encode to something that decodes to the same value.
#![no_main]

use std::fmt::Debug;

use holepunch::compact_encoding::{DecodeError, Reader, Writer};
use libfuzzer_sys::fuzz_target;

/// Reads a value with `read`; if that worked, checks that writing it with `write` and reading it back gives
/// the same value. Returns whether the first read worked.
fn checked<'a, T: PartialEq + Debug>(
    r: &mut Reader<'a>,
    read: impl for<'b> Fn(&mut Reader<'b>) -> Result<T, DecodeError>,
    write: impl for<'w> Fn(&'w mut Writer, &T) -> &'w mut Writer,
) -> bool {
    let Ok(v) = read(r) else { return false };
    let mut w = Writer::new();
    let _ = write(&mut w, &v);
    assert_eq!(read(&mut Reader::new(w.as_slice())).as_ref(), Ok(&v));
    true
}

/// Runs op `op` once; returns false when the read failed.
fn step(r: &mut Reader<'_>, op: u8) -> bool {
    match op % 50 {
        0 => checked(r, |r| r.uint(), |w, n| w.uint(*n)),
        1 => r.uint8().is_ok(),
        2 => r.uint16().is_ok(),
        3 => checked(r, |r| r.uint24(), |w, n| w.uint24(*n)),
        4 => r.uint32().is_ok(),
        5 => r.uint32be().is_ok(),
        6 => checked(r, |r| r.uint40(), |w, n| w.uint40(*n)),
        7 => checked(r, |r| r.uint48(), |w, n| w.uint48(*n)),
        8 => checked(r, |r| r.uint56(), |w, n| w.uint56(*n)),
        9 => r.uint64().is_ok(),
        10 => r.uint64be().is_ok(),
        11 => r.uint_u32().is_ok(),
        12 => r.uint_usize().is_ok(),
        13 => checked(r, |r| r.int(), |w, n| w.int(*n)),
        14 => checked(r, |r| r.int8(), |w, n| w.int8(*n)),
        15 => checked(r, |r| r.int16(), |w, n| w.int16(*n)),
        16 => checked(r, |r| r.int24(), |w, n| w.int24(*n)),
        17 => checked(r, |r| r.int32(), |w, n| w.int32(*n)),
        18 => checked(r, |r| r.int40(), |w, n| w.int40(*n)),
        19 => checked(r, |r| r.int48(), |w, n| w.int48(*n)),
        20 => checked(r, |r| r.int56(), |w, n| w.int56(*n)),
        21 => checked(r, |r| r.int64(), |w, n| w.int64(*n)),
        22 => r.bool().is_ok(),
        23 => r.float32().is_ok(),
        24 => r.float64().is_ok(),
        25 => checked(r, |r| r.buffer().map(<[u8]>::to_vec), |w, b| w.buffer(b)),
        26 => r.optional_buffer().is_ok(),
        27 => checked(r, |r| r.string().map(str::to_owned), |w, s| w.string(s)),
        28 => r.fixed32().is_ok(),
        29 => r.fixed64().is_ok(),
        30 => r.fixed::<5>().is_ok(),
        31 => r.array_len().is_ok(),
        32 => checked(
            r,
            |r| r.array(Reader::uint),
            |w, v| {
                w.array(v, |w, n| {
                    w.uint(*n);
                })
            },
        ),
        33 => r.array(|r| r.array(Reader::string)).is_ok(),
        34 => r.ipv4().is_ok(),
        35 => r.ipv6().is_ok(),
        36 => checked(r, |r| r.ip(), |w, ip| w.ip(ip)),
        37 => r.ipv4_address().is_ok(),
        38 => r.ipv6_address().is_ok(),
        39 => checked(r, |r| r.ip_address(), |w, a| w.ip_address(a)),
        40 => checked(r, |r| r.bitarray(), |w, bits| w.bitarray(bits)),
        41 => r.bitfield(7).is_ok(),
        42 => r.bitfield(64).is_ok(),
        43 => r.lexint().is_ok(),
        44 => r.frame(|r| r.array(Reader::buffer)).is_ok(),
        45 => r.frame(|r| r.uint()).is_ok(),
        46 => r.bytes(3).is_ok(),
        47 => checked(r, |r| r.uint16_array(), |w, v| w.uint16_array(v)),
        48 => checked(r, |r| r.uint32_array(), |w, v| w.uint32_array(v)),
        _ => {
            let _ = r.raw();
            true
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Every method on the whole input.
    for op in 0..50 {
        let mut r = Reader::new(data);
        step(&mut r, op);
        assert!(r.position() <= data.len());
    }
    // A program: an op byte, then that read, until something fails.
    let mut r = Reader::new(data);
    while let Ok(op) = r.uint8() {
        if !step(&mut r, op) {
            break;
        }
        assert_eq!(r.remaining(), data.len() - r.position());
    }
    let _ = r.finish();
});

//! Drives every `compact_encoding::Reader` method over arbitrary bytes: each method alone on the whole
//! input, then an op-code program read from the input itself, so that any interleaving of reads can be
//! reached. Decoded values must re-encode to something that decodes to the same value.
#![no_main]

use holepunch::compact_encoding::{Reader, Writer};
use libfuzzer_sys::fuzz_target;

/// Runs op `op` once; returns false when the read failed.
fn step(r: &mut Reader<'_>, op: u8) -> bool {
    match op % 50 {
        0 => r.uint().map(|n| assert_eq!(Reader::new(Writer::new().uint(n).as_slice()).uint(), Ok(n))).is_ok(),
        1 => r.uint8().is_ok(),
        2 => r.uint16().is_ok(),
        3 => r.uint24().map(|n| assert!(n < 1 << 24)).is_ok(),
        4 => r.uint32().is_ok(),
        5 => r.uint32be().is_ok(),
        6 => r.uint40().map(|n| assert!(n < 1 << 40)).is_ok(),
        7 => r.uint48().map(|n| assert!(n < 1 << 48)).is_ok(),
        8 => r.uint56().map(|n| assert!(n < 1 << 56)).is_ok(),
        9 => r.uint64().is_ok(),
        10 => r.uint64be().is_ok(),
        11 => r.uint_u32().is_ok(),
        12 => r.uint_usize().is_ok(),
        13 => r.int().map(|n| assert_eq!(Reader::new(Writer::new().int(n).as_slice()).int(), Ok(n))).is_ok(),
        14 => r.int8().is_ok(),
        15 => r.int16().is_ok(),
        16 => r.int24().is_ok(),
        17 => r.int32().is_ok(),
        18 => r.int40().is_ok(),
        19 => r.int48().is_ok(),
        20 => r.int56().is_ok(),
        21 => r.int64().is_ok(),
        22 => r.bool().is_ok(),
        23 => r.float32().is_ok(),
        24 => r.float64().is_ok(),
        25 => r
            .buffer()
            .map(|b| assert_eq!(Reader::new(Writer::new().buffer(b).as_slice()).buffer(), Ok(b)))
            .is_ok(),
        26 => r.optional_buffer().is_ok(),
        27 => r
            .string()
            .map(|s| assert_eq!(Reader::new(Writer::new().string(s).as_slice()).string(), Ok(s)))
            .is_ok(),
        28 => r.fixed32().is_ok(),
        29 => r.fixed64().is_ok(),
        30 => r.fixed::<5>().is_ok(),
        31 => r.array_len().is_ok(),
        32 => r.array(Reader::uint).is_ok(),
        33 => r.array(|r| r.array(Reader::string)).is_ok(),
        34 => r.ipv4().is_ok(),
        35 => r.ipv6().is_ok(),
        36 => r.ip().map(|ip| assert_eq!(Reader::new(Writer::new().ip(&ip).as_slice()).ip(), Ok(ip))).is_ok(),
        37 => r.ipv4_address().is_ok(),
        38 => r.ipv6_address().is_ok(),
        39 => r
            .ip_address()
            .map(|a| assert_eq!(Reader::new(Writer::new().ip_address(&a).as_slice()).ip_address(), Ok(a)))
            .is_ok(),
        40 => r
            .bitarray()
            .map(|bits| assert_eq!(Reader::new(Writer::new().bitarray(&bits).as_slice()).bitarray(), Ok(bits)))
            .is_ok(),
        41 => r.bitfield(7).is_ok(),
        42 => r.bitfield(64).is_ok(),
        43 => r.lexint().is_ok(),
        44 => r.frame(|r| r.array(Reader::buffer)).is_ok(),
        45 => r.frame(|r| r.uint()).is_ok(),
        46 => r.bytes(3).is_ok(),
        47 => r
            .uint16_array()
            .map(|v| assert_eq!(Reader::new(Writer::new().uint16_array(&v).as_slice()).uint16_array(), Ok(v)))
            .is_ok(),
        48 => r
            .uint32_array()
            .map(|v| assert_eq!(Reader::new(Writer::new().uint32_array(&v).as_slice()).uint32_array(), Ok(v)))
            .is_ok(),
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

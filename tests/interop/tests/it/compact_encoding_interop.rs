//! Randomised interop check of `holepunch::compact_encoding` against the JavaScript package: thousands of
//! seeded random values of every codec are encoded in Rust, decoded by JS (`tests/interop/js/ce-decode.js`,
//! run with node), and JS must read the same value and re-encode it to the same bytes.
//!
//! Values stay inside what JS can represent (integers up to 2^53 - 1, no NaN payloads), as every real peer's do.

use crate::common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{decode_all, encode, normalise, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A u64 of a random bit length up to `max_bits`, so that every encoding width is hit often.
fn uint(rng: &mut StdRng, max_bits: u32) -> u64 {
    let bits = rng.gen_range(0..=max_bits);
    if bits == 0 {
        0
    } else {
        rng.gen::<u64>() >> (64 - bits)
    }
}

/// An i64 with magnitude of a random bit length up to `max_bits`.
fn int(rng: &mut StdRng, max_bits: u32) -> i64 {
    let m = uint(rng, max_bits) as i64;
    if rng.gen() {
        -m
    } else {
        m
    }
}

fn float(bits: u64) -> String {
    let f = f64::from_bits(bits);
    if f.is_nan() {
        "NaN".into()
    } else {
        f.to_string()
    }
}

fn random_string(rng: &mut StdRng) -> String {
    let len = rng.gen_range(0..80);
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => rng.gen::<char>(),
            1 => char::from(rng.gen_range(0x80u8..=0xff)),
            _ => char::from(rng.gen_range(0x20u8..0x7f)),
        })
        .collect()
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max);
    (0..len).map(|_| rng.gen()).collect()
}

fn ipv4(rng: &mut StdRng) -> Ipv4Addr {
    Ipv4Addr::from(rng.gen::<u32>())
}

fn ipv6(rng: &mut StdRng) -> Ipv6Addr {
    // Mostly sparse addresses so that "::" compression shows up.
    let mut segs = [0u16; 8];
    for seg in &mut segs {
        if rng.gen_bool(0.5) {
            *seg = rng.gen();
        }
    }
    Ipv6Addr::from(segs)
}

/// A random case in the vector JSON form.
fn random_case(rng: &mut StdRng, codec: &str) -> Value {
    let n = |v: u64| json!(v.to_string());
    let i = |v: i64| json!(v.to_string());
    let (value, params) = match codec {
        "uint" => (n(uint(rng, 53)), None),
        "uint8" => (n(uint(rng, 8)), None),
        "uint16" => (n(uint(rng, 16)), None),
        "uint24" => (n(uint(rng, 24)), None),
        "uint32" | "uint32be" => (n(uint(rng, 32)), None),
        "uint40" => (n(uint(rng, 40)), None),
        "uint48" => (n(uint(rng, 48)), None),
        "uint56" | "uint64" | "uint64be" => (n(uint(rng, 53)), None),
        "biguint64" => (n(uint(rng, 64)), None),
        "int" | "int56" | "int64" => (i(int(rng, 52)), None),
        "int8" => (i(i64::from(rng.gen::<i8>())), None),
        "int16" => (i(i64::from(rng.gen::<i16>())), None),
        "int24" => (i(int(rng, 23).clamp(-(1 << 23), (1 << 23) - 1)), None),
        "int32" => (i(i64::from(rng.gen::<i32>())), None),
        "int40" => (i(int(rng, 39)), None),
        "int48" => (i(int(rng, 47)), None),
        "bigint64" => (i(rng.gen()), None),
        "bool" => (json!(rng.gen::<bool>()), None),
        "float32" => {
            let f = f32::from_bits(rng.gen());
            (json!(float(f64::from(f).to_bits())), None)
        }
        "float64" => (json!(float(rng.gen())), None),
        "buffer" => (json!(hex::encode(random_bytes(rng, 300))), None),
        "optional_buffer" => {
            let b = random_bytes(rng, 40);
            (
                if b.is_empty() {
                    Value::Null
                } else {
                    json!(hex::encode(b))
                },
                None,
            )
        }
        "string" | "frame_string" => (json!(random_string(rng)), None),
        "fixed" => {
            let len = [8usize, 16, 24, 32, 64][rng.gen_range(0..5)];
            let b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            (json!(hex::encode(b)), Some(json!({ "n": len })))
        }
        "array_uint" | "frame_array_uint" => {
            let len = rng.gen_range(0..10);
            (
                json!((0..len)
                    .map(|_| uint(rng, 53).to_string())
                    .collect::<Vec<_>>()),
                None,
            )
        }
        "array_string" => {
            let len = rng.gen_range(0..5);
            (
                json!((0..len).map(|_| random_string(rng)).collect::<Vec<_>>()),
                None,
            )
        }
        "array_buffer" => {
            let len = rng.gen_range(0..5);
            (
                json!((0..len)
                    .map(|_| hex::encode(random_bytes(rng, 20)))
                    .collect::<Vec<_>>()),
                None,
            )
        }
        "array_ipv4_address" => {
            let len = rng.gen_range(0..5);
            let v: Vec<String> = (0..len)
                .map(|_| SocketAddr::from((ipv4(rng), rng.gen())).to_string())
                .collect();
            (json!(v), None)
        }
        "uint16array" => {
            let len = rng.gen_range(0..10);
            (
                json!((0..len)
                    .map(|_| rng.gen::<u16>().to_string())
                    .collect::<Vec<_>>()),
                None,
            )
        }
        "uint32array" => {
            let len = rng.gen_range(0..10);
            (
                json!((0..len)
                    .map(|_| rng.gen::<u32>().to_string())
                    .collect::<Vec<_>>()),
                None,
            )
        }
        "ipv4" => (json!(ipv4(rng).to_string()), None),
        "ipv6" => (json!(ipv6(rng).to_string()), None),
        "ip" => {
            let ip = if rng.gen() {
                ipv4(rng).to_string()
            } else {
                ipv6(rng).to_string()
            };
            (json!(ip), None)
        }
        "ipv4_address" => (
            json!(SocketAddr::from((ipv4(rng), rng.gen())).to_string()),
            None,
        ),
        "ipv6_address" => (
            json!(SocketAddr::from((ipv6(rng), rng.gen())).to_string()),
            None,
        ),
        "ip_address" => {
            let a = if rng.gen() {
                SocketAddr::from((ipv4(rng), rng.gen()))
            } else {
                SocketAddr::from((ipv6(rng), rng.gen()))
            };
            (json!(a.to_string()), None)
        }
        "bitarray" => {
            let len = rng.gen_range(0..100);
            (
                json!((0..len).map(|_| rng.gen::<bool>()).collect::<Vec<_>>()),
                None,
            )
        }
        "bitfield" => {
            let length = [1u32, 7, 8, 16, 17, 32, 33, 64][rng.gen_range(0..8)];
            let bits = uint(rng, length.min(53));
            (n(bits), Some(json!({ "length": length })))
        }
        "lexint" => {
            let mut v = uint(rng, 53);
            // JS cannot encode 2^32..2^32+251 (see Writer::lexint).
            if (1 << 32..(1 << 32) + 251).contains(&v) {
                v -= 251;
            }
            (n(v), None)
        }
        other => panic!("no generator for {other}"),
    };
    let mut case = json!({ "codec": codec, "value": value });
    if let Some(p) = params {
        case["params"] = p;
    }
    case
}

const CODECS: &[&str] = &[
    "uint",
    "uint8",
    "uint16",
    "uint24",
    "uint32",
    "uint32be",
    "uint40",
    "uint48",
    "uint56",
    "uint64",
    "uint64be",
    "biguint64",
    "int",
    "int8",
    "int16",
    "int24",
    "int32",
    "int40",
    "int48",
    "int56",
    "int64",
    "bigint64",
    "bool",
    "float32",
    "float64",
    "buffer",
    "optional_buffer",
    "string",
    "fixed",
    "array_uint",
    "array_string",
    "array_buffer",
    "array_ipv4_address",
    "uint16array",
    "uint32array",
    "ipv4",
    "ipv6",
    "ip",
    "ipv4_address",
    "ipv6_address",
    "ip_address",
    "bitarray",
    "bitfield",
    "lexint",
    "frame_string",
    "frame_array_uint",
];

#[test]
fn js_decodes_what_rust_encodes() {
    let mut rng = StdRng::seed_from_u64(0x00c0_ffee);
    let mut cases = Vec::new();
    for _ in 0..80 {
        for codec in CODECS {
            let mut case = random_case(&mut rng, codec);
            let bytes = encode(&case);
            case["hex"] = json!(hex::encode(bytes));
            cases.push(case);
        }
    }
    let request: Vec<Value> = cases
        .iter()
        .map(|c| json!({ "codec": c["codec"], "params": c.get("params").cloned().unwrap_or(json!({})), "hex": c["hex"] }))
        .collect();

    // No timeout before the harness: bounded generously now.
    let output = interop::run_json(
        "ce-decode.js",
        &Value::Array(request),
        Duration::from_secs(600),
    );
    let replies: Vec<Value> = serde_json::from_value(output).expect("node reply json");
    assert_eq!(replies.len(), cases.len());

    for (case, reply) in cases.iter().zip(&replies) {
        let codec = s(&case["codec"]);
        let buf = hex::decode(s(&case["hex"])).expect("hex");
        if let Some(err) = reply.get("error") {
            panic!("JS could not decode Rust's {case}: {err}");
        }
        // What Rust reads back from its own bytes (lexint rounds large values, bitfield reads back bytes, the
        // same way in both languages).
        let rust_value =
            decode_all(case, &buf).unwrap_or_else(|e| panic!("Rust decode of {case}: {e}"));
        assert_eq!(
            normalise(codec, &reply["value"]),
            rust_value,
            "JS read a different value: {case}"
        );
        assert_eq!(
            reply["hex"], case["hex"],
            "JS re-encodes differently: {case}"
        );
    }
}

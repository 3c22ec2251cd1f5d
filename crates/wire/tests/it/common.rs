//! Helpers shared by the compact-encoding tests that compare with JS: the JSON form of values used by the
//! vector files and by `tests/interop/js/ce-decode.js`, and the Rust encoder/decoder for each codec name.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};

use holepunch_wire::compact_encoding::{Reader, Result as DecodeResult, Writer};
use serde_json::{json, Value};

pub fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

pub fn u(v: &Value) -> u64 {
    s(v).parse().unwrap_or_else(|e| panic!("bad u64 {v}: {e}"))
}

pub fn i(v: &Value) -> i64 {
    s(v).parse().unwrap_or_else(|e| panic!("bad i64 {v}: {e}"))
}

pub fn f(v: &Value) -> f64 {
    s(v).parse()
        .unwrap_or_else(|e| panic!("bad float {v}: {e}"))
}

pub fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).expect("hex")
}

pub fn param(case: &Value, name: &str) -> u32 {
    case["params"][name]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .expect("param")
}

pub fn arr(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

pub fn sock(v: &Value) -> SocketAddr {
    s(v).parse()
        .unwrap_or_else(|e| panic!("bad address {v}: {e}"))
}

pub fn ip(v: &Value) -> IpAddr {
    s(v).parse().unwrap_or_else(|e| panic!("bad ip {v}: {e}"))
}

/// Encodes the case's JSON value with the Rust codec named by `codec`.
pub fn encode(case: &Value) -> Vec<u8> {
    let v = &case["value"];
    let mut w = Writer::new();
    match s(&case["codec"]) {
        "uint" => w.uint(u(v)),
        "uint8" => w.uint8(u8::try_from(u(v)).expect("u8")),
        "uint16" => w.uint16(u16::try_from(u(v)).expect("u16")),
        "uint24" => w.uint24(u32::try_from(u(v)).expect("u24")),
        "uint32" => w.uint32(u32::try_from(u(v)).expect("u32")),
        "uint32be" => w.uint32be(u32::try_from(u(v)).expect("u32")),
        "uint40" => w.uint40(u(v)),
        "uint48" => w.uint48(u(v)),
        "uint56" => w.uint56(u(v)),
        "uint64" | "biguint64" => w.uint64(u(v)),
        "uint64be" => w.uint64be(u(v)),
        "int" => w.int(i(v)),
        "int8" => w.int8(i8::try_from(i(v)).expect("i8")),
        "int16" => w.int16(i16::try_from(i(v)).expect("i16")),
        "int24" => w.int24(i32::try_from(i(v)).expect("i24")),
        "int32" => w.int32(i32::try_from(i(v)).expect("i32")),
        "int40" => w.int40(i(v)),
        "int48" => w.int48(i(v)),
        "int56" => w.int56(i(v)),
        "int64" | "bigint64" => w.int64(i(v)),
        "bool" => w.bool(v.as_bool().expect("bool")),
        "float32" => w.float32(f(v) as f32),
        "float64" => w.float64(f(v)),
        "buffer" => w.buffer(&bytes(v)),
        "optional_buffer" => w.optional_buffer(v.as_str().map(|_| bytes(v)).as_deref()),
        "string" => w.string(s(v)),
        "fixed" => w.bytes(&bytes(v)),
        "array_uint" => w.array(arr(v), |w, x| {
            w.uint(u(x));
        }),
        "array_string" => w.array(arr(v), |w, x| {
            w.string(s(x));
        }),
        "array_buffer" => w.array(arr(v), |w, x| {
            w.buffer(&bytes(x));
        }),
        "array_ipv4_address" => w.array(arr(v), |w, x| match sock(x) {
            SocketAddr::V4(a) => {
                w.ipv4_address(&a);
            }
            SocketAddr::V6(_) => panic!("not v4"),
        }),
        "uint16array" => {
            let items: Vec<u16> = arr(v)
                .iter()
                .map(|x| u16::try_from(u(x)).expect("u16"))
                .collect();
            w.uint16_array(&items)
        }
        "uint32array" => {
            let items: Vec<u32> = arr(v)
                .iter()
                .map(|x| u32::try_from(u(x)).expect("u32"))
                .collect();
            w.uint32_array(&items)
        }
        "ipv4" => match ip(v) {
            IpAddr::V4(a) => w.ipv4(&a),
            IpAddr::V6(_) => panic!("not v4"),
        },
        "ipv6" => match ip(v) {
            IpAddr::V6(a) => w.ipv6(&a),
            IpAddr::V4(_) => panic!("not v6"),
        },
        "ip" => w.ip(&ip(v)),
        "ipv4_address" => match sock(v) {
            SocketAddr::V4(a) => w.ipv4_address(&a),
            SocketAddr::V6(_) => panic!("not v4"),
        },
        "ipv6_address" => match sock(v) {
            SocketAddr::V6(a) => w.ipv6_address(&a),
            SocketAddr::V4(_) => panic!("not v6"),
        },
        "ip_address" => w.ip_address(&sock(v)),
        "bitarray" => {
            let bits: Vec<bool> = arr(v).iter().map(|b| b.as_bool().expect("bool")).collect();
            w.bitarray(&bits)
        }
        "bitfield" => w.bitfield(param(case, "length"), u(v)),
        "lexint" => w.lexint(u(v)),
        "frame_string" => w.frame(|w| {
            w.string(s(v));
        }),
        "frame_array_uint" => w.frame(|w| {
            w.array(arr(v), |w, x| {
                w.uint(u(x));
            });
        }),
        other => panic!("no Rust encoder wired up for codec {other}"),
    };
    w.into_vec()
}

pub fn float_key(bits: u64, nan: bool) -> Value {
    if nan {
        json!("NaN")
    } else {
        json!(format!("{bits:016x}"))
    }
}

/// Decodes `buf` with the Rust codec named by `codec`, giving the same JSON form the generator uses (floats
/// and IP addresses in a normalised form, see [`normalise`]).
pub fn decode(case: &Value, r: &mut Reader<'_>) -> DecodeResult<Value> {
    let str_of = |n: &dyn ToString| json!(n.to_string());
    Ok(match s(&case["codec"]) {
        "uint" => str_of(&r.uint()?),
        "uint8" => str_of(&r.uint8()?),
        "uint16" => str_of(&r.uint16()?),
        "uint24" => str_of(&r.uint24()?),
        "uint32" => str_of(&r.uint32()?),
        "uint32be" => str_of(&r.uint32be()?),
        "uint40" => str_of(&r.uint40()?),
        "uint48" => str_of(&r.uint48()?),
        "uint56" => str_of(&r.uint56()?),
        "uint64" | "biguint64" => str_of(&r.uint64()?),
        "uint64be" => str_of(&r.uint64be()?),
        "int" => str_of(&r.int()?),
        "int8" => str_of(&r.int8()?),
        "int16" => str_of(&r.int16()?),
        "int24" => str_of(&r.int24()?),
        "int32" => str_of(&r.int32()?),
        "int40" => str_of(&r.int40()?),
        "int48" => str_of(&r.int48()?),
        "int56" => str_of(&r.int56()?),
        "int64" | "bigint64" => str_of(&r.int64()?),
        "bool" => json!(r.bool()?),
        "float32" => {
            let x = r.float32()?;
            float_key(f64::from(x).to_bits(), x.is_nan())
        }
        "float64" => {
            let x = r.float64()?;
            float_key(x.to_bits(), x.is_nan())
        }
        "buffer" => json!(hex::encode(r.buffer()?)),
        "optional_buffer" => r
            .optional_buffer()?
            .map_or(Value::Null, |b| json!(hex::encode(b))),
        "string" => json!(r.string()?),
        "fixed" => match param(case, "n") {
            8 => json!(hex::encode(r.fixed::<8>()?)),
            16 => json!(hex::encode(r.fixed::<16>()?)),
            24 => json!(hex::encode(r.fixed::<24>()?)),
            32 => json!(hex::encode(r.fixed32()?)),
            64 => json!(hex::encode(r.fixed64()?)),
            n => panic!("no fixed({n})"),
        },
        "array_uint" => json!(r.array(|r| r.uint().map(|n| n.to_string()))?),
        "array_string" => json!(r.array(|r| r.string().map(str::to_owned))?),
        "array_buffer" => json!(r.array(|r| r.buffer().map(hex::encode))?),
        "array_ipv4_address" => json!(r.array(|r| r.ipv4_address().map(|a| a.to_string()))?),
        "uint16array" => json!(r
            .uint16_array()?
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()),
        "uint32array" => json!(r
            .uint32_array()?
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()),
        "ipv4" => str_of(&r.ipv4()?),
        "ipv6" => str_of(&r.ipv6()?),
        "ip" => str_of(&r.ip()?),
        "ipv4_address" => str_of(&r.ipv4_address()?),
        "ipv6_address" => str_of(&r.ipv6_address()?),
        "ip_address" => str_of(&r.ip_address()?),
        "bitarray" => json!(r.bitarray()?),
        "bitfield" => json!(hex::encode(r.bitfield(param(case, "length"))?)),
        "lexint" => str_of(&r.lexint()?),
        "frame_string" => json!(r.frame(|r| r.string().map(str::to_owned))?),
        "frame_array_uint" => json!(r.frame(|r| r.array(|r| r.uint().map(|n| n.to_string())))?),
        other => panic!("no Rust decoder wired up for codec {other}"),
    })
}

/// Puts a JSON value from the generator in the form [`decode`] produces.
pub fn normalise(codec: &str, v: &Value) -> Value {
    match codec {
        "float32" => {
            let x = f(v) as f32;
            float_key(f64::from(x).to_bits(), x.is_nan())
        }
        "float64" => {
            let x = f(v);
            float_key(x.to_bits(), x.is_nan())
        }
        "ipv4" | "ipv6" | "ip" => json!(ip(v).to_string()),
        "ipv4_address" | "ipv6_address" | "ip_address" => json!(sock(v).to_string()),
        "array_ipv4_address" => json!(arr(v)
            .iter()
            .map(|x| sock(x).to_string())
            .collect::<Vec<_>>()),
        _ => v.clone(),
    }
}

pub fn decode_all(case: &Value, buf: &[u8]) -> DecodeResult<Value> {
    let mut r = Reader::new(buf);
    let v = decode(case, &mut r)?;
    r.finish()?;
    Ok(v)
}

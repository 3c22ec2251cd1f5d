//! Checks `holepunch_wire::compact_encoding` against vectors produced by the JavaScript `compact-encoding` package
//! (`tests/interop/js/gen-vectors.js` writes `tests/vectors/compact_encoding.json`).
//!
//! For every case: encoding the value gives the JS bytes, decoding the JS bytes gives the value (or what JS
//! decodes it to), every strict prefix of the bytes fails to decode (JS fails on them too, the generator checks
//! that), and bytes JS refuses are refused.

use crate::common;

use std::collections::BTreeSet;

use common::{bytes, decode_all, encode, normalise, s};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/compact_encoding.json");

fn cases() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).expect("vectors parse");
    doc["cases"].as_array().expect("cases array").clone()
}

#[test]
fn compact_encoding_matches_js_vectors() {
    let cases = cases();
    assert!(cases.len() > 400, "too few vectors: {}", cases.len());
    let mut seen = BTreeSet::new();
    for case in &cases {
        let codec = s(&case["codec"]);
        seen.insert(codec.to_owned());
        let buf = bytes(&case["hex"]);
        let label = format!("{codec} {}", case);

        if case["error"].as_bool() == Some(true) {
            assert!(
                decode_all(case, &buf).is_err(),
                "Rust decoded what JS refuses: {label}"
            );
            continue;
        }

        let value = normalise(codec, &case["value"]);
        if case["decode_only"].as_bool() != Some(true) {
            assert_eq!(
                hex::encode(encode(case)),
                s(&case["hex"]),
                "encoding {label}"
            );
            for n in 0..buf.len() {
                let prefix = buf.get(..n).expect("prefix");
                assert!(
                    decode_all(case, prefix).is_err(),
                    "Rust decoded a {n}-byte prefix that JS refuses: {label}"
                );
            }
        }
        let expected = case.get("decoded").map_or(value, |d| normalise(codec, d));
        match decode_all(case, &buf) {
            Ok(got) => assert_eq!(got, expected, "decoding {label}"),
            Err(e) => panic!("decoding {label}: {e}"),
        }
    }

    // Every codec this crate offers is covered by the JS vectors.
    for codec in [
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
    ] {
        assert!(seen.contains(codec), "no JS vectors for {codec}");
    }
}

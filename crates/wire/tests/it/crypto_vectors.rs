//! Checks `holepunch_wire::crypto`, `z32`, `id_encoding` and `base32` against vectors produced by the JavaScript
//! packages (`tests/interop/js/gen-crypto-vectors.js` writes `tests/vectors/{crypto,id_encoding,base32}.json`).

use holepunch_wire::crypto::{self, KeyPair, TreeNode};
use holepunch_wire::{base32, id_encoding, z32};
use serde_json::Value;

fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("vectors parse")
}

fn list<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    let v = doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no array {key}"));
    assert!(!v.is_empty(), "empty vector list {key}");
    v
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).expect("hex")
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v)
        .try_into()
        .unwrap_or_else(|_| panic!("expected {N} bytes in {v}"))
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

fn node(v: &Value) -> TreeNode {
    TreeNode {
        index: num(&v["index"]),
        size: num(&v["size"]),
        hash: arr(&v["hash"]),
    }
}

#[test]
fn key_pairs_and_discovery_keys() {
    let doc = load(include_str!("vectors/crypto.json"));
    for case in list(&doc, "key_pairs") {
        let kp = KeyPair::from_seed(&arr(&case["seed"]));
        assert_eq!(hex::encode(kp.public), s(&case["public_key"]), "{case}");
        assert_eq!(hex::encode(kp.secret), s(&case["secret_key"]), "{case}");
        assert!(kp.is_valid());
        assert_eq!(
            hex::encode(crypto::discovery_key(&kp.public)),
            s(&case["discovery_key"]),
            "{case}"
        );
    }
}

#[test]
fn signatures() {
    let doc = load(include_str!("vectors/crypto.json"));
    for case in list(&doc, "signatures") {
        let kp = KeyPair::from_secret_key(&arr(&case["secret_key"]));
        let message = bytes(&case["message"]);
        let sig = kp.sign(&message);
        assert_eq!(hex::encode(sig), s(&case["signature"]), "{case}");
        assert!(crypto::verify(&message, &sig, &kp.public));
    }
}

#[test]
fn verify_agrees_with_libsodium() {
    let doc = load(include_str!("vectors/crypto.json"));
    let cases = list(&doc, "verify");
    assert!(cases.iter().any(|c| c["valid"] == Value::Bool(true)));
    assert!(cases.iter().any(|c| c["valid"] == Value::Bool(false)));
    for case in cases {
        let got = crypto::verify(
            &bytes(&case["message"]),
            &bytes(&case["signature"]),
            &bytes(&case["public_key"]),
        );
        assert_eq!(Some(got), case["valid"].as_bool(), "{}", case["note"]);
    }
}

#[test]
fn blake2b_generic_hash() {
    let doc = load(include_str!("vectors/crypto.json"));
    for case in list(&doc, "blake2b") {
        let parts: Vec<Vec<u8>> = case["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .map(bytes)
            .collect();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let out_len = usize::try_from(num(&case["out_len"])).expect("len");
        let got = crypto::blake2b(out_len, &bytes(&case["key"]), &parts).expect("blake2b");
        assert_eq!(hex::encode(got), s(&case["hash"]), "{case}");
    }
    for case in list(&doc, "hash") {
        let parts: Vec<Vec<u8>> = case["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .map(bytes)
            .collect();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        assert_eq!(
            hex::encode(crypto::hash(&parts)),
            s(&case["hash"]),
            "{case}"
        );
    }
}

#[test]
fn namespaces() {
    let doc = load(include_str!("vectors/crypto.json"));
    for case in list(&doc, "namespace") {
        let ids: Vec<u8> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|i| u8::try_from(num(i)).expect("id"))
            .collect();
        let got: Vec<String> = crypto::namespace(&bytes(&case["name"]), &ids)
            .iter()
            .map(hex::encode)
            .collect();
        let want: Vec<&str> = case["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .map(s)
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn merkle_tree_hashes() {
    let doc = load(include_str!("vectors/crypto.json"));
    for case in list(&doc, "data") {
        assert_eq!(
            hex::encode(crypto::data_hash(&bytes(&case["data"]))),
            s(&case["hash"])
        );
    }
    for case in list(&doc, "parent") {
        let got = crypto::parent_hash(&node(&case["a"]), &node(&case["b"]));
        assert_eq!(hex::encode(got), s(&case["hash"]), "{case}");
    }
    for case in list(&doc, "tree") {
        let roots: Vec<TreeNode> = case["roots"]
            .as_array()
            .expect("roots")
            .iter()
            .map(node)
            .collect();
        assert_eq!(
            hex::encode(crypto::tree_hash(&roots)),
            s(&case["hash"]),
            "{case}"
        );
    }
}

#[test]
fn hypercore_ids() {
    let doc = load(include_str!("vectors/id_encoding.json"));
    for case in list(&doc, "encode") {
        assert_eq!(id_encoding::encode(&arr(&case["key"])), s(&case["id"]));
        assert_eq!(
            id_encoding::encode_bytes(&bytes(&case["key"])).as_deref(),
            Ok(s(&case["id"]))
        );
        assert_eq!(
            id_encoding::decode_bytes(&bytes(&case["key"])),
            Ok(arr(&case["key"]))
        );
    }
    let cases = list(&doc, "decode");
    assert!(cases.iter().any(|c| c.get("error").is_some()));
    for case in cases {
        let input = s(&case["input"]);
        let note = s(&case["note"]);
        match case.get("error") {
            Some(_) => {
                assert!(
                    id_encoding::decode(input).is_err(),
                    "{note}: {input:?} should be refused"
                );
                assert!(!id_encoding::is_valid(input));
            }
            None => {
                assert_eq!(
                    id_encoding::decode(input),
                    Ok(arr(&case["key"])),
                    "{note}: {input:?}"
                );
                assert_eq!(
                    id_encoding::normalize(input).as_deref(),
                    Ok(s(&case["normalized"])),
                    "{note}"
                );
                assert!(id_encoding::is_valid(input));
            }
        }
        // The z32 error kind matches JS's z32 error, the rest are "Invalid Hypercore key".
        if let Some(err) = case.get("error") {
            let is_z32 = s(err).starts_with("Invalid character in base32");
            let got = id_encoding::decode(input);
            assert_eq!(
                matches!(got, Err(id_encoding::IdError::Z32(_))),
                is_z32,
                "{note}: {got:?}"
            );
        }
    }
}

#[test]
fn z32_codec() {
    let doc = load(include_str!("vectors/id_encoding.json"));
    for case in list(&doc, "z32_encode") {
        assert_eq!(z32::encode(&bytes(&case["bytes"])), s(&case["z32"]));
    }
    for case in list(&doc, "z32_decode") {
        assert_eq!(
            z32::decode(s(&case["z32"])),
            Ok(bytes(&case["bytes"])),
            "{case}"
        );
    }
}

#[test]
fn base32_codec() {
    let doc = load(include_str!("vectors/base32.json"));
    for case in list(&doc, "encode") {
        assert_eq!(base32::encode(&bytes(&case["bytes"])), s(&case["base32"]));
    }
    for case in list(&doc, "decode") {
        let input = s(&case["input"]);
        match case.get("error") {
            Some(_) => assert_eq!(
                base32::decode(input),
                Err(base32::Base32Error::InvalidCharacters),
                "{case}"
            ),
            None => assert_eq!(base32::decode(input), Ok(bytes(&case["bytes"])), "{case}"),
        }
    }
}

#[test]
fn hyperbeam_passphrases() {
    let doc = load(include_str!("vectors/base32.json"));
    for case in list(&doc, "hyperbeam_encode") {
        assert_eq!(
            base32::hyperbeam_encode(&bytes(&case["seed"])),
            s(&case["passphrase"])
        );
    }
    for case in list(&doc, "hyperbeam_key_pair") {
        let passphrase = s(&case["passphrase"]);
        let got = base32::hyperbeam_key_pair(passphrase);
        match case.get("error") {
            Some(err) => {
                let err = s(err);
                let want_chars = err.starts_with("Invalid base32");
                match got {
                    Err(base32::Base32Error::InvalidCharacters) => assert!(want_chars, "{case}"),
                    Err(base32::Base32Error::SeedLength(_)) => assert!(!want_chars, "{case}"),
                    Ok(_) => panic!("accepted what hyperbeam refuses: {case}"),
                }
            }
            None => {
                let kp = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(hex::encode(kp.seed()), s(&case["seed"]), "{case}");
                assert_eq!(hex::encode(kp.public), s(&case["public_key"]), "{case}");
                assert_eq!(hex::encode(kp.secret), s(&case["secret_key"]), "{case}");
            }
        }
    }
}

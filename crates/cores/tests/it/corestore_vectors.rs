//! Named-core key derivation against JS corestore 7.12.5: `tests/vectors/corestore.json` is the output of
//! `tests/interop/js/corestore_vectors.js` (a fixed primary key, names in nested namespaces). A second test
//! re-runs the script so the committed file cannot drift from the pinned package.

use holepunch_cores::corestore::{self, Corestore};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/corestore.json");

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("hex string"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn check(doc: &Value) {
    let primary_key = h32(&doc["primaryKey"]);
    let dir = testkit::scratch_dir("corestore-vectors");
    let store = Corestore::open_with_primary_key(&dir, primary_key).expect("open store");
    let cases = doc["cores"].as_array().expect("cores");
    assert!(cases.len() >= 6);
    for c in cases {
        let mut s = store.clone();
        for n in c["ns"].as_array().expect("ns") {
            s = s.namespace(n.as_str().expect("name"));
        }
        let name = c["name"].as_str().expect("name");
        assert_eq!(*s.namespace_key(), h32(&c["namespace"]), "namespace of {c}");
        let kp = s.create_key_pair(name);
        assert_eq!(kp.public, h32(&c["publicKey"]), "public key of {c}");
        assert_eq!(
            hex::encode(kp.secret),
            c["secretKey"].as_str().expect("secret"),
            "secret key of {c}"
        );
        assert_eq!(
            corestore::core_key(&kp.public),
            h32(&c["key"]),
            "key of {c}"
        );
        // The store makes exactly that core.
        let core = s.get(name).expect("get");
        assert_eq!(core.key(), h32(&c["key"]));
        assert_eq!(core.discovery_key(), h32(&c["discoveryKey"]));
        assert!(core.writable());
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn named_cores_derive_the_js_key_pairs() {
    check(&serde_json::from_str(VECTORS).expect("json"));
}

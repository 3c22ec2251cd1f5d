//! Multi-signature verification (`Verifier::verify_roots`) on arbitrary signatures, patches and roots, for
//! manifests with quorum 2 of 3 and `allowPatch`, and with a prologue; the `user-data` file decoder. Never
//! panics; made-up signatures never verify; decoded user data re-encodes to the same pairs.
#![no_main]

use holepunch::compact_encoding::{Decode, Reader};
use holepunch::crypto::{KeyPair, TreeNode};
use holepunch::hypercore::messages::{Manifest, Prologue, Signer};
use holepunch::hypercore::{caps, multisig, user_data, Verifier};
use libfuzzer_sys::fuzz_target;

fn manifest(quorum: u64, allow_patch: bool, prologue: Option<Prologue>) -> Manifest {
    Manifest {
        version: 1,
        allow_patch,
        quorum,
        signers: (1..=3u8)
            .map(|i| Signer {
                namespace: caps::default_namespace(),
                public_key: KeyPair::from_seed(&[i; 32]).public,
            })
            .collect(),
        prologue,
        linked: None,
        user_data: None,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut r = Reader::new(bytes);
    // A few roots and a length from the front of the input, the signature from the rest.
    let mut roots = Vec::new();
    let length = r.uint().unwrap_or(0) % (1 << 20);
    while roots.len() < 4 {
        let (Ok(index), Ok(size), Ok(hash)) = (r.uint(), r.uint(), r.fixed32()) else {
            break;
        };
        roots.push(TreeNode { index, size, hash });
    }
    let sig = r.rest();
    for m in [
        manifest(2, true, None),
        manifest(1, true, Some(Prologue { hash: [3; 32], length: 2 })),
    ] {
        let v = Verifier::new(&caps::manifest_hash(&m), Some(&m)).expect("valid manifest");
        assert!(!v.verify_roots(&roots, length, 0, Some(sig)) || v.prologue_covers(length));
    }
    let _ = multisig::inflate(sig);
    if let Ok(pairs) = user_data::decode(bytes) {
        assert_eq!(user_data::decode(&user_data::encode(&pairs)).ok(), Some(pairs));
    }
    let _ = Manifest::from_bytes(bytes);
});

//! Version 1 manifests as autobase writes them: several signers with a quorum (partial signatures, patches,
//! assembled multi-signatures), `allowPatch`, a prologue; `signed_length`, `contiguous_length`, `info` and user
//! data. Byte-for-byte agreement with JS is in the interop crate (`hypercore_multisig_interop`).

use holepunch_cores::hypercore::messages::{
    Data, Manifest, Prologue, Request, RequestBlock, RequestUpgrade, Signer,
};
use holepunch_cores::hypercore::multisig::{self, PartialSignature};
use holepunch_cores::hypercore::{
    caps, user_data, Hypercore, HypercoreError, Verifier, VerifierError,
};
use holepunch_wire::compact_encoding::Decode;
use holepunch_wire::crypto::{KeyPair, TreeNode};
use proptest::prelude::*;

fn tmp(name: &str) -> std::path::PathBuf {
    testkit::scratch_dir(&format!("hc-multisig-{name}"))
}

fn kps() -> Vec<KeyPair> {
    (1..=3).map(|i| KeyPair::from_seed(&[i; 32])).collect()
}

fn manifest(
    kps: &[KeyPair],
    quorum: u64,
    allow_patch: bool,
    prologue: Option<Prologue>,
) -> Manifest {
    Manifest {
        version: 1,
        allow_patch,
        quorum,
        signers: kps
            .iter()
            .map(|kp| Signer {
                namespace: caps::default_namespace(),
                public_key: kp.public,
            })
            .collect(),
        prologue,
        linked: None,
        user_data: None,
    }
}

fn blocks(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("block {i}").repeat(i as usize % 5 + 1).into_bytes())
        .collect()
}

fn upgrade_request(start: u64, length: u64, block: Option<u64>) -> Request {
    Request {
        id: 1,
        block: block.map(|index| RequestBlock { index, nodes: 0 }),
        upgrade: Some(RequestUpgrade { start, length }),
        manifest: true,
        ..Request::default()
    }
}

/// Signer `i`'s core of `m` holding the first `len` blocks.
fn signer_core(name: &str, m: &Manifest, kp: &KeyPair, len: u64) -> Hypercore {
    let core = Hypercore::create_with_manifest(tmp(name), kp.clone(), m.clone()).expect("create");
    let bs = blocks(len);
    let refs: Vec<&[u8]> = bs.iter().map(Vec::as_slice).collect();
    core.append(&refs).expect("append");
    core
}

fn partial(core: &Hypercore, signer: u64, from: u64) -> PartialSignature {
    core.partial_signature(signer, from, None, None)
        .expect("partial")
        .expect("in range")
}

#[test]
fn quorum_with_patches_signs_and_replicates() {
    let kps = kps();
    let m = manifest(&kps, 2, true, None);
    let a = signer_core("q-a", &m, &kps[0], 6);
    let b = signer_core("q-b", &m, &kps[1], 9);
    let c = signer_core("q-c", &m, &kps[2], 13);
    assert_eq!((a.signed_length(), b.signed_length()), (0, 0));
    assert_eq!(
        a.signature().map(|s| s.len()),
        Some(64),
        "a bare partial signature, as JS"
    );
    assert_eq!(multisig::signable_length(&[6, 9, 13], 2), 9);
    assert_eq!(
        a.partial_signature(0, 7, None, None).expect("partial"),
        None
    );

    // Length 6: a signed it, b and c with patches of 3 and 7 (their patch nodes overlap).
    let (pa, pb, pc) = (partial(&a, 0, 6), partial(&b, 1, 6), partial(&c, 2, 6));
    assert_eq!((pa.patch, pb.patch, pc.patch), (0, 3, 7));
    for inputs in [
        vec![pb.clone(), pc.clone()],
        vec![pa.clone(), pc.clone()],
        vec![pc.clone(), pa.clone()],
    ] {
        let sig = multisig::assemble(&inputs);
        a.set_signature(sig).expect("a quorum of 2 verifies");
    }
    assert_eq!(a.signed_length(), 6);
    let sig = multisig::assemble(&[pb.clone(), pc.clone()]);
    let decoded = multisig::inflate(&sig).expect("decodes");
    let unique: std::collections::BTreeSet<u64> = decoded.patch.iter().map(|n| n.index).collect();
    assert_eq!(unique.len(), decoded.patch.len(), "patch nodes sent once");

    // A reader takes the signed upgrade and every block.
    let reader = Hypercore::create_reader(tmp("q-reader"), a.key(), None).expect("reader");
    for i in 0..6 {
        let proof = a.proof(&upgrade_request(0, 6, Some(i))).expect("proof");
        reader.apply_proof(&proof).expect("verifies");
    }
    assert_eq!(
        (
            reader.length(),
            reader.signed_length(),
            reader.contiguous_length()
        ),
        (6, 6, 6)
    );
    let info = reader.info();
    assert_eq!((info.length, info.stored_blocks, info.fork), (6, 6, 0));

    // b extends to 9 with c's patch: a head of a signer of several moves its signed length only once assembled.
    let pb9 = partial(&b, 1, 9);
    let pc9 = partial(&c, 2, 9);
    assert_eq!(b.signed_length(), 0);
    b.set_signature(multisig::assemble(&[pc9, pb9]))
        .expect("verifies");
    assert_eq!(b.signed_length(), 9);
    let up = b.proof(&upgrade_request(6, 3, None)).expect("proof");
    reader.apply_proof(&up).expect("upgrade to 9");
    assert_eq!(
        (
            reader.length(),
            reader.signed_length(),
            reader.contiguous_length()
        ),
        (9, 9, 6)
    );

    // b appends alone: its head is a partial signature again; the signed length stays, also after a reopen.
    b.append(&[b"more"]).expect("append");
    assert_eq!((b.length(), b.signed_length()), (10, 9));
    let b_dir = b.dir().to_path_buf();
    drop(b);
    let b = Hypercore::open(&b_dir).expect("reopen");
    assert_eq!((b.length(), b.signed_length()), (10, 9));
    let stale = b.proof(&upgrade_request(9, 1, None)).expect("proof");
    assert!(matches!(
        reader.apply_proof(&stale),
        Err(HypercoreError::Proof(_))
    ));
}

#[test]
fn append_signed_publishes_only_quorum_signed_heads() {
    let kps = kps();
    let m = manifest(&kps, 2, false, None);
    let a = signer_core("as-a", &m, &kps[0], 0);
    let b = signer_core("as-b", &m, &kps[1], 0);
    let c = signer_core("as-c", &m, &kps[2], 0);
    let reader = Hypercore::create_reader(tmp("as-r"), a.key(), Some(m.clone())).expect("reader");
    for round in 0..3u8 {
        let blocks: Vec<Vec<u8>> = (0..=round).map(|i| vec![round, i]).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let pa = a.pending_partial_signature(&refs).expect("partial");
        let pc = c.pending_partial_signature(&refs).expect("partial");
        assert_eq!((pa.signer, pc.signer), (0, 2));
        let before = a.length();
        assert!(a
            .append_signed(&refs, multisig::assemble(std::slice::from_ref(&pa)))
            .is_err());
        assert_eq!(a.length(), before, "nothing written");
        let sig = multisig::assemble(&[pa, pc]);
        for core in [&a, &b, &c, &reader] {
            let out = core.append_signed(&refs, sig.clone()).expect("quorum");
            assert_eq!(core.signed_length(), out.length);
        }
    }
    assert_eq!(
        (a.length(), reader.length(), reader.signed_length()),
        (6, 6, 6)
    );
    assert_eq!(a.tree(), reader.tree());
    assert!(
        reader.pending_partial_signature(&[b"x"]).is_err(),
        "no key pair"
    );
    let outsider = signer_core("as-out", &manifest(&kps[..1], 1, false, None), &kps[0], 0);
    assert!(outsider
        .append_signed(&[b"x"], a.signature().expect("sig"))
        .is_err());
}

#[test]
fn bad_multisignatures_are_refused() {
    let kps = kps();
    let m = manifest(&kps, 2, true, None);
    let a = signer_core("bad-a", &m, &kps[0], 5);
    let b = signer_core("bad-b", &m, &kps[1], 8);
    let (pa, pb) = (partial(&a, 0, 5), partial(&b, 1, 5));
    let refused = |sig: Vec<u8>| assert!(a.set_signature(sig).is_err());
    refused(multisig::assemble(std::slice::from_ref(&pa)));
    refused(multisig::assemble(&[pa.clone(), pa.clone()]));
    refused(multisig::assemble(&[
        pa.clone(),
        PartialSignature {
            signer: 7,
            ..pb.clone()
        },
    ]));
    refused(multisig::assemble(&[
        pa.clone(),
        PartialSignature {
            nodes: None,
            ..pb.clone()
        },
    ]));
    refused(multisig::assemble(&[
        pa.clone(),
        PartialSignature {
            patch: 2,
            ..pb.clone()
        },
    ]));
    refused(multisig::assemble(&[
        pa.clone(),
        PartialSignature {
            patch: 0,
            nodes: None,
            ..pb.clone()
        },
    ]));
    let mut wrong_node = pb.clone();
    if let Some(n) = wrong_node.nodes.as_mut().and_then(|ns| ns.first_mut()) {
        n.hash[0] ^= 1;
    }
    refused(multisig::assemble(&[pa.clone(), wrong_node]));
    refused(vec![0xff; 3]);
    refused(Vec::new());
    // A signature from outside the manifest.
    let outsider = KeyPair::from_seed(&[9; 32]);
    let tree = a.tree();
    let verifier = Verifier::new(&a.key(), Some(&m)).expect("verifier");
    assert_eq!(
        verifier.sign(&outsider, &tree.hash(), tree.length, tree.fork),
        Err(VerifierError::NotASigner)
    );
    // Without allowPatch the patch is not applied: b's signature of 8 does not sign 5.
    let strict = manifest(&kps, 2, false, None);
    let sa = signer_core("bad-sa", &strict, &kps[0], 5);
    let sb = signer_core("bad-sb", &strict, &kps[1], 8);
    let sig = multisig::assemble(&[partial(&sa, 0, 5), partial(&sb, 1, 5)]);
    assert!(sa.set_signature(sig).is_err());
    let sb5 = signer_core("bad-sb5", &strict, &kps[1], 5);
    sa.set_signature(multisig::assemble(&[
        partial(&sa, 0, 5),
        partial(&sb5, 1, 5),
    ]))
    .expect("same length, no patch");
    assert_eq!(sa.signed_length(), 5);
    assert!(a.signed_length() == 0 && b.signed_length() == 0);
}

#[test]
fn prologue_is_trusted_by_its_tree_hash() {
    let kps = kps();
    let base = signer_core("pro-base", &manifest(&kps[..1], 1, false, None), &kps[0], 3);
    let prologue = Prologue {
        hash: base.tree_hash_at(3).expect("hash"),
        length: 3,
    };
    assert!(base.tree_hash_at(4).is_err());
    let m = manifest(&kps[..2], 1, false, Some(prologue));
    let w = signer_core("pro-w", &m, &kps[0], 2);
    assert_eq!(w.signed_length(), 0, "below the prologue");
    w.append(&[blocks(3)[2].as_slice()]).expect("append");
    assert_eq!(w.signed_length(), 3, "the prologue's tree");
    let first = w.proof(&upgrade_request(0, 3, Some(0))).expect("proof");
    let mut unsigned = first.clone();
    if let Some(u) = unsigned.upgrade.as_mut() {
        u.signature = None;
    }
    w.append(&[b"past the prologue"]).expect("append");
    assert_eq!(w.signed_length(), 3);
    w.set_signature(multisig::assemble(&[partial(&w, 0, 4)]))
        .expect("quorum 1");
    assert_eq!(w.signed_length(), 4);

    let reader =
        Hypercore::create_reader(tmp("pro-reader"), w.key(), Some(m.clone())).expect("reader");
    reader
        .apply_proof(&unsigned)
        .expect("no signature needed up to the prologue");
    assert_eq!((reader.length(), reader.signed_length()), (3, 3));
    let next = w.proof(&upgrade_request(3, 1, Some(3))).expect("proof");
    let mut unsigned_next = next.clone();
    if let Some(u) = unsigned_next.upgrade.as_mut() {
        u.signature = None;
    }
    assert!(
        reader.apply_proof(&unsigned_next).is_err(),
        "past the prologue a signature is needed"
    );
    reader.apply_proof(&next).expect("signed");
    assert_eq!(reader.length(), 4);

    // Another tree of length 3 is not the prologue; an upgrade into the prologue must prove it whole.
    let other = signer_core("pro-other", &m, &kps[0], 0);
    other.append(&[b"x", b"y", b"z"]).expect("append");
    assert_eq!(other.signed_length(), 0);
    let forged = other.proof(&upgrade_request(0, 3, Some(0))).expect("proof");
    let r2 = Hypercore::create_reader(tmp("pro-r2"), w.key(), Some(m.clone())).expect("reader");
    assert!(r2.apply_proof(&forged).is_err());
    let mut short = w.proof(&upgrade_request(0, 2, Some(0))).expect("proof");
    if let Some(u) = short.upgrade.as_mut() {
        u.signature = None;
        u.additional_nodes.clear();
    }
    assert_eq!(short.upgrade.as_ref().map(|u| u.length), Some(2));
    assert!(r2.apply_proof(&short).is_err());

    // Verifier: a quorum above the signers, or 0 without a prologue, is refused; 0 with one is a core that
    // only ever holds its prologue.
    let key = |m: &Manifest| caps::manifest_hash(m);
    let too_many = manifest(&kps[..2], 3, false, None);
    assert!(Verifier::new(&key(&too_many), Some(&too_many)).is_err());
    let zero = manifest(&kps[..2], 0, false, None);
    assert!(Verifier::new(&key(&zero), Some(&zero)).is_err());
    let anchor = manifest(&[], 0, false, Some(prologue));
    let v = Verifier::new(&key(&anchor), Some(&anchor)).expect("prologue only");
    let roots = base.tree().roots;
    assert!(v.verify_roots(&roots, 3, 0, None));
    assert!(!v.verify_roots(&roots, 4, 0, Some(&[0; 64])));
    // Such a core (an autobase anchor) takes its prologue's blocks without a key pair, and nothing else.
    let anchor_core =
        Hypercore::create_reader(tmp("pro-anchor"), key(&anchor), Some(anchor.clone()))
            .expect("anchor");
    assert!(matches!(
        anchor_core.append(&[b"x"]),
        Err(HypercoreError::NotWritable)
    ));
    let bs = blocks(3);
    let refs: Vec<&[u8]> = bs.iter().map(Vec::as_slice).collect();
    anchor_core.append(&refs).expect("the prologue's blocks");
    assert_eq!((anchor_core.length(), anchor_core.signed_length()), (3, 3));
    assert!(matches!(
        anchor_core.append(&[b"x"]),
        Err(HypercoreError::NotWritable)
    ));
    assert_eq!(anchor_core.length(), 3);
}

#[test]
fn user_data_native_and_js_stores() {
    let kp = KeyPair::from_seed(&[4; 32]);
    let native = Hypercore::create(tmp("ud-native"), kp.clone()).expect("create");
    let js = Hypercore::create_js(
        tmp("ud-js"),
        kp.public,
        None,
        Some(&kp),
        vec![("corestore/name".into(), b"db".to_vec())],
        None,
    )
    .expect("create js");
    for (name, core) in [("ud-native", native), ("ud-js", js)] {
        let dir = core.dir().to_path_buf();
        assert_eq!(core.get_user_data("referrer"), None);
        core.set_user_data("referrer", Some(b"one")).expect("set");
        core.set_user_data("referrer", Some(b"two")).expect("set");
        core.set_user_data("autobase/view", Some(b"view"))
            .expect("set");
        core.set_user_data("gone", Some(b"x")).expect("set");
        core.set_user_data("gone", None).expect("unset");
        core.set_user_data("empty", Some(b""))
            .expect("empty removes");
        core.append(&[b"a"]).expect("append");
        drop(core);
        let core = Hypercore::open(&dir).expect("reopen");
        assert_eq!(core.get_user_data("referrer"), Some(b"two".to_vec()));
        assert_eq!(core.get_user_data("autobase/view"), Some(b"view".to_vec()));
        assert_eq!(core.get_user_data("gone"), None);
        assert_eq!(core.get_user_data("empty"), None);
        assert_eq!((core.signed_length(), core.contiguous_length()), (1, 1));
        if name == "ud-js" {
            assert_eq!(core.get_user_data("corestore/name"), Some(b"db".to_vec()));
        }
    }
}

#[test]
fn damaged_user_data_file_is_an_error_not_a_loss() {
    let kp = KeyPair::from_seed(&[5; 32]);
    let dir = tmp("ud-damaged");
    let core = Hypercore::create(&dir, kp).expect("create");
    core.set_user_data("k", Some(b"v")).expect("set");
    drop(core);
    let path = dir.join("user-data");
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    assert!(Hypercore::open(&dir).is_err());
}

fn arb_node() -> impl Strategy<Value = TreeNode> {
    (0u64..64, 0u64..1000, any::<[u8; 32]>()).prop_map(|(index, size, hash)| TreeNode {
        index,
        size,
        hash,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary signature bytes, patches and roots never panic the verifier, and never verify.
    #[test]
    fn multisig_verify_never_panics(
        sig in proptest::collection::vec(any::<u8>(), 0..400),
        roots in proptest::collection::vec(arb_node(), 0..6),
        length in 0u64..40,
        proofs in proptest::collection::vec((0u64..5, 0u64..40), 0..4),
        patch in proptest::collection::vec(arb_node(), 0..8),
    ) {
        let kps = kps();
        for m in [manifest(&kps, 2, true, None), manifest(&kps[..2], 1, true, Some(Prologue { hash: [1; 32], length: 4 }))] {
            let v = Verifier::new(&caps::manifest_hash(&m), Some(&m)).expect("verifier");
            prop_assert!(!v.verify_roots(&roots, length, 0, Some(&sig)));
            let built = multisig::assemble(&proofs.iter().map(|&(signer, patch_len)| PartialSignature {
                signer,
                signature: [7; 64],
                patch: patch_len,
                nodes: Some(patch.clone()),
            }).collect::<Vec<_>>());
            prop_assert!(!v.verify_roots(&roots, length, 0, Some(&built)));
        }
        let _ = multisig::inflate(&sig);
        let _ = user_data::decode(&sig);
        let _ = Data::from_bytes(&sig);
    }

    /// Whatever user data decodes re-encodes to the same bytes.
    #[test]
    fn user_data_round_trips(pairs in proptest::collection::vec(("[a-z/]{0,12}", proptest::collection::vec(any::<u8>(), 1..20)), 0..5)) {
        let bytes = user_data::encode(&pairs);
        prop_assert_eq!(user_data::decode(&bytes).expect("decodes"), pairs);
    }
}

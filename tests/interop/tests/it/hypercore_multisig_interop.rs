//! Multi-signer cores as autobase makes them (issue #16), against JS hypercore 11 (`js/hypercore_multisig.js`):
//! - a manifest of 3 signers with quorum 2 and `allowPatch`: each side's partial signatures (one with a patch of
//!   3 blocks) and the assembled multi-signature are byte for byte the same; a JS-made proof signed by it is
//!   verified by a Rust reader, and a Rust-made one by a JS reader; tampered or short signatures are refused;
//! - a manifest with a prologue: the first 3 blocks are taken on their tree hash with no signature, in both
//!   directions;
//! - user data, `signedLength` and `contiguousLength` where JS reports them;
//! - a multi-signer core (patched quorum signature) replicated by the Rust replicator to a JS reader
//!   (`js/hypercore_replicate.js`), which learns the manifest from the first proof, then follows a live append
//!   made with `append_signed` (the quorum signs before the blocks are published).

use std::time::Duration;

use holepunch::compact_encoding::{Decode, Encode};
use holepunch::crypto::{KeyPair, TreeNode};
use holepunch::hypercore::messages::{
    Data, Manifest, Prologue, Request, RequestBlock, RequestUpgrade, Signer,
};
use holepunch::hypercore::multisig::{self, PartialSignature};
use holepunch::hypercore::{caps, Hypercore};
use serde_json::Value;

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn nodes(v: &Value) -> Option<Vec<TreeNode>> {
    v.as_array().map(|list| {
        list.iter()
            .map(|n| TreeNode {
                index: n["index"].as_u64().expect("index"),
                size: n["size"].as_u64().expect("size"),
                hash: unhex(&n["hash"]).try_into().expect("32 bytes"),
            })
            .collect()
    })
}

fn partial_json(p: &PartialSignature) -> Value {
    serde_json::json!({
        "signer": p.signer,
        "signature": hex::encode(p.signature),
        "patch": p.patch,
        "nodes": p.nodes.as_ref().map(|ns| ns.iter().map(|n| serde_json::json!({
            "index": n.index, "size": n.size, "hash": hex::encode(n.hash)
        })).collect::<Vec<_>>()),
    })
}

fn signers(kps: &[&KeyPair]) -> Vec<Signer> {
    kps.iter()
        .map(|kp| Signer {
            namespace: caps::default_namespace(),
            public_key: kp.public,
        })
        .collect()
}

/// Rust-made proofs applied in order by a JS reader of `key` (`js/hypercore-verify.js`).
fn js_verify(key: &[u8; 32], proofs: &[Data]) -> Vec<Value> {
    let input = serde_json::json!({
        "key": hex::encode(key),
        "proofs": proofs.iter().map(|p| hex::encode(p.to_bytes())).collect::<Vec<_>>(),
    });
    let out = interop::run_with_stdin(
        "hypercore-verify.js",
        &[],
        input.to_string().as_bytes(),
        Duration::from_secs(60),
    );
    out.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn request(block: u64, start: u64, length: u64, manifest: bool) -> Request {
    Request {
        id: 1,
        block: Some(RequestBlock {
            index: block,
            nodes: 0,
        }),
        upgrade: Some(RequestUpgrade { start, length }),
        manifest,
        ..Request::default()
    }
}

#[test]
fn multisig_and_prologue_cores_match_js_hypercore() {
    interop::require_js();
    let out = interop::run_with_stdin("hypercore_multisig.js", &[], b"", Duration::from_secs(120));
    let js: Value = serde_json::from_str(&out).expect("json");
    let kps: Vec<KeyPair> = js["seeds"]
        .as_array()
        .expect("seeds")
        .iter()
        .map(|s| KeyPair::from_seed(&unhex(s).try_into().expect("seed")))
        .collect();
    let blocks: Vec<Vec<u8>> = js["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(unhex)
        .collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    let dir = interop::scratch_dir("hc-multisig-interop");

    // Quorum 2 of 3 with patches.
    let m = &js["multi"];
    let manifest = Manifest {
        version: 1,
        allow_patch: true,
        quorum: 2,
        signers: signers(&[&kps[0], &kps[1], &kps[2]]),
        prologue: None,
        linked: None,
        user_data: None,
    };
    assert_eq!(
        hex::encode(manifest.to_bytes()),
        m["manifest"].as_str().expect("manifest")
    );
    let key = caps::manifest_hash(&manifest);
    assert_eq!(hex::encode(key), m["key"].as_str().expect("key"));
    let a = Hypercore::create_with_manifest(dir.join("a"), kps[0].clone(), manifest.clone())
        .expect("a");
    let b = Hypercore::create_with_manifest(dir.join("b"), kps[1].clone(), manifest.clone())
        .expect("b");
    a.append(&refs[..8]).expect("append");
    b.append(&refs[..11]).expect("append");
    // Each signer's own head carries its partial signature only.
    assert_eq!((a.length(), a.signed_length()), (8, 0));
    let pa = a
        .partial_signature(0, 8, None, None)
        .expect("partial")
        .expect("in range");
    let pb = b
        .partial_signature(1, 8, None, None)
        .expect("partial")
        .expect("in range");
    assert_eq!(pb.patch, 3);
    assert_eq!(
        vec![partial_json(&pa), partial_json(&pb)],
        m["partials"].as_array().expect("partials").clone(),
        "partial signatures as JS makes them"
    );
    for (ours, theirs) in [&pa, &pb]
        .iter()
        .zip(m["partials"].as_array().expect("partials"))
    {
        assert_eq!(ours.nodes, nodes(&theirs["nodes"]));
    }
    let assembled = multisig::assemble(&[pa.clone(), pb.clone()]);
    assert_eq!(
        hex::encode(&assembled),
        m["assembled"].as_str().expect("assembled")
    );
    assert_eq!(m["jsVerifies"], Value::Bool(true));

    // Short of the quorum, tampered, or a patch that does not lead to the signed tree: refused.
    assert!(a
        .set_signature(multisig::assemble(std::slice::from_ref(&pa)))
        .is_err());
    let mut bad = assembled.clone();
    let n = bad.len();
    bad[n - 1] ^= 1; // the last patch node's hash
    assert!(a.set_signature(bad).is_err());
    let twice = multisig::assemble(&[pa.clone(), pa.clone()]);
    assert!(a.set_signature(twice).is_err(), "one signer counted twice");
    assert_eq!(a.signed_length(), 0);
    a.set_signature(unhex(&m["assembled"]))
        .expect("JS's multi-signature verifies here");
    assert_eq!((a.signed_length(), a.info().signed_length), (8, 8));

    // A JS proof signed by it, into a Rust reader (which learns the manifest from the proof).
    let reader = Hypercore::create_reader(dir.join("reader"), key, None).expect("reader");
    let proof = Data::from_bytes(&unhex(&m["proof"])).expect("wire.data");
    let mut tampered = proof.clone();
    if let Some(u) = tampered.upgrade.as_mut() {
        u.signature = Some(multisig::assemble(std::slice::from_ref(&pb)));
    }
    assert!(
        reader.apply_proof(&tampered).is_err(),
        "one signature of a quorum of 2"
    );
    reader.apply_proof(&proof).expect("JS proof verifies");
    assert_eq!((reader.length(), reader.signed_length()), (8, 8));
    assert_eq!(reader.get(5).expect("get"), Some(blocks[5].clone()));
    assert_eq!(reader.contiguous_length(), 0);

    // A Rust proof signed by the Rust-assembled signature, into a JS reader.
    a.set_signature(assembled).expect("ours verifies");
    let ours = a.proof(&request(5, 0, 8, true)).expect("proof");
    let res = js_verify(&key, &[ours]);
    assert_eq!(res[0]["ok"], Value::Bool(true), "{res:?}");
    assert_eq!(res[0]["length"], 8);
    assert_eq!(
        res[0]["block"].as_str(),
        Some(hex::encode(&blocks[5]).as_str())
    );

    // A prologue: the tree of blocks 0..3, then a quorum of 1 of 2 signers.
    let p = &js["prologue"];
    let pmanifest = Manifest {
        version: 1,
        allow_patch: false,
        quorum: 1,
        signers: signers(&[&kps[0], &kps[1]]),
        prologue: Some(Prologue {
            hash: a.tree_hash_at(3).expect("tree hash"),
            length: 3,
        }),
        linked: None,
        user_data: None,
    };
    assert_eq!(
        hex::encode(pmanifest.to_bytes()),
        p["manifest"].as_str().expect("manifest")
    );
    let pkey = caps::manifest_hash(&pmanifest);
    assert_eq!(hex::encode(pkey), p["key"].as_str().expect("key"));
    let reader = Hypercore::create_reader(dir.join("preader"), pkey, None).expect("reader");
    let proofs: Vec<Data> = p["proofs"]
        .as_array()
        .expect("proofs")
        .iter()
        .map(|h| Data::from_bytes(&unhex(h)).expect("wire.data"))
        .collect();
    assert_eq!(
        proofs[0].upgrade.as_ref().map(|u| u.signature.is_none()),
        Some(true)
    );
    reader
        .apply_proof(&proofs[0])
        .expect("prologue proof without a signature");
    assert_eq!((reader.length(), reader.signed_length()), (3, 3));
    reader
        .apply_proof(&proofs[1])
        .expect("signed past the prologue");
    assert_eq!((reader.length(), reader.signed_length()), (5, 5));
    assert_eq!(reader.get(4).expect("get"), Some(blocks[4].clone()));

    let pc = Hypercore::create_with_manifest(dir.join("p"), kps[0].clone(), pmanifest).expect("p");
    pc.append(&refs[..3]).expect("append");
    assert_eq!(pc.signed_length(), 3, "the prologue proves the head");
    let first = pc.proof(&request(1, 0, 3, true)).expect("proof");
    pc.append(&refs[3..5]).expect("append");
    let passembled = multisig::assemble(&[pc
        .partial_signature(0, 5, None, None)
        .expect("partial")
        .expect("in range")]);
    assert_eq!(
        hex::encode(&passembled),
        p["assembled"].as_str().expect("assembled")
    );
    pc.set_signature(passembled).expect("verifies");
    let second = pc.proof(&request(4, 3, 2, false)).expect("proof");
    let res = js_verify(&pkey, &[first, second]);
    assert_eq!(
        res.iter()
            .map(|r| (r["ok"].clone(), r["length"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (Value::Bool(true), Value::from(3)),
            (Value::Bool(true), Value::from(5))
        ],
        "{res:?}"
    );

    // An autobase anchor core: no signers, its one block proven by the prologue; appended without a key pair.
    let an = &js["anchor"];
    let amanifest = Manifest::from_bytes(&unhex(&an["manifest"])).expect("manifest");
    assert_eq!(
        (amanifest.version, amanifest.quorum, amanifest.signers.len()),
        (2, 0, 0)
    );
    assert_eq!(
        hex::encode(amanifest.to_bytes()),
        an["manifest"].as_str().expect("manifest")
    );
    let akey = caps::manifest_hash(&amanifest);
    assert_eq!(hex::encode(akey), an["key"].as_str().expect("key"));
    let anchor =
        Hypercore::create_reader(dir.join("anchor"), akey, Some(amanifest)).expect("anchor");
    assert!(anchor.append(&[b"not the prologue"]).is_err());
    anchor
        .append(&[&unhex(&an["block"])])
        .expect("the prologue's block");
    assert_eq!(
        (anchor.length(), anchor.signed_length(), anchor.signature()),
        (1, 1, None)
    );
    let res = js_verify(
        &akey,
        &[anchor.proof(&request(0, 0, 1, true)).expect("proof")],
    );
    assert_eq!(
        (res[0]["ok"].clone(), res[0]["length"].clone()),
        (Value::Bool(true), Value::from(1)),
        "{res:?}"
    );

    // User data, as JS ends up after the same calls.
    let u = &js["userData"];
    a.set_user_data("referrer", Some(b"one")).expect("set");
    a.set_user_data("referrer", Some(b"two")).expect("set");
    a.set_user_data("gone", Some(b"x")).expect("set");
    a.set_user_data("gone", None).expect("unset");
    drop(a);
    let reopened = Hypercore::open(dir.join("a")).expect("reopen");
    assert_eq!(
        reopened.get_user_data("referrer").map(hex::encode),
        u["referrer"].as_str().map(String::from)
    );
    assert_eq!(reopened.get_user_data("gone"), None);
    assert_eq!(u["gone"], Value::Null);
    assert_eq!(
        reopened.contiguous_length(),
        u["contiguousLength"].as_u64().expect("contiguous")
    );
    assert_eq!(
        reopened.signed_length(),
        u["signedLength"].as_u64().expect("signed")
    );
}

#[tokio::test]
async fn js_reader_replicates_a_rust_multisig_core() {
    use holepunch::crypto::hash;
    use holepunch::hypercore::replicator::{replicate_stream, Replicator};
    use holepunch::noise::Keypair;
    use holepunch::secret_stream::SecretStream;
    use tokio::net::TcpListener;

    interop::require_js();
    const T: Duration = Duration::from_secs(60);
    let kps: Vec<KeyPair> = (1..=3).map(|i| KeyPair::from_seed(&[i; 32])).collect();
    let manifest = Manifest {
        version: 1,
        allow_patch: true,
        quorum: 2,
        signers: signers(&[&kps[0], &kps[1], &kps[2]]),
        prologue: None,
        linked: None,
        user_data: None,
    };
    let dir = interop::scratch_dir("hc-multisig-replicate");
    let blocks: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            format!("block {i} ")
                .repeat(i as usize % 9 + 1)
                .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    let a = Hypercore::create_with_manifest(dir.join("a"), kps[0].clone(), manifest.clone())
        .expect("a");
    let c = Hypercore::create_with_manifest(dir.join("c"), kps[2].clone(), manifest).expect("c");
    a.append(&refs[..250]).expect("append");
    c.append(&refs).expect("append");
    let sig = multisig::assemble(&[
        c.partial_signature(2, 250, None, None)
            .expect("partial")
            .expect("in range"),
        a.partial_signature(0, 250, None, None)
            .expect("partial")
            .expect("in range"),
    ]);
    a.set_signature(sig).expect("quorum");
    assert_eq!(a.signed_length(), 250);

    let rep = Replicator::new(a.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let js_dir = dir.join("js");
    let mut js = interop::tokio::node(
        "hypercore_replicate.js",
        &[
            "reader",
            js_dir.to_str().expect("utf8"),
            &hex::encode(a.key()),
            "connect",
            &port,
        ],
    );
    let (tcp, _) = tokio::time::timeout(T, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    let stream = SecretStream::accept(tcp, &Keypair::generate())
        .await
        .expect("secret stream");
    let _mux = replicate_stream(stream, std::slice::from_ref(&rep));
    let line = js.line(T).await;
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["length"], 250, "{line}");
    let all: Vec<u8> = blocks[..250].concat();
    assert_eq!(
        v["hash"].as_str(),
        Some(hex::encode(hash(&[&all])).as_str())
    );
    // Live: a and c sign the next 50 blocks before a appends them with the quorum's signature.
    let more = &refs[250..];
    let sig = multisig::assemble(&[
        a.pending_partial_signature(more).expect("partial"),
        c.partial_signature(2, 300, None, None)
            .expect("partial")
            .expect("in range"),
    ]);
    a.append_signed(more, sig).expect("quorum");
    let line = js.ask("wait 300", T).await;
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["length"], 300, "{line}");
    assert_eq!(
        v["hash"].as_str(),
        Some(hex::encode(hash(&[&blocks.concat()])).as_str())
    );
    assert!(js.finish(T).await.is_some_and(|s| s.success()));
}

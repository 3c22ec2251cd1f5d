//! Property tests for the hypercore decoders and proof verification: truncated, mutated and random inputs give
//! errors, never panics; valid values round-trip; random appends/truncations always yield proofs that verify.

use holepunch_cores::hypercore::messages::{
    Data, DataBlock, DataUpgrade, Manifest, MultiSignature, Request, RequestBlock, RequestUpgrade,
};
use holepunch_cores::hypercore::storage::{parse_header, RecordView};
use holepunch_cores::hypercore::tree::{self, Batch, ProofRequest, TreeState};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::TreeNode;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn build(n: u64) -> (TreeState, BTreeMap<u64, TreeNode>, Vec<Vec<u8>>) {
    let mut batch = Batch::new(&TreeState::default());
    let blocks: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("block number {i}").into_bytes())
        .collect();
    for b in &blocks {
        batch.append(b);
    }
    let nodes = batch.nodes.iter().map(|n| (n.index, *n)).collect();
    (batch.state(Some(vec![0; 64])), nodes, blocks)
}

fn sample_data() -> Vec<u8> {
    let (state, nodes, blocks) = build(13);
    let req = ProofRequest {
        block: Some(RequestBlock { index: 6, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 13,
        }),
        ..ProofRequest::default()
    };
    let mut data = tree::proof(&state, &nodes, &req).expect("proof");
    if let Some(b) = data.block.as_mut() {
        b.value.clone_from(&blocks[6]);
    }
    data.manifest = Some(Manifest::default_signer([3; 32]));
    data.to_bytes()
}

/// Decodes `bytes` with every hypercore decoder; none may panic. Whatever decodes re-encodes to something that
/// decodes to the same value.
fn decode_all(bytes: &[u8]) {
    if let Ok(d) = Data::from_bytes(bytes) {
        assert_eq!(Data::from_bytes_exact(&d.to_bytes()), Ok(d.clone()));
        // Verifying against a small tree must not panic either.
        let (state, nodes, _) = build(13);
        let _ = tree::verify(&state, &nodes, &d);
        let _ = tree::verify(&TreeState::default(), &BTreeMap::new(), &d);
    }
    if let Ok(r) = Request::from_bytes(bytes) {
        assert_eq!(Request::from_bytes_exact(&r.to_bytes()), Ok(r.clone()));
        let (state, nodes, _) = build(13);
        let _ = tree::proof(
            &state,
            &nodes,
            &ProofRequest {
                block: r.block,
                hash: r.hash,
                seek: r.seek,
                upgrade: r.upgrade,
            },
        );
    }
    if let Ok(m) = Manifest::from_bytes(bytes) {
        assert_eq!(Manifest::from_bytes_exact(&m.to_bytes()), Ok(m));
    }
    if let Ok(s) = MultiSignature::from_bytes(bytes) {
        assert_eq!(MultiSignature::from_bytes_exact(&s.to_bytes()), Ok(s));
    }
    let _ = RecordView::decode(bytes);
    let _ = parse_header(bytes);
}

#[test]
fn truncated_data_is_an_error() {
    let full = sample_data();
    assert!(Data::from_bytes_exact(&full).is_ok());
    for cut in 0..full.len() {
        assert!(Data::from_bytes(&full[..cut]).is_err(), "cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_proofs_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_data();
        for (i, x) in &flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x | 1;
        }
        decode_all(&bytes);
        let c = cut.index(bytes.len());
        decode_all(&bytes[..c]);
    }

    #[test]
    fn mutated_node_indexes_never_panic(index in any::<u64>(), size in any::<u64>(), which in 0usize..20) {
        // Hostile node indexes and sizes (up to u64::MAX) in every position of a valid proof.
        let mut d = Data::from_bytes_exact(&sample_data()).expect("sample");
        let mut all: Vec<&mut TreeNode> = Vec::new();
        if let Some(b) = d.block.as_mut() { all.extend(b.nodes.iter_mut()); }
        if let Some(u) = d.upgrade.as_mut() { all.extend(u.nodes.iter_mut()); }
        let n = all.len();
        if let Some(node) = all.get_mut(which % n) {
            node.index = index;
            node.size = size;
        }
        let (state, nodes, _) = build(13);
        let _ = tree::verify(&state, &nodes, &d);
        let _ = tree::verify(&TreeState::default(), &BTreeMap::new(), &d);
        let mut d2 = d.clone();
        if let Some(b) = d2.block.as_mut() { b.index = index; }
        if let Some(u) = d2.upgrade.as_mut() { u.start = size; u.length = index; }
        let _ = tree::verify(&TreeState::default(), &BTreeMap::new(), &d2);
    }

    #[test]
    fn requests_with_any_numbers_never_panic(a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), d in any::<u64>(), len in 0u64..40) {
        let (state, nodes, _) = build(len);
        for req in [
            ProofRequest { block: Some(RequestBlock { index: a, nodes: b }), ..ProofRequest::default() },
            ProofRequest { hash: Some(RequestBlock { index: a, nodes: b % 70 }), upgrade: Some(RequestUpgrade { start: c, length: d }), ..ProofRequest::default() },
            ProofRequest { block: Some(RequestBlock { index: a % (len + 1), nodes: 0 }), upgrade: Some(RequestUpgrade { start: c % (len + 1), length: d % (len + 1) }), ..ProofRequest::default() },
            ProofRequest { seek: Some(holepunch_cores::hypercore::messages::RequestSeek { bytes: a % 500, padding: b % 3 }), upgrade: Some(RequestUpgrade { start: 0, length: len }), ..ProofRequest::default() },
        ] {
            let _ = tree::proof(&state, &nodes, &req);
        }
        let _ = tree::seek(&state, &nodes, a % 600, 0);
        let _ = tree::byte_offset(&state, &nodes, b % 100);
    }

    #[test]
    fn proofs_from_random_trees_verify(len in 1u64..200, index in any::<prop::sample::Index>(), start in any::<prop::sample::Index>()) {
        let (state, nodes, blocks) = build(len);
        let index = index.index(len as usize) as u64;
        let start = start.index(len as usize) as u64;
        let req = ProofRequest {
            block: Some(RequestBlock { index, nodes: 0 }),
            upgrade: Some(RequestUpgrade { start, length: len - start }),
            ..ProofRequest::default()
        };
        let mut data = tree::proof(&state, &nodes, &req).expect("proof");
        if let Some(b) = data.block.as_mut() {
            b.value.clone_from(&blocks[index as usize]);
        }
        // A verifier that holds only the tree up to `start`.
        let base = TreeState::at(&nodes, start, 0).expect("base");
        let known: BTreeMap<u64, TreeNode> = nodes
            .iter()
            .filter(|(i, _)| holepunch_wire::flat_tree::right_span(**i) < 2 * start)
            .map(|(i, n)| (*i, *n))
            .collect();
        let batch = tree::verify(&base, &known, &data).expect("verify");
        prop_assert_eq!(batch.hash(), state.hash());
        prop_assert_eq!(batch.length, len);
    }
}

#[test]
fn data_block_with_huge_index_is_refused() {
    let d = Data {
        block: Some(DataBlock {
            index: u64::MAX,
            value: vec![1],
            nodes: vec![],
        }),
        upgrade: Some(DataUpgrade {
            start: 0,
            length: u64::MAX,
            nodes: vec![],
            additional_nodes: vec![],
            signature: None,
        }),
        ..Data::default()
    };
    assert!(tree::verify(&TreeState::default(), &BTreeMap::new(), &d).is_err());
}

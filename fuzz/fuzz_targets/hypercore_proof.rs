//! Proof verification and proof generation on hostile input: a `data` message from arbitrary bytes is verified
//! against a small stored tree and against an empty one, and a `request` from the same bytes is answered; none
//! of it may panic or loop.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use holepunch::compact_encoding::Decode;
use holepunch::crypto::TreeNode;
use holepunch::hypercore::messages::{Data, Request};
use holepunch::hypercore::tree::{self, Batch, ProofRequest, TreeState};
use libfuzzer_sys::fuzz_target;

fn tree() -> &'static (TreeState, BTreeMap<u64, TreeNode>) {
    static TREE: OnceLock<(TreeState, BTreeMap<u64, TreeNode>)> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut batch = Batch::new(&TreeState::default());
        for i in 0..23u32 {
            batch.append(&i.to_le_bytes());
        }
        let nodes = batch.nodes.iter().map(|n| (n.index, *n)).collect();
        (batch.state(None), nodes)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let (state, nodes) = tree();
    if let Ok(d) = Data::from_bytes(bytes) {
        let _ = tree::verify(state, nodes, &d);
        let _ = tree::verify(&TreeState::default(), &BTreeMap::new(), &d);
    }
    if let Ok(r) = Request::from_bytes(bytes) {
        let req = ProofRequest {
            block: r.block,
            hash: r.hash,
            seek: r.seek,
            upgrade: r.upgrade,
        };
        if let Ok(proof) = tree::proof(state, nodes, &req) {
            // A proof we make for a request must verify against the empty tree when it upgrades from 0 with
            // a block, or against our own tree otherwise.
            if proof.upgrade.as_ref().is_some_and(|u| u.start == 0) && proof.block.is_none() {
                let batch = tree::verify(&TreeState::default(), &BTreeMap::new(), &proof);
                assert!(batch.is_ok(), "{proof:?}");
            }
        }
        if let Some(s) = r.seek {
            let _ = tree::seek(state, nodes, s.bytes, s.padding);
        }
    }
});

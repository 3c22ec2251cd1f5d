//! Autobase records: blocks JS autobase 7.28.1 wrote (from `tests/interop/js/autobase_fixture.js`, committed
//! here as hex so these run without node) decode to what JS decodes and re-encode to the same bytes; every
//! decoder survives arbitrary, truncated and mutated input without panicking; and generated records round-trip.

#![allow(clippy::unwrap_used)]

use holepunch_cores::autobase::base::{
    decode_signed, decode_updates, encode_signed, encode_updates,
};
use holepunch_cores::autobase::messages::{
    decode_linearizer_key, encode_linearizer_key, BootRecord, Checkout, Checkpoint, Checkpointer,
    Digest, EncryptionDescriptor, IndexCheckpoint, Info, LinearizerUpdate, ManifestData, Member,
    Node, OplogMessage, SystemKey, Trace, UserViewTrace, Wakeup,
};
use holepunch_cores::hyperbee::messages::Node as BeeNode;
use holepunch_wire::compact_encoding::{Decode, Encode};
use proptest::prelude::*;

const WRITER_BLOCK_0: &str = "\
    0200016b7b226f70223a226164642d777269746572222c226b6579223a22633037323534393139323631376162393262\
    36333464373934393762393439306664323736393763663561623662646431663965396366363338393337346232222c\
    22696e6465786572223a747275657d0221020dbc78ca9f7f7957ee2e3c1c6b930e5fad0e93dce9bdc0a032bbfff7faf9\
    16cc";

const WRITER_BLOCK_1: &str = "\
    0201296f7f458792eaf38140704168d9d7ab16c6b05fbb86af3d80f6f6549d8a82ab01012a7b226f70223a2270757422\
    2c226b6579223a226130222c2276616c7565223a2266726f6d20612030227d03c8070273804807c4a55b290d217e4978\
    86b201a6445577a5b5fe9fb06dbadfb74ca7821c00db37ecfc727ae677cb23235794aeacc31898d50da94d57f426a288\
    84190b060265b0e33b14fd94f57d91990437a9526e04f558218b3ec6dc70b57ad2d287162f500231d3c7ceb030f9d04a\
    a732d53d6ba3d8a591fb32048130218676bb4690020001027becbfb9de77505b0ebb113a916b83932f31715091d017c6\
    aa1add8bae2c92f95141de1a181d9184666bbd873a858c2ffe6dcf1206a521b9dc9e3d5cc048330a02020101";

const WRITER_BLOCK_8: &str = "\
    0201c072549192617ab92b634d79497b9490fd27697cf5ab6bdd1f9e9cf6389374b208010003c80702d452ad100aa314\
    313934763028b4aa337e0d3cc620bdc64c20a1de18790ca0f0739f5a8667d602754261a1908f79e1ab7938f73c7f8574\
    f3b0f9c4cca57c440d2202c1e5c4b69bf221c3ec2b6542eebcc871340a02219eb904f9dfa2112d142e615cabc7b69c2e\
    d0601a77842ab408a8b49d5ea5334288f2e9cc06f94143f22885060001020b162e0d75229db3a9d97a862522a9d005f5\
    21dc11733fbaacc13dba6b2b37642b5d1ff6f1b95fe6228da235da35812b0381f7b6dad844f7118abe7c8bebb2020902\
    0106";

const BOOT_RECORD: &str = "\
    03fbb704584201b95f813dae2effe4b7be9ae745a59395e8fe04bb139e62679d21240403";

const SYSTEM_INFO_BLOCK: &str = "\
    0a070a050a03211e2012060000696e666f1a8a0101020002296f7f458792eaf38140704168d9d7ab16c6b05fbb86af3d\
    80f6f6549d8a82ab08c072549192617ab92b634d79497b9490fd27697cf5ab6bdd1f9e9cf6389374b20801c072549192\
    617ab92b634d79497b9490fd27697cf5ab6bdd1f9e9cf6389374b20801b0eab0af9c43738aa25f08ad8db49db64e772a\
    699a28296f6138a8b6a217725f09";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn key(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

const WRITER_A: &str = "296f7f458792eaf38140704168d9d7ab16c6b05fbb86af3d80f6f6549d8a82ab";
const WRITER_B: &str = "c072549192617ab92b634d79497b9490fd27697cf5ab6bdd1f9e9cf6389374b2";
const SYSTEM: &str = "fbb704584201b95f813dae2effe4b7be9ae745a59395e8fe04bb139e62679d21";
const VIEW: &str = "b0eab0af9c43738aa25f08ad8db49db64e772a699a28296f6138a8b6a217725f";

#[test]
fn js_writer_blocks_decode_as_js_decodes_them() {
    let b0 = unhex(WRITER_BLOCK_0);
    let m = OplogMessage::decode(&b0).unwrap();
    assert_eq!(m.version, 2);
    assert!(m.node.heads.is_empty());
    assert_eq!(m.node.batch, 1);
    let v: serde_json::Value = serde_json::from_slice(m.node.value.as_deref().unwrap()).unwrap();
    assert_eq!(v["op"], "add-writer");
    assert_eq!(v["key"], WRITER_B);
    assert_eq!(m.checkpoint, None);
    assert_eq!(m.digest.unwrap().pointer, 0);
    assert_eq!(
        hex::encode(m.digest.unwrap().key.unwrap()),
        "0dbc78ca9f7f7957ee2e3c1c6b930e5fad0e93dce9bdc0a032bbfff7faf916cc"
    );
    assert!(!m.optimistic);
    assert_eq!(m.to_bytes().unwrap(), b0);

    let b1 = unhex(WRITER_BLOCK_1);
    let m = OplogMessage::decode(&b1).unwrap();
    assert_eq!(
        m.node.heads,
        vec![Checkout {
            key: key(WRITER_A),
            length: 1
        }]
    );
    let c = m.checkpoint.as_ref().unwrap();
    assert_eq!(c.system.unwrap().checkpoint.unwrap().length, 6);
    assert_eq!(c.encryption.unwrap().checkpoint.unwrap().length, 0);
    assert_eq!(c.user.as_ref().unwrap()[0].checkpoint.unwrap().length, 2);
    assert_eq!(
        &c.system.unwrap().checkpoint.unwrap().signature[..4],
        &[0x73, 0x80, 0x48, 0x07]
    );
    assert_eq!(
        m.digest,
        Some(Digest {
            pointer: 1,
            key: None
        })
    );
    assert_eq!(m.to_bytes().unwrap(), b1);

    // an ack (no value) signing the system at 34 and the view at 9, its digest 6 blocks back
    let b8 = unhex(WRITER_BLOCK_8);
    let m = OplogMessage::decode(&b8).unwrap();
    assert_eq!(m.node.value, None);
    assert_eq!(
        m.node.heads,
        vec![Checkout {
            key: key(WRITER_B),
            length: 8
        }]
    );
    let c = m.checkpoint.as_ref().unwrap();
    assert_eq!(c.system.unwrap().checkpoint.unwrap().length, 34);
    assert_eq!(c.user.as_ref().unwrap()[0].checkpoint.unwrap().length, 9);
    assert_eq!(m.digest.unwrap().pointer, 6);
    assert_eq!(m.to_bytes().unwrap(), b8);
}

#[test]
fn js_boot_record_and_system_info_decode() {
    let b = unhex(BOOT_RECORD);
    let boot = BootRecord::decode(&b).unwrap();
    assert_eq!(boot.version, 3);
    assert_eq!(boot.key, key(SYSTEM));
    assert_eq!(boot.system_length, 36);
    assert!(!boot.indexers_updated && !boot.fast_forwarding);
    assert_eq!(boot.recoveries, 3);
    assert_eq!(boot.to_bytes().unwrap(), b);

    let node = BeeNode::decode(&unhex(SYSTEM_INFO_BLOCK)).unwrap();
    assert_eq!(SystemKey::decode(&node.key), Some(SystemKey::Info));
    let value = node.value.unwrap();
    let info = Info::decode(&value).unwrap();
    assert_eq!(info.version, 1);
    assert_eq!(info.members, 2);
    assert!(info.pending_indexers.is_empty());
    let idx: Vec<_> = info
        .indexers
        .iter()
        .map(|c| (hex::encode(c.key), c.length))
        .collect();
    assert_eq!(
        idx,
        vec![(WRITER_A.to_string(), 8), (WRITER_B.to_string(), 8)]
    );
    assert_eq!(
        info.heads,
        vec![Checkout {
            key: key(WRITER_B),
            length: 8
        }]
    );
    assert_eq!(
        info.views,
        vec![Checkout {
            key: key(VIEW),
            length: 9
        }]
    );
    assert_eq!(info.entropy, None);
    assert_eq!(info.to_bytes().unwrap(), value);
}

#[test]
fn every_decoder_survives_truncation_and_mutation_of_js_bytes() {
    let all: Vec<Vec<u8>> = [
        WRITER_BLOCK_0,
        WRITER_BLOCK_1,
        WRITER_BLOCK_8,
        BOOT_RECORD,
        SYSTEM_INFO_BLOCK,
    ]
    .iter()
    .map(|h| unhex(h))
    .collect();
    for bytes in &all {
        for n in 0..=bytes.len() {
            feed(&bytes[..n]);
            if n < bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = bytes.clone();
                    bad[n] ^= flip;
                    feed(&bad);
                }
            }
        }
    }
}

/// Every autobase decoder on `bytes`; what decodes must re-encode to bytes that decode to the same value.
fn feed(bytes: &[u8]) {
    if let Ok(m) = OplogMessage::decode(bytes) {
        if let Ok(b) = m.to_bytes() {
            assert_eq!(OplogMessage::decode(&b), Ok(m));
        }
    }
    if let Ok(b) = BootRecord::decode(bytes) {
        if let Ok(enc) = b.to_bytes() {
            assert_eq!(BootRecord::decode(&enc), Ok(b));
        }
    }
    if let Ok(i) = Info::decode(bytes) {
        assert_eq!(Info::decode(&i.to_bytes().unwrap()), Ok(i));
    }
    if let Ok(w) = Wakeup::decode(bytes) {
        assert_eq!(Wakeup::decode(&w.to_bytes()), Ok(w));
    }
    if let Some(k) = SystemKey::decode(bytes) {
        assert_eq!(k.to_bytes(), bytes);
    }
    if let Ok(seq) = decode_linearizer_key(bytes) {
        assert_eq!(decode_linearizer_key(&encode_linearizer_key(seq)), Ok(seq));
    }
    if let Ok(u) = decode_updates(bytes) {
        assert_eq!(decode_updates(&encode_updates(&u)), Ok(u));
    }
    if let Ok(s) = decode_signed(bytes) {
        assert_eq!(decode_signed(&encode_signed(&s)), Ok(s));
    }
    round::<Member>(bytes);
    round::<Checkpoint>(bytes);
    round::<Checkpointer>(bytes);
    round::<Digest>(bytes);
    round::<Node>(bytes);
    round::<Trace>(bytes);
    round::<LinearizerUpdate>(bytes);
    round::<ManifestData>(bytes);
    round::<EncryptionDescriptor>(bytes);
}

fn round<T: for<'b> Decode<'b> + Encode + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::from_bytes(bytes) {
        assert_eq!(T::from_bytes(&v.to_bytes()), Ok(v));
    }
}

fn arb_key() -> impl Strategy<Value = [u8; 32]> {
    prop::array::uniform32(any::<u8>())
}

fn arb_checkout() -> impl Strategy<Value = Checkout> {
    (arb_key(), any::<u64>()).prop_map(|(key, length)| Checkout { key, length })
}

fn arb_checkpointer() -> impl Strategy<Value = Checkpointer> {
    (
        any::<u64>(),
        prop::option::of((prop::collection::vec(any::<u8>(), 64), any::<u64>())),
    )
        .prop_map(|(checkpointer, c)| Checkpointer {
            checkpointer,
            checkpoint: c.map(|(sig, length)| IndexCheckpoint {
                signature: sig.try_into().unwrap(),
                length,
            }),
        })
}

prop_compose! {
    fn arb_oplog()(
        heads in prop::collection::vec(arb_checkout(), 0..4),
        batch in any::<u64>(),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 1..40)),
        checkpoint in prop::option::of((
            prop::option::of(arb_checkpointer()),
            prop::option::of(arb_checkpointer()),
            prop::option::of(prop::collection::vec(arb_checkpointer(), 0..3)),
        )),
        digest in prop::option::of((any::<u64>(), prop::option::of(arb_key()))),
        optimistic in any::<bool>(),
        trace in prop::option::of((
            prop::collection::vec(any::<u64>(), 0..3),
            prop::collection::vec(any::<u64>(), 0..3),
            prop::collection::vec((any::<u64>(), prop::collection::vec(any::<u64>(), 0..3)), 0..3),
        )),
    ) -> OplogMessage {
        OplogMessage {
            version: 2,
            max_supported_version: 0,
            node: Node { heads, batch, value },
            checkpoint: checkpoint.map(|(system, encryption, user)| Checkpoint { system, encryption, user }),
            digest: digest.map(|(pointer, key)| Digest { pointer, key }),
            optimistic,
            trace: trace.map(|(system, encryption, user)| Trace {
                system,
                encryption,
                user: user.into_iter().map(|(view, blocks)| UserViewTrace { view, blocks }).collect(),
            }),
        }
    }
}

proptest! {
    #[test]
    fn oplog_messages_round_trip(m in arb_oplog()) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(OplogMessage::decode(&bytes), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        feed(&bytes);
        // as a writer block with a valid version byte in front, too
        for v in 0..3u8 {
            let mut b = vec![v];
            b.extend_from_slice(&bytes);
            feed(&b);
        }
    }

    #[test]
    fn info_and_boot_records_round_trip(
        version in 0..3u64,
        members in any::<u64>(),
        pending in prop::collection::vec(arb_key(), 0..3),
        clocks in prop::collection::vec(prop::collection::vec(arb_checkout(), 0..3), 3),
        encryption_length in any::<u64>(),
        entropy in prop::option::of(arb_key()),
        boot_version in 1..4u64,
        flags in (any::<bool>(), any::<bool>(), any::<u64>()),
    ) {
        let info = Info {
            version,
            members,
            pending_indexers: pending,
            indexers: clocks[0].clone(),
            heads: clocks[1].clone(),
            views: clocks[2].clone(),
            encryption_length: if version == 2 { encryption_length } else { 0 },
            entropy: if version == 2 { entropy } else { None },
        };
        prop_assert_eq!(Info::decode(&info.to_bytes().unwrap()), Ok(info));
        let boot = BootRecord {
            version: boot_version,
            key: [7; 32],
            system_length: members,
            indexers_updated: flags.0,
            fast_forwarding: flags.1,
            recoveries: flags.2,
            heads: None,
        };
        prop_assert_eq!(BootRecord::decode(&boot.to_bytes().unwrap()), Ok(boot));
    }
}

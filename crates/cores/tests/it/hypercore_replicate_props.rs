//! The replication message decoders and the sans-IO replicator on untrusted input: truncated and mutated
//! messages return errors (or other values) and never panic; a replicator fed arbitrary messages from an
//! opened peer never panics and never changes a writer's core.

use std::sync::OnceLock;

use holepunch_cores::hypercore::caps;
use holepunch_cores::hypercore::messages::{
    BitfieldMessage, Cancel, Extension, Handshake, NoData, Range, ReorgHint, Sync, Want,
};
use holepunch_cores::hypercore::replicator::{kind, ReplicatorCore};
use holepunch_cores::hypercore::{Durability, Hypercore};
use holepunch_wire::compact_encoding::{Decode, Encode};
use holepunch_wire::crypto::KeyPair;
use proptest::prelude::*;

fn samples() -> Vec<(u64, Vec<u8>)> {
    vec![
        (
            kind::SYNC,
            Sync {
                fork: 1,
                length: 300,
                remote_length: 5,
                can_upgrade: true,
                uploading: true,
                downloading: false,
                has_manifest: true,
                allow_push: false,
            }
            .to_bytes(),
        ),
        (kind::CANCEL, Cancel { request: 99_999 }.to_bytes()),
        (
            kind::NO_DATA,
            NoData {
                request: 3,
                reason: 2,
            }
            .to_bytes(),
        ),
        (
            kind::WANT,
            Want {
                start: 1 << 20,
                length: 1 << 21,
                any: true,
            }
            .to_bytes(),
        ),
        (
            kind::BITFIELD,
            BitfieldMessage {
                start: 32,
                bitfield: vec![0xffff_0000, 1, 0],
            }
            .to_bytes(),
        ),
        (
            kind::RANGE,
            Range {
                drop: false,
                start: 0,
                length: 1,
            }
            .to_bytes(),
        ),
        (
            kind::RANGE,
            Range {
                drop: true,
                start: 7,
                length: 1000,
            }
            .to_bytes(),
        ),
        (
            kind::EXTENSION,
            Extension {
                name: "ext".into(),
                message: vec![1, 2, 3],
            }
            .to_bytes(),
        ),
    ]
}

fn decodes_same<T: for<'a> Decode<'a> + Encode + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::from_bytes(bytes) {
        assert_eq!(T::from_bytes_exact(&v.to_bytes()), Ok(v));
    }
}

fn all_decoders(bytes: &[u8]) {
    decodes_same::<Handshake>(bytes);
    decodes_same::<Sync>(bytes);
    decodes_same::<Cancel>(bytes);
    decodes_same::<NoData>(bytes);
    decodes_same::<Want>(bytes);
    decodes_same::<Range>(bytes);
    decodes_same::<BitfieldMessage>(bytes);
    decodes_same::<ReorgHint>(bytes);
    decodes_same::<Extension>(bytes);
}

#[test]
fn truncations_fail_cleanly() {
    for (k, bytes) in samples() {
        for cut in 0..bytes.len() {
            let short = &bytes[..cut];
            all_decoders(short);
            // A strict prefix of these never decodes as the full message type.
            let full_ok = match k {
                kind::SYNC => Sync::from_bytes_exact(short).is_ok(),
                kind::BITFIELD => BitfieldMessage::from_bytes_exact(short).is_ok(),
                _ => false,
            };
            assert!(!full_ok, "kind {k} prefix {cut} decoded");
        }
    }
    let hs = Handshake {
        seeks: true,
        capability: [5; 32],
    }
    .to_bytes();
    for cut in 0..hs.len() {
        assert!(Handshake::from_bytes(&hs[..cut]).is_err());
    }
}

fn writer() -> &'static Hypercore {
    static CORE: OnceLock<Hypercore> = OnceLock::new();
    CORE.get_or_init(|| {
        let dir = testkit::scratch_dir("hc-repl-props");
        let core = Hypercore::create(&dir, KeyPair::from_seed(&[4; 32])).expect("create");
        core.set_durability(Durability::Process);
        core.append(&[b"one", b"two", b"three"]).expect("append");
        core
    })
}

proptest! {
    #[test]
    fn mutated_messages_never_panic(i in 0usize..8, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let samples = samples();
        let (_, mut bytes) = samples[i % samples.len()].clone();
        for (at, x) in flips {
            if !bytes.is_empty() {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
        }
        all_decoders(&bytes);
    }

    #[test]
    fn replicator_survives_arbitrary_messages(msgs in proptest::collection::vec((0u64..11, proptest::collection::vec(any::<u8>(), 0..40)), 0..30)) {
        let core = writer();
        let tree = core.tree();
        let hh = [1u8; 64];
        let mut rc = ReplicatorCore::new(core.clone());
        let (peer, _) = rc.add_peer(false, &hh);
        let cap = caps::replicate(true, &core.key(), &hh).expect("cap");
        rc.on_open(peer, &Handshake { seeks: false, capability: cap }.to_bytes()).expect("open");
        for (k, payload) in msgs {
            if rc.on_message(peer, k, &payload).is_err() {
                break;
            }
            while rc.poll_transmit(peer).is_some() {}
        }
        prop_assert_eq!(core.tree(), tree);
    }
}

#[test]
fn wrong_capability_is_refused() {
    let core = writer();
    let hh = [2u8; 64];
    let mut rc = ReplicatorCore::new(core.clone());
    let (peer, _) = rc.add_peer(true, &hh);
    // Our own capability (initiator role) is not what the responder must send.
    let mine = caps::replicate(true, &core.key(), &hh).expect("cap");
    let hs = Handshake {
        seeks: false,
        capability: mine,
    }
    .to_bytes();
    assert!(rc.on_open(peer, &hs).is_err());
    assert!(rc.on_open(peer, &hs[..10]).is_err());
    assert_eq!(rc.open_peers(), 0);
}

/// Encodings produced by JS hypercore 11.37.1's `lib/messages.js` (`wire.*`) for the same values.
#[test]
fn js_vectors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Handshake {
                seeks: true,
                capability: [5; 32],
            }
            .to_bytes(),
            "010505050505050505050505050505050505050505050505050505050505050505",
        ),
        (samples()[0].1.clone(), "0b01fd2c0105"),
        (Cancel { request: 99_999 }.to_bytes(), "fe9f860100"),
        (
            NoData {
                request: 3,
                reason: 2,
            }
            .to_bytes(),
            "030102",
        ),
        (
            NoData {
                request: 3,
                reason: 0,
            }
            .to_bytes(),
            "0300",
        ),
        (
            Want {
                start: 1 << 20,
                length: 1 << 21,
                any: true,
            }
            .to_bytes(),
            "fe00001000fe0000200001",
        ),
        (
            Want {
                start: 5,
                length: 6,
                any: false,
            }
            .to_bytes(),
            "0506",
        ),
        (
            BitfieldMessage {
                start: 32,
                bitfield: vec![0xffff_0000, 1, 0],
            }
            .to_bytes(),
            "20030000ffff0100000000000000",
        ),
        (
            Range {
                drop: false,
                start: 0,
                length: 1,
            }
            .to_bytes(),
            "0200",
        ),
        (
            Range {
                drop: true,
                start: 7,
                length: 1000,
            }
            .to_bytes(),
            "0107fde803",
        ),
        (
            ReorgHint {
                from: 10,
                to: 4,
                ancestors: 2,
            }
            .to_bytes(),
            "0a0402",
        ),
        (
            Extension {
                name: "ext".into(),
                message: vec![1, 2, 3],
            }
            .to_bytes(),
            "03657874010203",
        ),
    ];
    for (ours, js) in cases {
        assert_eq!(hex::encode(ours), js);
    }
    // noData from older peers: the id alone.
    assert_eq!(
        NoData::from_bytes_exact(&[7]),
        Ok(NoData {
            request: 7,
            reason: 0
        })
    );
}

/// A request left unanswered is cancelled after `REQUEST_TIMEOUT_TICKS` ticks and asked again.
#[test]
fn unanswered_requests_time_out_and_are_retried() {
    use holepunch_cores::hypercore::messages::Request;
    use holepunch_cores::hypercore::replicator::REQUEST_TIMEOUT_TICKS;

    let w = writer();
    let dir = testkit::scratch_dir("hc-repl-timeout");
    let r = Hypercore::create_reader(&dir, w.key(), None).expect("reader");
    let hh = [5u8; 64];
    let mut rc = ReplicatorCore::new(r);
    let (peer, _) = rc.add_peer(true, &hh);
    let cap = caps::replicate(false, &w.key(), &hh).expect("cap");
    rc.on_open(
        peer,
        &Handshake {
            seeks: false,
            capability: cap,
        }
        .to_bytes(),
    )
    .expect("open");
    let sync = Sync {
        fork: 0,
        length: w.length(),
        remote_length: 0,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Sync::default()
    };
    rc.on_message(peer, kind::SYNC, &sync.to_bytes())
        .expect("sync");
    let sent: Vec<(u64, Vec<u8>)> = std::iter::from_fn(|| rc.poll_transmit(peer)).collect();
    let first = sent
        .iter()
        .find(|(k, _)| *k == kind::REQUEST)
        .map(|(_, p)| Request::from_bytes(p).expect("request"))
        .expect("an upgrade request");
    assert!(first.upgrade.is_some());
    for _ in 1..REQUEST_TIMEOUT_TICKS {
        assert_eq!(rc.tick_peer(peer), 0);
    }
    assert_eq!(rc.tick_peer(peer), 1);
    let sent: Vec<(u64, Vec<u8>)> = std::iter::from_fn(|| rc.poll_transmit(peer)).collect();
    assert!(sent
        .iter()
        .any(|(k, p)| *k == kind::CANCEL
            && Cancel::from_bytes(p) == Ok(Cancel { request: first.id })));
    let again = sent
        .iter()
        .find(|(k, _)| *k == kind::REQUEST)
        .map(|(_, p)| Request::from_bytes(p).expect("request"))
        .expect("asked again");
    assert_ne!(again.id, first.id);
    assert_eq!(again.upgrade, first.upgrade);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Blocks appended while no peer was connected (nothing ran the replicator then) are in the first sync a
/// new peer gets: a stale length there let a reader take an old head as the latest (`drives mirror KEY
/// --live` started from an empty drive now and then).
#[test]
fn first_sync_carries_appends_made_while_alone() {
    let dir = testkit::scratch_dir("hc-repl-alone");
    let core = Hypercore::create(&dir, KeyPair::from_seed(&[6; 32])).expect("create");
    core.set_durability(Durability::Process);
    core.append(&[b"one"]).expect("append");
    let mut rc = ReplicatorCore::new(core.clone());
    core.append(&[b"two", b"three"]).expect("append");
    let hh = [7u8; 64];
    let (peer, _) = rc.add_peer(true, &hh);
    let cap = caps::replicate(false, &core.key(), &hh).expect("cap");
    rc.on_open(
        peer,
        &Handshake {
            seeks: false,
            capability: cap,
        }
        .to_bytes(),
    )
    .expect("open");
    let (k, payload) = rc.poll_transmit(peer).expect("a first message");
    assert_eq!(k, kind::SYNC);
    assert_eq!(Sync::from_bytes(&payload).expect("sync").length, 3);
}

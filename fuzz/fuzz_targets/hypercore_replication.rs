//! Hypercore replication messages from arbitrary bytes: every `hypercore/alpha` message decoder never panics
//! and re-encodes what it decodes to the same value; and a sans-IO `ReplicatorCore` fed an arbitrary sequence
//! of messages from an opened peer never panics.
#![no_main]

use std::sync::OnceLock;

use holepunch::compact_encoding::{Decode, Encode};
use holepunch::crypto::KeyPair;
use holepunch::hypercore::caps;
use holepunch::hypercore::messages::{
    BitfieldMessage, Cancel, Extension, Handshake, NoData, Range, ReorgHint, Sync, Want,
};
use holepunch::hypercore::replicator::ReplicatorCore;
use holepunch::hypercore::{Durability, Hypercore};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: for<'a> Decode<'a> + Encode + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::from_bytes(bytes) {
        let again = v.to_bytes();
        assert_eq!(T::from_bytes_exact(&again), Ok(v));
    }
}

fn core() -> &'static Hypercore {
    static CORE: OnceLock<Hypercore> = OnceLock::new();
    CORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fuzz-replication-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let core = Hypercore::create(&dir, KeyPair::from_seed(&[9; 32])).expect("create");
        core.set_durability(Durability::Process);
        core.append(&[b"a", b"bb", b"ccc", b"dddd", b"e"]).expect("append");
        core
    })
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<Handshake>(bytes);
    round_trip::<Sync>(bytes);
    round_trip::<Cancel>(bytes);
    round_trip::<NoData>(bytes);
    round_trip::<Want>(bytes);
    round_trip::<Range>(bytes);
    round_trip::<BitfieldMessage>(bytes);
    round_trip::<ReorgHint>(bytes);
    round_trip::<Extension>(bytes);

    // A writer's replication state fed messages: [kind, len, payload...]*. Requests are answered from the
    // core; nothing a peer sends can make it panic. (Data is only applied for requests it made, and a
    // writer makes none, so the core is not changed.)
    let hh = [3u8; 64];
    let mut rc = ReplicatorCore::new(core().clone());
    let (peer, _) = rc.add_peer(true, &hh);
    let cap = caps::replicate(false, &core().key(), &hh).expect("cap");
    let hs = Handshake { seeks: true, capability: cap }.to_bytes();
    if rc.on_open(peer, &hs).is_err() {
        return;
    }
    let mut rest = bytes;
    while let [k, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(n);
        if rc.on_message(peer, u64::from(*k % 11), payload).is_err() {
            break;
        }
        while rc.poll_transmit(peer).is_some() {}
        rest = next;
    }
});

#![no_main]
//! LAN discovery packets (what any host on the LAN can send to the multicast group or to a querier): the
//! decoder never panics, what decodes re-encodes to a packet that decodes the same, and the responder's and the querier's
//! handling of the bytes never panics either.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;

use holepunch::lan_discovery::wire::Packet;
use holepunch::lan_discovery::{answer_for, found_in};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        assert_eq!(Packet::decode(&p.encode()).ok(), Some(p));
    }
    let id = [7u8; 32];
    let adverts = Mutex::new(HashMap::from([(id, vec![None, Some([9u8; 32])])]));
    let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5353);
    if let Some(answer) = answer_for(data, &adverts, 49737, &[Ipv4Addr::new(10, 0, 0, 1)], from) {
        assert!(Packet::decode(&answer).is_ok());
    }
    for f in found_in(data, from, &id, 0) {
        assert!(!f.addresses.is_empty());
    }
});

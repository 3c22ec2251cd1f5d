//! kademlia-routing-table and nat-sampler behaviour, compared step by step with the JS packages
//! (vectors from tests/interop/js/dht_table_vectors.js).

use std::net::{Ipv4Addr, SocketAddrV4};

use holepunch_dht::dht_rpc::messages::Id;
use holepunch_dht::dht_rpc::peer::node_id;
use holepunch_dht::dht_rpc::routing_table::{AddResult, RoutingTable};
use holepunch_dht::dht_rpc::NatSampler;

const VECTORS: &str = include_str!("vectors/dht_table.txt");

fn id(i: u32) -> Id {
    let host = Ipv4Addr::new(10, (i >> 8) as u8, (i & 255) as u8, 1);
    node_id(&SocketAddrV4::new(host, (1000 + i) as u16))
}

#[test]
fn routing_table_matches_js() {
    let mut table: RoutingTable<u32> = RoutingTable::new(id(100_000));
    let mut checked = 0;
    for line in VECTORS.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["add", i, ok] => {
                let i: u32 = i.parse().expect("index");
                let res = table.add(id(i), i);
                assert_eq!(
                    res != AddResult::Full(table.row_index(&id(i))),
                    *ok == "1",
                    "add {i}"
                );
            }
            ["remove", i, ok] => {
                let i: u32 = i.parse().expect("index");
                assert_eq!(table.remove(&id(i)).is_some(), *ok == "1", "remove {i}");
            }
            ["closest", t, k, list] => {
                let t: u32 = t.parse().expect("target");
                let k: usize = k.parse().expect("k");
                let want: Vec<u32> = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("i"))
                    .collect();
                let got: Vec<u32> = table.closest(&id(t), k).iter().map(|e| e.value).collect();
                assert_eq!(got, want, "closest {t} {k}");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked > 600);
}

#[test]
fn nat_sampler_matches_js() {
    let mut sampler = NatSampler::new();
    let mut phase = "";
    let mut checked = 0;
    for line in VECTORS.lines().filter(|l| l.starts_with("nat ")) {
        let p: Vec<&str> = line.split(' ').collect();
        let [_, ph, n, host, port, want_host, want_port] = p.as_slice() else {
            panic!("{line}")
        };
        if *ph != phase {
            phase = ph;
            sampler = NatSampler::new();
        }
        sampler.add(host.parse().expect("ip"), port.parse().expect("port"));
        let want_host: Option<Ipv4Addr> = if *want_host == "-" {
            None
        } else {
            Some(want_host.parse().expect("ip"))
        };
        assert_eq!(
            (sampler.host(), sampler.port()),
            (want_host, want_port.parse::<u16>().expect("port")),
            "phase {ph} sample {n}"
        );
        checked += 1;
    }
    assert_eq!(checked, 240);
}

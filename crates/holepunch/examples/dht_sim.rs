//! Simulates a dht-rpc network of sans-IO nodes on a virtual clock with a fixed one-way latency and
//! prints bootstrap and lookup figures.
//!
//! `cargo run --release --example dht_sim -- --nodes 500 --latency-ms 20 --lookups 50`

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use clap::Parser;
use holepunch::dht_rpc::messages::Id;
use holepunch::dht_rpc::node::{Config, Dht, Event, QueryOpts, Socket};
use holepunch::dht_rpc::peer::node_id;
use holepunch::dht_rpc::routing_table::compare_distance;

#[derive(Parser, Debug)]
struct Args {
    /// Number of nodes (the first one is the bootstrapper).
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// One-way latency of every datagram.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// FIND_NODE lookups to run after the bootstrap.
    #[arg(long, default_value_t = 20)]
    lookups: usize,
    /// Fraction (percent) of datagrams dropped.
    #[arg(long, default_value_t = 0)]
    loss_percent: u64,
}

const SERVER_PORT: u16 = 49737;

fn server(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
        SERVER_PORT,
    )
}

fn index_of(a: &SocketAddrV4) -> Option<usize> {
    let [10, a2, b, c] = a.ip().octets() else {
        return None;
    };
    Some((usize::from(a2) << 16) | (usize::from(b) << 8) | usize::from(c))
}

/// A datagram on the wire: delivery time, sequence number, destination node, bytes, sender.
type InFlight = (Instant, u64, usize, Vec<u8>, SocketAddrV4);

struct Sim {
    now: Instant,
    nodes: Vec<Dht>,
    events: Vec<Vec<Event>>,
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    latency: Duration,
    loss: u64,
    sent: u64,
    rng: u64,
}

impl Sim {
    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                self.sent += 1;
                self.rng = self
                    .rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (self.rng >> 33) % 100 < self.loss {
                    continue;
                }
                let Some(j) = index_of(&t.to).filter(|j| *j < self.nodes.len()) else {
                    continue;
                };
                // Every node is reachable and sends from its server socket in this simulation.
                let _ = t.socket;
                self.seq += 1;
                self.wire.push(Reverse((
                    self.now + self.latency,
                    self.seq,
                    j,
                    t.data,
                    server(i),
                )));
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    fn step(&mut self) {
        self.pump();
        let next_timer = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
        let next_wire = self.wire.peek().map(|Reverse((t, ..))| *t);
        let Some(next) = [next_timer, next_wire].into_iter().flatten().min() else {
            return;
        };
        self.now = self.now.max(next);
        while let Some(Reverse((t, ..))) = self.wire.peek() {
            if *t > self.now {
                break;
            }
            let Some(Reverse((_, _, j, data, from))) = self.wire.pop() else {
                break;
            };
            self.nodes[j].handle_datagram(Socket::Server, SocketAddr::V4(from), &data, self.now);
        }
        for n in &mut self.nodes {
            if n.poll_timeout().is_some_and(|t| t <= self.now) {
                n.handle_timeout(self.now);
            }
        }
        self.pump();
    }
}

fn main() {
    let args = Args::parse();
    let start = Instant::now();
    let mut sim = Sim {
        now: start,
        nodes: Vec::new(),
        events: Vec::new(),
        wire: BinaryHeap::new(),
        seq: 0,
        latency: Duration::from_millis(args.latency_ms),
        loss: args.loss_percent,
        sent: 0,
        rng: 7,
    };
    let wall = Instant::now();
    for i in 0..args.nodes {
        let config = if i == 0 {
            Config {
                seed: Some(0),
                ..Config::bootstrapper(server(0))
            }
        } else {
            Config {
                bootstrap: vec![server(0)],
                ephemeral: Some(false),
                firewalled: false,
                server_port: SERVER_PORT,
                seed: Some(i as u64),
                ..Config::default()
            }
        };
        sim.nodes.push(Dht::new(config, sim.now));
        sim.events.push(Vec::new());
    }
    let all_up = |sim: &Sim| sim.events.iter().all(|e| e.contains(&Event::Bootstrapped));
    while !all_up(&sim) {
        sim.step();
    }
    let boot_time = sim.now - start;
    let boot_sent = sim.sent;
    let persistent = sim.nodes.iter().filter(|n| !n.is_ephemeral()).count();
    let sizes: Vec<usize> = sim.nodes.iter().map(|n| n.table().len()).collect();
    println!(
        "bootstrap: {} nodes in {:.1}s virtual, {} datagrams ({:.0}/node), {} persistent, table size min {} avg {:.1} max {}",
        args.nodes,
        boot_time.as_secs_f64(),
        boot_sent,
        boot_sent as f64 / args.nodes as f64,
        persistent,
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64,
        sizes.iter().max().unwrap_or(&0),
    );

    let all_ids: Vec<Id> = (0..args.nodes).map(|i| node_id(&server(i))).collect();
    let mut exact = 0;
    let mut overlap_total = 0usize;
    let mut durations = Vec::new();
    let mut datagrams = Vec::new();
    for l in 0..args.lookups {
        let from = 1 + (l * 7919) % (args.nodes - 1);
        let target = node_id(&SocketAddrV4::new(
            Ipv4Addr::new(192, 0, 2, (l % 250) as u8),
            l as u16,
        ));
        for e in &mut sim.events {
            e.clear();
        }
        let t0 = sim.now;
        let s0 = sim.sent;
        let now = sim.now;
        let qid = sim.nodes[from].find_node(target, QueryOpts::default(), now);
        let closest = loop {
            sim.step();
            let done = sim.events[from].iter().find_map(|e| match e {
                Event::QueryDone { id, closest, .. } if *id == qid => Some(closest.clone()),
                _ => None,
            });
            if let Some(c) = done {
                break c;
            }
        };
        durations.push((sim.now - t0).as_secs_f64());
        datagrams.push(sim.sent - s0);
        let mut truth: Vec<Id> = all_ids
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| *i != from)
            .map(|(_, id)| id)
            .collect();
        truth.sort_by(|a, b| compare_distance(&target, a, b));
        truth.truncate(20);
        let got: Vec<Id> = closest.iter().filter_map(|r| r.from_id).collect();
        if got == truth {
            exact += 1;
        }
        overlap_total += got.iter().filter(|g| truth.contains(g)).count();
    }
    if args.lookups > 0 {
        durations.sort_by(|a, b| a.total_cmp(b));
        let n = durations.len();
        println!(
            "find_node: {}/{} exact top-20, mean overlap {:.1}/20, duration median {:.3}s p90 {:.3}s (virtual), datagrams/lookup mean {:.0}",
            exact,
            n,
            overlap_total as f64 / n as f64,
            durations[n / 2],
            durations[(n * 9 / 10).min(n - 1)],
            datagrams.iter().sum::<u64>() as f64 / n as f64,
        );
    }
    println!("wall time {:.2}s", wall.elapsed().as_secs_f64());
}

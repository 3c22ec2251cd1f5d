//! Simulates a dht-rpc network of sans-IO nodes on a virtual clock with a fixed one-way latency, random datagram
//! loss and churn (nodes leaving and new ones joining while the lookups run), and prints bootstrap and lookup
//! figures: how many of a lookup's 20 closest responders are the true 20 closest live nodes.
//!
//! `cargo run --release --example dht_sim -- --nodes 10000 --loss-percent 5 --churn-percent 10 --lookups 50`

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
    /// Churn while the lookups run: this percentage of the nodes leaves (without a word), spread over the lookups,
    /// and as many new nodes join (bootstrapping through the first node).
    #[arg(long, default_value_t = 0)]
    churn_percent: u64,
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
    /// A node that left is neither stepped nor reachable.
    alive: Vec<bool>,
}

impl Sim {
    fn random(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.rng >> 33
    }

    fn add_node(&mut self, config: Config) {
        self.nodes.push(Dht::new(config, self.now));
        self.events.push(Vec::new());
        self.alive.push(true);
    }

    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.alive[i] {
                continue;
            }
            while let Some(t) = self.nodes[i].poll_transmit() {
                self.sent += 1;
                if self.random() % 100 < self.loss {
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
        let next_timer = self
            .nodes
            .iter()
            .zip(&self.alive)
            .filter(|(_, alive)| **alive)
            .filter_map(|(n, _)| n.poll_timeout())
            .min();
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
            if self.alive[j] {
                self.nodes[j].handle_datagram(
                    Socket::Server,
                    SocketAddr::V4(from),
                    &data,
                    self.now,
                );
            }
        }
        for (n, _) in self.nodes.iter_mut().zip(&self.alive).filter(|(_, a)| **a) {
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
        alive: Vec::new(),
    };
    let member = |i: usize| Config {
        bootstrap: vec![server(0)],
        ephemeral: Some(false),
        firewalled: false,
        server_port: SERVER_PORT,
        seed: Some(i as u64),
        ..Config::default()
    };
    let wall = Instant::now();
    for i in 0..args.nodes {
        let config = if i == 0 {
            Config {
                seed: Some(0),
                ..Config::bootstrapper(server(0))
            }
        } else {
            member(i)
        };
        sim.add_node(config);
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

    // Churn: `churn` nodes leave and as many join, a share before each lookup.
    let churn = (args.nodes as u64 * args.churn_percent / 100) as usize;
    let mut churned = 0usize;
    let mut booted: Vec<bool> = vec![true; sim.nodes.len()];
    let mut exact = 0;
    let mut at_least_19 = 0;
    let mut min_overlap = usize::MAX;
    let mut overlap_total = 0usize;
    let mut durations = Vec::new();
    let mut datagrams = Vec::new();
    for l in 0..args.lookups {
        let due = churn * (l + 1) / args.lookups;
        while churned < due {
            // A random live member leaves (never the bootstrapper); a new node joins at a new address.
            let victim = 1 + (sim.random() as usize) % (sim.nodes.len() - 1);
            if !sim.alive[victim] {
                continue;
            }
            sim.alive[victim] = false;
            let i = sim.nodes.len();
            sim.add_node(member(i));
            booted.push(false);
            churned += 1;
        }
        // The lookup starts at a live node that has finished its bootstrap.
        let mut from = 1 + (l * 7919) % (sim.nodes.len() - 1);
        while !(sim.alive[from] && booted[from]) {
            from = 1 + (from % (sim.nodes.len() - 1));
        }
        let target = node_id(&SocketAddrV4::new(
            Ipv4Addr::new(192, 0, 2, (l % 250) as u8),
            l as u16,
        ));
        for e in &mut sim.events {
            e.clear();
        }
        let booted_at_start = booted.clone();
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
        for (i, events) in sim.events.iter().enumerate() {
            if events.contains(&Event::Bootstrapped) {
                booted[i] = true;
            }
        }
        durations.push((sim.now - t0).as_secs_f64());
        datagrams.push(sim.sent - s0);
        // The truth: the 20 closest of the live nodes that had finished their bootstrap when the lookup started
        // (and of those that joined meanwhile, the ones the lookup found).
        let got: Vec<Id> = closest.iter().filter_map(|r| r.from_id).collect();
        let mut truth: Vec<Id> = (0..sim.nodes.len())
            .filter(|i| *i != from && sim.alive[*i])
            .map(|i| (i, node_id(&server(i))))
            .filter(|(i, id)| booted_at_start.get(*i).copied().unwrap_or(false) || got.contains(id))
            .map(|(_, id)| id)
            .collect();
        truth.sort_by(|a, b| compare_distance(&target, a, b));
        truth.truncate(20);
        if got == truth {
            exact += 1;
        }
        let overlap = got.iter().filter(|g| truth.contains(g)).count();
        if overlap >= 19 {
            at_least_19 += 1;
        }
        min_overlap = min_overlap.min(overlap);
        if overlap < 19 && std::env::var_os("DHT_SIM_DEBUG").is_some() {
            for id in truth.iter().filter(|t| !got.contains(t)) {
                let i = (0..sim.nodes.len()).find(|i| node_id(&server(*i)) == *id);
                eprintln!(
                    "lookup {l}: missed node {i:?} (first {} were the original nodes)",
                    args.nodes
                );
            }
        }
        overlap_total += overlap;
    }
    if args.lookups > 0 {
        durations.sort_by(|a, b| a.total_cmp(b));
        let n = durations.len();
        println!(
            "churn: {churned} nodes left and {churned} joined during the lookups; loss {}%",
            args.loss_percent
        );
        println!(
            "find_node: {}/{} exact top-20, {}/{} with >= 19 of the true top 20, overlap min {}/20 mean {:.2}/20, duration median {:.3}s p90 {:.3}s (virtual), datagrams/lookup mean {:.0}",
            exact,
            n,
            at_least_19,
            n,
            min_overlap,
            overlap_total as f64 / n as f64,
            durations[n / 2],
            durations[(n * 9 / 10).min(n - 1)],
            datagrams.iter().sum::<u64>() as f64 / n as f64,
        );
    }
    println!("wall time {:.2}s", wall.elapsed().as_secs_f64());
}

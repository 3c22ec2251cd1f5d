//! The sans-IO dht-rpc node on an in-memory network with a virtual clock: deterministic, no sockets,
//! no sleeps.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use holepunch_dht::dht_rpc::messages::{ErrorCode, Id};
use holepunch_dht::dht_rpc::node::*;
use holepunch_dht::dht_rpc::peer::node_id;
use holepunch_dht::dht_rpc::routing_table::compare_distance;
use holepunch_dht::dht_rpc::Health;

const SERVER_PORT: u16 = 49737;
const CLIENT_PORT: u16 = 50000;

fn host(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i / 200) as u8, (i % 200 + 1) as u8)
}

fn server(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(host(i), SERVER_PORT)
}

struct Net {
    start: Instant,
    now: Instant,
    nodes: Vec<Dht>,
    events: Vec<Vec<Event>>,
    /// Nodes that drop everything.
    dead: HashSet<usize>,
    /// Nodes whose server socket is unreachable from outside (a firewall).
    firewalled: HashSet<usize>,
    /// (node, socket, destination) triples sent to, for the firewall emulation: replies pass, the rest not.
    contacted: HashSet<(usize, Socket, SocketAddrV4)>,
    delivered: u64,
    /// (node, destination host): the next datagram that node sends to that host is lost.
    lose_once: Vec<(usize, Ipv4Addr)>,
    /// Nodes whose host changed address (`ip addr del/add`): they send from, and are reached at, this one.
    moved: HashMap<usize, Ipv4Addr>,
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            now,
            nodes: Vec::new(),
            events: Vec::new(),
            dead: HashSet::new(),
            firewalled: HashSet::new(),
            contacted: HashSet::new(),
            delivered: 0,
            lose_once: Vec::new(),
            moved: HashMap::new(),
        }
    }

    fn add(&mut self, config: Config) -> usize {
        self.nodes.push(Dht::new(config, self.now));
        self.events.push(Vec::new());
        self.nodes.len() - 1
    }

    fn persistent_node_config(&self, seed: u64) -> Config {
        Config {
            bootstrap: vec![server(0)],
            ephemeral: Some(false),
            firewalled: false,
            server_port: SERVER_PORT,
            seed: Some(seed),
            ..Config::default()
        }
    }

    fn addr(&self, i: usize) -> Ipv4Addr {
        self.moved.get(&i).copied().unwrap_or_else(|| host(i))
    }

    fn locate(&self, to: SocketAddrV4) -> Option<(usize, Socket)> {
        let i = match self.moved.iter().find(|(_, a)| **a == *to.ip()) {
            Some((i, _)) => *i,
            None => {
                let [10, 0, hi, lo] = to.ip().octets() else {
                    return None;
                };
                let i = usize::from(hi) * 200 + usize::from(lo).checked_sub(1)?;
                if self.moved.contains_key(&i) {
                    return None; // its old address is gone
                }
                i
            }
        };
        if i >= self.nodes.len() {
            return None;
        }
        match to.port() {
            SERVER_PORT => Some((i, Socket::Server)),
            CLIENT_PORT => Some((i, Socket::Client)),
            _ => None,
        }
    }

    /// Delivers datagrams until the network is quiet.
    fn flush(&mut self) {
        loop {
            let mut batch = Vec::new();
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].poll_transmit() {
                    batch.push((i, t));
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    self.events[i].push(e);
                }
            }
            if batch.is_empty() {
                return;
            }
            for (i, t) in batch {
                let port = if t.socket == Socket::Server {
                    SERVER_PORT
                } else {
                    CLIENT_PORT
                };
                let src = SocketAddrV4::new(self.addr(i), port);
                self.contacted.insert((i, t.socket, t.to));
                let Some((j, sock)) = self.locate(t.to) else {
                    continue;
                };
                if self.dead.contains(&i) || self.dead.contains(&j) {
                    continue;
                }
                if let Some(at) = self.lose_once.iter().position(|l| *l == (i, *t.to.ip())) {
                    self.lose_once.remove(at);
                    continue;
                }
                // A firewall only lets in datagrams from addresses the socket has sent to.
                if self.firewalled.contains(&j) && !self.contacted.contains(&(j, sock, src)) {
                    continue;
                }
                self.delivered += 1;
                self.nodes[j].handle_datagram(sock, SocketAddr::V4(src), &t.data, self.now);
            }
        }
    }

    /// Advances the clock to the next timer and runs it.
    fn step(&mut self) {
        self.flush();
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .expect("timers");
        self.now = self.now.max(next);
        for n in &mut self.nodes {
            if n.poll_timeout().is_some_and(|t| t <= self.now) {
                n.handle_timeout(self.now);
            }
        }
        self.flush();
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        self.flush();
        while !done(self) {
            assert!(
                self.now - self.start < limit,
                "condition not reached after {limit:?} of virtual time"
            );
            self.step();
        }
    }

    fn bootstrapped(&self, i: usize) -> bool {
        self.events[i].contains(&Event::Bootstrapped)
    }

    fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.events[i])
    }
}

fn build(n: usize) -> Net {
    let mut net = Net::new();
    net.add(Config {
        seed: Some(1000),
        ..Config::bootstrapper(server(0))
    });
    for i in 1..n {
        let c = net.persistent_node_config(i as u64);
        net.add(c);
    }
    net.run_until(Duration::from_secs(120), |net| {
        (0..net.nodes.len()).all(|i| net.bootstrapped(i))
    });
    net
}

fn true_closest(net: &Net, target: &Id, exclude: usize, k: usize) -> Vec<Id> {
    let mut ids: Vec<Id> = (0..net.nodes.len())
        .filter(|i| *i != exclude && !net.dead.contains(i))
        .map(|i| node_id(&server(i)))
        .collect();
    ids.sort_by(|a, b| compare_distance(target, a, b));
    ids.truncate(k);
    ids
}

fn run_find_node(net: &mut Net, from: usize, target: Id) -> Vec<Reply> {
    net.take_events(from);
    let now = net.now;
    let qid = net.nodes[from].find_node(target, QueryOpts::default(), now);
    let mut closest = None;
    net.run_until(Duration::from_secs(600), |net| {
        net.events[from]
            .iter()
            .any(|e| matches!(e, Event::QueryDone { id, .. } if *id == qid))
    });
    for e in net.take_events(from) {
        if let Event::QueryDone {
            id,
            closest: c,
            result,
        } = e
        {
            if id == qid {
                assert_eq!(result, Ok(()));
                closest = Some(c);
            }
        }
    }
    closest.expect("query done")
}

#[test]
fn fifty_nodes_bootstrap_become_persistent_and_fill_tables() {
    let mut net = build(50);
    for i in 0..50 {
        let n = &net.nodes[i];
        assert!(!n.is_ephemeral(), "node {i} persistent");
        assert_eq!(
            n.id(),
            Some(node_id(&server(i))),
            "node {i} id derives from its address"
        );
        assert_eq!(n.public_address(), (Some(host(i)), SERVER_PORT));
    }
    // Let the network run a few minutes of maintenance ticks and refreshes.
    let until = net.now + Duration::from_secs(300);
    net.run_until(Duration::from_secs(1000), |net| net.now >= until);
    let sizes: Vec<usize> = net.nodes.iter().map(|n| n.table().len()).collect();
    let min = *sizes.iter().min().expect("nodes");
    assert!(min >= 20, "every table knows at least k nodes: {sizes:?}");
    for (i, n) in net.nodes.iter().enumerate() {
        for e in n.table().iter() {
            assert_eq!(
                e.id,
                node_id(&e.value.addr),
                "node {i} table entries are real nodes"
            );
            assert_ne!(e.id, node_id(&server(i)));
        }
    }
}

#[test]
fn find_node_converges_to_the_true_closest_nodes() {
    let mut net = build(50);
    for (from, seed) in [(7usize, 1u8), (33, 2), (49, 3), (0, 4)] {
        let target: Id = holepunch_test_target(seed);
        let got: Vec<Id> = run_find_node(&mut net, from, target)
            .iter()
            .filter_map(|r| r.from_id)
            .collect();
        assert_eq!(
            got,
            true_closest(&net, &target, from, 20),
            "query from {from}"
        );
    }
}

/// A reply lost once from one of the true closest nodes: the node's request turns slow (its first send timed out)
/// while every other request has been answered. JS ends the query right there and leaves that node out; we wait
/// for the retry's answer, so the result is still the exact top 20.
#[test]
fn find_node_waits_for_a_closer_node_whose_reply_was_lost() {
    let mut net = build(50);
    let from = 7;
    for seed in 1..=4u8 {
        let target: Id = holepunch_test_target(seed);
        let truth = true_closest(&net, &target, from, 20);
        let closest = (0..net.nodes.len())
            .find(|i| node_id(&server(*i)) == truth[0])
            .expect("a node");
        net.lose_once.push((closest, host(from)));
        let got: Vec<Id> = run_find_node(&mut net, from, target)
            .iter()
            .filter_map(|r| r.from_id)
            .collect();
        assert!(net.lose_once.is_empty(), "the reply was not lost");
        assert_eq!(got, truth, "target {seed}");
    }
}

fn holepunch_test_target(seed: u8) -> Id {
    // Any fixed id: the hash of the seed.
    node_id(&SocketAddrV4::new(
        Ipv4Addr::new(seed, seed, seed, seed),
        u16::from(seed),
    ))
}

#[test]
fn dead_nodes_are_routed_around_and_dropped() {
    let mut net = build(40);
    for d in [3usize, 11, 17, 25, 31] {
        net.dead.insert(d);
    }
    let target = holepunch_test_target(9);
    let got: Vec<Id> = run_find_node(&mut net, 5, target)
        .iter()
        .filter_map(|r| r.from_id)
        .collect();
    assert_eq!(got, true_closest(&net, &target, 5, 20));
    // Timed-out nodes leave the querier's table.
    let dead_ids: HashSet<Id> = net.dead.iter().map(|d| node_id(&server(*d))).collect();
    let table = net.nodes[5].table();
    let stale = table.iter().filter(|e| dead_ids.contains(&e.id)).count();
    // Dead nodes the query tried are gone; maintenance pings remove the rest over time.
    let until = net.now + Duration::from_secs(400);
    net.run_until(Duration::from_secs(2000), |net| net.now >= until);
    let table = net.nodes[5].table();
    let after = table.iter().filter(|e| dead_ids.contains(&e.id)).count();
    assert!(after < stale.max(1), "stale {stale} -> {after}");
}

#[test]
fn custom_commands_queries_and_commit() {
    let mut net = build(30);
    const STORE: u64 = 77;
    let target = holepunch_test_target(5);
    let value = b"payload".to_vec();
    let now = net.now;
    let qid = net.nodes[4].query(
        QuerySpec {
            target,
            command: STORE,
            value: Some(value.clone()),
        },
        QueryOpts {
            commit: Commit::Auto,
            ..QueryOpts::default()
        },
        now,
    );
    // Every node answers STORE: with its token-free reply during the walk, and stores on commit (token).
    let mut stored: HashSet<usize> = HashSet::new();
    let mut done = None;
    for _ in 0..10_000 {
        net.flush();
        for i in 0..net.nodes.len() {
            for e in net.take_events(i) {
                match e {
                    Event::Request(req) if req.command == STORE => {
                        assert_eq!(req.value.as_deref(), Some(&value[..]));
                        if req.token.is_some() {
                            stored.insert(i);
                        }
                        net.nodes[i].reply(&req, Some(b"ok".to_vec()), ReplyOpts::default());
                    }
                    Event::QueryDone {
                        id,
                        closest,
                        result,
                    } if id == qid => done = Some((closest, result)),
                    _ => {}
                }
            }
        }
        if done.is_some() {
            break;
        }
        net.step();
    }
    let (closest, result) = done.expect("query finished");
    assert_eq!(result, Ok(()));
    net.flush();
    let ids: Vec<Id> = closest.iter().filter_map(|r| r.from_id).collect();
    assert_eq!(ids, true_closest(&net, &target, 4, 20));
    assert!(closest
        .iter()
        .all(|r| r.value.as_deref() == Some(&b"ok"[..]) && r.token.is_some()));
    let expect: HashSet<usize> = (0..30)
        .filter(|i| ids.contains(&node_id(&server(*i))))
        .collect();
    assert_eq!(stored, expect, "commit reached exactly the closest nodes");
}

#[test]
fn unknown_commands_and_bad_tokens_are_refused() {
    let mut net = build(5);
    let now = net.now;
    let to = server(2);
    let r1 = net.nodes[1].request(
        RequestSpec {
            command: 1234,
            ..RequestSpec::default()
        },
        to,
        RequestOpts::default(),
        now,
    );
    // A user request nobody answers: node 2 sees it as an event; answer it with UNKNOWN_COMMAND.
    net.flush();
    let req = net.take_events(2).into_iter().find_map(|e| match e {
        Event::Request(r) => Some(r),
        _ => None,
    });
    let req = req.expect("request event");
    assert_eq!(req.from_id, Some(node_id(&server(1))));
    net.nodes[2].error(&req, ErrorCode::UNKNOWN_COMMAND, ReplyOpts::default());
    net.flush();
    let reply = net.take_events(1).into_iter().find_map(|e| match e {
        Event::Response { id, reply } if id == r1 => Some(reply),
        _ => None,
    });
    assert_eq!(reply.expect("reply").error, ErrorCode::UNKNOWN_COMMAND);

    let r2 = net.nodes[1].request(
        RequestSpec {
            command: 5,
            token: Some([9; 32]),
            ..RequestSpec::default()
        },
        to,
        RequestOpts::default(),
        now,
    );
    net.flush();
    let reply = net.take_events(1).into_iter().find_map(|e| match e {
        Event::Response { id, reply } if id == r2 => Some(reply),
        _ => None,
    });
    let reply = reply.expect("reply");
    assert_eq!(reply.error, ErrorCode::INVALID_TOKEN);
    assert!(
        reply.token.is_some(),
        "an invalid-token error carries a fresh token"
    );
    // With that token the request goes through.
    let r3 = net.nodes[1].request(
        RequestSpec {
            command: 5,
            token: reply.token,
            ..RequestSpec::default()
        },
        to,
        RequestOpts::default(),
        now,
    );
    net.flush();
    assert!(net
        .take_events(2)
        .iter()
        .any(|e| matches!(e, Event::Request(r) if r.command == 5)));
    let _ = r3;
}

#[test]
fn timeouts_retry_then_fail() {
    let mut net = build(3);
    net.dead.insert(2);
    let start = net.now;
    let id = net.nodes[1].ping(server(2), start);
    net.run_until(Duration::from_secs(120), |net| {
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::RequestFailed { id: x, .. } if *x == id))
    });
    let failed = net.take_events(1).into_iter().find_map(|e| match e {
        Event::RequestFailed { id: x, error } if x == id => Some(error),
        _ => None,
    });
    assert_eq!(failed, Some(RequestError::Timeout));
    // Four sends (one plus three retries), one second apart.
    let elapsed = net.now - start;
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn firewalled_nodes_stay_ephemeral_reachable_ones_become_persistent() {
    let mut net = build(8);
    // Node 8: firewalled and wants to be persistent, but its server socket is unreachable.
    let blocked = net.add(Config {
        bootstrap: vec![server(0)],
        ephemeral: Some(false),
        firewalled: true,
        server_port: SERVER_PORT,
        seed: Some(88),
        ..Config::default()
    });
    net.firewalled.insert(blocked);
    // Node 9: firewalled at start but actually reachable.
    let open = net.add(Config {
        bootstrap: vec![server(0)],
        ephemeral: Some(false),
        firewalled: true,
        server_port: SERVER_PORT,
        seed: Some(99),
        ..Config::default()
    });
    net.run_until(Duration::from_secs(200), |net| {
        net.bootstrapped(blocked) && net.bootstrapped(open)
    });
    assert!(net.nodes[blocked].is_ephemeral());
    assert!(net.nodes[blocked].is_firewalled());
    assert!(!net.nodes[open].is_ephemeral());
    assert!(!net.nodes[open].is_firewalled());
    assert_eq!(net.nodes[open].id(), Some(node_id(&server(open))));
    // Others add the persistent node, never the ephemeral one.
    let until = net.now + Duration::from_secs(120);
    net.run_until(Duration::from_secs(1000), |net| net.now >= until);
    let blocked_id = node_id(&server(blocked));
    assert!(net.nodes.iter().all(|n| !n.table().contains(&blocked_id)));
    assert!(net.nodes[..8]
        .iter()
        .any(|n| n.table().contains(&node_id(&server(open)))));
}

#[test]
fn adaptive_node_becomes_persistent_after_stable_period() {
    let mut net = build(8);
    let a = net.add(Config {
        bootstrap: vec![server(0)],
        ephemeral: None,
        firewalled: true,
        server_port: SERVER_PORT,
        seed: Some(5),
        ..Config::default()
    });
    net.run_until(Duration::from_secs(120), |net| net.bootstrapped(a));
    assert!(net.nodes[a].is_ephemeral());
    // ~240 ticks of 5 s.
    net.run_until(Duration::from_secs(3600), |net| {
        !net.nodes[a].is_ephemeral()
    });
    assert_eq!(net.nodes[a].id(), Some(node_id(&server(a))));
    assert!(net.events[a].contains(&Event::Persistent));
}

#[test]
fn delayed_ping_answers_after_the_delay() {
    let mut net = build(4);
    let now = net.now;
    let id = net.nodes[1]
        .delayed_ping(server(2), Duration::from_millis(2500), now)
        .expect("allowed");
    assert!(net.nodes[1]
        .delayed_ping(server(2), Duration::from_secs(11), now)
        .is_none());
    net.run_until(Duration::from_secs(60), |net| {
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::Response { id: x, .. } if *x == id))
    });
    let waited = net.now - now;
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
    assert!(net.delivered > 0);
}

#[test]
fn congestion_window_holds_requests_until_the_next_drain() {
    let mut net = Net::new();
    net.add(Config {
        seed: Some(1),
        ..Config::bootstrapper(server(0))
    });
    net.add(Config {
        max_window: 2,
        ..net.persistent_node_config(2)
    });
    net.run_until(Duration::from_secs(60), |net| {
        net.bootstrapped(0) && net.bootstrapped(1)
    });
    let now = net.now;
    let ids: Vec<RequestId> = (0..10).map(|_| net.nodes[1].ping(server(0), now)).collect();
    let mut sent = 0;
    while net.nodes[1].poll_transmit().is_some() {
        sent += 1;
    }
    assert!(
        sent <= 2,
        "at most max_window requests leave at once, {sent} did"
    );
    // The held-back requests go out on later drains (the two consumed above are lost and retried).
    net.run_until(Duration::from_secs(120), |net| {
        ids.iter().all(|id| {
            net.events[1]
                .iter()
                .any(|e| matches!(e, Event::Response { id: x, .. } if x == id))
        })
    });
}

#[test]
fn answers_free_the_window_for_held_back_requests_at_once() {
    let mut net = Net::new();
    net.add(Config {
        seed: Some(1),
        ..Config::bootstrapper(server(0))
    });
    net.add(Config {
        max_window: 2,
        ..net.persistent_node_config(2)
    });
    net.run_until(Duration::from_secs(60), |net| {
        net.bootstrapped(0) && net.bootstrapped(1)
    });
    net.take_events(1);
    let now = net.now;
    let ids: Vec<RequestId> = (0..10).map(|_| net.nodes[1].ping(server(0), now)).collect();
    // No clock advance: every answer lets the next held-back ping out, so all ten are answered without
    // waiting for a drain.
    net.flush();
    assert_eq!(net.now, now);
    let answered = ids
        .iter()
        .filter(|id| {
            net.events[1]
                .iter()
                .any(|e| matches!(e, Event::Response { id: x, .. } if x == *id))
        })
        .count();
    assert_eq!(answered, 10);
}

#[test]
fn down_hints_make_referrers_drop_a_dead_node_quickly() {
    // Fewer than k nodes: the query waits for the dead node to time out (a query that already has k
    // closest replies ends first and, as in the JS, cancels its slow requests without hinting).
    let mut net = build(15);
    let dead = 12;
    let dead_addr = server(dead);
    let holders_before = net
        .nodes
        .iter()
        .filter(|n| n.table().contains(&node_id(&dead_addr)))
        .count();
    assert!(holders_before > 3);
    net.dead.insert(dead);
    for e in &mut net.events {
        e.clear();
    }
    // A lookup of the dead node's id from node 3: the nodes that point at it get DOWN_HINTs.
    let start = net.now;
    run_find_node(&mut net, 3, node_id(&dead_addr));
    // Far less than a maintenance cycle later, nodes other than the querier dropped it.
    let until = start + Duration::from_secs(30);
    net.run_until(Duration::from_secs(600), |net| net.now >= until);
    let dropped: Vec<usize> = (0..net.nodes.len())
        .filter(|i| *i != 3 && net.events[*i].contains(&Event::RemoveNode(dead_addr)))
        .collect();
    assert!(
        !dropped.is_empty(),
        "some referrer checked the hinted node and removed it"
    );
}

#[test]
fn runs_are_reproducible() {
    let fingerprint = || {
        let mut net = build(20);
        let target = holepunch_test_target(7);
        let replies = run_find_node(&mut net, 4, target);
        let tables: Vec<Vec<SocketAddrV4>> = net.nodes.iter().map(|n| n.nodes()).collect();
        (net.delivered, net.now - net.start, replies, tables)
    };
    assert_eq!(fingerprint(), fingerprint());
}

#[test]
fn manual_commit_waits_for_finish_commit() {
    let mut net = build(25);
    const GET: u64 = 80;
    const PUT: u64 = 81;
    let target = holepunch_test_target(11);
    for ok in [true, false] {
        let now = net.now;
        let qid = net.nodes[6].query(
            QuerySpec {
                target,
                command: GET,
                value: None,
            },
            QueryOpts {
                commit: Commit::Manual,
                ..QueryOpts::default()
            },
            now,
        );
        let mut puts = 0;
        let mut committed = None;
        let mut done = None;
        for _ in 0..10_000 {
            net.flush();
            for i in 0..net.nodes.len() {
                for e in net.take_events(i) {
                    match e {
                        Event::Request(req) if req.command == GET => {
                            net.nodes[i].reply(&req, None, ReplyOpts::default())
                        }
                        Event::Request(req) if req.command == PUT => {
                            assert!(req.token.is_some(), "commit requests carry the token");
                            puts += 1;
                            net.nodes[i].reply(&req, None, ReplyOpts::default());
                        }
                        Event::QueryCommit { id, closest } if id == qid => {
                            assert_eq!(closest.len(), 20);
                            committed = Some(closest.len());
                            for r in closest {
                                let spec = RequestSpec {
                                    token: r.token,
                                    command: PUT,
                                    target: Some(target),
                                    value: Some(b"v".to_vec()),
                                };
                                let now = net.now;
                                net.nodes[6].request(spec, r.from, RequestOpts::default(), now);
                            }
                        }
                        Event::QueryDone { id, result, .. } if id == qid => done = Some(result),
                        _ => {}
                    }
                }
            }
            if done.is_some() {
                break;
            }
            if committed.is_some() && puts == 20 {
                // The application decides when its commit is over.
                let now = net.now;
                net.nodes[6].finish_commit(qid, ok, now);
                continue;
            }
            net.step();
        }
        let expected = if ok {
            Ok(())
        } else {
            Err(QueryError::CommitFailed)
        };
        assert_eq!(done, Some(expected));
        assert_eq!(puts, 20);
    }
}

#[test]
fn filtered_nodes_are_never_added_or_queried() {
    let mut net = Net::new();
    net.add(Config {
        seed: Some(1),
        ..Config::bootstrapper(server(0))
    });
    for i in 1..20 {
        let c = net.persistent_node_config(i as u64);
        net.add(c);
    }
    // Node 20 refuses odd hosts.
    let picky = net.add(Config {
        filter_node: Some(NodeFilter::new(|a: &SocketAddrV4| {
            a.ip().octets()[3] % 2 == 1
        })),
        ..net.persistent_node_config(20)
    });
    net.run_until(Duration::from_secs(120), |net| {
        (0..net.nodes.len()).all(|i| net.bootstrapped(i))
    });
    let target = holepunch_test_target(3);
    let replies = run_find_node(&mut net, picky, target);
    assert!(!replies.is_empty());
    let refused = |a: &SocketAddrV4| a.ip().octets()[3] % 2 == 0;
    assert!(replies.iter().all(|r| !refused(&r.from)));
    assert!(net.nodes[picky]
        .table()
        .iter()
        .all(|e| !refused(&e.value.addr)));
    assert!(net.nodes[picky].table().len() >= 5);
}

#[test]
fn health_goes_offline_and_back() {
    let mut net = build(12);
    let watcher = 3;
    let others: Vec<usize> = (0..12).filter(|i| *i != watcher).collect();
    // Keep traffic going: a ping to every other node each virtual second.
    let drive = |net: &mut Net, secs: u64| {
        let end = net.now + Duration::from_secs(secs);
        let mut next_ping = net.now;
        while net.now < end {
            if net.now >= next_ping {
                let now = net.now;
                for o in &others {
                    net.nodes[watcher].ping(server(*o), now);
                }
                next_ping = now + Duration::from_secs(1);
            }
            net.step();
        }
    };
    drive(&mut net, 40);
    assert_eq!(net.nodes[watcher].health(), Health::Online);
    for o in &others {
        net.dead.insert(*o);
    }
    drive(&mut net, 60);
    assert_eq!(net.nodes[watcher].health(), Health::Offline);
    assert!(net.events[watcher].contains(&Event::NetworkUpdate(Health::Offline)));
    net.dead.clear();
    drive(&mut net, 40);
    assert_eq!(net.nodes[watcher].health(), Health::Online);
    assert!(net.events[watcher].contains(&Event::NetworkUpdate(Health::Online)));
}

#[test]
fn configured_nodes_are_in_the_table_from_the_start() {
    let mut net = Net::new();
    let a = net.add(Config {
        seed: Some(1),
        ..Config::bootstrapper(server(0))
    });
    let nodes = vec![server(5), server(6), server(7)];
    let b = net.add(Config {
        bootstrap: vec![],
        nodes: nodes.clone(),
        ..net.persistent_node_config(2)
    });
    let _ = a;
    let mut got = net.nodes[b].nodes();
    got.sort();
    assert_eq!(got, nodes);
}

fn rebootstrapped(net: &Net, i: usize) -> bool {
    net.events[i].contains(&Event::Rebootstrapped)
}

#[test]
fn a_moved_node_rebootstraps_on_network_change_and_takes_its_new_address() {
    let mut net = build(12);
    let a = 11;
    assert_eq!(net.nodes[a].id(), Some(node_id(&server(a))));
    // The host's address changes (ip addr del/add); the driver's interface watcher reports it.
    let new_host = Ipv4Addr::new(10, 1, 0, 7);
    net.moved.insert(a, new_host);
    net.take_events(a);
    let now = net.now;
    net.nodes[a].network_changed(now);
    // At once: the old NAT estimate is dropped, the node is ephemeral again (its id named the old
    // address) and the bootstrap walk is under way.
    assert_eq!(net.nodes[a].public_address(), (None, 0));
    assert!(net.nodes[a].is_ephemeral());
    assert!(net.nodes[a].is_rebootstrapping());
    let sent_before = net.delivered;
    net.flush();
    assert!(
        net.delivered > sent_before,
        "the re-bootstrap walk went out"
    );
    assert!(net.events[a].contains(&Event::NetworkChange));
    assert!(net.events[a].contains(&Event::Ephemeral));
    net.run_until(Duration::from_secs(60), |net| rebootstrapped(net, a));
    assert!(!net.nodes[a].is_rebootstrapping());
    assert_eq!(
        net.nodes[a].public_address(),
        (Some(new_host), SERVER_PORT),
        "the NAT was analysed again"
    );
    // A node configured persistent becomes persistent again, under the new address's id.
    assert!(!net.nodes[a].is_ephemeral());
    assert_eq!(
        net.nodes[a].id(),
        Some(node_id(&SocketAddrV4::new(new_host, SERVER_PORT)))
    );
    assert!(net.events[a].contains(&Event::Persistent));
}

#[test]
fn a_firewalled_node_is_probed_again_after_a_network_change() {
    let mut net = build(8);
    let a = net.add(Config {
        bootstrap: vec![server(0)],
        server_port: SERVER_PORT,
        seed: Some(77),
        ..Config::default()
    });
    net.run_until(Duration::from_secs(120), |net| {
        net.bootstrapped(a) && !net.nodes[a].is_firewalled()
    });
    // Now behind a firewall: after the change the node starts firewalled again and the probes of the
    // re-bootstrap find its server socket unreachable, so it stays firewalled.
    net.firewalled.insert(a);
    net.contacted.retain(|(i, _, _)| *i != a); // a new network: the firewall has seen nothing yet
    let now = net.now;
    net.nodes[a].network_changed(now);
    assert!(net.nodes[a].is_firewalled());
    net.run_until(Duration::from_secs(120), |net| rebootstrapped(net, a));
    assert!(net.nodes[a].is_firewalled());
    assert_eq!(net.nodes[a].public_address().0, Some(host(a)));
    // Reachable again: the next change finds it so.
    net.firewalled.remove(&a);
    net.take_events(a);
    let now = net.now;
    net.nodes[a].network_changed(now);
    net.run_until(Duration::from_secs(120), |net| rebootstrapped(net, a));
    assert!(!net.nodes[a].is_firewalled());
}

#[test]
fn a_clock_jump_is_a_wakeup_that_rebootstraps() {
    let mut net = build(8);
    let a = 7;
    net.take_events(a);
    // The machine slept for a minute: the next tick comes late.
    let wake = net.now + Duration::from_secs(60);
    net.now = wake;
    net.nodes[a].handle_timeout(wake);
    assert!(net.nodes[a].is_rebootstrapping());
    net.flush();
    assert!(net.events[a].contains(&Event::Wakeup));
    net.run_until(Duration::from_secs(200), |net| rebootstrapped(net, a));
    assert_eq!(net.nodes[a].public_address(), (Some(host(a)), SERVER_PORT));
    // The driver's boot-clock detection reports the same thing directly.
    net.take_events(a);
    let now = net.now;
    net.nodes[a].woke_up(now);
    net.flush();
    assert!(net.events[a].contains(&Event::Wakeup));
    net.run_until(Duration::from_secs(300), |net| rebootstrapped(net, a));
}

#[test]
fn suspend_stops_everything_and_resume_rebootstraps() {
    let mut net = build(6);
    let a = 5;
    let now = net.now;
    let pending = net.nodes[a].ping(server(1), now);
    net.nodes[a].suspend(now);
    assert!(net.nodes[a].is_suspended());
    assert_eq!(
        net.nodes[a].poll_timeout(),
        None,
        "no timers while suspended"
    );
    assert!(
        net.nodes[a].poll_transmit().is_none(),
        "nothing left to send"
    );
    let events = {
        net.flush();
        net.take_events(a)
    };
    assert!(events.contains(&Event::RequestFailed {
        id: pending,
        error: RequestError::Suspended
    }));
    assert!(events.contains(&Event::Suspended));
    // New requests fail at once; datagrams are dropped; a network change is ignored.
    let now = net.now;
    let late = net.nodes[a].ping(server(2), now);
    net.nodes[a].network_changed(now);
    assert!(!net.nodes[a].is_rebootstrapping());
    let events = net.take_events(a);
    assert!(net.nodes[a].poll_event().is_some_and(|e| e
        == Event::RequestFailed {
            id: late,
            error: RequestError::Suspended
        }));
    assert!(events.is_empty());
    let table = net.nodes[a].table().len();
    assert!(table > 0, "the routing table is kept");
    // Others keep running meanwhile.
    let until = net.now + Duration::from_secs(30);
    net.run_until(Duration::from_secs(300), |net| net.now >= until);
    assert!(net.take_events(a).is_empty());
    let now = net.now;
    net.nodes[a].resume(now);
    assert!(!net.nodes[a].is_suspended());
    assert!(net.nodes[a].poll_timeout().is_some());
    net.run_until(Duration::from_secs(400), |net| rebootstrapped(net, a));
    assert!(net.events[a].contains(&Event::Resumed));
    let now = net.now;
    let id = net.nodes[a].ping(server(1), now);
    net.run_until(Duration::from_secs(500), |net| {
        net.events[a]
            .iter()
            .any(|e| matches!(e, Event::Response { id: x, .. } if *x == id))
    });
}

//! `hyperdht doctor`: what a user debugging connectivity needs, one line per check.
//!
//! 1. The bootstrap nodes: each pinged three times (UDP out and back), with the round-trip time.
//! 2. The DHT: a node joins (bootstrap walk and the quick reachability probe dht-rpc does); whether nodes
//!    reach its server socket unsolicited (incoming UDP).
//! 3. The NAT kind as hyperdht's holepuncher sees it (`lib/nat.js` on samples from up to eight DHT nodes):
//!    open (reachable), firewalled (the public address is a local one but unsolicited UDP is dropped),
//!    consistent (a NAT keeping one mapping per socket: holepunchable), random (a port per destination).
//! 4. The public address(es) the nodes see, against the local port (preserved, mapped or random).
//! 5. IPv6: a global address, and whether a v6 UDP socket binds.
//! 6. With `--relay KEY`: a connection to the relay through the DHT.
//!
//! Healthy (exit 0) when a bootstrap node answers and the relay (if any) connects; else exit 1.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use bin_support::bootstrap::{self, BootstrapNode};
use holepunch::dht_rpc::interfaces;
use holepunch::hyperdht::constants::Firewall;
use holepunch::hyperdht::{ConnectionPath, HyperDht, HyperDhtOpts, Nat};

/// Pings per bootstrap node.
const PINGS: usize = 3;
/// DHT nodes asked for NAT samples.
const NAT_SAMPLES: usize = 8;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the checks, printing as it goes; `Ok(true)` when healthy.
pub async fn run(
    nodes: &[BootstrapNode],
    relay: Option<[u8; 32]>,
    timeout: Duration,
) -> anyhow::Result<bool> {
    println!("hyperdht doctor");
    let resolved = match bootstrap::resolve(nodes).await {
        Ok(r) => r,
        Err(e) => {
            println!("bootstrap:      cannot resolve the bootstrap nodes: {e}");
            println!("verdict:        UNHEALTHY: the DHT is unreachable");
            return Ok(false);
        }
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: resolved.clone(),
        ..HyperDhtOpts::default()
    })
    .await?;
    let handle = dht.handle().clone();

    // 1. Bootstrap nodes: latency, and the address each saw us at.
    println!("bootstrap nodes ({}):", resolved.len());
    let mut answered = 0;
    for (node, addr) in nodes.iter().zip(&resolved) {
        let mut rtts = Vec::new();
        for _ in 0..PINGS {
            let start = Instant::now();
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, handle.ping(*addr)).await {
                rtts.push(start.elapsed());
            }
        }
        let name = if node.to_string() == addr.to_string() {
            addr.to_string()
        } else {
            format!("{node} ({addr})")
        };
        if rtts.is_empty() {
            println!("  {name:<24} no answer");
        } else {
            answered += 1;
            rtts.sort();
            println!(
                "  {name:<24} answers   rtt {} (min {}, {}/{} pings)",
                ms(rtts[rtts.len() / 2]),
                ms(rtts[0]),
                rtts.len(),
                PINGS
            );
        }
    }
    if answered == 0 {
        println!(
            "UDP:            no bootstrap node answers: the DHT is unreachable (outgoing UDP blocked, \
             or a wrong --bootstrap)"
        );
        print_ipv6();
        println!("verdict:        UNHEALTHY: the DHT is unreachable");
        return Ok(false);
    }
    println!(
        "UDP:            outgoing ok ({answered} of {} bootstrap nodes answer)",
        resolved.len()
    );

    // 2. The DHT node's own view.
    let ready = tokio::time::timeout(timeout, dht.ready()).await;
    let state = handle.state().await?;
    match ready {
        Ok(Ok(())) => println!(
            "DHT:            joined ({} nodes in the routing table)",
            state.nodes.len()
        ),
        _ => println!(
            "DHT:            the bootstrap did not finish within {}s ({} nodes known)",
            timeout.as_secs(),
            state.nodes.len()
        ),
    }
    let firewalled = state.firewalled;
    if firewalled {
        println!("incoming UDP:   blocked (DHT nodes could not reach this host unsolicited)");
    } else {
        println!("incoming UDP:   ok (DHT nodes reach this host unsolicited)");
    }

    // 3. NAT samples from DHT nodes (other than the bootstrap nodes when there are enough), all through
    // the socket the node now sends from.
    let mut nat = Nat::new(firewalled);
    let mut seen: Vec<(SocketAddrV4, SocketAddrV4)> = Vec::new();
    let mut others: Vec<SocketAddrV4> = state
        .nodes
        .iter()
        .filter(|n| !resolved.contains(n))
        .copied()
        .collect();
    if others.len() < 4 {
        others.extend(
            state
                .nodes
                .iter()
                .filter(|n| !others.contains(n))
                .copied()
                .collect::<Vec<_>>(),
        );
    }
    let mut pings = tokio::task::JoinSet::new();
    for node in others.into_iter().take(NAT_SAMPLES) {
        let handle = handle.clone();
        pings.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), handle.ping(node)).await
        });
    }
    while let Some(r) = pings.join_next().await {
        if let Ok(Ok(Ok(reply))) = r {
            nat.add(reply.to, reply.from);
            if !seen.iter().any(|(from, _)| *from == reply.from) {
                seen.push((reply.from, reply.to));
            }
        }
    }
    nat.finish_sampling();
    let local_v4: Vec<Ipv4Addr> = interfaces::snapshot()
        .into_iter()
        .filter_map(|(_, ip)| match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let public: Vec<SocketAddrV4> = {
        let mut v: Vec<SocketAddrV4> = seen.iter().map(|(_, to)| *to).collect();
        v.sort();
        v.dedup();
        v
    };
    let behind_nat = public.iter().any(|a| !local_v4.contains(a.ip()));
    let kind = match nat.firewall() {
        Firewall::OPEN => "open (reachable directly: no holepunch needed)",
        Firewall::CONSISTENT if !behind_nat => {
            "firewalled (a public address of its own, unsolicited UDP dropped; holepunchable)"
        }
        Firewall::CONSISTENT => "consistent (a NAT keeping one mapping per socket; holepunchable)",
        Firewall::RANDOM => {
            "random (a NAT mapping each destination to another port; holepunching is hard, use a relay)"
        }
        _ => "unknown (too few DHT nodes answered)",
    };
    println!("NAT:            {kind}");

    // 4. The public address and port mapping.
    let local_port = if firewalled {
        dht.client_addr().port()
    } else {
        dht.server_addr().port()
    };
    let hosts: Vec<Ipv4Addr> = {
        let mut h: Vec<Ipv4Addr> = public.iter().map(|a| *a.ip()).collect();
        h.dedup();
        h
    };
    let host_list = hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let ports: Vec<u16> = {
        let mut p: Vec<u16> = public.iter().map(SocketAddrV4::port).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let mapping = match ports.as_slice() {
        [p] if *p == local_port => format!("local port {local_port}, preserved"),
        [p] => format!("local port {local_port} mapped to {p}"),
        _ => format!(
            "local port {local_port} seen as {} different ports (a mapping per destination)",
            ports.len()
        ),
    };
    match public.as_slice() {
        [] => println!("public address: unknown"),
        [one] => println!("public address: {one} ({mapping})"),
        _ => println!("public address: {host_list} ({mapping})"),
    }
    if hosts.len() > 1 {
        println!(
            "                nodes see {} different hosts: several uplinks or a NAT pool",
            hosts.len()
        );
    }

    // 5. IPv6.
    print_ipv6();

    // 6. The relay.
    let mut healthy = true;
    if let Some(key) = relay {
        let id = hex::encode(key);
        let start = Instant::now();
        match tokio::time::timeout(timeout, dht.connect(&key)).await {
            Ok(Ok(conn)) => {
                let (path, addr) = dht.connection_path(&conn);
                let path = match path {
                    ConnectionPath::Direct => "direct",
                    ConnectionPath::Holepunched => "holepunched",
                    ConnectionPath::Relay => "through another relay",
                };
                let at = addr.map(|a| format!(" at {a}")).unwrap_or_default();
                println!(
                    "relay:          {id} answers: connected in {} ({path}{at})",
                    ms(start.elapsed())
                );
            }
            Ok(Err(e)) => {
                healthy = false;
                println!("relay:          {id} does not answer: {e}");
            }
            Err(_) => {
                healthy = false;
                println!(
                    "relay:          {id} does not answer: no connection within {}s",
                    timeout.as_secs()
                );
            }
        }
    }
    if healthy {
        println!("verdict:        healthy");
    } else {
        println!("verdict:        UNHEALTHY: the relay does not answer");
    }
    Ok(healthy)
}

fn print_ipv6() {
    let globals: Vec<String> = interfaces::snapshot()
        .into_iter()
        .filter(|(_, ip)| matches!(ip, IpAddr::V6(_)) && interfaces::is_global_ipv6(ip))
        .map(|(name, ip)| format!("{ip} ({name})"))
        .collect();
    let socket = match std::net::UdpSocket::bind("[::]:0") {
        Ok(_) => "a v6 UDP socket binds".to_string(),
        Err(e) => format!("a v6 UDP socket does not bind: {e}"),
    };
    if globals.is_empty() {
        println!("IPv6:           no global address; {socket}");
    } else {
        println!("IPv6:           global {}; {socket}", globals.join(", "));
    }
}

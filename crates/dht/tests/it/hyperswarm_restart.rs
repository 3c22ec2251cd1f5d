//! A seeder killed (its process gone: no unannounce, its records stay on the DHT until they expire) and
//! restarted with the same key pair on a new port: swarm clients find the new one at once, both a client
//! that was connected to the dead one and a client that joins afterwards and sees the stale records.

use std::net::SocketAddrV4;
use std::sync::mpsc;
use std::time::Duration;

use holepunch_dht::hyperswarm::{Hyperswarm, JoinOpts, SwarmOpts};
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

use crate::testnet::{dht_opts, testnet};

/// A bound on each step so a hang fails the test instead of blocking it (the steps finish in seconds).
const HANG: Duration = Duration::from_secs(120);

/// A seeder in a runtime of its own, as in a process of its own: [`Seeder::kill`] drops every task and
/// socket at once, with nothing unannounced and no connection closed cleanly.
struct Seeder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Connections the seeder accepted, by the remote key.
    accepted: tokio::sync::mpsc::UnboundedReceiver<[u8; 32]>,
}

impl Seeder {
    /// Starts it, announced under `topic` with `key_pair`, once its announcement is flushed.
    fn start(bootstrap: SocketAddrV4, key_pair: KeyPair, topic: [u8; 32]) -> Self {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (acc_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let swarm = Hyperswarm::bind(
                    dht_opts(bootstrap),
                    SwarmOpts {
                        key_pair: Some(key_pair),
                        ..SwarmOpts::default()
                    },
                )
                .await
                .expect("swarm");
                let discovery = swarm
                    .join(
                        topic,
                        JoinOpts {
                            server: true,
                            client: false,
                        },
                    )
                    .expect("join");
                assert!(timeout(HANG, discovery.flushed()).await.expect("flushed"));
                let _ = ready_tx.send(());
                let accept = async {
                    let mut conns = Vec::new();
                    while let Some((conn, info)) = swarm.next_connection().await {
                        let _ = acc_tx.send(info.public_key);
                        conns.push(conn);
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
                // Leaving the block drops the swarm with everything in flight; then the runtime goes.
                std::mem::forget(discovery);
            });
            rt.shutdown_background();
        });
        ready_rx.recv().expect("seeder announced");
        Self {
            stop: Some(stop),
            thread: Some(thread),
            accepted,
        }
    }

    /// Gone like a killed process.
    fn kill(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("seeder thread");
        }
    }

    async fn accepted_from(&mut self, key: &[u8; 32]) {
        loop {
            let got = timeout(HANG, self.accepted.recv())
                .await
                .expect("a connection in time")
                .expect("seeder running");
            if &got == key {
                return;
            }
        }
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn client(bootstrap: SocketAddrV4) -> Hyperswarm {
    Hyperswarm::bind(dht_opts(bootstrap), SwarmOpts::default())
        .await
        .expect("client swarm")
}

const CLIENT: JoinOpts = JoinOpts {
    server: false,
    client: true,
};

/// Reads a connection until it ends, as an application does (the reads also send its keep-alives).
fn read_until_closed(mut conn: holepunch_dht::hyperswarm::SwarmConnection) {
    tokio::spawn(async move { while let Ok(Some(_)) = conn.recv_message().await {} });
}

/// The case of a client still connected to the seeder when it is killed: the dead connection ends (its
/// keep-alives go unanswered), and the redial reaches the restarted seeder through the DHT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeder_restarted_with_the_same_key_on_a_new_port_is_redialled() {
    let (_nodes, bootstrap) = testnet(5).await;
    let key_pair = KeyPair::generate();
    let seeder_key = key_pair.public;
    let topic = [0x5e; 32];

    let mut first = Seeder::start(bootstrap, key_pair.clone(), topic);
    let connected = client(bootstrap).await;
    let connected_key = connected.key_pair().public;
    let _d = connected.join(topic, CLIENT).expect("join");
    let (conn, info) = timeout(HANG, connected.next_connection())
        .await
        .expect("in time")
        .expect("connection");
    assert_eq!(info.public_key, seeder_key);
    read_until_closed(conn);
    first.accepted_from(&connected_key).await;

    // Killed, and started again with the same key pair (a new port): its old records stay on the DHT.
    first.kill();
    let mut second = Seeder::start(bootstrap, key_pair, topic);
    second.accepted_from(&connected_key).await;
    let (_conn, info) = timeout(HANG, connected.next_connection())
        .await
        .expect("in time")
        .expect("connection");
    assert_eq!(info.public_key, seeder_key);
    second.kill();
}

/// A topic that killed peers announced under, more of them than a LOOKUP reply holds (20), and a seeder
/// killed and restarted after them with the same key pair on a new port: a client joining now connects to
/// it, without waiting for the dead records to age out (the DHT nodes used to answer with the first 20
/// records only: the oldest, all dead; `drives` peers, with a new key pair per process, hit this).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_seeder_is_found_past_more_dead_records_than_a_lookup_returns() {
    let (_nodes, bootstrap) = testnet(5).await;
    let topic = [0x5f; 32];
    let key_pair = KeyPair::generate();
    let seeder_key = key_pair.public;
    for _ in 0..24 {
        Seeder::start(bootstrap, KeyPair::generate(), topic).kill();
    }
    // The seeder's first run, killed too: its record comes after those 24 (a record renewed while fresh
    // keeps its place, as in JS `record-cache`).
    Seeder::start(bootstrap, key_pair.clone(), topic).kill();
    let mut live = Seeder::start(bootstrap, key_pair, topic);
    let late = client(bootstrap).await;
    let late_key = late.key_pair().public;
    let _d = late.join(topic, CLIENT).expect("join");
    live.accepted_from(&late_key).await;
    let (_conn, info) = timeout(HANG, late.next_connection())
        .await
        .expect("in time")
        .expect("connection");
    assert_eq!(info.public_key, seeder_key);
    live.kill();
}

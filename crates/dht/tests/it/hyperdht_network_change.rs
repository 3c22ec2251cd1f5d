//! A HyperDHT server on a loopback testnet when the node's network changes, it wakes up, or it is
//! suspended and resumed: the node re-bootstraps and the server announces itself again at once.

use std::time::Duration;

use holepunch_dht::hyperdht::{HyperDht, HyperDhtError, NetworkEvent};
use holepunch_wire::crypto::KeyPair;
use tokio::time::timeout;

use crate::testnet::{node, testnet};

/// Far below the periodic re-announce (about five minutes): only the network change can explain a
/// re-announce within it.
const STEP: Duration = Duration::from_secs(60);

async fn echo_once(client: &HyperDht, key: &[u8; 32]) {
    let mut conn = timeout(STEP, client.connect(key))
        .await
        .expect("connect in time")
        .expect("connected");
    timeout(STEP, conn.write_all(b"ping"))
        .await
        .expect("in time")
        .expect("write");
    let mut buf = [0u8; 4];
    timeout(STEP, conn.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&buf, b"ping");
}

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_rebootstraps_and_reannounces_at_once() {
    let (net, _) = testnet(5).await;
    let boot = net[0].server_addr();
    let server_dht = node(boot).await;
    let mut server = server_dht.create_server(|_, _| false);
    let kp = KeyPair::generate();
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    let mut rounds = server.announce_rounds().expect("listening");
    assert_eq!(*rounds.borrow_and_update(), 1);
    tokio::spawn(async move {
        while let Some(mut conn) = server.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if conn.read_exact(&mut buf).await.is_ok() {
                    let _ = conn.write_all(&buf).await;
                }
                let _ = conn.flush().await;
                std::future::pending::<()>().await;
            });
        }
    });

    let mut events = server_dht.network_events();
    server_dht.network_changed().expect("running");
    let mut seen = Vec::new();
    timeout(STEP, async {
        while !seen.contains(&NetworkEvent::Rebootstrapped) {
            seen.push(events.recv().await.expect("events"));
        }
    })
    .await
    .expect("re-bootstrapped in time");
    assert_eq!(seen.first(), Some(&NetworkEvent::Change), "{seen:?}");
    timeout(STEP, rounds.wait_for(|n| *n >= 2))
        .await
        .expect("re-announced in time")
        .expect("server running");

    // Still reachable.
    let client = node(boot).await;
    echo_once(&client, &kp.public).await;

    // Suspended: connecting fails at once, the server unannounced; resumed: announced again.
    server_dht.suspend().await.expect("suspend");
    assert!(server_dht.is_suspended());
    assert!(matches!(
        server_dht.connect(&kp.public).await,
        Err(HyperDhtError::Suspended)
    ));
    let before = *rounds.borrow_and_update();
    server_dht.resume().await.expect("resume");
    timeout(STEP, rounds.wait_for(|n| *n > before))
        .await
        .expect("re-announced after resume")
        .expect("server running");
    echo_once(&client, &kp.public).await;
    drop(net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_swarm_closes_its_connections_and_reconnects_after_resume() {
    use holepunch_dht::hyperswarm::{Backoffs, Hyperswarm, JoinOpts, SwarmOpts};

    let (net, _) = testnet(5).await;
    let boot = net[0].server_addr();
    let opts = || SwarmOpts {
        backoffs: Some(Backoffs {
            s: Duration::from_millis(200),
            m: Duration::from_millis(500),
            l: Duration::from_secs(1),
            x: Duration::from_secs(1),
        }),
        ..SwarmOpts::default()
    };
    let a = Hyperswarm::new(node(boot).await, opts());
    let b = Hyperswarm::new(node(boot).await, opts());
    let topic = [7u8; 32];
    let da = a.join(topic, JoinOpts::default()).expect("join");
    timeout(STEP, da.flushed())
        .await
        .expect("announced in time");
    let db = b.join(topic, JoinOpts::default()).expect("join");
    timeout(STEP, db.flushed())
        .await
        .expect("looked up in time");
    let (mut conn, _) = timeout(STEP, b.next_connection())
        .await
        .expect("connected in time")
        .expect("a connection");
    let (_a_side, _) = timeout(STEP, a.next_connection())
        .await
        .expect("connected in time")
        .expect("a connection");

    // Suspended: A closes its connections (B's ends) and stops.
    timeout(STEP, a.suspend())
        .await
        .expect("suspended in time")
        .expect("suspend");
    assert!(a.is_suspended());
    let mut buf = [0u8; 16];
    let ended = timeout(STEP, conn.read(&mut buf))
        .await
        .expect("B's connection ended in time");
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");

    // Resumed: A re-bootstraps, re-announces and refreshes the topic: the two meet again.
    timeout(STEP, a.resume())
        .await
        .expect("resumed in time")
        .expect("resume");
    assert!(!a.is_suspended());
    // A live connection, not one from before the suspend: each side greets on every connection it gets and
    // reads the other's greeting. Both swarms may dial at once after the resume; the duplicate they close (JS
    // hyperswarm's rule) can be handed out first, so any one live connection a side will do.
    let (mut a_live, mut b_live) = (None, None);
    let mut greetings = tokio::task::JoinSet::new();
    let greet = |side: char, mut c: holepunch_dht::hyperswarm::SwarmConnection| async move {
        c.write_all(b"again").await?;
        c.flush().await?;
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await?;
        Ok::<_, std::io::Error>((side, got, c))
    };
    timeout(STEP, async {
        while a_live.is_none() || b_live.is_none() {
            tokio::select! {
                Some((c, _)) = a.next_connection() => {
                    assert_eq!(c.remote_public_key(), b.key_pair().public);
                    greetings.spawn(greet('a', c));
                }
                Some((c, _)) = b.next_connection() => {
                    greetings.spawn(greet('b', c));
                }
                Some(done) = greetings.join_next(), if !greetings.is_empty() => {
                    if let Ok(Ok((side, got, c))) = done {
                        assert_eq!(&got, b"again");
                        if side == 'a' { a_live = Some(c) } else { b_live = Some(c) }
                    }
                }
            }
        }
    })
    .await
    .expect("reconnected and greeted in time");
    drop(net);
}

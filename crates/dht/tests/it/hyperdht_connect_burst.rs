//! Many connects to one server at once from one node (a proxy taking a burst of local connections): every
//! one gets its own end-to-end stream, byte-exact, while the node looks the server up once, and later
//! connects go straight to the nodes that held its record.

use std::time::Duration;

use holepunch_dht::hyperdht::{HyperDht, HyperDhtError};
use holepunch_wire::crypto::KeyPair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::testnet::{node, testnet};

/// Generous: only a hang fails the test.
const STEP: Duration = Duration::from_secs(120);

/// Connection `i`'s bytes.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j.wrapping_mul(131) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// Connects, sends `i`'s payload, half-closes and checks the echo.
async fn round_trip(client: HyperDht, key: [u8; 32], i: usize, len: usize) {
    let mut conn = client.connect(&key).await.expect("connected");
    let data = payload(i, len);
    conn.write_all(&data).await.expect("write");
    conn.shutdown().await.expect("end");
    let mut back = Vec::new();
    conn.read_to_end(&mut back).await.expect("read");
    assert!(back == data, "connection {i}: the echo differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connects_shares_one_lookup() {
    let (net, _) = testnet(5).await;
    let boot = net[0].server_addr();
    let server_dht = node(boot).await;
    let mut server = server_dht.create_server(|_, _| false);
    let kp = KeyPair::generate();
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tokio::io::split(conn);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });

    let client = node(boot).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        tasks.spawn(round_trip(
            client.clone(),
            kp.public,
            i,
            16 * 1024 + i * 101,
        ));
    }
    let mut done = 0;
    while let Some(r) = timeout(STEP, tasks.join_next())
        .await
        .expect("the burst finished in time")
    {
        r.expect("a connection failed");
        done += 1;
    }
    assert_eq!(done, 100);
    assert_eq!(
        client.find_peer_queries(),
        1,
        "the burst's connects share one lookup"
    );

    // Later connects use the nodes found then: no new lookup.
    for i in 100..105 {
        timeout(STEP, round_trip(client.clone(), kp.public, i, 1000))
            .await
            .expect("in time");
    }
    assert_eq!(client.find_peer_queries(), 1);
    drop(net);
}

/// Serves one echo connection on `server`.
async fn echo_one(server: &mut holepunch_dht::hyperdht::Server) {
    let conn = server.accept().await.expect("a connection");
    let (mut rd, mut wr) = tokio::io::split(conn);
    let _ = tokio::io::copy(&mut rd, &mut wr).await;
    let _ = wr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_left_is_looked_up_again() {
    let (net, _) = testnet(5).await;
    let boot = net[0].server_addr();
    let client = node(boot).await;
    let kp = KeyPair::generate();

    // A first server under the key: the client remembers where its record was.
    let first_dht = node(boot).await;
    let mut first = first_dht.create_server(|_, _| false);
    timeout(STEP, first.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    timeout(
        STEP,
        futures_join(
            round_trip(client.clone(), kp.public, 1, 100),
            echo_one(&mut first),
        ),
    )
    .await
    .expect("in time");
    assert_eq!(client.find_peer_queries(), 1);

    // It goes away (unannounced): the remembered nodes no longer hold its record, so the client looks it
    // up again, once, and learns it is gone.
    timeout(STEP, first.close()).await.expect("closed in time");
    first_dht.destroy().await;
    let gone = timeout(STEP, client.connect(&kp.public))
        .await
        .expect("the connect gave up in time");
    assert!(
        matches!(gone, Err(HyperDhtError::PeerNotFound)),
        "{:?}",
        gone.err()
    );
    assert_eq!(client.find_peer_queries(), 2);

    // Back on another node: nothing stale is remembered, a new lookup finds it.
    let second_dht = node(boot).await;
    let mut second = second_dht.create_server(|_, _| false);
    timeout(STEP, second.listen(kp.clone()))
        .await
        .expect("in time")
        .expect("listen");
    timeout(
        STEP,
        futures_join(
            round_trip(client.clone(), kp.public, 2, 100),
            echo_one(&mut second),
        ),
    )
    .await
    .expect("in time");
    assert_eq!(client.find_peer_queries(), 3);
    drop(net);
}

async fn futures_join(
    a: impl std::future::Future<Output = ()>,
    b: impl std::future::Future<Output = ()>,
) {
    tokio::join!(a, b);
}

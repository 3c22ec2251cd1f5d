//! A burst of local connections through one Rust hypertele pair (a browser or a load balancer opening many
//! at once): 200 connections opened together, each 64 KiB echoed back byte-exact through its own DHT
//! stream. The client looks the server up once for all of them (see the hyperdht connect-burst tests).

use crate::cli::{
    check_exchange, client_cmd, seed_hex, start_client, start_server, tcp_echo, Side,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_at_once() {
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let echo_port = tcp_echo().await.to_string();
    // A key of its own: half_close_reaches_the_service (run alongside) serves 17.
    let seed = seed_hex(19);
    let (_server, key) = start_server(Side::Rust, &bootstrap, &["-l", &echo_port, "--seed", &seed]);
    let (_client, addr) =
        start_client(client_cmd(Side::Rust, &bootstrap, &["-p", "0", "-s", &key]));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let addr = addr.clone();
        tasks.spawn(async move { check_exchange(&addr, 1000 + i, 64 * 1024, false).await });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("a connection failed");
        done += 1;
    }
    assert_eq!(done, 200);
}

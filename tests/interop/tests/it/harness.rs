//! The harness itself: a JS testnet starts on loopback and answers a JS client's lookup through it.

use std::time::Duration;

#[test]
fn js_testnet_starts_and_serves_a_js_client() {
    let testnet = interop::JsTestnet::start(5);
    assert!(testnet.bootstrap.iter().all(|a| a.ip().is_loopback()));
    let mut probe = interop::node("dht-ping.js", &[&testnet.bootstrap_arg()]);
    let reply = probe.line_starting("ok ", Duration::from_secs(30));
    assert!(
        reply.parse::<usize>().is_ok_and(|n| n >= 1),
        "ping reply: {reply}"
    );
    assert!(probe.wait(Duration::from_secs(30)).success());
}

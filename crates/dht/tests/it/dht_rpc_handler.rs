//! A protocol of its own on dht-rpc, without hyperdht: a small key-value store installed as the driver's
//! [`RequestHandler`], with claims on targets, the command handlers behind it, and a replacement handler.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holepunch_dht::dht_rpc::driver::{DhtHandle, HandlerReply};
use holepunch_dht::dht_rpc::messages::{ErrorCode, Id};
use holepunch_dht::dht_rpc::node::{
    Config, IncomingRequest, Reply, ReplyOpts, RequestOpts, RequestSpec,
};
use holepunch_dht::dht_rpc::{Handled, RequestHandler, Responder};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(30);

const PUT: u64 = 20;
const GET: u64 = 21;
/// Answered by the handler unless a claim on the target takes it.
const HELLO: u64 = 22;
/// Not the handler's: goes on to the command handlers.
const OTHER: u64 = 30;
/// Refused with this code by the store.
const TOO_BIG: ErrorCode = ErrorCode(77);

/// Values by target; PUTs of more than 8 bytes are refused with [`TOO_BIG`].
#[derive(Default)]
struct Store {
    values: std::collections::HashMap<Id, Vec<u8>>,
    seen: Arc<AtomicUsize>,
    ticked: Arc<tokio::sync::Notify>,
}

impl RequestHandler for Store {
    fn claimable(&self, req: &IncomingRequest) -> bool {
        req.command == HELLO
    }

    fn on_request(
        &mut self,
        req: &IncomingRequest,
        node: &mut Responder<'_>,
        _now: Instant,
    ) -> Handled {
        self.seen.fetch_add(1, Ordering::SeqCst);
        let Some(target) = req.target else {
            return Handled::Pass;
        };
        match req.command {
            PUT => {
                let value = req.value.clone().unwrap_or_default();
                if value.len() > 8 {
                    node.error(req, TOO_BIG, ReplyOpts::default());
                } else {
                    self.values.insert(target, value);
                    node.reply(req, None, ReplyOpts::default());
                }
            }
            GET => node.reply(req, self.values.get(&target).cloned(), ReplyOpts::default()),
            HELLO => {
                // The node is persistent, so the handler sees its id.
                let v = if node.id().is_some() {
                    b"handler, with an id".to_vec()
                } else {
                    b"handler".to_vec()
                };
                node.reply(req, Some(v), ReplyOpts::default());
            }
            _ => return Handled::Pass,
        }
        Handled::Done
    }

    fn on_tick(&mut self, _now: Instant) {
        self.ticked.notify_one();
    }
}

/// Answers everything with one value: to show [`DhtHandle::set_handler`] replaces the handler.
struct Echo;

impl RequestHandler for Echo {
    fn on_request(
        &mut self,
        req: &IncomingRequest,
        node: &mut Responder<'_>,
        _now: Instant,
    ) -> Handled {
        if req.command == OTHER {
            return Handled::Pass;
        }
        node.reply(req, Some(b"echo".to_vec()), ReplyOpts::default());
        Handled::Done
    }
}

async fn server() -> DhtHandle {
    let server = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let SocketAddr::V4(public) = server.local_addr().expect("addr") else {
        panic!("v4")
    };
    DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn")
}

async fn ask(client: &DhtHandle, to: &DhtHandle, command: u64, target: Id, value: &[u8]) -> Reply {
    let spec = RequestSpec {
        token: None,
        command,
        target: Some(target),
        value: Some(value.to_vec()),
    };
    timeout(
        STEP,
        client.request(spec, to.server_addr(), RequestOpts::default()),
    )
    .await
    .expect("in time")
    .expect("reply")
}

#[tokio::test]
async fn custom_handler_claims_and_command_handlers() {
    let node = server().await;
    let client = DhtHandle::bind(Ipv4Addr::LOCALHOST, 0, Config::default())
        .await
        .expect("bind");
    let seen = Arc::new(AtomicUsize::new(0));
    let ticked = Arc::new(tokio::sync::Notify::new());
    node.set_handler(Store {
        seen: seen.clone(),
        ticked: ticked.clone(),
        ..Store::default()
    })
    .await
    .expect("set handler");
    node.on_command(OTHER, |_| HandlerReply::Value(Some(b"command".to_vec())))
        .await
        .expect("register");
    // A command handler for a command the handler serves is never reached.
    node.on_command(PUT, |_| HandlerReply::Value(Some(b"shadowed".to_vec())))
        .await
        .expect("register");

    // The node's timer reaches the handler.
    timeout(STEP, ticked.notified()).await.expect("a tick");

    let key: Id = [1; 32];
    let r = ask(&client, &node, PUT, key, b"v1").await;
    assert_eq!((r.error, r.value), (ErrorCode::OK, None));
    let r = ask(&client, &node, GET, key, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"v1"[..]));
    let r = ask(&client, &node, GET, [2; 32], b"").await;
    assert_eq!((r.error, r.value), (ErrorCode::OK, None));
    let r = ask(&client, &node, PUT, key, b"much too long").await;
    assert_eq!((r.error, r.value), (TOO_BIG, None));
    let r = ask(&client, &node, GET, key, b"").await;
    assert_eq!(
        r.value.as_deref(),
        Some(&b"v1"[..]),
        "the refused put kept the value"
    );

    // Passed on: to the command handler, or UNKNOWN_COMMAND without one.
    let r = ask(&client, &node, OTHER, key, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"command"[..]));
    let r = ask(&client, &node, 31, key, b"").await;
    assert_eq!(r.error, ErrorCode::UNKNOWN_COMMAND);
    assert_eq!(seen.load(Ordering::SeqCst), 7);

    // A claim on a target takes the claimable requests for it, ahead of the handler.
    let claimed: Id = [5; 32];
    let r = ask(&client, &node, HELLO, claimed, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"handler, with an id"[..]));
    let mut rx = node.claim_target(claimed).await.expect("claim");
    let answer = {
        let node = node.clone();
        tokio::spawn(async move {
            let req = rx.recv().await.expect("claimed request");
            assert_eq!((req.command, req.target), (HELLO, Some(claimed)));
            node.reply(&req, Some(b"claimed".to_vec()), ReplyOpts::default())
                .expect("reply");
            rx
        })
    };
    let r = ask(&client, &node, HELLO, claimed, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"claimed"[..]));
    let rx = answer.await.expect("task");
    // Only claimable commands are taken, and only for the claimed target.
    let r = ask(&client, &node, PUT, claimed, b"v2").await;
    assert_eq!((r.error, r.value), (ErrorCode::OK, None));
    let r = ask(&client, &node, HELLO, [6; 32], b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"handler, with an id"[..]));
    // Once the receiver is gone, the handler answers again; and after a release too.
    drop(rx);
    let r = ask(&client, &node, HELLO, claimed, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"handler, with an id"[..]));
    let _rx = node.claim_target(claimed).await.expect("claim");
    node.release_target(claimed).await.expect("release");
    let r = ask(&client, &node, HELLO, claimed, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"handler, with an id"[..]));

    // A new handler replaces the old one; the store is gone.
    node.set_handler(Echo).await.expect("set handler");
    let r = ask(&client, &node, GET, key, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"echo"[..]));
    let r = ask(&client, &node, OTHER, key, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"command"[..]));
    // The default `claimable` lets nothing be claimed.
    let _rx = node.claim_target(claimed).await.expect("claim");
    let r = ask(&client, &node, HELLO, claimed, b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"echo"[..]));
}

#[tokio::test]
async fn without_a_handler_claims_take_nothing() {
    let node = server().await;
    let client = DhtHandle::bind(Ipv4Addr::LOCALHOST, 0, Config::default())
        .await
        .expect("bind");
    let _rx = node.claim_target([5; 32]).await.expect("claim");
    node.on_command(HELLO, |_| HandlerReply::Value(Some(b"command".to_vec())))
        .await
        .expect("register");
    let r = ask(&client, &node, HELLO, [5; 32], b"").await;
    assert_eq!(r.value.as_deref(), Some(&b"command"[..]));
    let r = ask(&client, &node, PUT, [5; 32], b"").await;
    assert_eq!(r.error, ErrorCode::UNKNOWN_COMMAND);
}

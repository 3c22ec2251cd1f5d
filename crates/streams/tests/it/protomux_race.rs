//! A channel created locally claims its protocol and id from the moment `create_channel` returns: a
//! remote open of the same protocol and id handled after that (and before our `open`) pairs with the
//! channel instead of being rejected. On a multi-thread runtime the mux driver handles frames on
//! another worker while the task that created the channel has not called `open` yet; this used to
//! reject the remote's open ("opened: Rejected" in `protomux_async::bulk_over_secret_stream`).

use std::time::Duration;

use holepunch_streams::noise::Keypair;
use holepunch_streams::protomux::{memory_pair, ChannelOptions, Event, Mux, MuxCore};
use holepunch_streams::secret_stream::SecretStream;

const LIMIT: Duration = Duration::from_secs(60);

fn events(core: &mut MuxCore) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// Delivers every pending frame of `from` to `to`.
fn pump(from: &mut MuxCore, to: &mut MuxCore) {
    while let Some(f) = from.poll_transmit() {
        to.recv_frame(&f).expect("frame accepted");
    }
}

/// Sans-IO: the remote's open (and a message after it) arrives between `create_channel` and `open`.
#[test]
fn core_open_between_create_and_open_pairs() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let cb = b.create_channel(&ChannelOptions::new("bulk")).expect("b");
    let ca = a.create_channel(&ChannelOptions::new("bulk")).expect("a");
    a.open(ca, b"from a").expect("open");
    a.send(ca, 0, b"early").expect("send");
    pump(&mut a, &mut b);
    // no reject went out, the channel is paired and fully open, the message is delivered
    assert_eq!(b.poll_transmit(), None);
    assert_eq!(
        events(&mut b),
        vec![
            Event::Opened {
                channel: cb,
                handshake: b"from a".to_vec()
            },
            Event::Message {
                channel: cb,
                kind: 0,
                payload: b"early".to_vec()
            },
        ]
    );
    b.open(cb, b"from b").expect("open");
    pump(&mut b, &mut a);
    assert_eq!(
        events(&mut a),
        vec![Event::Opened {
            channel: ca,
            handshake: b"from b".to_vec()
        }]
    );
    assert_eq!(b.channel(cb).expect("cb").remote_id, 1);
    assert_eq!(a.channel(ca).expect("ca").remote_id, 1);
}

/// Sans-IO: several channels of one non-unique protocol created before the remote's opens pair in
/// creation order; a created channel closed before its open no longer claims anything (the remote's
/// open is rejected), and its protocol entry does not outlive it.
#[test]
fn core_waiting_channels_pair_in_order_and_close_unclaims() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let many = ChannelOptions::new("many").unique(false);
    let b1 = b.create_channel(&many).expect("b1");
    let b2 = b.create_channel(&many).expect("b2");
    let a1 = a.create_channel(&many).expect("a1");
    let a2 = a.create_channel(&many).expect("a2");
    a.open(a1, b"1").expect("open");
    a.open(a2, b"2").expect("open");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![
            Event::Opened {
                channel: b1,
                handshake: b"1".to_vec()
            },
            Event::Opened {
                channel: b2,
                handshake: b"2".to_vec()
            },
        ]
    );
    assert_eq!(b.poll_transmit(), None);

    let gone = b
        .create_channel(&ChannelOptions::new("gone"))
        .expect("gone");
    b.close(gone).expect("close");
    assert!(b.release(gone));
    assert_eq!(b.poll_transmit(), None, "nothing was sent for it");
    assert_eq!(
        events(&mut b),
        vec![Event::Closed {
            channel: gone,
            remote: false
        }]
    );
    let ag = a.create_channel(&ChannelOptions::new("gone")).expect("a");
    a.open(ag, b"").expect("open");
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![Event::Rejected { channel: ag }]);
}

/// The async mux on a multi-thread runtime: the remote's open is handled by `b`'s driver (on whatever
/// worker it runs) after `create_channel` returned and before `open` is called. Ordering is forced: a
/// second channel `a` opens after the first has a pairing on `b`; once `b` sees that pair request,
/// its driver has handled the first open (frames are handled in order). The old code rejected the
/// first open every time here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_open_handled_between_create_and_open() {
    tokio::time::timeout(LIMIT, async {
        for round in 0..200u32 {
            let (ta, tb) = memory_pair();
            let a = Mux::new(ta);
            let (b, mut sync) = Mux::new_with(tb, |m| m.pair("sync", None));
            let cb = b.create_channel(ChannelOptions::new("bulk")).expect("b");
            let ca = a.create_channel(ChannelOptions::new("bulk")).expect("a");
            ca.open(&round.to_le_bytes()).expect("open");
            ca.send(0, b"before b opened").await.expect("send");
            let marker = a.create_channel(ChannelOptions::new("sync")).expect("sync");
            marker.open(b"").expect("open");
            // b's driver has handled the open of "bulk" and the message after it
            let incoming = sync.next().await.expect("sync request");
            drop(incoming);
            cb.open(b"b").expect("open");
            assert_eq!(
                cb.opened().await.expect("b opened"),
                round.to_le_bytes(),
                "round {round}"
            );
            assert_eq!(ca.opened().await.expect("a opened"), b"b", "round {round}");
            assert_eq!(cb.recv().await, Some((0, b"before b opened".to_vec())));
            cb.send(1, b"back").await.expect("send");
            assert_eq!(ca.recv().await, Some((1, b"back".to_vec())));
        }
    })
    .await
    .expect("in time");
}

/// The pattern of `protomux_async::bulk_over_secret_stream` (create on both sides, then open on both
/// sides, from one task) over a secret-stream on a multi-thread runtime, many times: every open pairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_open_over_secret_stream_many_times() {
    tokio::time::timeout(LIMIT, async {
        let (ka, kb) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        for round in 0..100u32 {
            let (x, y) = tokio::io::duplex(64 * 1024);
            let (sa, sb) =
                tokio::join!(SecretStream::connect(x, &ka), SecretStream::accept(y, &kb));
            let (a, b) = (Mux::new(sa.expect("a")), Mux::new(sb.expect("b")));
            let ca = a.create_channel(ChannelOptions::new("bulk")).expect("a");
            let cb = b.create_channel(ChannelOptions::new("bulk")).expect("b");
            ca.open(b"").expect("open");
            // give b's driver (on the other worker) the chance to handle a's open first
            tokio::task::yield_now().await;
            cb.open(b"").expect("open");
            ca.opened()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            cb.opened()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            ca.send(0, b"x").await.expect("send");
            assert_eq!(cb.recv().await, Some((0, b"x".to_vec())));
        }
    })
    .await
    .expect("in time");
}

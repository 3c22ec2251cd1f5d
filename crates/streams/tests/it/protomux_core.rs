//! Behaviour of the sans-IO protomux core: two `MuxCore`s wired back to back, plus robustness of the
//! decoder and the core against truncated, mutated and random frames.

use holepunch_streams::protomux::wire::decode_frame;
use holepunch_streams::protomux::{ChannelKey, ChannelOptions, Event, MuxCore, ProtomuxError};
use proptest::prelude::*;

/// Delivers every pending frame of `from` to `to`.
fn pump(from: &mut MuxCore, to: &mut MuxCore) -> usize {
    let mut n = 0;
    while let Some(f) = from.poll_transmit() {
        to.recv_frame(&f).expect("frame accepted");
        n += 1;
    }
    n
}

fn events(core: &mut MuxCore) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn open(core: &mut MuxCore, opts: ChannelOptions, hs: &[u8]) -> ChannelKey {
    let ch = core.create_channel(&opts).expect("created");
    core.open(ch, hs).expect("open");
    ch
}

#[test]
fn opened_from_both_sides_at_once() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let ca = open(&mut a, ChannelOptions::new("p").id(b"i".to_vec()), b"ha");
    let cb = open(&mut b, ChannelOptions::new("p").id(b"i".to_vec()), b"hb");
    // both opens cross on the wire
    let fa: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
    let fb: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    for f in fb {
        a.recv_frame(&f).expect("a");
    }
    for f in fa {
        b.recv_frame(&f).expect("b");
    }
    assert_eq!(
        events(&mut a),
        vec![Event::Opened {
            channel: ca,
            handshake: b"hb".to_vec()
        }]
    );
    assert_eq!(
        events(&mut b),
        vec![Event::Opened {
            channel: cb,
            handshake: b"ha".to_vec()
        }]
    );
    assert!(a.opened("p", Some(b"i")));
    // no reject or other answer went out
    assert_eq!(a.poll_transmit(), None);
    a.send(ca, 3, b"m").expect("send");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![Event::Message {
            channel: cb,
            kind: 3,
            payload: b"m".to_vec()
        }]
    );
}

#[test]
fn pair_request_buffers_messages_until_paired() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    b.pair("hypershell", None);
    let ca = open(
        &mut a,
        ChannelOptions::new("hypershell").id(b"k".to_vec()),
        b"hs",
    );
    a.send(ca, 0, b"early").expect("send");
    pump(&mut a, &mut b);
    let ev = events(&mut b);
    let [Event::PairRequest(req)] = ev.as_slice() else {
        panic!("expected a pair request, got {ev:?}");
    };
    assert_eq!(req.protocol, "hypershell");
    assert_eq!(req.id.as_deref(), Some(&b"k"[..]));
    assert!(b.buffered() > 0);
    let cb = b
        .create_channel(&ChannelOptions::new("hypershell").id(b"k".to_vec()))
        .expect("paired");
    b.pair_done(&req.token);
    assert_eq!(b.buffered(), 0);
    assert_eq!(
        events(&mut b),
        vec![
            Event::Opened {
                channel: cb,
                handshake: b"hs".to_vec()
            },
            Event::Message {
                channel: cb,
                kind: 0,
                payload: b"early".to_vec()
            },
        ]
    );
    b.open(cb, b"back").expect("open");
    pump(&mut b, &mut a);
    assert_eq!(
        events(&mut a),
        vec![Event::Opened {
            channel: ca,
            handshake: b"back".to_vec()
        }]
    );
}

#[test]
fn unpaired_opens_are_rejected_and_ids_reused() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let ca = open(&mut a, ChannelOptions::new("nobody"), b"");
    assert_eq!(a.channel(ca).expect("ch").local_id, 1);
    pump(&mut a, &mut b);
    assert_eq!(pump(&mut b, &mut a), 1, "one reject");
    assert_eq!(events(&mut a), vec![Event::Rejected { channel: ca }]);
    assert!(a.is_idle());
    // the id is free again
    let c2 = open(&mut a, ChannelOptions::new("nobody"), b"");
    assert_eq!(a.channel(c2).expect("ch").local_id, 1);

    // a pair request nobody answers is rejected when it is done
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    b.pair("x", Some(b"1"));
    let ca = open(&mut a, ChannelOptions::new("x").id(b"1".to_vec()), b"");
    pump(&mut a, &mut b);
    let Some(Event::PairRequest(req)) = b.poll_event() else {
        panic!("no pair request");
    };
    assert_eq!(b.poll_transmit(), None);
    b.pair_done(&req.token);
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![Event::Rejected { channel: ca }]);
}

#[test]
fn unique_and_aliases() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let _first = open(&mut a, ChannelOptions::new("u"), b"");
    assert!(a.create_channel(&ChannelOptions::new("u")).is_none());
    assert!(a
        .create_channel(&ChannelOptions::new("u").unique(false))
        .is_some());

    // Each side opens under its own name; an open arriving under an alias finds the channel. (The
    // answering open carries the primary name, so the other side must know it too, as in JS.)
    let cb = open(
        &mut b,
        ChannelOptions::new("new-name").alias("old-name"),
        b"",
    );
    let ca = open(
        &mut a,
        ChannelOptions::new("old-name").alias("new-name"),
        b"",
    );
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    // b: "u" was rejected (nobody pairs it), the alias paired
    assert_eq!(
        events(&mut b),
        vec![Event::Opened {
            channel: cb,
            handshake: vec![]
        }]
    );
    let ev = events(&mut a);
    assert!(
        ev.contains(&Event::Opened {
            channel: ca,
            handshake: vec![]
        }),
        "{ev:?}"
    );
}

#[test]
fn close_is_one_way_and_late_messages_are_dropped() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let ca = open(&mut a, ChannelOptions::new("c"), b"");
    let cb = open(&mut b, ChannelOptions::new("c"), b"");
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut a);
    events(&mut b);
    // b sends a message while a closes: the message crosses the close and is dropped
    b.send(cb, 0, b"late").expect("send");
    a.close(ca).expect("close");
    assert_eq!(
        events(&mut a),
        vec![Event::Closed {
            channel: ca,
            remote: false
        }]
    );
    assert_eq!(a.send(ca, 0, b"x"), Err(ProtomuxError::ChannelClosed));
    pump(&mut b, &mut a);
    assert_eq!(events(&mut a), vec![]);
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![Event::Closed {
            channel: cb,
            remote: true
        }]
    );
    // b does not answer the close
    assert_eq!(b.poll_transmit(), None);
    assert!(a.is_idle() && b.is_idle());
    // ids are reused and the next pairing works
    let ca = open(&mut a, ChannelOptions::new("c"), b"1");
    let cb = open(&mut b, ChannelOptions::new("c"), b"2");
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    assert_eq!(a.channel(ca).expect("a").local_id, 1);
    assert_eq!(
        events(&mut b),
        vec![Event::Opened {
            channel: cb,
            handshake: b"1".to_vec()
        }]
    );
}

#[test]
fn message_types_without_handler_are_dropped() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let ca = open(&mut a, ChannelOptions::new("t"), b"");
    let cb = open(&mut b, ChannelOptions::new("t").messages(1), b"");
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut b);
    a.send(ca, 1, b"no").expect("send");
    a.send(ca, 0, b"yes").expect("send");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![Event::Message {
            channel: cb,
            kind: 0,
            payload: b"yes".to_vec()
        }]
    );
}

#[test]
fn a_received_batch_is_answered_with_a_batch() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    a.cork();
    let c1 = open(&mut a, ChannelOptions::new("r1"), b"");
    let c2 = open(&mut a, ChannelOptions::new("r2"), b"");
    a.uncork();
    assert_eq!(pump(&mut a, &mut b), 1, "one batch frame");
    let answer: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(answer, vec![vec![0, 0, 0, 2, 2, 1, 2, 2, 2]]);
    for f in answer {
        a.recv_frame(&f).expect("a");
    }
    assert_eq!(
        events(&mut a),
        vec![
            Event::Rejected { channel: c1 },
            Event::Rejected { channel: c2 }
        ]
    );
}

#[test]
fn protocol_errors_destroy() {
    // an open that skips ids
    let mut b = MuxCore::new();
    assert_eq!(
        b.recv_frame(&[0, 1, 2, 1, b'p', 0]),
        Err(ProtomuxError::InvalidOpen)
    );
    assert!(b.destroyed().is_some());
    assert!(b.create_channel(&ChannelOptions::new("p")).is_none());
    // an open of id 0, and an id in use
    let mut b = MuxCore::new();
    assert_eq!(
        b.recv_frame(&[0, 1, 0, 1, b'p', 0]),
        Err(ProtomuxError::InvalidOpen)
    );
    let mut b = MuxCore::new();
    b.pair("p", None);
    b.recv_frame(&[0, 1, 1, 1, b'p', 0]).expect("first");
    assert_eq!(
        b.recv_frame(&[0, 1, 1, 1, b'p', 0]),
        Err(ProtomuxError::InvalidOpen)
    );
    // a reject for nothing
    let mut b = MuxCore::new();
    assert_eq!(b.recv_frame(&[0, 2, 5]), Err(ProtomuxError::InvalidReject));
    // closes and messages for unknown channels are ignored
    let mut b = MuxCore::new();
    b.recv_frame(&[0, 3, 7]).expect("close");
    b.recv_frame(&[9, 0, 1, 2]).expect("message");
    b.recv_frame(&[]).expect("empty");
    assert!(b.destroyed().is_none());
}

#[test]
fn buffered_messages_pause_reading() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    b.pair("big", None);
    let ca = open(&mut a, ChannelOptions::new("big"), b"");
    for _ in 0..40 {
        a.send(ca, 0, &[0; 1000]).expect("send");
    }
    pump(&mut a, &mut b);
    assert!(b.should_pause());
    let Some(Event::PairRequest(req)) = b.poll_event() else {
        panic!("no pair request");
    };
    b.pair_done(&req.token);
    assert!(!b.should_pause());
}

#[test]
fn shutdown_closes_every_channel() {
    let (mut a, mut b) = (MuxCore::new(), MuxCore::new());
    let ca = open(&mut a, ChannelOptions::new("s"), b"");
    let cb = open(&mut b, ChannelOptions::new("s"), b"");
    let pending = open(&mut a, ChannelOptions::new("t"), b"");
    pump(&mut b, &mut a);
    events(&mut a);
    a.shutdown();
    let ev = events(&mut a);
    assert!(ev.contains(&Event::Closed {
        channel: ca,
        remote: true
    }));
    assert!(ev.contains(&Event::Closed {
        channel: pending,
        remote: true
    }));
    assert_eq!(a.poll_transmit(), None);
    let _ = cb;
}

const VECTORS: &str = include_str!("data/protomux_vectors.txt");

fn vector_frames() -> Vec<Vec<u8>> {
    VECTORS
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, h)| hex::decode(h).expect("hex"))
        .collect()
}

#[test]
fn truncated_control_frames_are_errors() {
    for frame in vector_frames() {
        if frame.first() != Some(&0) {
            continue; // channel messages may legitimately be cut anywhere after their type
        }
        let mut out = Vec::new();
        decode_frame(&frame, &mut out).expect("whole frame");
        // open/reject/close: every cut before the end of the fixed fields fails
        let fixed_end = match frame.get(1) {
            Some(1) => frame.len() - handshake_len(&frame),
            Some(2 | 3) => frame.len(),
            _ => continue,
        };
        for cut in 1..fixed_end {
            assert!(
                decode_frame(&frame[..cut], &mut Vec::new()).is_err(),
                "{} cut at {cut}",
                hex::encode(&frame)
            );
        }
    }
}

fn handshake_len(frame: &[u8]) -> usize {
    let mut out = Vec::new();
    decode_frame(frame, &mut out).expect("frame");
    match out.first() {
        Some(holepunch_streams::protomux::wire::Message::Open { handshake, .. }) => handshake.len(),
        _ => 0,
    }
}

proptest! {
    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let mut core = MuxCore::new();
        core.pair("p", None);
        let ch = core.create_channel(&ChannelOptions::new("p").unique(false)).expect("ch");
        let _ = core.open(ch, b"");
        for f in &frames {
            let _ = decode_frame(f, &mut Vec::new());
            let _ = core.recv_frame(f);
            while core.poll_event().is_some() {}
            while core.poll_transmit().is_some() {}
        }
    }

    #[test]
    fn mutated_vectors_never_panic(pick in 0usize..64, pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let frames = vector_frames();
        let mut f = frames[pick % frames.len()].clone();
        let i = pos % f.len();
        f[i] = byte;
        f.truncate(cut % (f.len() + 1));
        let _ = decode_frame(&f, &mut Vec::new());
        let mut core = MuxCore::new();
        core.pair("hypershell", None);
        let _ = core.recv_frame(&f);
        while core.poll_event().is_some() {}
    }
}

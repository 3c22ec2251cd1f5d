//! protomux frames checked byte for byte against protomux 3.12.1: `tests/data/protomux_vectors.txt` comes
//! from `tests/interop/js/protomux_vectors.js`, and each scenario is replayed here on [`MuxCore`].

use std::collections::HashMap;

use holepunch_streams::protomux::wire::{decode_frame, encode_batch, Message};
use holepunch_streams::protomux::{ChannelOptions, MuxCore};
use holepunch_wire::compact_encoding::Writer;

fn vectors() -> HashMap<String, Vec<u8>> {
    include_str!("data/protomux_vectors.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("name hex");
            (name.to_owned(), hex::decode(hex).expect("hex"))
        })
        .collect()
}

fn take(core: &mut MuxCore) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn string(s: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(s);
    w.into_vec()
}

#[test]
fn frames_match_js() {
    let v = vectors();
    let want = |name: &str| {
        vec![v
            .get(name)
            .unwrap_or_else(|| panic!("no vector {name}"))
            .clone()]
    };

    let mut a = MuxCore::new();
    let ch1 = a
        .create_channel(&ChannelOptions::new("hypershell"))
        .expect("ch1");
    a.open(ch1, &[]).expect("open");
    assert_eq!(take(&mut a), want("open_plain"));

    let ch2 = a
        .create_channel(&ChannelOptions::new("hypercore/alpha").id(vec![0xaa; 32]))
        .expect("ch2");
    let mut hs = Writer::new();
    hs.uint(1000);
    a.open(ch2, hs.as_slice()).expect("open");
    assert_eq!(take(&mut a), want("open_id_handshake"));

    a.send(ch1, 0, b"hello").expect("send");
    assert_eq!(take(&mut a), want("message_raw"));
    a.send(ch1, 1, &string("world")).expect("send");
    assert_eq!(take(&mut a), want("message_string"));

    a.cork();
    a.send(ch1, 0, b"a").expect("send");
    a.send(ch1, 1, &string("bc")).expect("send");
    a.send(ch2, 0, &[7, 7, 7]).expect("send");
    a.close(ch1).expect("close");
    a.uncork();
    assert_eq!(take(&mut a), want("batch"));

    a.close(ch2).expect("close");
    assert_eq!(take(&mut a), want("close"));

    let mut a2 = MuxCore::new();
    let mut b = MuxCore::new();
    let ch = a2
        .create_channel(&ChannelOptions::new("nobody-home"))
        .expect("ch");
    a2.open(ch, &[]).expect("open");
    let open = take(&mut a2);
    assert_eq!(open, want("open_nobody"));
    b.recv_frame(&open[0]).expect("recv");
    assert_eq!(take(&mut b), want("reject"));

    let ch = a2
        .create_channel(&ChannelOptions::new("both").id(b"x".to_vec()))
        .expect("ch");
    a2.open(ch, &[]).expect("open");
    assert_eq!(take(&mut a2), want("both_open_a"));
    let ch = b
        .create_channel(&ChannelOptions::new("both").id(b"x".to_vec()))
        .expect("ch");
    b.open(ch, &[]).expect("open");
    assert_eq!(take(&mut b), want("both_open_b"));

    let many: Vec<_> = (0..300)
        .map(|_| {
            let ch = b
                .create_channel(&ChannelOptions::new("many").unique(false))
                .expect("many");
            b.open(ch, &[]).expect("open");
            ch
        })
        .collect();
    let frames = take(&mut b);
    assert_eq!(
        frames.last().cloned().into_iter().collect::<Vec<_>>(),
        want("open_id_300")
    );
    b.cork();
    b.close(many[299]).expect("close");
    b.uncork();
    assert_eq!(take(&mut b), want("batch_close_300"));

    let (mut a3, mut b3) = (MuxCore::new(), MuxCore::new());
    a3.cork();
    for p in ["r1", "r2"] {
        let ch = a3.create_channel(&ChannelOptions::new(p)).expect("ch");
        a3.open(ch, &[]).expect("open");
    }
    a3.uncork();
    let opens = take(&mut a3);
    assert_eq!(opens, want("batch_opens"));
    b3.recv_frame(&opens[0]).expect("recv");
    assert_eq!(take(&mut b3), want("batch_rejects"));
}

#[test]
fn js_frames_decode() {
    let v = vectors();
    let decode = |name: &str| {
        let mut out = Vec::new();
        decode_frame(&v[name], &mut out).expect(name);
        out
    };
    assert_eq!(
        decode("open_id_handshake"),
        vec![Message::Open {
            local_id: 2,
            protocol: "hypercore/alpha".into(),
            id: Some(&[0xaa; 32][..]),
            handshake: &[0xfd, 0xe8, 0x03],
        }]
    );
    assert_eq!(
        decode("message_string"),
        vec![Message::Data {
            channel: 1,
            kind: 1,
            payload: b"\x05world",
        }]
    );
    assert_eq!(
        decode("batch"),
        vec![
            Message::Data {
                channel: 1,
                kind: 0,
                payload: b"a"
            },
            Message::Data {
                channel: 1,
                kind: 1,
                payload: b"\x02bc"
            },
            Message::Data {
                channel: 2,
                kind: 0,
                payload: &[7, 7, 7]
            },
            Message::Close { remote_id: 1 },
        ]
    );
    assert_eq!(decode("reject"), vec![Message::Reject { local_id: 1 }]);
    assert_eq!(decode("close"), vec![Message::Close { remote_id: 2 }]);
    assert_eq!(
        decode("batch_close_300"),
        vec![Message::Close { remote_id: 301 }]
    );
    // every vector re-encodes to itself
    for (name, frame) in &v {
        let mut out = Vec::new();
        decode_frame(frame, &mut out).expect(name);
        let again = if frame.starts_with(&[0, 0]) {
            encode_batch(&out).expect("batch")
        } else {
            assert_eq!(out.len(), 1, "{name}");
            out[0].encode()
        };
        assert_eq!(&again, frame, "{name}");
    }
}

#[test]
fn decoder_edge_cases() {
    let mut out = Vec::new();
    // empty frames are ignored
    decode_frame(&[], &mut out).expect("empty");
    assert!(out.is_empty());
    // a batch entry longer than the frame is clamped to it (as the JS does)
    decode_frame(&[0, 0, 1, 9, 0, 1, 2], &mut out).expect("clamped");
    assert_eq!(
        out,
        vec![Message::Data {
            channel: 1,
            kind: 0,
            payload: &[1, 2]
        }]
    );
    out.clear();
    // unknown control types are ignored
    decode_frame(&[0, 9, 1, 2, 3], &mut out).expect("unknown");
    assert_eq!(out, vec![Message::UnknownControl { kind: 9 }]);
    out.clear();
    // truncated messages are errors
    assert!(decode_frame(&[0], &mut out).is_err());
    assert!(decode_frame(&[0, 2], &mut out).is_err());
    assert!(decode_frame(&[0, 1, 1, 5, b'a'], &mut out).is_err());
    // a batch keeps what came before an error
    out.clear();
    assert!(decode_frame(&[0, 0, 1, 1, 0, 0], &mut out).is_err());
    assert_eq!(
        out,
        vec![Message::Data {
            channel: 1,
            kind: 0,
            payload: &[]
        }]
    );
    // nested batches decode, up to a depth
    out.clear();
    decode_frame(&[0, 0, 0, 5, 0, 2, 2, 1, 3], &mut out).expect("nested");
    assert_eq!(
        out,
        vec![Message::Data {
            channel: 2,
            kind: 1,
            payload: &[3]
        }]
    );
    let nest = |levels: usize| {
        let mut msg = vec![3u8, 1];
        for _ in 0..levels {
            let mut outer = vec![0u8, 0, msg.len() as u8];
            outer.extend_from_slice(&msg);
            msg = outer;
        }
        let mut frame = vec![0u8];
        frame.extend_from_slice(&msg);
        frame
    };
    let ten = nest(10);
    let mut out = Vec::new();
    decode_frame(&ten, &mut out).expect("10 levels");
    assert_eq!(out, vec![Message::Close { remote_id: 1 }]);
    assert!(decode_frame(&nest(40), &mut Vec::new()).is_err());
}

#[test]
fn batches_are_cut_at_max_batch() {
    use holepunch_streams::protomux::wire::MAX_BATCH;
    let mut a = MuxCore::new();
    let ch = a.create_channel(&ChannelOptions::new("big")).expect("ch");
    a.open(ch, &[]).expect("open");
    take(&mut a);
    let chunk = vec![1u8; 1 << 20];
    a.cork();
    for _ in 0..20 {
        a.send(ch, 0, &chunk).expect("send");
    }
    a.uncork();
    let frames = take(&mut a);
    assert_eq!(frames.len(), 3);
    let mut total = 0;
    for f in &frames {
        assert!(f.len() < MAX_BATCH + chunk.len() + 16);
        let mut out = Vec::new();
        decode_frame(f, &mut out).expect("batch");
        total += out.len();
    }
    assert_eq!(total, 20);
}

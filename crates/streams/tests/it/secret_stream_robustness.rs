//! Hostile input never panics: truncated, mutated and random bytes fed to the Noise handshake, the frame
//! parser, the header check, the decryptor and a whole `SecretStream` all end in errors (or a clean end).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use holepunch_streams::noise::{Handshake, HandshakeResult, Keypair, Pattern};
use holepunch_streams::secret_stream::{
    decode_id_header, encode_id_header, split_frame, Decryptor, Encryptor, SecretStream,
    UnorderedBox,
};
use proptest::prelude::*;
use tokio::io::AsyncReadExt;

/// Polls an in-memory future to completion (in-memory I/O never waits); `None` if it would wait.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

/// A transport that reads `input` and swallows writes.
fn transport(input: Vec<u8>) -> tokio::io::Join<std::io::Cursor<Vec<u8>>, tokio::io::Sink> {
    tokio::io::join(std::io::Cursor::new(input), tokio::io::sink())
}

fn keys() -> (Keypair, Keypair) {
    (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]))
}

fn mutate(mut msg: Vec<u8>, pos: usize, xor: u8, cut: usize) -> Vec<u8> {
    if !msg.is_empty() {
        let p = pos % msg.len();
        msg[p] ^= xor.max(1);
    }
    let keep = msg.len().saturating_sub(cut % (msg.len() + 1));
    msg.truncate(keep);
    msg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn handshake_recv_mutated(step in 0usize..3, pos in any::<usize>(), xor in any::<u8>(), cut in any::<usize>()) {
        let (a, b) = keys();
        let mut i = Handshake::new(Pattern::XX, true, &a, &[], None).expect("i");
        let mut r = Handshake::new(Pattern::XX, false, &b, &[], None).expect("r");
        // run the genuine handshake up to `step`, then deliver a damaged message: a damaged msg2/msg3
        // must fail authentication
        let m1 = i.send(&[]).expect("m1");
        match step {
            0 => {
                let bad = mutate(m1, pos, xor, cut);
                let res = r.recv(&bad);
                // msg1 is a plaintext ephemeral key: a mutation can still be a valid point
                if bad.len() < 32 { prop_assert!(res.is_err()); }
            }
            1 => {
                r.recv(&m1).expect("r m1");
                let m2 = r.send(&[]).expect("m2");
                let bad = mutate(m2, pos, xor, cut);
                prop_assert!(i.recv(&bad).is_err());
            }
            _ => {
                r.recv(&m1).expect("r m1");
                let m2 = r.send(&[]).expect("m2");
                i.recv(&m2).expect("i m2");
                let m3 = i.send(&[]).expect("m3");
                let bad = mutate(m3, pos, xor, cut);
                prop_assert!(r.recv(&bad).is_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn handshake_recv_random(bytes in proptest::collection::vec(any::<u8>(), 0..200), which in 0u8..4) {
        let (a, b) = keys();
        let mut hs = match which {
            0 => Handshake::new(Pattern::XX, false, &b, &[], None),
            1 => Handshake::new(Pattern::IK, false, &b, &[], None),
            2 => {
                let mut i = Handshake::new(Pattern::XX, true, &a, &[], None).expect("i");
                i.send(&[]).expect("m1");
                Ok(i)
            }
            _ => {
                let mut i = Handshake::new(Pattern::IK, true, &a, &[], Some(&b.public_key)).expect("i");
                i.send(&[]).expect("m1");
                Ok(i)
            }
        }.expect("handshake");
        // random bytes are not a valid message, except a 32+ byte XX msg1 (plaintext `e`) which may still
        // fail on an invalid point; either way no panic
        let _ = hs.recv(&bytes);
    }

    #[test]
    fn frame_and_header_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some((body, rest)) = split_frame(&bytes) {
            prop_assert_eq!(body.len() + rest.len() + 3, bytes.len());
        }
        let hash = [5u8; 64];
        prop_assert!(decode_id_header(&bytes, &hash, true).is_err() || bytes.len() == 56);
        let mut dec = Decryptor::new(&[1; 32], &[2; 24]);
        prop_assert!(dec.decrypt(&bytes).is_err());
        prop_assert!(UnorderedBox::new(&hash, true).open(&bytes).is_none());
    }

    #[test]
    fn decryptor_rejects_mutations(msg in proptest::collection::vec(any::<u8>(), 0..100), pos in any::<usize>(), xor in 1u8.., cut in 1usize..) {
        let key = [9u8; 32];
        let mut enc = Encryptor::new(&key);
        let mut wire = Vec::new();
        enc.encrypt_frame(&msg, &mut wire).expect("encrypt");
        let body = wire[3..].to_vec();
        let mut flipped = body.clone();
        let p = pos % flipped.len();
        flipped[p] ^= xor;
        prop_assert!(Decryptor::new(&key, enc.header()).decrypt(&flipped).is_err());
        let short = &body[..body.len() - (cut % body.len()).max(1)];
        prop_assert!(Decryptor::new(&key, enc.header()).decrypt(short).is_err());
        prop_assert_eq!(Decryptor::new(&key, enc.header()).decrypt(&body).expect("genuine"), msg);
    }

    #[test]
    fn stream_handshake_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400), initiator in any::<bool>()) {
        let (a, _) = keys();
        let io = transport(bytes);
        let res = if initiator {
            block_on(SecretStream::connect(io, &a))
        } else {
            block_on(SecretStream::accept(io, &a))
        };
        prop_assert!(matches!(res, Some(Err(_))));
    }

    #[test]
    fn stream_data_phase_on_garbage(tail in proptest::collection::vec(any::<u8>(), 0..400), valid_header in any::<bool>()) {
        let (a, b) = keys();
        let result = HandshakeResult {
            is_initiator: true,
            public_key: a.public_key,
            remote_public_key: b.public_key,
            tx: [1; 32],
            rx: [2; 32],
            hash: [3; 64],
        };
        let mut input = Vec::new();
        let mut peer = Encryptor::new(&[2; 32]);
        if valid_header {
            input.extend_from_slice(&[56, 0, 0]);
            input.extend_from_slice(&encode_id_header(&[3; 64], false, peer.header()));
            peer.encrypt_frame(b"genuine", &mut input).expect("encrypt");
        }
        input.extend_from_slice(&tail);
        let mut s = SecretStream::from_handshake(transport(input), true, result);
        let out = block_on(async {
            let mut all = Vec::new();
            let r = s.read_to_end(&mut all).await;
            (r, all)
        });
        let Some((r, all)) = out else { return Err(TestCaseError::fail("stalled")) };
        if valid_header {
            prop_assert!(all.starts_with(b"genuine") || r.is_err());
        }
        // random tails are not valid ciphertext: either an error, or a clean end when the tail is empty
        prop_assert!(r.is_err() || tail.is_empty());
    }
}

#[test]
fn every_truncation_of_a_valid_stream_is_clean_or_an_error() {
    let (a, b) = keys();
    let result = HandshakeResult {
        is_initiator: false,
        public_key: b.public_key,
        remote_public_key: a.public_key,
        tx: [1; 32],
        rx: [2; 32],
        hash: [3; 64],
    };
    let mut input = vec![56, 0, 0];
    let mut peer = Encryptor::new(&[2; 32]);
    input.extend_from_slice(&encode_id_header(&[3; 64], true, peer.header()));
    for m in [&b"one"[..], b"", b"three"] {
        peer.encrypt_frame(m, &mut input).expect("encrypt");
    }
    let frame_ends = [59, 59 + 3 + 20, 59 + 3 + 20 + 3 + 17, input.len()];
    for cut in 0..=input.len() {
        let mut s =
            SecretStream::from_handshake(transport(input[..cut].to_vec()), false, result.clone());
        let out = block_on(async {
            let mut all = Vec::new();
            let r = s.read_to_end(&mut all).await;
            (r, all)
        });
        let (r, _) = out.expect("in-memory stream stalled");
        let at_boundary = cut == 0 || frame_ends.contains(&cut);
        assert_eq!(r.is_ok(), at_boundary, "cut at {cut}");
    }
}

//! Feeds arbitrary bytes to the secret-stream frame parser, header check and decryptor, and to a whole
//! `SecretStream` (handshake phase, or data phase after a genuine header and message).
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use holepunch::noise::{HandshakeResult, Keypair};
use holepunch::secret_stream::{
    decode_id_header, encode_id_header, split_frame, Decryptor, Encryptor, SecretStream,
    UnorderedBox,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;

/// In-memory I/O never waits, so polling to completion terminates; give up if it would wait.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

fn transport(input: Vec<u8>) -> tokio::io::Join<std::io::Cursor<Vec<u8>>, tokio::io::Sink> {
    tokio::io::join(std::io::Cursor::new(input), tokio::io::sink())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // sans-IO decoders
    let _ = UnorderedBox::new(&[3; 64], selector & 2 == 0).open(rest);
    let mut cursor = rest;
    let mut dec = Decryptor::new(&[2; 32], &[7; 24]);
    while let Some((body, tail)) = split_frame(cursor) {
        let _ = decode_id_header(body, &[3; 64], selector & 1 == 0);
        let _ = dec.decrypt(body);
        // Straight into a caller's buffer, of the right size or one byte off.
        let mut out = vec![0; body.len().saturating_sub(17) + usize::from(selector & 4 != 0)];
        let _ = dec.decrypt_into(body, &mut out);
        let _ = dec.decrypt_in_place(&mut body.to_vec());
        cursor = tail;
    }

    let a = Keypair::from_seed(&[1; 32]);
    let b = Keypair::from_seed(&[2; 32]);
    match selector % 3 {
        0 => {
            let _ = block_on(SecretStream::accept(transport(rest.to_vec()), &a));
        }
        1 => {
            let _ = block_on(SecretStream::connect(transport(rest.to_vec()), &a));
        }
        _ => {
            let result = HandshakeResult {
                is_initiator: true,
                public_key: a.public_key,
                remote_public_key: b.public_key,
                tx: [1; 32],
                rx: [2; 32],
                hash: [3; 64],
            };
            let mut input = vec![56, 0, 0];
            let mut peer = Encryptor::new(&[2; 32]);
            input.extend_from_slice(&encode_id_header(&[3; 64], false, peer.header()));
            if peer.encrypt_frame(b"genuine", &mut input).is_err() {
                return;
            }
            input.extend_from_slice(rest);
            let mut s = SecretStream::from_handshake(transport(input), true, result);
            let _ = block_on(async {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                let _ = s.recv_message().await;
            });
        }
    }
});

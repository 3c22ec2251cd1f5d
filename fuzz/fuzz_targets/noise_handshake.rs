//! Feeds arbitrary bytes as a peer's Noise handshake message at every step of XX and IK, both roles.
#![no_main]

use holepunch::noise::{Handshake, Keypair, Pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let a = Keypair::from_seed(&[1; 32]);
    let b = Keypair::from_seed(&[2; 32]);
    let new = |pattern, initiator, kp: &Keypair| {
        Handshake::new(pattern, initiator, kp, b"fuzz", Some(&b.public_key))
    };
    let (Ok(mut i), Ok(mut r)) = (new(Pattern::XX, true, &a), new(Pattern::XX, false, &b)) else {
        return;
    };
    let (Ok(mut ik_i), Ok(mut ik_r)) = (new(Pattern::IK, true, &a), new(Pattern::IK, false, &b))
    else {
        return;
    };
    let _ = match selector % 6 {
        // first message, responder side
        0 => r.recv(msg).and_then(|_| r.send(msg)),
        1 => ik_r.recv(msg).and_then(|_| ik_r.send(msg)),
        // second message, initiator side
        2 => i
            .send(&[])
            .and_then(|_| i.recv(msg))
            .and_then(|_| i.send(msg)),
        3 => ik_i.send(&[]).and_then(|_| ik_i.recv(msg)),
        // third message of XX, responder side
        4 => i
            .send(&[])
            .and_then(|m1| r.recv(&m1))
            .and_then(|_| r.send(&[]))
            .and_then(|_| r.recv(msg)),
        // genuine exchange with fuzzed payloads
        _ => i
            .send(msg)
            .and_then(|m1| r.recv(&m1))
            .and_then(|_| r.send(msg))
            .and_then(|m2| i.recv(&m2))
            .and_then(|_| i.send(msg))
            .and_then(|m3| r.recv(&m3)),
    };
});

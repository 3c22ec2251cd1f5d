//! Fixed vectors from the JS reference (`tests/interop/js/noise_vectors.js`, noise-handshake 4 +
//! noise-curve-ed 2): with the same static and ephemeral keys, every handshake message, both transport keys
//! and the handshake hash must come out byte for byte the same.

use holepunch_streams::noise::{Handshake, Keypair, Pattern};

#[derive(Debug, Default)]
struct Case {
    name: String,
    pattern: String,
    prologue: Vec<u8>,
    seeds: [[u8; 32]; 4],
    payloads: Vec<Vec<u8>>,
    messages: Vec<Vec<u8>>,
    tx: Vec<u8>,
    rx: Vec<u8>,
    hash: Vec<u8>,
}

fn parse() -> anyhow::Result<Vec<Case>> {
    let text = include_str!("data/noise_vectors.txt");
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if key == "case" {
            cases.push(Case {
                name: value.to_owned(),
                ..Case::default()
            });
            continue;
        }
        let case = cases
            .last_mut()
            .ok_or_else(|| anyhow::anyhow!("field before case"))?;
        let seed = |v: &str| -> anyhow::Result<[u8; 32]> {
            let b = hex::decode(v)?;
            b.try_into()
                .map_err(|_| anyhow::anyhow!("seed must be 32 bytes"))
        };
        match key {
            "pattern" => case.pattern = value.to_owned(),
            "prologue" => case.prologue = hex::decode(value)?,
            "initiator_seed" => case.seeds[0] = seed(value)?,
            "responder_seed" => case.seeds[1] = seed(value)?,
            "initiator_ephemeral_seed" => case.seeds[2] = seed(value)?,
            "responder_ephemeral_seed" => case.seeds[3] = seed(value)?,
            "payload" => case.payloads.push(hex::decode(value)?),
            "message" => case.messages.push(hex::decode(value)?),
            "initiator_tx" => case.tx = hex::decode(value)?,
            "initiator_rx" => case.rx = hex::decode(value)?,
            "hash" => case.hash = hex::decode(value)?,
            other => anyhow::bail!("unknown field {other}"),
        }
    }
    Ok(cases)
}

#[test]
fn rust_reproduces_js_handshakes() -> anyhow::Result<()> {
    let cases = parse()?;
    assert_eq!(cases.len(), 4);
    for case in cases {
        let pattern = match case.pattern.as_str() {
            "XX" => Pattern::XX,
            "IK" => Pattern::IK,
            p => anyhow::bail!("unknown pattern {p}"),
        };
        let ik = Keypair::from_seed(&case.seeds[0]);
        let rk = Keypair::from_seed(&case.seeds[1]);
        let mut i = Handshake::with_fixed_ephemeral_for_testing(
            pattern,
            true,
            &ik,
            &case.prologue,
            Some(&rk.public_key),
            &case.seeds[2],
        )?;
        let mut r = Handshake::with_fixed_ephemeral_for_testing(
            pattern,
            false,
            &rk,
            &case.prologue,
            None,
            &case.seeds[3],
        )?;
        assert_eq!(case.messages.len(), case.payloads.len());
        for (n, (payload, expected)) in case.payloads.iter().zip(&case.messages).enumerate() {
            let (from, to) = if n % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let msg = from.send(payload)?;
            assert_eq!(
                hex::encode(&msg),
                hex::encode(expected),
                "{} message {n}",
                case.name
            );
            assert_eq!(&to.recv(expected)?, payload, "{} payload {n}", case.name);
        }
        let (ri, rr) = match (i.result(), r.result()) {
            (Some(a), Some(b)) => (a.clone(), b.clone()),
            _ => anyhow::bail!("{}: handshake not complete", case.name),
        };
        assert_eq!(ri.tx.to_vec(), case.tx, "{} tx", case.name);
        assert_eq!(ri.rx.to_vec(), case.rx, "{} rx", case.name);
        assert_eq!(ri.hash.to_vec(), case.hash, "{} hash", case.name);
        assert_eq!(rr.tx.to_vec(), case.rx);
        assert_eq!(rr.rx.to_vec(), case.tx);
        assert_eq!(rr.hash.to_vec(), case.hash);
        assert_eq!(ri.remote_public_key, rk.public_key);
        assert_eq!(rr.remote_public_key, ik.public_key);
    }
    Ok(())
}

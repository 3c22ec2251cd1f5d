//! Fixed vectors from the JS reference (`tests/interop/js/secret_stream_vectors.js`): stream ids and send
//! keys derived from a handshake hash, and sodium-secretstream frames for a key and header. Rust must
//! decrypt the JS frames and, given the same header, produce the very same frames.

use holepunch_streams::secret_stream::{
    send_key, split_frame, stream_id, Decryptor, Encryptor, UnorderedBox,
};

fn field<'a>(text: &'a str, name: &str) -> anyhow::Result<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .ok_or_else(|| anyhow::anyhow!("missing {name}"))
}

fn all(text: &str, name: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|h| hex::decode(h).map_err(Into::into))
        .collect()
}

fn arr<const N: usize>(h: &str) -> anyhow::Result<[u8; N]> {
    hex::decode(h)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected {N} bytes"))
}

const TEXT: &str = include_str!("data/secret_stream_vectors.txt");

#[test]
fn ids_and_send_keys_match_js() -> anyhow::Result<()> {
    let hash = hex::decode(field(TEXT, "handshake_hash")?)?;
    assert_eq!(
        hex::encode(stream_id(&hash, true)),
        field(TEXT, "stream_id_initiator")?
    );
    assert_eq!(
        hex::encode(stream_id(&hash, false)),
        field(TEXT, "stream_id_responder")?
    );
    assert_eq!(
        hex::encode(send_key(&hash, true)),
        field(TEXT, "send_key_initiator")?
    );
    assert_eq!(
        hex::encode(send_key(&hash, false)),
        field(TEXT, "send_key_responder")?
    );
    Ok(())
}

#[test]
fn frames_match_js() -> anyhow::Result<()> {
    let key: [u8; 32] = arr(field(TEXT, "key")?)?;
    let header: [u8; 24] = arr(field(TEXT, "header")?)?;
    let plaintexts = all(TEXT, "plaintext")?;
    let frames = all(TEXT, "frame")?;
    assert_eq!(plaintexts.len(), 4);
    assert_eq!(frames.len(), 4);

    let mut dec = Decryptor::new(&key, &header);
    for (p, f) in plaintexts.iter().zip(&frames) {
        let (body, rest) = split_frame(f).ok_or_else(|| anyhow::anyhow!("short frame"))?;
        assert!(rest.is_empty());
        assert_eq!(&dec.decrypt(body)?, p);
    }

    let mut enc = Encryptor::with_header_for_testing(&key, header);
    for (p, f) in plaintexts.iter().zip(&frames) {
        let mut out = Vec::new();
        enc.encrypt_frame(p, &mut out)?;
        assert_eq!(hex::encode(out), hex::encode(f));
    }

    // out of order (the second frame first) fails: the nonce chain is part of the format
    let mut dec = Decryptor::new(&key, &header);
    let (body, _) = split_frame(&frames[1]).ok_or_else(|| anyhow::anyhow!("short frame"))?;
    assert!(dec.decrypt(body).is_err());
    Ok(())
}

#[test]
fn unordered_envelopes_match_js() -> anyhow::Result<()> {
    let text = include_str!("data/secret_stream_send_vectors.txt");
    let hash = hex::decode(field(text, "handshake_hash")?)?;
    let counter: [u8; 8] = arr(field(text, "counter")?)?;
    let plaintexts = all(text, "plaintext")?;
    let envelopes = all(text, "envelope")?;
    assert_eq!(plaintexts.len(), 3);
    let mut initiator = UnorderedBox::with_counter(&hash, true, counter, [1, 2, 3, 4, 5, 6, 7, 8]);
    let responder = UnorderedBox::new(&hash, false);
    for (p, e) in plaintexts.iter().zip(&envelopes) {
        assert_eq!(hex::encode(initiator.seal(p)?), hex::encode(e));
        assert_eq!(responder.open(e).as_ref(), Some(p));
        // the initiator cannot open its own envelopes, and damage is rejected
        assert_eq!(initiator.open(e), None);
        let mut bad = e.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(responder.open(&bad), None);
        assert_eq!(responder.open(&e[..e.len() - 1]), None);
    }
    // the counter wrapping back to its start is refused
    let mut b = UnorderedBox::with_counter(&hash, true, [0xff; 8], [0; 8]);
    assert!(b.seal(b"x").is_err());
    Ok(())
}

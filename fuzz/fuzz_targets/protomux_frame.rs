//! Feeds arbitrary bytes to the protomux frame decoder and to a `MuxCore` with channels in several states
//! (open and paired, open and unpaired, a pair registration), one frame per length-prefixed chunk.
#![no_main]

use holepunch::protomux::wire::{decode_frame, encode_batch};
use holepunch::protomux::{ChannelOptions, Event, MuxCore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if decode_frame(data, &mut out).is_ok() && !out.is_empty() {
        // what decodes re-encodes, and decodes to the same messages
        if let Some(batch) = encode_batch(&out) {
            let mut again = Vec::new();
            decode_frame(&batch, &mut again).expect("re-encoded batch decodes");
            assert_eq!(again, out);
        }
    }

    let mut core = MuxCore::new();
    core.pair("p", None);
    let paired = core.create_channel(&ChannelOptions::new("q").unique(false));
    let unpaired = core.create_channel(&ChannelOptions::new("p").id(vec![1]));
    for ch in [paired, unpaired].into_iter().flatten() {
        let _ = core.open(ch, b"hs");
    }
    // pair "q" through the remote's open of id 1
    let _ = core.recv_frame(&[0, 1, 1, 1, b'q', 0]);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        if core.recv_frame(frame).is_err() {
            core.shutdown();
            break;
        }
        while let Some(ev) = core.poll_event() {
            if let Event::PairRequest(req) = ev {
                if req.id.is_some() {
                    let _ = core.create_channel(
                        &ChannelOptions::new(req.protocol.clone())
                            .id(req.id.clone().unwrap_or_default()),
                    );
                }
                core.pair_done(&req.token);
            }
        }
        while core.poll_transmit().is_some() {}
    }
    if let Some(ch) = paired {
        let _ = core.send(ch, 0, data);
        let _ = core.close(ch);
    }
});

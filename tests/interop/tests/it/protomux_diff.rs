//! Differential test: random frame sequences go through JS protomux 3.12.1
//! (`tests/interop/js/protomux_diff.js`) and through [`MuxCore`] set up the same way; after each frame
//! both must agree on whether the stream is destroyed and on the messages written (compared as
//! multisets after flattening batches: the JS runs pair callbacks synchronously inside a batch, so
//! answers to different channels may come in another order or batching).

use std::io::Write;
use std::process::{Command, Stdio};

use holepunch::compact_encoding::Writer;
use holepunch::protomux::wire::decode_frame;
use holepunch::protomux::{ChannelOptions, Event, MuxCore};
use serde_json::Value;

use crate::rng::Rng;

/// One random message body for `channel` (`uint type` + body), or a control message.
fn random_message(rng: &mut Rng, next_open: &mut u64) -> (u64, Vec<u8>) {
    let mut w = Writer::new();
    match rng.below(10) {
        0..=3 => {
            // open: mostly the next id, sometimes a wrong one
            let id = if rng.below(8) == 0 {
                rng.below(5)
            } else {
                *next_open += 1;
                *next_open
            };
            let protocol = ["p", "q", "r"][rng.below(3) as usize];
            let chan_id: &[u8] = [&[][..], &[1][..], &[2][..]][rng.below(3) as usize];
            let hs: Vec<u8> = (0..rng.below(3)).map(|_| rng.next() as u8).collect();
            w.uint(1)
                .uint(id)
                .string(protocol)
                .optional_buffer(Some(chan_id))
                .bytes(&hs);
            (0, w.into_vec())
        }
        4 => {
            w.uint(3).uint(rng.below(6));
            (0, w.into_vec())
        }
        5 => {
            w.uint(2).uint(rng.below(6));
            (0, w.into_vec())
        }
        _ => {
            let payload: Vec<u8> = (0..rng.below(4)).map(|_| rng.next() as u8).collect();
            w.uint(rng.below(3)).bytes(&payload);
            (1 + rng.below(5), w.into_vec())
        }
    }
}

fn random_frame(rng: &mut Rng, next_open: &mut u64) -> Vec<u8> {
    match rng.below(12) {
        0 => (0..rng.below(6)).map(|_| rng.next() as u8).collect(),
        1 | 2 => {
            // a batch of 2-3 messages
            let mut w = Writer::new();
            // An open may only come last: the JS runs pair callbacks in the middle of a batch, the core
            // raises its pair request once the batch is done, so a later reject in the same batch could
            // free an id that only one of the two reuses for its answer (same meaning, other numbers).
            let n = 2 + rng.below(2);
            let mut msgs: Vec<(u64, Vec<u8>)> = Vec::new();
            while msgs.len() < n as usize {
                let m = random_message(rng, next_open);
                let is_open = m.0 == 0 && m.1.first() == Some(&1);
                if is_open && (msgs.len() + 1) < n as usize {
                    *next_open -= u64::from(*next_open > 0);
                    continue;
                }
                msgs.push(m);
            }
            let (first, body) = msgs.remove(0);
            w.uint(0).uint(0).uint(first).buffer(&body);
            let mut prev = first;
            for (ch, body) in msgs {
                if ch != prev {
                    w.uint(0).uint(ch);
                    prev = ch;
                }
                w.buffer(&body);
            }
            w.into_vec()
        }
        _ => {
            let (ch, body) = random_message(rng, next_open);
            let mut w = Writer::new();
            w.uint(ch).bytes(&body);
            w.into_vec()
        }
    }
}

#[derive(Debug, PartialEq)]
struct Step {
    written: Vec<String>,
    destroyed: bool,
}

fn flatten(frames: &[Vec<u8>]) -> Vec<String> {
    let mut out: Vec<String> = frames
        .iter()
        .flat_map(|f| {
            let mut msgs = Vec::new();
            decode_frame(f, &mut msgs).expect("written frames decode");
            msgs.into_iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn take(core: &mut MuxCore) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn run_rust(frames: &[Vec<u8>]) -> Vec<Step> {
    let mut core = MuxCore::new();
    core.pair("p", None);
    for opts in [
        ChannelOptions::new("q").unique(false),
        ChannelOptions::new("q").unique(false),
        ChannelOptions::new("p").id(vec![2]),
    ] {
        let ch = core.create_channel(&opts).expect("setup");
        core.open(ch, &[]).expect("open");
    }
    let mut steps = vec![Step {
        written: flatten(&take(&mut core)),
        destroyed: false,
    }];
    for f in frames {
        let destroyed = core.recv_frame(f).is_err();
        let mut written = take(&mut core);
        if !destroyed {
            while let Some(ev) = core.poll_event() {
                if let Event::PairRequest(req) = ev {
                    if req.id.as_deref() == Some(&[1][..]) {
                        let opts = ChannelOptions::new("p").id(vec![1]);
                        if let Some(ch) = core.create_channel(&opts) {
                            core.open(ch, &[]).expect("open");
                        }
                    }
                    core.pair_done(&req.token);
                }
            }
            written.extend(take(&mut core));
        } else {
            written.clear(); // the JS destroys the stream before writing anything more
        }
        steps.push(Step {
            written: flatten(&written),
            destroyed,
        });
        if destroyed {
            break;
        }
    }
    steps
}

#[test]
fn random_scenarios_match_js() {
    // PROTOMUX_DIFF_SCENARIOS / PROTOMUX_DIFF_SEED run more or other scenarios
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut rng = Rng(env("PROTOMUX_DIFF_SEED", 0x9e37_79b9_7f4a_7c15).max(1));
    let scenarios: Vec<Vec<Vec<u8>>> = (0..env("PROTOMUX_DIFF_SCENARIOS", 1000))
        .map(|_| {
            let mut next_open = 0;
            (0..1 + rng.below(12))
                .map(|_| random_frame(&mut rng, &mut next_open))
                .collect()
        })
        .collect();
    let input: String = scenarios
        .iter()
        .map(|s| {
            // each frame as `x<hex>`, so that an empty frame survives the line format
            s.iter()
                .map(|f| format!("x{}", hex::encode(f)))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let dir = interop::interop_dir();
    let mut child = Command::new("node")
        .arg("js/protomux_diff.js")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (Node 20 on PATH, tests/interop/node_modules installed)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "node failed");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(lines.len(), scenarios.len());
    let mut destroyed = 0;
    let mut answered = 0;
    let mut steps = 0;
    for (i, (line, frames)) in lines.iter().zip(&scenarios).enumerate() {
        let js: Value = serde_json::from_str(line).expect("json");
        let js: Vec<Step> = js
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| Step {
                written: flatten(
                    &s["w"]
                        .as_array()
                        .expect("w")
                        .iter()
                        .map(|h| hex::decode(h.as_str().expect("hex")).expect("hex"))
                        .collect::<Vec<_>>(),
                ),
                destroyed: s["d"].as_bool().expect("d"),
            })
            .collect();
        let rust = run_rust(frames);
        steps += rust.len();
        answered += rust
            .iter()
            .skip(1)
            .filter(|s| !s.written.is_empty())
            .count();
        destroyed += usize::from(rust.last().is_some_and(|s| s.destroyed));
        assert_eq!(
            rust,
            js,
            "scenario {i}: frames {:?}",
            frames.iter().map(hex::encode).collect::<Vec<_>>()
        );
    }
    eprintln!(
        "{} scenarios, {steps} steps, {answered} answered, {destroyed} destroyed",
        scenarios.len()
    );
    // the generator reaches every outcome
    assert!(
        destroyed > 10 && destroyed < scenarios.len() - 10,
        "{destroyed} destroyed"
    );
    assert!(answered > 100, "{answered} steps with answers");
}

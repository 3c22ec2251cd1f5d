//! The same autobase-kv script, run by JS autobase 7.28.1 (`js/autobase_scenario.js`) and by the Rust
//! `Autobase` (bases over their own corestores, blocks copied between them): bases append while partitioned
//! and sync at the script's `sync` steps, so the DAG is fixed by the script. The writer keys are the same on
//! both sides (the stores' primary keys are), so every writer block's node (heads, batch, value), every
//! view entry, the system's members, indexers (with lengths), heads (in order) and pending indexers, the
//! system core's length and the indexed length must be identical, and so must the system core's key, the view
//! core's key and the system core's blocks, byte for byte (their `info` records name the derived view keys).
//! Optimistic appends (`{ append, value, optimistic: true }`) come from a base that is never added; its
//! writer is found through wakeup, which the scripts' plain store streams do not carry, so both sides hint
//! it (JS `hintWakeup`, Rust `hint_writer`) while it is not a member (or a removed one).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use holepunch::autobase::base::{sync_writers, Autobase, AutobaseOptions};
use holepunch::autobase::kv::Kv;
use holepunch::autobase::messages::OplogMessage;
use holepunch::corestore::Corestore;
use holepunch::hyperbee::RangeOptions;
use serde_json::{json, Value};

type Base = Autobase<Kv>;

fn subst(v: &mut Value, keys: &HashMap<String, String>) {
    match v {
        Value::String(s) if s.starts_with('@') => *s = keys[&s[1..]].clone(),
        Value::Object(m) => m.values_mut().for_each(|x| subst(x, keys)),
        _ => {}
    }
}

/// Rounds of copying every base's writer cores to every other and updating, until a round changes nothing.
fn sync(bases: &mut [&mut Base]) {
    for _ in 0..20 {
        let before: Vec<_> = bases
            .iter()
            .map(|b| (b.system().core_length(), b.local().length()))
            .collect();
        for i in 0..bases.len() {
            for j in 0..bases.len() {
                if i != j {
                    sync_writers(bases[i], bases[j]).unwrap();
                    // a writer that is not a member (an optimistic one, acked or not) is found through
                    // wakeup, as JS's
                    for (k, l) in bases[i].wakeup() {
                        let member = bases[j].system().get_member(&k).unwrap();
                        if member.is_none_or(|m| m.is_removed) {
                            bases[j].hint_writer(k, l).unwrap();
                        }
                    }
                }
            }
        }
        for b in bases.iter_mut() {
            b.update().unwrap();
        }
        let after: Vec<_> = bases
            .iter()
            .map(|b| (b.system().core_length(), b.local().length()))
            .collect();
        if before == after {
            return;
        }
    }
    panic!("bases did not settle");
}

fn clock(c: &[holepunch::autobase::messages::Checkout]) -> Value {
    c.iter()
        .map(|x| json!({"key": hex::encode(x.key), "length": x.length}))
        .collect()
}

fn run_rust(dir: &std::path::Path, scenario: &Value) -> Value {
    let mut names = Vec::new();
    let mut bases: Vec<Base> = Vec::new();
    for b in scenario["bases"].as_array().unwrap() {
        let seed = b["seed"].as_u64().unwrap() as u8;
        let name = b["name"].as_str().unwrap().to_string();
        let store = Corestore::open_with_primary_key(dir.join(&name), [seed; 32]).unwrap();
        let bootstrap = bases.first().map(Base::key);
        bases.push(
            Autobase::open(
                store,
                Kv,
                AutobaseOptions {
                    bootstrap,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        names.push(name);
    }
    let keys: HashMap<String, String> = names
        .iter()
        .zip(&bases)
        .map(|(n, b)| (n.clone(), hex::encode(b.local_key())))
        .collect();
    let idx = |n: &Value| names.iter().position(|x| x == n.as_str().unwrap()).unwrap();
    let mut appends = Vec::new();
    for step in scenario["steps"].as_array().unwrap() {
        if let Some(n) = step.get("append") {
            let encode = |v: &Value| {
                let mut v = v.clone();
                subst(&mut v, &keys);
                (!v.is_null()).then(|| serde_json::to_vec(&v).unwrap())
            };
            if let Some(batch) = step.get("batch") {
                let values: Vec<Option<Vec<u8>>> =
                    batch.as_array().unwrap().iter().map(encode).collect();
                let refs: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
                appends.push(bases[idx(n)].append_batch(&refs).is_ok());
            } else if step["optimistic"] == true {
                let bytes = encode(&step["value"]).unwrap_or_default();
                appends.push(bases[idx(n)].append_optimistic(&bytes).is_ok());
            } else {
                let bytes = encode(&step["value"]);
                appends.push(bases[idx(n)].append(bytes.as_deref()).is_ok());
            }
        } else if let Some(list) = step.get("sync") {
            let wanted: Vec<usize> = list.as_array().unwrap().iter().map(idx).collect();
            let mut refs: Vec<&mut Base> = bases
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| wanted.contains(i))
                .map(|(_, b)| b)
                .collect();
            sync(&mut refs);
        }
    }
    let mut out = serde_json::Map::new();
    for (name, b) in names.iter().zip(bases.iter_mut()) {
        b.update().unwrap();
        let view: Vec<Value> = b
            .view()
            .range_vec(&RangeOptions::default())
            .unwrap()
            .into_iter()
            .map(|e| {
                json!([
                    String::from_utf8(e.key).unwrap(),
                    String::from_utf8(e.value.unwrap_or_default()).unwrap()
                ])
            })
            .collect();
        let blocks: Vec<Value> = (0..b.local().length())
            .map(|i| {
                let m = OplogMessage::decode(&b.local().get(i).unwrap().unwrap()).unwrap();
                json!({
                    "heads": clock(&m.node.heads),
                    "batch": m.node.batch,
                    "value": m.node.value.map(|v| String::from_utf8(v).unwrap()),
                })
            })
            .collect();
        let raw_blocks: Vec<Value> = (0..b.local().length())
            .map(|i| Value::String(hex::encode(b.local().get(i).unwrap().unwrap())))
            .collect();
        let sys = b.system();
        let core = sys.db().core();
        let system_blocks: Vec<Value> = (0..core.length())
            .map(|i| Value::String(hex::encode(core.get(i).unwrap().unwrap())))
            .collect();
        out.insert(
            name.clone(),
            json!({
                "key": hex::encode(b.key()),
                "localKey": hex::encode(b.local_key()),
                "writable": b.writable().unwrap(),
                "systemKey": hex::encode(core.key()),
                "viewKey": hex::encode(b.view().core().key()),
                "view": view,
                "system": {
                    "length": sys.core_length(),
                    "members": sys.members,
                    "pendingIndexers": sys.pending_indexers.iter().map(hex::encode).collect::<Vec<_>>(),
                    "indexers": clock(&sys.indexers),
                    "heads": clock(&sys.heads),
                },
                "indexedLength": b.state().indexed_length(),
                "signedLength": {
                    "system": core.signed_length(),
                    "view": b.view().core().signed_length(),
                },
                "blocks": blocks,
                "rawBlocks": raw_blocks,
                "systemBlocks": system_blocks,
                "stats": {
                    "undone": b.state().stats().undone,
                    "reboots": b.state().stats().reboots,
                    "readded": b.state().stats().readded,
                    "migrations": b.state().stats().migrations,
                    "signed": b.state().stats().signed,
                },
            }),
        );
    }
    json!({"appends": appends, "bases": out})
}

/// Runs the scenario on both sides, compares, and returns the Rust side's output.
fn check(name: &str, scenario: Value) -> Value {
    let dir = interop::scratch_dir(&format!("autobase-apply-{name}"));
    let raw = interop::run_with_stdin(
        "autobase_scenario.js",
        &[dir.join("js").to_str().unwrap()],
        scenario.to_string().as_bytes(),
        Duration::from_secs(120),
    );
    let js: Value = serde_json::from_str(&raw).expect("JSON from autobase_scenario.js");
    let rust = run_rust(&dir.join("rust"), &scenario);
    compare(name, &rust, &js);
    rust
}

fn stat(out: &Value, base: &str, what: &str) -> u64 {
    out["bases"][base]["stats"][what].as_u64().unwrap()
}

fn put(k: &str, v: &str) -> Value {
    json!({"op": "put", "key": k, "value": v})
}

fn append(base: &str, value: Value) -> Value {
    json!({"append": base, "value": value})
}

/// `by` appends the op adding base `who`'s writer (an indexer or not).
fn add_writer(by: &str, who: &str, indexer: bool) -> Value {
    append(
        by,
        json!({"op": "add-writer", "key": format!("@{who}"), "indexer": indexer}),
    )
}

fn sync_step(bases: &[&str]) -> Value {
    json!({ "sync": bases })
}

#[test]
fn one_writer_matches_js() {
    let steps = vec![
        append("a", put("x", "1")),
        append("a", put("y", "2")),
        append("a", json!({"op": "del", "key": "x"})),
        append("a", put("z", "3")),
        append("a", Value::Null),
        append("a", put("y", "4")),
    ];
    check(
        "one",
        json!({"bases": [{"name": "a", "seed": 1}], "steps": steps}),
    );
}

#[test]
fn atomic_batches_of_two_writers_match_js() {
    let mut steps = vec![add_writer("a", "b", true), sync_step(&["a", "b"])];
    for i in 0..3 {
        for w in ["a", "b"] {
            let batch: Vec<Value> = (0..=i).map(|j| put(&format!("{w}{i}.{j}"), w)).collect();
            steps.push(json!({"append": w, "batch": batch}));
        }
        steps.push(sync_step(&["a", "b"]));
        steps.push(append("a", Value::Null));
        steps.push(sync_step(&["a", "b"]));
    }
    check(
        "batches",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}], "steps": steps}),
    );
}

#[test]
fn two_indexers_writing_concurrently_match_js() {
    let mut steps = vec![
        append("a", put("x", "1")),
        add_writer("a", "b", true),
        sync_step(&["a", "b"]),
    ];
    for i in 0..3 {
        steps.push(append("a", put(&format!("a{i}"), "from a")));
        steps.push(append("b", put(&format!("b{i}"), "from b")));
        steps.push(append("a", put("shared", &format!("a{i}"))));
        steps.push(append("b", put("shared", &format!("b{i}"))));
        steps.push(sync_step(&["a", "b"]));
        steps.push(append("a", Value::Null));
        steps.push(sync_step(&["a", "b"]));
        steps.push(append("b", Value::Null));
        steps.push(sync_step(&["a", "b"]));
    }
    let out = check(
        "two",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}], "steps": steps}),
    );
    // both indexers' checkpoints were assembled into multi-signatures: the signed lengths (equal to JS's,
    // compared above) moved past the prologue of the two-indexer cores
    for b in ["a", "b"] {
        eprintln!(
            "{b}: {} {}",
            out["bases"][b]["signedLength"], out["bases"][b]["indexedLength"]
        );
        assert!(
            stat(&out, b, "signed") > 0,
            "base {b} assembled a multi-signature"
        );
    }
}

#[test]
fn a_non_indexer_added_then_removed_matches_js() {
    let steps = vec![
        add_writer("a", "c", false),
        sync_step(&["a", "c"]),
        append("c", put("c0", "from c")),
        sync_step(&["a", "c"]),
        append("a", json!({"op": "remove-writer", "key": "@c"})),
        // c writes concurrently with its removal, then after it
        append("c", put("c1", "concurrent")),
        sync_step(&["a", "c"]),
        append("c", put("c2", "after removal")),
        append("a", put("a0", "after")),
        sync_step(&["a", "c"]),
    ];
    check(
        "removed",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "c", "seed": 3}], "steps": steps}),
    );
}

/// `base` appends `value` optimistically.
fn append_optimistic(base: &str, value: Value) -> Value {
    json!({"append": base, "value": value, "optimistic": true})
}

#[test]
fn an_optimistic_put_of_a_reader_matches_js() {
    // o is never added: its optimistic puts are applied and acked (a removed member at their length) by
    // every base, its own first; a plain put of it is refused
    let steps = vec![
        add_writer("a", "b", true),
        sync_step(&["a", "b", "o"]),
        append("o", put("plain", "refused")),
        append_optimistic("o", put("o0", "hi")),
        append("a", put("a0", "x")),
        sync_step(&["a", "b", "o"]),
        append("b", put("b0", "y")),
        append_optimistic("o", put("o1", "again")),
        sync_step(&["a", "b", "o"]),
        append("a", Value::Null),
        sync_step(&["a", "b", "o"]),
        append("b", Value::Null),
        sync_step(&["a", "b", "o"]),
        append("a", put("a1", "after")),
        sync_step(&["a", "b", "o"]),
        // optimistic ops the apply does not ack: undone and dropped everywhere
        append_optimistic("o", json!({"op": "del", "key": "a0"})),
        append_optimistic(
            "o",
            json!({"op": "add-writer", "key": "@o", "indexer": true}),
        ),
        // a put acked after them makes every base read them before it settles (whether JS reads dropped
        // nodes that nothing acked follows its writers' garbage collection and wakeup timing)
        append_optimistic("o", put("o2", "third")),
        sync_step(&["a", "b", "o"]),
        append("b", put("b1", "last")),
        sync_step(&["a", "b", "o"]),
        append("a", Value::Null),
        sync_step(&["a", "b", "o"]),
    ];
    let out = check(
        "optimistic",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}, {"name": "o", "seed": 3}], "steps": steps}),
    );
    assert_eq!(out["appends"][1], false, "a plain put of a reader");
    assert_eq!(out["bases"]["a"]["view"].as_array().unwrap().len(), 7);
    assert_eq!(out["bases"]["o"]["writable"], false);
}

#[test]
fn a_late_writer_reorders_the_tip_as_in_js() {
    // c (a non-indexer) and a sync while b writes alone; b's blocks then arrive late at a and c, and the
    // un-indexed tip is reordered (undone and re-applied) the same way on both sides
    let mut steps = vec![
        add_writer("a", "b", true),
        sync_step(&["a", "b"]),
        add_writer("a", "c", false),
        sync_step(&["a", "b", "c"]),
    ];
    for i in 0..3 {
        steps.push(append("b", put("k", &format!("b{i}"))));
        steps.push(append("b", put(&format!("b{i}"), "late")));
        steps.push(append("c", put("k", &format!("c{i}"))));
        steps.push(sync_step(&["a", "c"]));
        steps.push(append("a", put("k", &format!("a{i}"))));
        steps.push(sync_step(&["a", "c"]));
        steps.push(append("c", put(&format!("c{i}"), "early")));
        steps.push(sync_step(&["a", "b", "c"]));
        steps.push(append("b", Value::Null));
        steps.push(sync_step(&["a", "b", "c"]));
        steps.push(append("a", Value::Null));
        steps.push(sync_step(&["a", "b", "c"]));
    }
    let out = check(
        "late",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}, {"name": "c", "seed": 3}], "steps": steps}),
    );
    assert!(stat(&out, "a", "undone") > 0, "the tip was reordered on a");
}

#[test]
fn an_indexer_added_over_an_unindexed_tail_matches_js() {
    // a and b are indexers; b adds c as a third indexer while a writes concurrently, so the indexer change
    // comes with nodes that are not indexed yet (the reboot re-adds and re-applies them)
    let mut steps = vec![
        add_writer("a", "b", true),
        sync_step(&["a", "b"]),
        append("a", put("a0", "x")),
        append("b", put("b0", "x")),
        sync_step(&["a", "b"]),
        add_writer("b", "c", true),
        append("a", put("a1", "concurrent")),
        sync_step(&["a", "b", "c"]),
    ];
    for i in 0..3 {
        steps.push(append("a", put("k", &format!("a{i}"))));
        steps.push(append("c", put("k", &format!("c{i}"))));
        steps.push(sync_step(&["a", "b", "c"]));
        for w in ["a", "b", "c"] {
            steps.push(append(w, Value::Null));
            steps.push(sync_step(&["a", "b", "c"]));
        }
    }
    let out = check(
        "indexer",
        json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}, {"name": "c", "seed": 3}], "steps": steps}),
    );
    // the first node, b joining and c joining: three indexer changes, and the last one over a tail; each moved
    // the system and the view to new keys (the same as JS's, compared above)
    assert!(stat(&out, "a", "reboots") >= 3);
    for b in ["a", "b", "c"] {
        assert!(stat(&out, b, "migrations") >= 3, "base {b} migrated");
    }
    assert!(
        (["a", "b", "c"].iter()).any(|b| stat(&out, b, "readded") > 0),
        "a reboot re-added an un-indexed tail"
    );
}

/// A small deterministic generator (splitmix64), so the scripts are the same on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random script over three bases: a creates and adds b as an indexer and c as an indexer or not; then
/// puts, deletions, acks, batches of partitioned syncs, c removed and added back; at the end everyone syncs
/// and the indexers ack.
fn random_scenario(seed: u64) -> Value {
    let mut r = Mix(seed);
    let names = ["a", "b", "c"];
    let c_indexer = r.below(2) == 0;
    let mut steps = vec![
        add_writer("a", "b", true),
        sync_step(&["a", "b"]),
        add_writer("a", "c", c_indexer),
        sync_step(&["a", "b", "c"]),
    ];
    for i in 0..24 {
        let who = names[r.below(3) as usize];
        match r.below(10) {
            0..=3 => steps.push(append(
                who,
                put(&format!("k{}", r.below(5)), &format!("{who}{i}")),
            )),
            4 => steps.push(append(
                who,
                json!({"op": "del", "key": format!("k{}", r.below(5))}),
            )),
            5 | 6 => steps.push(append(who, Value::Null)),
            7 if !c_indexer => {
                let op = if r.below(2) == 0 {
                    "remove-writer"
                } else {
                    "add-writer"
                };
                steps.push(append(
                    "a",
                    json!({"op": op, "key": "@c", "indexer": false}),
                ));
            }
            _ => {
                let pick: Vec<&str> = match r.below(4) {
                    0 => vec!["a", "b"],
                    1 => vec!["a", "c"],
                    2 => vec!["b", "c"],
                    _ => vec!["a", "b", "c"],
                };
                steps.push(sync_step(&pick));
            }
        }
    }
    for _ in 0..2 {
        steps.push(sync_step(&["a", "b", "c"]));
        steps.push(append("a", Value::Null));
        steps.push(sync_step(&["a", "b", "c"]));
        steps.push(append("b", Value::Null));
    }
    steps.push(sync_step(&["a", "b", "c"]));
    json!({"bases": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}, {"name": "c", "seed": 3}], "steps": steps})
}

/// A writer block as hex, re-encoded without its trace (JS records which signed view blocks the apply of a local
/// node read; not written here yet) and with its heads sorted (their order is compared in `blocks`, except in
/// the random scripts: see [`sorted_heads`]), so the rest (digest, checkpoints) compares byte for byte.
fn without_trace(blocks: &Value) -> Value {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let mut m = OplogMessage::decode(&hex::decode(b.as_str().unwrap()).unwrap()).unwrap();
            m.trace = None;
            m.node.heads.sort_by_key(|h| h.key);
            Value::String(hex::encode(m.to_bytes().unwrap()))
        })
        .collect()
}

fn compare(name: &str, rust: &Value, js: &Value) {
    assert_eq!(rust["appends"], js["appends"], "{name}: appends");
    for (base, j) in js["bases"].as_object().unwrap() {
        let r = &rust["bases"][base];
        for field in [
            "key",
            "localKey",
            "writable",
            "systemKey",
            "viewKey",
            "blocks",
            "view",
            "system",
            "indexedLength",
            "signedLength",
            "systemBlocks",
        ] {
            assert_eq!(
                r[field], j[field],
                "{name}: base {base}: {field}\nrust: {}\njs:   {}",
                r[field], j[field]
            );
        }
        let (r, j) = (
            without_trace(&r["rawBlocks"]),
            without_trace(&j["rawBlocks"]),
        );
        assert_eq!(
            r, j,
            "{name}: base {base}: writer blocks\nrust: {r}\njs:   {j}"
        );
    }
}

/// The heads of every block and of the system, sorted by key. The order of a node's heads is the order in
/// which JS's active writers fed the linearizer, which its writer garbage collection and wakeup (replication,
/// not here yet) reshuffle; the order changes no linearization, only bytes.
fn sorted_heads(mut out: Value) -> Value {
    let sort = |v: &mut Value| {
        if let Some(a) = v.as_array_mut() {
            a.sort_by(|x, y| x["key"].as_str().cmp(&y["key"].as_str()));
        }
    };
    for (_, b) in out["bases"].as_object_mut().unwrap().iter_mut() {
        sort(&mut b["system"]["heads"]);
        for blk in b["blocks"].as_array_mut().unwrap() {
            sort(&mut blk["heads"]);
        }
    }
    out
}

#[test]
fn random_partitioned_scripts_match_js() {
    let scenarios: Vec<Value> = (0..8).map(|s| random_scenario(1000 + s)).collect();
    let dir = interop::scratch_dir("autobase-apply-random");
    let raw = interop::run_with_stdin(
        "autobase_scenario.js",
        &[dir.join("js").to_str().unwrap()],
        json!({ "scenarios": scenarios }).to_string().as_bytes(),
        Duration::from_secs(240),
    );
    let js: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON from autobase_scenario.js"))
        .collect();
    assert_eq!(js.len(), scenarios.len());
    for (i, (scenario, js)) in scenarios.iter().zip(&js).enumerate() {
        let rust = run_rust(&dir.join(format!("rust-{i}")), scenario);
        compare(
            &format!("random {i}"),
            &sorted_heads(rust),
            &sorted_heads(js.clone()),
        );
    }
}

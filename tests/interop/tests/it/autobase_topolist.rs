//! The order of autobase's causal DAG, Rust against JS: random DAGs (several writers, concurrent nodes,
//! optimistic nodes, partial indexing) go through JS autobase 7.28.1's `Topolist` (`js/autobase_topolist.js`)
//! and through `holepunch::autobase::topolist`; every flush must report the same order, indexed list, shared
//! prefix and undo count.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use holepunch::autobase::topolist::{Dag, NodeId, Topolist};
use serde_json::{json, Value};

use crate::rng::Rng;

enum Step {
    Add {
        writer: usize,
        deps: Vec<NodeId>,
        optimistic: bool,
    },
    Flush {
        indexed: usize,
    },
}

struct Case {
    writers: Vec<[u8; 32]>,
    steps: Vec<Step>,
}

fn gen_case(rng: &mut Rng) -> Case {
    let n_writers = 2 + rng.below(3) as usize;
    let writers: Vec<[u8; 32]> = (0..n_writers)
        .map(|_| {
            let mut k = [0u8; 32];
            for b in &mut k {
                *b = rng.below(256) as u8;
            }
            // a few writers share a first byte, so the comparison has to look further
            if rng.below(3) == 0 {
                k[0] = 0x42;
            }
            k
        })
        .collect();
    let mut steps = Vec::new();
    let mut last_of: Vec<Option<NodeId>> = vec![None; n_writers];
    let mut count = 0usize;
    let mut tip_len = 0usize;
    for _ in 0..(20 + rng.below(40)) {
        if count > 0 && rng.below(5) == 0 {
            // index a prefix of the tip now and then (often nothing)
            let indexed = if rng.below(2) == 0 {
                0
            } else {
                rng.below(tip_len as u64 + 1) as usize
            };
            tip_len -= indexed;
            steps.push(Step::Flush { indexed });
            continue;
        }
        let writer = rng.below(n_writers as u64) as usize;
        let mut deps = Vec::new();
        if let Some(p) = last_of[writer] {
            deps.push(p);
        }
        for _ in 0..rng.below(3) {
            if count > 0 {
                // mostly recent nodes: the heads a writer would have seen
                let back = rng.below(count.min(6) as u64) as usize;
                deps.push(count - 1 - back);
            }
        }
        let optimistic = rng.below(8) == 0;
        steps.push(Step::Add {
            writer,
            deps,
            optimistic,
        });
        last_of[writer] = Some(count);
        count += 1;
        tip_len += 1;
    }
    steps.push(Step::Flush { indexed: 0 });
    Case { writers, steps }
}

fn case_json(c: &Case) -> Value {
    json!({
        "writers": c.writers.iter().map(hex::encode).collect::<Vec<_>>(),
        "steps": c.steps.iter().map(|s| match s {
            Step::Add { writer, deps, optimistic } =>
                json!({ "op": "add", "writer": writer, "deps": deps, "optimistic": optimistic }),
            Step::Flush { indexed } => json!({ "op": "flush", "indexed": indexed }),
        }).collect::<Vec<_>>(),
    })
}

fn run_rust(c: &Case) -> Value {
    let mut dag = Dag::new();
    let mut list = Topolist::new();
    let mut lengths = vec![0u64; c.writers.len()];
    let mut out = Vec::new();
    for step in &c.steps {
        match step {
            Step::Add {
                writer,
                deps,
                optimistic,
            } => {
                lengths[*writer] += 1;
                let id = dag.add(c.writers[*writer], lengths[*writer], deps, *optimistic);
                list.add(&mut dag, id);
            }
            Step::Flush { indexed } => {
                let mut take: Vec<NodeId> = list.tip()[..*indexed].to_vec();
                take.sort_unstable();
                let mut order = Vec::new();
                for n in take {
                    dag.set_yielded(n);
                    dag.add_sorted(n, &mut order, 0);
                }
                let u = list.flush(&mut dag, order);
                out.push(json!({
                    "shared": u.shared,
                    "undo": u.undo,
                    "length": u.length,
                    "indexed": u.indexed,
                    "tip": u.tip,
                }));
            }
        }
    }
    Value::Array(out)
}

#[test]
fn rust_orders_random_dags_exactly_as_js_topolist() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cases: Vec<Case> = (0..60).map(|_| gen_case(&mut rng)).collect();
    let input = json!({ "cases": cases.iter().map(case_json).collect::<Vec<_>>() });
    let js = interop::run_json("autobase_topolist.js", &input, Duration::from_secs(60));
    let js_cases = js["cases"].as_array().expect("cases");
    assert_eq!(js_cases.len(), cases.len());
    let mut reorders = 0;
    for (i, (c, expected)) in cases.iter().zip(js_cases).enumerate() {
        let got = run_rust(c);
        assert_eq!(&got, expected, "case {i}: {}", case_json(c));
        reorders += expected
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["undo"].as_u64().unwrap() > 0)
            .count();
    }
    // the cases do exercise reordering of applied nodes
    assert!(reorders > 10, "only {reorders} flushes undid anything");
}

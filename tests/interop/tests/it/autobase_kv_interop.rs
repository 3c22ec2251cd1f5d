//! `autobase-kv` over the network, the Rust bin and its JS twin (`js/autobase-kv.js`, autobase 7.28.1) on a
//! local testnet (issue #16): each peer keeps its own store folder; `sync` runs on every peer at once for a
//! few seconds, and the peers' `list` and `info` are compared after each round until they agree (at most
//! `ROUNDS` rounds: a bounded number of syncs, no sleeps). Needs `cargo build -p autobase-kv` (a workspace
//! test run builds it).
//!
//! - a JS-created base with a Rust writer added, and a Rust-created base with a JS writer (an indexer) added:
//!   both write, sync, and list the same entries; then a reader of the writer's side joins late and gets the
//!   same view and system state (signed lengths included, past 0); the same two on an encrypted base
//!   (`--encryption-key`), and a Rust reader given the wrong key for a JS base;
//! - three writers (JS indexer, Rust indexer, Rust non-indexer) write while partitioned, then sync: the same
//!   list everywhere, and the same system state in `info` (members, indexers with their lengths, heads);
//! - a writer removed by the (only) indexer while it writes: its write is not applied on any peer;
//! - a reader that was never added puts optimistically (`put --optimistic`), a JS reader on a Rust base with a
//!   JS indexer and a Rust reader on a JS base with a Rust indexer: every peer applies it (the kv apply acks
//!   its writer), the lists and system states agree, the reader is a removed member at length 1 and still
//!   not writable, and the base goes on;
//! - a base with a long history (1200 puts of one indexer, every one signed into the system and view
//!   cores by its checkpoints) and a reader of the other side joining late, both ways: the reader
//!   fast-forwards (its `sync` says so), lists the same entries, and its store holds under half of the
//!   writer's blocks (`info`'s `writers`: Rust's stored blocks, JS's contiguous length).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;

use interop::{built, interop_dir, require_js, JsTestnet};
use serde_json::Value;

/// Seconds each `sync` stays connected.
const SYNC_SECONDS: &str = "4";
/// Sync rounds before a test gives up.
const ROUNDS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Js,
    Rust,
}

#[derive(Debug, Clone)]
struct Peer {
    side: Side,
    dir: String,
}

impl Peer {
    fn new(side: Side, root: &std::path::Path, name: &str) -> Self {
        Self {
            side,
            dir: root.join(name).to_str().expect("utf-8 path").to_string(),
        }
    }

    fn command(&self) -> Command {
        match self.side {
            Side::Rust => Command::new(built("debug", "autobase-kv")),
            Side::Js => {
                require_js();
                let mut c = Command::new("node");
                c.arg(PathBuf::from("js").join("autobase-kv.js"))
                    .current_dir(interop_dir());
                c
            }
        }
    }

    /// Runs a command whose args start with the folder where `{}` stands.
    fn run(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{}" { self.dir.as_str() } else { a })
            .collect();
        self.command()
            .args(&args)
            .env_remove("HYPERDHT_BOOTSTRAP")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{:?} {args:?}: {e}", self.side))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{:?} {args:?}: {} {}",
            self.side,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn list(&self) -> String {
        self.ok(&["list", "{}"])
    }

    fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["info", "{}"])).expect("info prints JSON")
    }

    fn put(&self, k: &str, v: &str) {
        self.ok(&["put", "{}", k, v]);
    }
}

/// One round: every peer syncs at the same time; returns what each `sync` printed.
fn sync_round(peers: &[&Peer], net: &JsTestnet) -> Vec<String> {
    let bootstrap = net.bootstrap_arg();
    let handles: Vec<_> = peers
        .iter()
        .map(|p| {
            let p = (*p).clone();
            let b = bootstrap.clone();
            thread::spawn(move || {
                p.ok(&["sync", "{}", "--bootstrap", &b, "--seconds", SYNC_SECONDS])
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("sync"))
        .collect()
}

/// Syncs rounds until `done` holds for the peers (checked before the first round too); returns what each
/// peer's `sync` printed over the rounds.
fn until(peers: &[&Peer], net: &JsTestnet, what: &str, done: impl Fn() -> bool) -> Vec<String> {
    let mut printed = vec![String::new(); peers.len()];
    for _ in 0..ROUNDS {
        if done() {
            return printed;
        }
        for (all, out) in printed.iter_mut().zip(sync_round(peers, net)) {
            all.push_str(&out);
        }
    }
    assert!(
        done(),
        "{what}: not after {ROUNDS} sync rounds; lists {:?}, infos {:?}",
        peers.iter().map(|p| p.list()).collect::<Vec<_>>(),
        peers.iter().map(|p| p.info()).collect::<Vec<_>>()
    );
    printed
}

/// The system state `info` shows: members, indexers (with the lengths the system recorded), heads, the
/// system's indexed length, the system and view lengths (the apply writes the same blocks on both sides) and
/// their signed lengths (the indexers' checkpoints, assembled on each side).
fn system(info: &Value) -> Value {
    serde_json::json!({
        "indexedLength": info["indexedLength"],
        "systemLength": info["systemLength"],
        "viewLength": info["viewLength"],
        "members": info["members"],
        "indexers": info["indexers"],
        "heads": sorted(&info["heads"]),
        "systemSignedLength": info["systemSignedLength"],
        "viewSignedLength": info["viewSignedLength"],
    })
}

fn sorted(v: &Value) -> Value {
    let mut a = v.as_array().cloned().unwrap_or_default();
    a.sort_by_key(|x| x["key"].as_str().unwrap_or_default().to_string());
    Value::Array(a)
}

fn writable(p: &Peer) -> bool {
    p.info()["writable"] == true
}

fn same_lists(peers: &[&Peer]) -> bool {
    let first = peers[0].list();
    peers.iter().skip(1).all(|p| p.list() == first)
}

fn same_system(peers: &[&Peer]) -> bool {
    let first = system(&peers[0].info());
    peers.iter().skip(1).all(|p| system(&p.info()) == first)
}

/// Whether `info`'s system and view signed lengths both moved past 0.
fn signed(info: &Value) -> bool {
    info["systemSignedLength"].as_u64() > Some(0) && info["viewSignedLength"].as_u64() > Some(0)
}

/// Creates a base on `creator`, joins `others` and adds each (`indexer` flags) from the creator; syncs until
/// every one is writable.
fn base_with(creator: &Peer, others: &[(&Peer, bool)], net: &JsTestnet) -> String {
    base_with_key(creator, others, net, None)
}

/// [`base_with`], the base encrypted with `encryption_key` (hex) when given: passed to `create` and `join`
/// only (each side keeps it in its store).
fn base_with_key(
    creator: &Peer,
    others: &[(&Peer, bool)],
    net: &JsTestnet,
    encryption_key: Option<&str>,
) -> String {
    let mut args = vec!["create", "{}"];
    args.extend(encryption_key.iter().flat_map(|k| ["--encryption-key", *k]));
    let created = creator.ok(&args);
    let key = created.lines().next().expect("base key").to_string();
    for (p, indexer) in others {
        let mut args = vec!["join", key.as_str(), "{}"];
        args.extend(encryption_key.iter().flat_map(|k| ["--encryption-key", *k]));
        let w = p.ok(&args);
        let w = w.trim();
        assert_eq!(w.len(), 64, "{w}");
        if *indexer {
            creator.ok(&["add-writer", "{}", w, "--indexer"]);
        } else {
            creator.ok(&["add-writer", "{}", w]);
        }
    }
    let mut all = vec![creator];
    all.extend(others.iter().map(|(p, _)| *p));
    until(&all, net, "the added writers are writable", || {
        others.iter().all(|(p, _)| writable(p))
    });
    key
}

fn two_writers(creator: Side, writer: Side, indexer: bool) {
    two_writers_with(creator, writer, indexer, None);
}

fn two_writers_with(creator: Side, writer: Side, indexer: bool, encryption_key: Option<&str>) {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-two");
    let a = Peer::new(creator, &root, "a");
    let b = Peer::new(writer, &root, "b");
    base_with_key(&a, &[(&b, indexer)], &net, encryption_key);
    a.put("from-a", "1");
    b.put("from-b", "2");
    a.put("both", "a");
    b.put("both", "b");
    until(&[&a, &b], &net, "the same entries", || {
        let l = a.list();
        l.contains("from-a\t1\n") && l.contains("from-b\t2\n") && l == b.list()
    });
    // the same system state, signed lengths included (encrypted or not), and the indexers' checkpoints
    // signed something: the system and view signed lengths moved past 0
    let agree = |p: &[&Peer]| same_system(p) && signed(&p[0].info());
    until(&[&a, &b], &net, "the same system, signed", || {
        agree(&[&a, &b])
    });
    // a reader of the writer's side joins late (not added): it reads the whole view
    let key = a.info()["key"].as_str().expect("key").to_string();
    let late = Peer::new(writer, &root, "late");
    let mut args = vec!["join", key.as_str(), "{}"];
    args.extend(encryption_key.iter().flat_map(|k| ["--encryption-key", *k]));
    late.ok(&args);
    until(&[&a, &b, &late], &net, "the late reader's view", || {
        late.list() == a.list() && agree(&[&a, &late])
    });
    assert!(!writable(&late));
}

#[test]
fn a_js_base_with_a_rust_writer() {
    two_writers(Side::Js, Side::Rust, false);
}

#[test]
fn a_rust_base_with_a_js_indexer() {
    two_writers(Side::Rust, Side::Js, true);
}

/// The encryption key of the encrypted-base tests.
const ENCRYPTION_KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

#[test]
fn an_encrypted_js_base_with_a_rust_writer() {
    two_writers_with(Side::Js, Side::Rust, false, Some(ENCRYPTION_KEY));
}

#[test]
fn an_encrypted_rust_base_with_a_js_indexer() {
    two_writers_with(Side::Rust, Side::Js, true, Some(ENCRYPTION_KEY));
}

/// A Rust reader given the wrong key for a JS-encrypted base: an error naming the key, never a view.
#[test]
fn a_wrong_key_for_an_encrypted_js_base_is_an_error() {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-wrong-key");
    let a = Peer::new(Side::Js, &root, "a");
    let r = Peer::new(Side::Rust, &root, "r");
    let created = a.ok(&["create", "{}", "--encryption-key", ENCRYPTION_KEY]);
    let key = created.lines().next().expect("base key").to_string();
    a.put("k", "v");
    let wrong = "11".repeat(32);
    r.ok(&["join", &key, "{}", "--encryption-key", &wrong]);
    let mut failed = None;
    for _ in 0..ROUNDS {
        let b = net.bootstrap_arg();
        let ra = {
            let a = a.clone();
            let b = b.clone();
            thread::spawn(move || {
                a.run(&["sync", "{}", "--bootstrap", &b, "--seconds", SYNC_SECONDS])
            })
        };
        let out = r.run(&["sync", "{}", "--bootstrap", &b, "--seconds", SYNC_SECONDS]);
        ra.join().expect("sync");
        if !out.status.success() {
            failed = Some(out);
            break;
        }
    }
    let out = failed.expect("the wrong key was never noticed");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong encryption key"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn three_writers_partitioned_then_synced_agree() {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-three");
    let js = Peer::new(Side::Js, &root, "js");
    let ri = Peer::new(Side::Rust, &root, "rust-indexer");
    let rw = Peer::new(Side::Rust, &root, "rust-writer");
    base_with(&js, &[(&ri, true), (&rw, false)], &net);
    // partitioned: each writes without syncing
    for (p, tag) in [(&js, "js"), (&ri, "ri"), (&rw, "rw")] {
        for i in 0..3 {
            p.put(&format!("{tag}-{i}"), tag);
        }
        p.put("shared", tag);
    }
    p_del(&ri, "js-0");
    let peers = [&js, &ri, &rw];
    until(
        &peers,
        &net,
        "every write everywhere, the same list",
        || {
            let l = js.list();
            ["js-2", "ri-2", "rw-2"].iter().all(|k| l.contains(k)) && same_lists(&peers)
        },
    );
    until(&peers, &net, "the same system state", || {
        same_lists(&peers) && same_system(&peers)
    });
    let info = js.info();
    assert_eq!(info["indexers"].as_array().map(Vec::len), Some(2));
    assert_eq!(info["members"].as_array().map(Vec::len), Some(3));
    // the two indexers' checkpoints were assembled into the same signed lengths on every peer
    assert!(info["systemSignedLength"].as_u64() > Some(0), "{info}");
}

fn p_del(p: &Peer, k: &str) {
    p.ok(&["del", "{}", k]);
}

#[test]
fn a_removed_writers_later_puts_are_not_applied() {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-removed");
    let js = Peer::new(Side::Js, &root, "js");
    let rust = Peer::new(Side::Rust, &root, "rust");
    base_with(&js, &[(&rust, false)], &net);
    rust.put("before", "1");
    until(&[&js, &rust], &net, "the writer's put applied", || {
        js.list().contains("before\t1\n") && same_lists(&[&js, &rust])
    });
    let rkey = rust.info()["localKey"]
        .as_str()
        .expect("localKey")
        .to_string();
    js.ok(&["remove-writer", "{}", &rkey]);
    // not synced yet: the Rust writer still thinks it may write
    rust.put("after", "2");
    assert!(rust.list().contains("after\t2\n"));
    let removed = |p: &Peer| {
        p.info()["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["key"] == rkey.as_str() && m["isRemoved"] == true)
        })
    };
    until(
        &[&js, &rust],
        &net,
        "the removal everywhere, the same list",
        || removed(&js) && removed(&rust) && same_lists(&[&js, &rust]),
    );
    for p in [&js, &rust] {
        let l = p.list();
        assert!(l.contains("before\t1\n"), "{:?}: {l}", p.side);
        assert!(
            !l.contains("after"),
            "{:?} applied a removed writer's put: {l}",
            p.side
        );
    }
    let refused = rust.run(&["put", "{}", "later", "3"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a removed writer may not append"
    );
}

/// Puts of the long-history bases (one indexer: each put indexed at once, signed by its next block).
const HISTORY: usize = 1200;

/// Fresh late readers tried until one fast-forwards (see `late_reader_fast_forwards`).
const READER_TRIES: usize = 5;

/// A Rust base in `dir` with [`HISTORY`] puts (`k000000`.. = `0`..), as `autobase-kv put` would write them,
/// made in this process (a put per process would take minutes); returns the base key.
fn rust_history(dir: &str) -> String {
    use holepunch::autobase::base::{Autobase, AutobaseOptions};
    use holepunch::autobase::kv::{Kv, KvOp};
    let store = holepunch::corestore::Corestore::open(dir).expect("store");
    let mut base = Autobase::open(store, Kv, AutobaseOptions::default()).expect("base");
    for i in 0..HISTORY {
        let op = KvOp::Put {
            key: format!("k{i:06}"),
            value: i.to_string(),
        };
        base.append(Some(&op.to_json())).expect("put");
    }
    base.flush().expect("flush");
    hex::encode(base.key())
}

/// A reader of `reader`'s side joins a long-history base of `creator`'s side late: it fast-forwards.
fn late_reader_fast_forwards(creator: Side, reader: Side) {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-ff");
    let a = Peer::new(creator, &root, "a");
    let key = match creator {
        Side::Rust => rust_history(&a.dir),
        Side::Js => {
            let created = a.ok(&["create", "{}"]);
            a.ok(&["fill", "{}", &HISTORY.to_string(), "k"]);
            created.lines().next().expect("base key").to_string()
        }
    };
    let info = a.info();
    let writer = info["localKey"].as_str().expect("localKey").to_string();
    assert_eq!(info["key"].as_str(), Some(key.as_str()));
    // Whether a reader fast-forwards or applies the writer's blocks is its own choice, made on timing: JS
    // fast-forwards when its system core hears of a signed length 16 past what it applied, and a JS reader
    // whose writer blocks arrive first may apply them all (JS does so, at load ~3.5, in about 1 run of 6).
    // So a fresh reader tries again, up to READER_TRIES times; one of them must fast-forward (the first one
    // does in most runs).
    let mut tries = Vec::new();
    let b = loop {
        let b = Peer::new(reader, &root, &format!("b{}", tries.len()));
        b.ok(&["join", &key, "{}"]);
        let printed = until(&[&a, &b], &net, "the late reader's view", || {
            b.list() == a.list()
        });
        assert_eq!(b.list().lines().count(), HISTORY);
        if printed[1].contains("\"fastForward\"") {
            break b;
        }
        tries.push(format!("{:?}; its info {}", printed[1], b.info()));
        assert!(
            tries.len() < READER_TRIES,
            "{reader:?} did not fast-forward in {READER_TRIES} fresh readers: {tries:#?}"
        );
    };
    let info = b.info();
    let w = info["writers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["key"] == writer.as_str()))
        .unwrap_or_else(|| panic!("no writer {writer} in {info}"));
    let length = w["length"].as_u64().expect("length");
    // Rust says how many blocks it stores; JS how many from the start it has without a gap (it downloads
    // the first window, then only past the indexed length); JS's `sync` reads the whole view before it
    // exits (JS fetches a fast-forwarded view's blocks on demand, and `list` runs offline)
    let held = match reader {
        Side::Rust => w["storedBlocks"].as_u64(),
        Side::Js => w["contiguousLength"].as_u64(),
    }
    .expect("held");
    assert!(
        length as usize >= HISTORY && held * 2 < length,
        "{reader:?} holds {held} of the writer's {length} blocks"
    );
}

#[test]
fn a_late_rust_reader_fast_forwards_from_a_js_base() {
    late_reader_fast_forwards(Side::Js, Side::Rust);
}

#[test]
fn a_late_js_reader_fast_forwards_from_a_rust_base() {
    late_reader_fast_forwards(Side::Rust, Side::Js);
}

/// A base of `creator` with an indexer of `other`'s side; a reader of `optimist`'s side that was never added
/// puts optimistically (`put --optimistic`): every peer applies the put (the kv apply acks its writer), the
/// lists and system states agree, the optimist's member record is a removed one at length 1 and it stays
/// unable to write plainly; the base goes on after it.
fn optimistic_put(creator: Side, other: Side, optimist: Side) {
    let net = JsTestnet::start(5);
    let root = interop::scratch_dir("autobase-kv-optimistic");
    let a = Peer::new(creator, &root, "a");
    let b = Peer::new(other, &root, "b");
    let key = base_with(&a, &[(&b, true)], &net);
    a.put("from-a", "1");
    let o = Peer::new(optimist, &root, "o");
    let okey = o.ok(&["join", &key, "{}"]).trim().to_string();
    until(&[&a, &b, &o], &net, "the reader's view", || {
        o.list().contains("from-a\t1\n") && same_lists(&[&a, &b, &o])
    });
    assert!(!writable(&o));
    let refused = o.run(&["put", "{}", "plain", "no"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a reader may not put plainly"
    );
    o.ok(&["put", "{}", "from-o", "hi", "--optimistic"]);
    assert!(o.list().contains("from-o\thi\n"), "{}", o.list());
    let acked = |p: &Peer| {
        p.info()["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["key"] == okey.as_str() && m["isRemoved"] == true && m["length"] == 1)
        })
    };
    until(
        &[&a, &b, &o],
        &net,
        "the optimistic put everywhere, the same system",
        || {
            a.list().contains("from-o\thi\n")
                && same_lists(&[&a, &b, &o])
                && acked(&a)
                && same_system(&[&a, &b])
        },
    );
    assert!(!writable(&o));
    a.put("after", "2");
    b.put("after-b", "3");
    until(&[&a, &b, &o], &net, "the base goes on", || {
        let l = a.list();
        l.contains("after\t2\n")
            && l.contains("after-b\t3\n")
            && l.contains("from-o\thi\n")
            && same_lists(&[&a, &b, &o])
            && same_system(&[&a, &b, &o])
    });
}

#[test]
fn a_js_readers_optimistic_put_is_read_by_rust() {
    optimistic_put(Side::Rust, Side::Js, Side::Js);
}

#[test]
fn a_rust_readers_optimistic_put_is_read_by_js() {
    optimistic_put(Side::Js, Side::Rust, Side::Rust);
}

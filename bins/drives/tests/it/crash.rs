//! `kill -9` at seeded random moments (50 in all) during `drives mirror FOLDER KEY` (an import),
//! `drives mirror KEY FOLDER` (a download from a seeder) and `drives seed` (while a peer downloads), on a
//! local testnet. After every kill: the killed process's store reopens; every stored block of every core
//! verifies against its signed Merkle tree (a proof built from the store and checked against the core's key);
//! no entry of a writer's drive points past its blobs core's length; every entry whose blob is stored reads back equal to the
//! source file; a folder being written holds no file that differs from the source (a half-written file never
//! carries a file's name). After each series a rerun completes and the result equals the source.
//!
//! `CRASH_SEED=N` replays another series of kill moments (the moments are fractions of a calibration run's
//! duration, so the same seed kills at the same points of the work, give or take the machine's speed).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_tree, data, drives, ok, Running};
use holepunch::corestore::Corestore;
use holepunch::drive::Drive;
use holepunch::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
use holepunch::hypercore::Hypercore;
use holepunch::hyperdrive::{DriveOptions, Hyperdrive, ListOptions};

/// A seeded xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The source folder: many small files, some in folders, and three multi-block files.
fn source(root: &Path) {
    for i in 0..300u64 {
        let dir = root.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let len = 200 + (i as usize * 997) % 9000;
        std::fs::write(dir.join(format!("f{i:03}.bin")), data(i, len)).expect("write");
    }
    std::fs::create_dir_all(root.join("big")).expect("mkdir");
    for (i, len) in [(0u64, 1_500_000usize), (1, 900_000), (2, 2_100_000)] {
        std::fs::write(root.join(format!("big/b{i}.bin")), data(1000 + i, len)).expect("write");
    }
}

/// Every file under `root` (relative key `/a/b` -> bytes), skipping `.drives`.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    common::tree(root)
        .into_iter()
        .map(|(k, (bytes, _))| (format!("/{k}"), bytes))
        .collect()
}

fn spawn(cwd: &Path, args: &[&str]) -> Child {
    drives()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn drives")
}

/// Runs `args` and kills it with SIGKILL after `after` (unless it ended first); returns whether it was
/// killed.
fn run_and_kill(cwd: &Path, args: &[&str], after: Duration) -> bool {
    let mut child = spawn(cwd, args);
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "drives {args:?} failed: {status}");
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().expect("kill -9");
            child.wait().expect("wait");
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long `args` takes to run to completion.
fn timed(cwd: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    ok(cwd, args);
    start.elapsed()
}

/// Verifies every stored block of `core` against its signed tree: a proof of the block (and of the whole
/// tree up to the signed length) built from the store, checked against the core's key.
fn verify_core(core: &Hypercore, what: &str) {
    let length = core.length();
    for index in 0..length {
        if !core.has(index) {
            continue;
        }
        let req = Request {
            id: index + 1,
            fork: core.fork(),
            block: Some(RequestBlock { index, nodes: 0 }),
            upgrade: Some(RequestUpgrade { start: 0, length }),
            ..Request::default()
        };
        let proof = core
            .proof(&req)
            .unwrap_or_else(|e| panic!("{what}: no proof of block {index}/{length}: {e}"));
        core.verify_proof(&proof)
            .unwrap_or_else(|e| panic!("{what}: block {index}/{length} does not verify: {e}"));
    }
}

/// Reopens the store in `dir` and checks the drive `key` there (see the module docs); `complete`: every
/// entry must be stored. Returns the entries whose content is stored, with their bytes.
pub(crate) fn check_store(
    dir: &Path,
    key: &str,
    src: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Corestore::open(dir)
            .unwrap_or_else(|e| panic!("the store {} does not reopen: {e}", dir.display()));
        let key = holepunch::id_encoding::decode(key).expect("key");
        let drive = Hyperdrive::open_key(&store, key, DriveOptions::default())
            .unwrap_or_else(|e| panic!("the drive does not reopen in {}: {e}", dir.display()));
        verify_core(drive.core(), "db core");
        let db = drive.core();
        let mut got = BTreeMap::new();
        if db.length() == 0 || !(0..db.length()).all(|i| db.has(i)) {
            // A replica that has not got the whole db yet: its stored blocks verified, nothing to list.
            drive.close();
            return got;
        }
        let blobs = drive.blobs().await.expect("the blobs core opens");
        verify_core(blobs.core(), "blobs core");
        let blen = blobs.core().length();
        let entries = drive
            .list_with("/", ListOptions::default())
            .await
            .expect("the entries list");
        for e in entries {
            let want = src
                .get(&e.key)
                .unwrap_or_else(|| panic!("{}: not a source file", e.key));
            let Some(blob) = e.blob else {
                assert!(want.is_empty(), "{}: no blob", e.key);
                got.insert(e.key, Vec::new());
                continue;
            };
            let end = blob.block_offset + blob.block_length;
            if end > blen {
                // A replica killed after its db was whole but before it learned the blobs core's length that
                // far holds none of that content: nothing to check. A writer commits blobs before entries.
                assert!(
                    !db.writable(),
                    "{}: points at blocks {}..{end}, past the blobs core's length {blen}",
                    e.key,
                    blob.block_offset
                );
                continue;
            }
            if (blob.block_offset..end).all(|i| blobs.core().has(i)) {
                let bytes = drive
                    .get(&e.key)
                    .await
                    .unwrap_or_else(|err| panic!("{}: does not read: {err}", e.key))
                    .expect("content");
                assert!(bytes == *want, "{}: content differs from the source", e.key);
                got.insert(e.key, bytes);
            }
        }
        drive.close();
        got
    })
}

/// Checks a folder a mirror was writing: every file in it is a whole source file.
pub(crate) fn check_folder(root: &Path, src: &BTreeMap<String, Vec<u8>>) -> usize {
    let have = files(root);
    for (k, bytes) in &have {
        let name = k.rsplit('/').next().unwrap_or_default();
        if name.ends_with(".localdrive.tmp") {
            continue; // a killed writer's temporary file: never under a file's name
        }
        let want = src
            .get(k)
            .unwrap_or_else(|| panic!("{k}: not a source file"));
        assert!(
            bytes == want,
            "{k}: a half-written or wrong file under its name"
        );
    }
    have.len()
}

fn key_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("New drive: "))
        .expect("key line")
        .to_string()
}

#[test]
fn kill_9_at_random_moments_never_corrupts_a_store_or_a_folder() {
    interop::require_js();
    let started = Instant::now();
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0de_2026);
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    source(&cwd.join("src"));
    let src = files(&cwd.join("src"));
    let abs = |p: &str| -> PathBuf { cwd.join(p).join("corestore") };
    let mut kills = 0;

    // 1. Imports (mirror FOLDER KEY) into a new drive each, killed, then rerun to the end.
    let calib = key_of(&ok(cwd, &["touch", "--storage", "calib"]));
    let t_import = timed(cwd, &["mirror", "./src", &calib, "--storage", "calib"]);
    eprintln!("import: {t_import:?}");
    for i in 0..30 {
        let storage = format!("w{i}");
        let key = key_of(&ok(cwd, &["touch", "--storage", &storage]));
        let at = t_import.mul_f64(0.05 + 1.5 * rng.unit());
        let killed = run_and_kill(cwd, &["mirror", "./src", &key, "--storage", &storage], at);
        kills += 1;
        let got = check_store(&abs(&storage), &key, &src);
        eprintln!(
            "import kill at {at:?} (killed: {killed}): {} entries",
            got.len()
        );
        ok(cwd, &["mirror", "./src", &key, "--storage", &storage]);
        assert_eq!(
            check_store(&abs(&storage), &key, &src),
            src,
            "rerun: the drive equals the folder"
        );
    }
    let key = calib;

    // 2. Downloads (mirror KEY FOLDER) from a seeder into a new store and folder each, killed, then rerun.
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let seeder = Running::spawn(
        cwd,
        &[
            "seed",
            &key,
            "--storage",
            "calib",
            "--bootstrap",
            &bootstrap,
        ],
    );
    seeder.wait_for("Announced", Duration::from_secs(60));
    let dl = |folder: &str, storage: &str| -> Vec<String> {
        [
            "mirror",
            &key,
            folder,
            "--storage",
            storage,
            "--bootstrap",
            &bootstrap,
        ]
        .map(String::from)
        .to_vec()
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let args = dl("./calib-copy", "calib-r");
    let t_download = timed(cwd, &args.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("download: {t_download:?}");
    // (Each killed peer stays announced on the DHT for a while, and a new peer tries those addresses
    // first, a few at a time: so the killed runs are not each rerun, only the last one.)
    let mut last = String::new();
    for i in 0..12 {
        let (folder, storage) = (format!("copy{i}"), format!("r{i}"));
        let args = strs(&dl(&format!("./{folder}"), &storage));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let at = t_download.mul_f64(0.1 + 0.9 * rng.unit());
        let killed = run_and_kill(cwd, &args, at);
        kills += 1;
        let stored = check_store(&abs(&storage), &key, &src);
        let n = check_folder(&cwd.join(&folder), &src);
        eprintln!(
            "download kill at {at:?} (killed: {killed}): {} entries stored, {n} files",
            stored.len()
        );
        last = i.to_string();
    }
    let (folder, storage) = (format!("copy{last}"), format!("r{last}"));
    let args = strs(&dl(&format!("./{folder}"), &storage));
    ok(cwd, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_same_tree(&cwd.join("src"), &cwd.join(&folder));
    assert_eq!(check_store(&abs(&storage), &key, &src).len(), src.len());
    drop(seeder);

    // 3. The seeder, killed while a peer downloads (the peer is killed with it: its store and folder are
    // checked too); the seeder's store must reopen whole every time.
    for i in 0..8 {
        let seeder = spawn(
            cwd,
            &[
                "seed",
                &key,
                "--storage",
                "calib",
                "--bootstrap",
                &bootstrap,
            ],
        );
        let (folder, storage) = (format!("copy-s{i}"), format!("r-s{i}"));
        let peer_args = strs(&dl(&format!("./{folder}"), &storage));
        let peer_args: Vec<&str> = peer_args.iter().map(String::as_str).collect();
        let peer = spawn(cwd, &peer_args);
        let at = t_download.mul_f64(0.6 + 1.5 * rng.unit());
        std::thread::sleep(at);
        for mut p in [seeder, peer] {
            let _ = p.kill();
            p.wait().expect("wait");
        }
        kills += 1;
        assert_eq!(
            check_store(&abs("calib"), &key, &src),
            src,
            "the seeder's drive"
        );
        let stored = check_store(&abs(&storage), &key, &src);
        let n = check_folder(&cwd.join(&folder), &src);
        eprintln!(
            "seed kill at {at:?}: the peer has {} entries, {n} files",
            stored.len()
        );
    }
    assert_eq!(kills, 50);
    eprintln!("50 kills in {:?}", started.elapsed());
}

/// A drive imported through `kill -9`s (each import killed at a seeded moment, then the next run goes on
/// from what the last one committed), then seeded by `drives seed` after a kill of the seeder too: JS
/// hyperdrive 13 downloads it over the wire and gets the source folder byte for byte.
#[test]
fn js_downloads_a_drive_built_through_kills() {
    interop::require_js();
    let mut rng = Rng(0x0005_eed0_0a11 | 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let cwd = tmp.path();
    source(&cwd.join("src"));
    let src = files(&cwd.join("src"));
    let store = cwd.join("w/corestore");
    let key = key_of(&ok(cwd, &["touch", "--storage", "w"]));
    let args = ["mirror", "./src", key.as_str(), "--storage", "w"];
    let calib = key_of(&ok(cwd, &["touch", "--storage", "c"]));
    let t = timed(cwd, &["mirror", "./src", &calib, "--storage", "c"]);
    for _ in 0..5 {
        run_and_kill(cwd, &args, t.mul_f64(0.05 + rng.unit()));
        check_store(&store, &key, &src);
    }
    ok(cwd, &args);
    assert_eq!(check_store(&store, &key, &src), src);
    let net = interop::JsTestnet::start(5);
    let bootstrap = net.bootstrap_arg();
    let seed_args = [
        "seed",
        key.as_str(),
        "--storage",
        "w",
        "--bootstrap",
        &bootstrap,
    ];
    run_and_kill(cwd, &seed_args, t.mul_f64(2.0));
    assert_eq!(check_store(&store, &key, &src), src);
    let seeder = Running::spawn(cwd, &seed_args);
    seeder.wait_for("Announced", Duration::from_secs(60));
    let copy = cwd.join("js-copy");
    let js_store = cwd.join("js-store");
    let mut js = interop::node(
        "drives_peer.js",
        &[
            &bootstrap,
            "mirror",
            &key,
            js_store.to_str().expect("utf8"),
            copy.to_str().expect("utf8"),
        ],
    );
    let line = js.line(Duration::from_secs(120));
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["files"], src.len(), "{line}");
    assert_same_tree(&cwd.join("src"), &copy);
}

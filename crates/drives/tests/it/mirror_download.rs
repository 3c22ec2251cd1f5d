//! The mirror's window of concurrent files (`MirrorOptions::concurrency`): the same result and the same
//! per-key events as a sequential run, hostile sources included; and a hyperdrive replica mirrored into a
//! folder (many small files + a multi-block file) that completes byte-exact across a cut connection.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperblobs::WaitOptions;
use holepunch_drives::drive::{
    BlobReader, BlobWriter, Drive, DriveError, Entry, IgnoreFn, Result, WriteOptions,
};
use holepunch_drives::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch_drives::localdrive::Localdrive;
use holepunch_drives::mirror::{Mirror, MirrorEvent, MirrorOptions, MirrorSummary, Op};
use holepunch_streams::protomux::{memory_pair, Mux};

/// Deterministic pseudo-random bytes.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An in-memory source drive that holds whatever keys it is given (hostile ones too).
struct MemDrive {
    entries: Vec<(Entry, Vec<u8>)>,
}

impl MemDrive {
    fn new() -> Self {
        MemDrive {
            entries: Vec::new(),
        }
    }

    fn file(mut self, key: &str, bytes: Vec<u8>, executable: bool) -> Self {
        let e = Entry::file(key, bytes.len() as u64, executable);
        self.entries.push((e, bytes));
        self
    }

    fn link(mut self, key: &str, target: &str) -> Self {
        let mut e = Entry::file(key, 0, false);
        e.byte_length = None;
        e.linkname = Some(target.to_string());
        self.entries.push((e, Vec::new()));
        self
    }

    fn sorted(mut self) -> Self {
        self.entries.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        self
    }
}

/// Yields the content in uneven chunks.
struct Chunks(Vec<u8>, usize);

#[async_trait]
impl BlobReader for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        // Let other files of the window run in between.
        tokio::task::yield_now().await;
        let n = self.1.min(self.0.len());
        self.1 = self.1 * 3 / 2 + 1;
        Ok(Some(self.0.drain(..n).collect()))
    }
}

#[async_trait]
impl Drive for MemDrive {
    async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self
            .entries
            .iter()
            .find(|(e, _)| e.key == key)
            .map(|(e, _)| e.clone()))
    }

    async fn list(&self, _folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>> {
        Ok(self
            .entries
            .iter()
            .filter(|(e, _)| !ignore.is_some_and(|f| f(&e.key)))
            .map(|(e, _)| e.clone())
            .collect())
    }

    async fn readdir(&self, _folder: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn read(
        &self,
        entry: &Entry,
        _start: u64,
        _length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>> {
        let bytes = self
            .entries
            .iter()
            .find(|(e, _)| e.key == entry.key)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        Ok(Box::new(Chunks(bytes, 7000)))
    }

    async fn write(&self, _key: &str, _opts: WriteOptions) -> Result<Box<dyn BlobWriter>> {
        Err(DriveError::DestinationNotWritable)
    }

    async fn del(&self, _key: &str) -> Result<()> {
        Err(DriveError::DestinationNotWritable)
    }

    async fn symlink(&self, _key: &str, _linkname: &str) -> Result<()> {
        Err(DriveError::DestinationNotWritable)
    }

    fn writable(&self) -> bool {
        false
    }
}

/// What a folder holds: path -> file bytes and executable bit, or symlink target.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, bool),
    Link(String),
}

fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let m = std::fs::symlink_metadata(&p).expect("meta");
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).expect("link");
                out.insert(rel, Node::Link(t.to_string_lossy().into_owned()));
            } else if m.is_dir() {
                walk(root, &p, out);
            } else {
                let x = m.permissions().mode() & 0o100 != 0;
                out.insert(rel, Node::File(std::fs::read(&p).expect("read"), x));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

async fn mirror_into(
    src: &MemDrive,
    dst: &Path,
    concurrency: usize,
) -> (MirrorSummary, Vec<MirrorEvent>) {
    let dst = Localdrive::new(dst);
    let mut events = Vec::new();
    let opts = MirrorOptions {
        concurrency,
        ..MirrorOptions::default()
    };
    let sum = Mirror::new(src, &dst, opts)
        .run(|e| events.push(e))
        .await
        .expect("mirror");
    (sum, events)
}

/// The keys of the events of one kind, in order.
fn keys_of(events: &[MirrorEvent], pick: fn(&MirrorEvent) -> Option<&str>) -> Vec<String> {
    events.iter().filter_map(pick).map(str::to_string).collect()
}

fn diff_key(e: &MirrorEvent) -> Option<&str> {
    match e {
        MirrorEvent::Diff(d) => Some(&d.key),
        _ => None,
    }
}

fn done_key(e: &MirrorEvent) -> Option<&str> {
    match e {
        MirrorEvent::Done { key, .. } => Some(key),
        _ => None,
    }
}

fn skipped_key(e: &MirrorEvent) -> Option<&str> {
    match e {
        MirrorEvent::Skipped { key, .. } => Some(key),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_gives_what_a_sequential_run_gives() {
    let mut src = MemDrive::new()
        // A file, then a file below it (hostile: the second cannot be written).
        .file("/a", b"A".to_vec(), false)
        .file("/a/b", b"AB".to_vec(), false)
        // A symlink out of the folder (refused), then a file below its name.
        .link("/link", "../../outside")
        .file("/link/x", b"x".to_vec(), true)
        // A symlink inside the folder, then a file through it (refused: never written through a link).
        .file("/d/kept", b"kept".to_vec(), false)
        .link("/s", "d")
        .file("/s/evil", b"evil".to_vec(), false)
        // Invalid keys.
        .file("/../escape", b"no".to_vec(), false)
        .file("/q/../../escape2", b"no".to_vec(), false)
        // Content of several chunks, an empty file, an executable.
        .file("/big.bin", data(7, 2_500_000), false)
        .file("/empty", Vec::new(), false)
        .file("/run.sh", b"#!/bin/sh\n".to_vec(), true);
    for i in 0..150u64 {
        src = src.file(
            &format!("/m/{}/f{i:03}", i % 7),
            data(100 + i, (i as usize * 997) % 20_000),
            i % 5 == 0,
        );
    }
    let src = src.sorted();

    let tmp = tempfile::tempdir().expect("tmp");
    let (seq, par) = (tmp.path().join("p/seq"), tmp.path().join("p/par"));
    let (sum1, ev1) = mirror_into(&src, &seq, 1).await;
    let (sum32, ev32) = mirror_into(&src, &par, 32).await;

    assert_eq!(sum1, sum32);
    assert_eq!(snapshot(&seq), snapshot(&par));
    let tree = snapshot(&par);
    assert_eq!(tree.get("a"), Some(&Node::File(b"A".to_vec(), false)));
    assert_eq!(tree.get("a/b"), None);
    assert_eq!(tree.get("link"), None);
    assert_eq!(tree.get("link/x"), Some(&Node::File(b"x".to_vec(), true)));
    assert_eq!(tree.get("s"), Some(&Node::Link("d".to_string())));
    assert_eq!(tree.get("d/evil"), None, "written through a symlink");
    assert_eq!(
        tree.get("big.bin"),
        Some(&Node::File(data(7, 2_500_000), false))
    );
    // Nothing outside the two targets.
    let mut top: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["p"]);
    let mut p: Vec<_> = std::fs::read_dir(tmp.path().join("p"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    p.sort();
    assert_eq!(p, ["par", "seq"]);

    // Events: the same diffs, completions and skips in source order; each diff before its completion.
    for pick in [diff_key, done_key, skipped_key] {
        assert_eq!(keys_of(&ev1, pick), keys_of(&ev32, pick));
    }
    let mut skipped = keys_of(&ev32, skipped_key);
    skipped.sort();
    assert_eq!(
        skipped,
        ["/../escape", "/a/b", "/link", "/q/../../escape2", "/s/evil"]
    );
    for (i, e) in ev32.iter().enumerate() {
        if let MirrorEvent::Done { key, .. } = e {
            assert!(
                ev32[..i]
                    .iter()
                    .any(|d| matches!(d, MirrorEvent::Diff(d) if &d.key == key)),
                "{key}: done before its diff"
            );
        }
    }
    assert!(ev32
        .iter()
        .all(|e| !matches!(e, MirrorEvent::Diff(d) if d.op == Op::Remove)));

    // A second run finds everything equal (the refused keys are tried again), sequential or not.
    let (again1, _) = mirror_into(&src, &seq, 1).await;
    let (again32, _) = mirror_into(&src, &par, 32).await;
    assert_eq!(again1, again32);
    assert_eq!(
        (
            again32.count.add,
            again32.count.change,
            again32.count.remove
        ),
        (3, 0, 0)
    );
    assert_eq!(snapshot(&par), tree);
}

const HH: [u8; 64] = [7; 64];

fn connect(writer: &Hyperdrive, reader: &Hyperdrive) -> (Mux, Mux) {
    let (ta, tb) = memory_pair();
    let (a, ()) = Mux::new_with(ta, |m| writer.replicate(m, true, &HH));
    let (b, ()) = Mux::new_with(tb, |m| reader.replicate(m, false, &HH));
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_into_folder_survives_a_cut_connection() {
    const SMALL: u64 = 300;
    const BIG: usize = 3 << 20;
    let tmp = tempfile::tempdir().expect("tmp");
    let src_dir = tmp.path().join("src");
    let writer_store = Corestore::open(tmp.path().join("w")).expect("store");
    let writer = Hyperdrive::open(&writer_store, DriveOptions::default()).expect("drive");
    let mut batch = writer.new_batch().expect("batch");
    for i in 0..SMALL {
        let bytes = data(i, 1000 + (i as usize * 331) % 30_000);
        let key = format!("/small/{}/f{i}.bin", i % 9);
        batch
            .put(
                &key,
                &bytes,
                WriteOptions {
                    executable: i % 4 == 0,
                    metadata: None,
                },
            )
            .await
            .expect("put");
        let path = src_dir.join(key.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &bytes).expect("write");
        let mode = if i % 4 == 0 { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    batch.flush().expect("flush");
    let big = data(99, BIG);
    writer
        .put("/big.bin", &big, WriteOptions::default())
        .await
        .expect("put big");
    std::fs::write(src_dir.join("big.bin"), &big).expect("write");
    let blobs = writer.blobs().await.expect("blobs");
    let total = blobs.core().length();
    assert!(total > 100, "{total} blobs blocks");

    let reader_store = Corestore::open(tmp.path().join("r")).expect("store");
    let opts = DriveOptions {
        wait: WaitOptions {
            wait: true,
            timeout: Some(Duration::from_secs(60)),
        },
        ..DriveOptions::default()
    };
    let reader = Hyperdrive::open_key(&reader_store, writer.key(), opts).expect("replica");
    let (m1, m2) = connect(&writer, &reader);
    reader.wait_for_peers(1).await;
    reader.update().await.expect("update");
    let rblobs = reader.blobs().await.expect("replica blobs");
    // Few requests in flight, so the cut surely lands mid-download.
    for r in reader.replicators() {
        r.set_max_inflight(8);
    }

    let out = tmp.path().join("out");
    let run = {
        let reader = reader.clone();
        let out = out.clone();
        tokio::spawn(async move {
            let prefetch = {
                let r = reader.clone();
                tokio::spawn(async move { r.download("/").await })
            };
            let dst = Localdrive::new(&out);
            let opts = MirrorOptions {
                concurrency: 16,
                ..MirrorOptions::default()
            };
            let mut done = 0u64;
            let sum = Mirror::new(&reader, &dst, opts)
                .run(|e| {
                    if matches!(e, MirrorEvent::Done { .. }) {
                        done += 1;
                    }
                })
                .await;
            prefetch.abort();
            (sum, done)
        })
    };

    // Cut the connection once a quarter of the blocks are here, then connect again.
    let core = rblobs.core().clone();
    let stored =
        |c: &holepunch_cores::hypercore::Hypercore| (0..total).filter(|&i| c.has(i)).count();
    let mut rx = core.subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        while (stored(&core) as u64) < total / 4 {
            rx.changed().await.expect("core open");
        }
    })
    .await
    .expect("first quarter");
    m1.destroy();
    m2.destroy();
    let at_cut = stored(&core) as u64;
    assert!(at_cut < total, "cut after the whole download ({at_cut})");
    let (_m3, _m4) = connect(&writer, &reader);

    let (sum, done) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("mirror finishes after the reconnect")
        .expect("task");
    let sum = sum.expect("mirror");
    assert_eq!(sum.count.add, SMALL + 1);
    assert_eq!(done, SMALL + 1);
    let (a, b) = (snapshot(&src_dir), snapshot(&out));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "copy differs from the source");
}

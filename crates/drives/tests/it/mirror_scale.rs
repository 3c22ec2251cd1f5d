//! Mirrors of many files with the quick check (`MirrorOptions::state_file`, `mirror_state`): a no-op
//! re-mirror, folder to hyperdrive and hyperdrive to folder, changes nothing and reads no content; one
//! changed, one added and one removed file among many are exactly what the next run does; a corrupt state
//! file only costs the comparisons. And the paged listing of a hyperdrive (`Drive::list_page`) is its listing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use holepunch_cores::corestore::Corestore;
use holepunch_drives::drive::{
    BlobReader, BlobWriter, Drive, Entry, IgnoreFn, ListPage, Result, WriteBatch, WriteOptions,
};
use holepunch_drives::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch_drives::localdrive::Localdrive;
use holepunch_drives::mirror::{Mirror, MirrorOptions, MirrorSummary};
use holepunch_drives::mirror_state;

const FILES: usize = 300;

/// A drive that counts the content reads made through it (everything else passes through).
struct Counting<D> {
    inner: D,
    reads: AtomicU64,
}

impl<D> Counting<D> {
    fn new(inner: D) -> Self {
        Counting {
            inner,
            reads: AtomicU64::new(0),
        }
    }

    fn take_reads(&self) -> u64 {
        self.reads.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl<D: Drive> Drive for Counting<D> {
    async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        self.inner.entry(key).await
    }
    async fn list(&self, folder: &str, ignore: Option<IgnoreFn<'_>>) -> Result<Vec<Entry>> {
        self.inner.list(folder, ignore).await
    }
    async fn list_page(
        &self,
        folder: &str,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Option<ListPage>> {
        self.inner.list_page(folder, after, limit).await
    }
    async fn readdir(&self, folder: &str) -> Result<Vec<String>> {
        self.inner.readdir(folder).await
    }
    async fn read(
        &self,
        entry: &Entry,
        start: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn BlobReader>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(entry, start, length).await
    }
    async fn write(&self, key: &str, opts: WriteOptions) -> Result<Box<dyn BlobWriter>> {
        self.inner.write(key, opts).await
    }
    async fn del(&self, key: &str) -> Result<()> {
        self.inner.del(key).await
    }
    async fn symlink(&self, key: &str, linkname: &str) -> Result<()> {
        self.inner.symlink(key, linkname).await
    }
    async fn put_entry(&self, key: &str, existing: &Entry, opts: WriteOptions) -> Result<bool> {
        self.inner.put_entry(key, existing, opts).await
    }
    async fn batch(&self) -> Result<Option<Box<dyn WriteBatch>>> {
        self.inner.batch().await
    }
    fn writable(&self) -> bool {
        self.inner.writable()
    }
    fn listing_is_complete(&self) -> bool {
        self.inner.listing_is_complete()
    }
    fn supports_metadata(&self) -> bool {
        self.inner.supports_metadata()
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    async fn put(&self, key: &str, data: &[u8], opts: WriteOptions) -> Result<()> {
        self.inner.put(key, data, opts).await
    }
}

fn content(i: usize) -> Vec<u8> {
    format!("file {i:05} {}", "x".repeat(i % 97)).into_bytes()
}

/// `FILES` files in 10 folders, an executable and a symlink.
fn make_tree(root: &Path) {
    for i in 0..FILES {
        let dir = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i:05}.txt")), content(i)).expect("write");
    }
    let exe = root.join("d0/run.sh");
    std::fs::write(&exe, b"#!/bin/sh\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("d1/f00001.txt", root.join("link")).expect("symlink");
}

fn opts(state: &Path) -> MirrorOptions {
    MirrorOptions {
        state_file: Some(state.to_path_buf()),
        ..MirrorOptions::default()
    }
}

async fn mirror(
    src: &(impl Drive + ?Sized),
    dst: &(impl Drive + ?Sized),
    o: MirrorOptions,
) -> MirrorSummary {
    Mirror::new(src, dst, o).run(|_| {}).await.expect("mirror")
}

fn changes(s: &MirrorSummary) -> (u64, u64, u64) {
    (s.count.add, s.count.change, s.count.remove)
}

/// Every file of the hyperdrive, with its content.
async fn drive_files(d: &Hyperdrive) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for e in d.list("/", None).await.expect("list") {
        let data = d.get(&e.key).await.expect("get");
        out.push((e.key, data));
    }
    out
}

/// Rewrites `path` with `data` of the same length and puts its modification time back: only the change time
/// (and the inode's content) tells.
fn rewrite_keeping_mtime(path: &Path, data: &[u8]) {
    let before = std::fs::metadata(path)
        .expect("stat")
        .modified()
        .expect("mtime");
    std::fs::write(path, data).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(before).expect("set mtime");
    assert_eq!(
        std::fs::metadata(path)
            .expect("stat")
            .modified()
            .expect("mtime"),
        before
    );
}

struct Setup {
    _tmp: tempfile::TempDir,
    tree: PathBuf,
    state: PathBuf,
    _store: Corestore,
    drive: Hyperdrive,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let store = Corestore::open_with_primary_key(tmp.path().join("store"), [7; 32]).expect("store");
    let drive = Hyperdrive::open(&store, DriveOptions::default()).expect("drive");
    Setup {
        state: tmp.path().join("state/in"),
        tree,
        _store: store,
        drive,
        _tmp: tmp,
    }
}

#[tokio::test]
async fn a_noop_import_reads_nothing_and_writes_nothing() {
    let s = setup();
    let src = Counting::new(Localdrive::new(&s.tree));
    let first = mirror(&src, &s.drive, opts(&s.state)).await;
    assert_eq!(changes(&first), (FILES as u64 + 2, 0, 0));
    src.take_reads();
    let version = s.drive.version();
    let files = drive_files(&s.drive).await;

    let again = mirror(&src, &s.drive, opts(&s.state)).await;
    assert_eq!(changes(&again), (0, 0, 0));
    assert_eq!(again.count.files, FILES as u64 + 2);
    assert_eq!(src.take_reads(), 0, "a no-op re-mirror read file contents");
    assert_eq!(
        s.drive.version(),
        version,
        "a no-op re-mirror wrote to the drive"
    );

    // Without the state (as mirror-drive), the same result, every file's content compared.
    let plain = mirror(&src, &s.drive, MirrorOptions::default()).await;
    assert_eq!(changes(&plain), (0, 0, 0));
    assert_eq!(src.take_reads(), FILES as u64 + 1);
    assert_eq!(s.drive.version(), version);
    assert_eq!(drive_files(&s.drive).await, files);
}

#[tokio::test]
async fn one_change_one_add_one_remove_among_many() {
    let s = setup();
    let src = Counting::new(Localdrive::new(&s.tree));
    mirror(&src, &s.drive, opts(&s.state)).await;
    src.take_reads();

    // Same length, same modification time, other bytes: only the change time tells.
    let changed = s.tree.join("d3/f00013.txt");
    let mut new = content(13);
    new[0] = b'F';
    rewrite_keeping_mtime(&changed, &new);
    std::fs::write(s.tree.join("d4/new.txt"), b"new file").expect("write");
    std::fs::remove_file(s.tree.join("d5/f00025.txt")).expect("rm");
    // Touched only: compared (read), found equal, not rewritten.
    let touched = s.tree.join("d6/f00026.txt");
    std::fs::File::options()
        .write(true)
        .open(&touched)
        .expect("open")
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .expect("touch");
    let version = s.drive.version();

    let sum = mirror(&src, &s.drive, opts(&s.state)).await;
    assert_eq!(changes(&sum), (1, 1, 1));
    // The changed file is compared then copied, the touched one compared, the new one copied.
    assert_eq!(src.take_reads(), 4);
    assert_eq!(s.drive.get("/d3/f00013.txt").await.expect("get"), Some(new));
    assert_eq!(
        s.drive.get("/d4/new.txt").await.expect("get"),
        Some(b"new file".to_vec())
    );
    assert_eq!(s.drive.entry("/d5/f00025.txt").await.expect("entry"), None);
    assert_eq!(
        s.drive.get("/d6/f00026.txt").await.expect("get"),
        Some(content(26))
    );
    // Three entry writes (one block each in the db), nothing else.
    assert_eq!(s.drive.version(), version + 3);

    let again = mirror(&src, &s.drive, opts(&s.state)).await;
    assert_eq!(changes(&again), (0, 0, 0));
    assert_eq!(src.take_reads(), 0);
    assert_eq!(s.drive.version(), version + 3);
}

#[tokio::test]
async fn a_noop_export_reads_nothing_and_rewrites_no_file() {
    let s = setup();
    mirror(
        &Localdrive::new(&s.tree),
        &s.drive,
        MirrorOptions::default(),
    )
    .await;
    let out = s._tmp.path().join("out");
    let state = s._tmp.path().join("state/out");
    let src = Counting::new(s.drive.clone());
    let dst = Localdrive::new(&out);
    let first = mirror(&src, &dst, opts(&state)).await;
    assert_eq!(changes(&first), (FILES as u64 + 2, 0, 0));
    src.take_reads();
    let stat = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(out.join(p)).expect("stat");
        (m.ino(), m.ctime(), m.ctime_nsec())
    };
    let before = stat("d2/f00012.txt");

    let again = mirror(&src, &dst, opts(&state)).await;
    assert_eq!(changes(&again), (0, 0, 0));
    assert_eq!(src.take_reads(), 0, "a no-op export read blobs");
    assert_eq!(
        stat("d2/f00012.txt"),
        before,
        "a no-op export rewrote a file"
    );

    // A file changed in the drive is the one file the next export rewrites.
    s.drive
        .put(
            "/d2/f00012.txt",
            b"changed in the drive",
            WriteOptions::default(),
        )
        .await
        .expect("put");
    let sum = mirror(&src, &dst, opts(&state)).await;
    assert_eq!(changes(&sum), (0, 1, 0));
    assert_eq!(
        std::fs::read(out.join("d2/f00012.txt")).expect("read"),
        b"changed in the drive"
    );
    // A file changed in the folder is compared and put back.
    std::fs::write(out.join("d3/f00013.txt"), b"changed in the folder").expect("write");
    src.take_reads();
    let sum = mirror(&src, &dst, opts(&state)).await;
    assert_eq!(changes(&sum), (0, 1, 0));
    assert_eq!(
        std::fs::read(out.join("d3/f00013.txt")).expect("read"),
        content(13)
    );
    let sum = mirror(&src, &dst, opts(&state)).await;
    assert_eq!(changes(&sum), (0, 0, 0));
}

#[tokio::test]
async fn a_corrupt_state_file_only_costs_comparisons() {
    let s = setup();
    let src = Counting::new(Localdrive::new(&s.tree));
    mirror(&src, &s.drive, opts(&s.state)).await;
    src.take_reads();
    let version = s.drive.version();
    let good = std::fs::read(&s.state).expect("state");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    for bytes in [bad, good[..good.len() - 1].to_vec(), b"garbage".to_vec()] {
        std::fs::write(&s.state, &bytes).expect("write state");
        let sum = mirror(&src, &s.drive, opts(&s.state)).await;
        assert_eq!(changes(&sum), (0, 0, 0));
        assert_eq!(src.take_reads(), FILES as u64 + 1);
        assert_eq!(s.drive.version(), version);
    }
}

#[test]
fn state_decode_never_panics() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut records = mirror_state::Records::new();
    records.insert("/a".into(), ([1; 16], [2; 16]));
    let valid = mirror_state::encode(&records);
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = mirror_state::decode(&bytes);
        // Valid framing, mangled body.
        bytes = valid.clone();
        let i = (next() as usize) % bytes.len();
        bytes[i] = next() as u8;
        let _ = mirror_state::decode(&bytes);
    }
}

#[tokio::test]
async fn paged_listing_is_the_listing() {
    let s = setup();
    mirror(
        &Localdrive::new(&s.tree),
        &s.drive,
        MirrorOptions::default(),
    )
    .await;
    for folder in ["/", "/d3", "/nothing"] {
        let whole = s.drive.list(folder, None).await.expect("list");
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .drive
                .list_page(folder, after.take(), 7)
                .await
                .expect("page")
                .expect("a hyperdrive has pages");
            assert!(page.entries.len() <= 7);
            paged.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(paged, whole, "{folder}");
    }
    // A folder has no pages: listed whole.
    assert_eq!(
        Localdrive::new(&s.tree)
            .list_page("/", None, 7)
            .await
            .expect("page"),
        None
    );
}

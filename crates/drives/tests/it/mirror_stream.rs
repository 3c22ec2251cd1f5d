//! The mirror's streaming merge (issue #14): a folder's walk in key order (`/a.txt` before `/a/b`, a
//! folder's name sorting as if it ended in `/`), whatever the page size; a mirror over many small pages
//! (prune, ignore, filter, a prefix that is a file) gives the same events and result as one over a page of
//! everything; and the quick check's state file read and written record by record (round trip, truncated
//! and corrupt files read as empty, out-of-order records left out).

use std::path::Path;

use holepunch_cores::corestore::Corestore;
use holepunch_drives::drive::{Drive, WriteOptions};
use holepunch_drives::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch_drives::localdrive::Localdrive;
use holepunch_drives::mirror::{Mirror, MirrorEvent, MirrorOptions, MirrorSummary, MEMO_ENTRIES};
use holepunch_drives::mirror_state::{self, Records, StateReader, StateWriter};

/// Files whose keys are neighbours in tricky ways: `a.txt` sorts before the folder `a` (`.` < `/`), `a-b`
/// too (`-` < `/`), `a0` after it (`0` > `/`); a folder `a` with a file `b`, a nested folder, an empty
/// folder (no entries), a symlink.
const TRICKY: &[&str] = &[
    "a.txt", "a-b", "a/b", "a/b.c/d", "a/b-c", "a/b/c", "a0", "ab", "b", "z/y/x/w", "z/y.txt",
];

fn make(root: &Path, files: &[&str]) {
    for f in files {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, f.as_bytes()).expect("write");
    }
}

async fn walk_keys(d: &dyn Drive, folder: &str, page: usize) -> Vec<String> {
    let mut walk = d.walk(folder, None, page);
    let mut out = Vec::new();
    loop {
        let entries = walk.next_page().await.expect("page");
        if entries.is_empty() {
            return out;
        }
        assert!(
            entries.len() <= page,
            "a page of {} > {page}",
            entries.len()
        );
        out.extend(entries.into_iter().map(|e| e.key));
    }
}

#[tokio::test]
async fn a_folder_walks_in_key_order_at_any_page_size() {
    let tmp = tempfile::tempdir().expect("tmp");
    // `a/b` is a folder here (it holds `c`): `a/b.c` and `a/b-c` sort before it, `a/b/c` after both.
    let files: Vec<&str> = TRICKY.iter().copied().filter(|f| *f != "a/b").collect();
    make(tmp.path(), &files);
    std::fs::create_dir_all(tmp.path().join("empty/inner")).expect("mkdir");
    std::os::unix::fs::symlink("a.txt", tmp.path().join("a.link")).expect("symlink");
    let d = Localdrive::new(tmp.path());
    let mut want: Vec<String> = files.iter().map(|f| format!("/{f}")).collect();
    want.push("/a.link".into());
    want.sort();
    assert_eq!(
        want,
        [
            "/a-b", "/a.link", "/a.txt", "/a/b-c", "/a/b.c/d", "/a/b/c", "/a0", "/ab", "/b",
            "/z/y.txt", "/z/y/x/w"
        ]
    );
    for page in [1, 2, 3, 5, 100] {
        assert_eq!(walk_keys(&d, "/", page).await, want, "page {page}");
    }
    let listed: Vec<String> = d
        .list("/", None)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(listed, want);
    assert_eq!(
        walk_keys(&d, "/a", 2).await,
        ["/a/b-c", "/a/b.c/d", "/a/b/c"]
    );
    assert_eq!(walk_keys(&d, "/a.txt", 2).await, Vec::<String>::new());
    assert_eq!(walk_keys(&d, "/missing", 2).await, Vec::<String>::new());
    // An ignored key prunes its subtree without descending.
    let ignore = |k: &str| k == "/a" || k == "/z/y";
    let mut walk = d.walk("/", Some(&ignore), 2);
    let mut got = Vec::new();
    loop {
        let page = walk.next_page().await.expect("page");
        if page.is_empty() {
            break;
        }
        got.extend(page.into_iter().map(|e| e.key));
    }
    assert_eq!(
        got,
        ["/a-b", "/a.link", "/a.txt", "/a0", "/ab", "/b", "/z/y.txt"]
    );
}

/// Every event of a mirror, and its summary.
async fn events(
    src: &(impl Drive + ?Sized),
    dst: &(impl Drive + ?Sized),
    opts: MirrorOptions,
) -> (Vec<MirrorEvent>, MirrorSummary) {
    let mut evs = Vec::new();
    let sum = Mirror::new(src, dst, opts)
        .run(|e| evs.push(e))
        .await
        .expect("mirror");
    (evs, sum)
}

async fn folder_files(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let d = Localdrive::new(root);
    let mut out = Vec::new();
    for e in d.list("/", None).await.expect("list") {
        let data = d.get(&e.key).await.expect("get");
        out.push((e.key, data));
    }
    out
}

async fn drive_files(d: &Hyperdrive) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for e in d.list("/", None).await.expect("list") {
        let data = d.get(&e.key).await.expect("get");
        out.push((e.key, data));
    }
    out
}

/// A source tree with many files around the tricky neighbours, and a destination to prune: stale files
/// between the source's, a stale file where the source has a folder, an ignored file in each.
fn trees(src: &Path, dst: &Path) {
    make(
        src,
        TRICKY
            .iter()
            .filter(|f| **f != "a/b")
            .copied()
            .collect::<Vec<_>>()
            .as_slice(),
    );
    for i in 0..60 {
        make(src, &[&format!("m/{:02}/f{i:03}.txt", i % 7)]);
    }
    make(src, &["skip/me", "m/keep.log", "m/drop.tmp"]);
    make(
        dst,
        &[
            "a.txt",
            "a-a",
            "a/b/old",
            "m/03/f003.txt",
            "m/03/gone",
            "m/zz/gone",
            "skip/other",
            "b/inner",
            "y",
            "z/y",
        ],
    );
    std::fs::write(dst.join("m/03/f003.txt"), b"changed").expect("write");
}

fn opts(page: usize, memo: usize) -> MirrorOptions {
    MirrorOptions {
        page_size: page,
        memo_entries: memo,
        ignore: vec!["/skip".into()],
        filter: Some(std::sync::Arc::new(|k: &str| !k.ends_with(".tmp"))),
        ..MirrorOptions::default()
    }
}

#[tokio::test]
async fn a_mirror_over_small_pages_is_the_mirror_over_one_page() {
    let mut results = Vec::new();
    // Walked twice (memo 0), once (the default keeps every entry), or kept until the memo overflows
    // part-way (5 entries: walked again).
    let runs = [
        (1, 0),
        (2, 0),
        (3, 5),
        (7, MEMO_ENTRIES),
        (4096, 0),
        (4096, 5),
        (4096, MEMO_ENTRIES),
    ];
    for (page, memo) in runs {
        let tmp = tempfile::tempdir().expect("tmp");
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        trees(&src, &dst);
        let (evs, sum) = events(
            &Localdrive::new(&src),
            &Localdrive::new(&dst),
            opts(page, memo),
        )
        .await;
        let files = folder_files(&dst).await;
        // The skipped folder and the filtered file stay as they were in the destination (not pruned):
        // the filtered one is in the source, the ignored ones are in neither walk.
        assert!(files.iter().any(|f| f.0 == "/skip/other"));
        assert!(!files.iter().any(|f| f.0 == "/m/drop.tmp"));
        assert!(!files.iter().any(|f| f.0.starts_with("/skip/me")));
        // A stale file where the source has a folder (`/z/y`), and a folder where it has a file (`/b`),
        // are removed before the adds.
        assert!(files.iter().any(|f| f.0 == "/a/b/c"));
        assert!(!files.iter().any(|f| f.0 == "/a/b/old"));
        assert!(files.iter().any(|f| f.0 == "/b"));
        assert!(files.iter().any(|f| f.0 == "/z/y/x/w"));
        let removes: Vec<usize> = evs
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, MirrorEvent::Diff(d) if d.op == holepunch_drives::mirror::Op::Remove))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(removes, (1..=7).collect::<Vec<_>>(), "page {page}: {evs:?}");
        assert!(
            matches!(evs[0], MirrorEvent::Planned { files: 71, .. }),
            "{:?}",
            evs[0]
        );
        // Done events in key order.
        let done: Vec<&str> = evs
            .iter()
            .filter_map(|e| match e {
                MirrorEvent::Done { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
        results.push((evs, sum, files));
    }
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
    let (_, sum, _) = &results[0];
    assert_eq!(
        (
            sum.count.files,
            sum.count.add,
            sum.count.change,
            sum.count.remove
        ),
        (71, 69, 1, 7)
    );
}

#[tokio::test]
async fn a_mirror_into_a_drive_over_small_pages_with_a_prefix_that_is_a_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    make(
        &src,
        TRICKY
            .iter()
            .filter(|f| **f != "a/b")
            .copied()
            .collect::<Vec<_>>()
            .as_slice(),
    );
    let store = Corestore::open_with_primary_key(tmp.path().join("store"), [3; 32]).expect("store");
    let drive = Hyperdrive::open(&store, DriveOptions::default()).expect("drive");
    drive
        .put("/a.txt", b"other", WriteOptions::default())
        .await
        .expect("put");
    drive
        .put("/a.txt.stale", b"x", WriteOptions::default())
        .await
        .expect("put");
    for (page, memo) in [(1, 0), (2, MEMO_ENTRIES), (4096, 0), (4096, MEMO_ENTRIES)] {
        // A prefix that is a file: that one file, compared, copied and (pruning) nothing else removed.
        let o = MirrorOptions {
            prefix: vec!["/a.txt".into()],
            page_size: page,
            memo_entries: memo,
            ..MirrorOptions::default()
        };
        let (_, sum) = events(&Localdrive::new(&src), &drive, o).await;
        assert_eq!(sum.count.files, 1, "page {page}");
        assert_eq!(
            drive.get("/a.txt").await.expect("get"),
            Some(b"a.txt".to_vec())
        );
        assert!(drive.entry("/a.txt.stale").await.expect("entry").is_some());
    }
    // The whole tree, then the other way round into a folder, over pages of 2: both sides equal.
    let o = MirrorOptions {
        page_size: 2,
        ..MirrorOptions::default()
    };
    let (_, sum) = events(&Localdrive::new(&src), &drive, o.clone()).await;
    assert_eq!((sum.count.add, sum.count.remove), (9, 1));
    let out = tmp.path().join("out");
    events(&drive, &Localdrive::new(&out), o.clone()).await;
    assert_eq!(folder_files(&out).await, folder_files(&src).await);
    assert_eq!(drive_files(&drive).await, folder_files(&src).await);
    let (_, sum) = events(&drive, &Localdrive::new(&out), o).await;
    assert_eq!(
        (sum.count.add, sum.count.change, sum.count.remove),
        (0, 0, 0)
    );
}

fn fps(i: u8) -> ([u8; 16], [u8; 16]) {
    ([i; 16], [i.wrapping_add(1); 16])
}

#[test]
fn state_files_round_trip_record_by_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("state/x");
    let keys: Vec<String> = (0..1000u32).map(|i| format!("/k/{i:05}")).collect();
    let mut w = StateWriter::create(&path).expect("create");
    for (i, k) in keys.iter().enumerate() {
        w.push(k, &fps(i as u8));
        // Out of order or repeated: left out.
        w.push("/a", &fps(0));
        w.push(k, &fps(9));
    }
    w.finish(None).expect("finish");
    let bytes = std::fs::read(&path).expect("read");
    let whole = mirror_state::decode(&bytes).expect("decodes");
    assert_eq!(whole.len(), keys.len());
    assert_eq!(mirror_state::encode(&whole), bytes);

    let mut r = StateReader::open(&path);
    assert_eq!(r.summary().map(|s| s.0), Some(1000));
    assert_eq!(r.get("/a"), None);
    for (i, k) in keys.iter().enumerate().step_by(3) {
        assert_eq!(r.get(k), Some(fps(i as u8)), "{k}");
    }
    assert_eq!(r.get("/k/00001x"), None);
    // Asked again from the start: read again.
    assert_eq!(r.get(&keys[1]), Some(fps(1)));
    assert_eq!(r.get("/z"), None);

    // The same records again: the file is left as it is (not rewritten).
    let before = std::fs::metadata(&path).expect("stat");
    let mut w = StateWriter::create(&path).expect("create");
    for (i, k) in keys.iter().enumerate() {
        w.push(k, &fps(i as u8));
    }
    w.finish(r.summary()).expect("finish");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&path).expect("stat").ino(), before.ino());
    // No temporary file left behind either way.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("state"))
            .expect("dir")
            .count(),
        1
    );
}

#[test]
fn truncated_or_corrupt_state_files_read_as_empty() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("s");
    let mut records = Records::new();
    for i in 0..50u8 {
        records.insert(format!("/f{i:03}"), fps(i));
    }
    let good = mirror_state::encode(&records);
    std::fs::write(&path, &good).expect("write");
    assert_eq!(StateReader::open(&path).get("/f000"), Some(fps(0)));
    let mut cases: Vec<Vec<u8>> = (0..good.len())
        .step_by(7)
        .map(|n| good[..n].to_vec())
        .collect();
    cases.push(good[..good.len() - 1].to_vec());
    for i in (0..good.len()).step_by(11) {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        cases.push(bad);
    }
    let mut longer = good.clone();
    longer.push(0);
    cases.push(longer);
    // The old format (state1) reads as empty too.
    let mut old = good.clone();
    old[19] = b'1';
    cases.push(old);
    for bytes in cases {
        std::fs::write(&path, &bytes).expect("write");
        let mut r = StateReader::open(&path);
        assert_eq!(r.summary(), None);
        for i in 0..50u8 {
            assert_eq!(r.get(&format!("/f{i:03}")), None);
        }
        assert_eq!(mirror_state::decode(&bytes), None);
    }
    assert_eq!(
        StateReader::open(tmp.path().join("missing")).get("/f000"),
        None
    );
}

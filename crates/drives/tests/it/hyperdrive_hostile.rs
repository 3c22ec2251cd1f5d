//! Hostile hyperdrives: entries a broken or malicious writer can put in the bee (keys with `..`, absolute-looking
//! or non-normalized keys, bad UTF-8, values that are not entries, blob pointers past the blobs core, lying byte
//! lengths, garbage block maps) give errors, never panics, locally and on a replica; and proptests that the
//! decoders of entry values, block maps and paths never panic on arbitrary or mutated input.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperblobs::{decode_block_map, BlobError, BlobId, ReadRange};
use holepunch_drives::drive::{Drive, DriveError, WriteOptions};
use holepunch_drives::hyperdrive::path::{is_normalized, normalize};
use holepunch_drives::hyperdrive::{DriveOptions, EntryValue, Hyperdrive, ListOptions};
use holepunch_streams::protomux::{memory_pair, Mux};
use proptest::prelude::*;

fn tmp(name: &str) -> std::path::PathBuf {
    testkit::scratch_dir(&format!("hyperdrive-hostile-{name}"))
}

fn blob(block_offset: u64, block_length: u64, byte_length: u64) -> Vec<u8> {
    EntryValue::file(
        BlobId {
            block_offset,
            byte_offset: 0,
            block_length,
            byte_length,
            block_map: false,
        },
        false,
        None,
    )
    .encode()
}

/// A drive with two good files and every kind of hostile entry written raw into its bee.
async fn hostile_drive(store: &Corestore) -> Hyperdrive {
    let drive = Hyperdrive::open(store, DriveOptions::default()).unwrap();
    drive
        .put("/good.txt", b"good", WriteOptions::default())
        .await
        .unwrap();
    drive
        .put("/z/also-good", b"fine", WriteOptions::default())
        .await
        .unwrap();
    let files = drive.db().sub(b"files");
    let ok = blob(0, 1, 4);
    for key in [
        &b"../evil"[..],
        b"/a/../../etc/passwd",
        b"//abs",
        b"/b\\..\\..\\x",
        b"/bad\xff\xfeutf8",
        b"/./dot",
        b"/trailing/",
    ] {
        files.put(key, Some(&ok)).unwrap();
    }
    files.put(b"/past-end", Some(&blob(1000, 5, 10))).unwrap();
    files.put(b"/huge", Some(&blob(0, 1, 1 << 52))).unwrap();
    files.put(b"/not-json", Some(b"\x00garbage")).unwrap();
    files
        .put(
            b"/neg",
            Some(br#"{"blob":{"blockOffset":-1,"byteOffset":0,"blockLength":1,"byteLength":1}}"#),
        )
        .unwrap();
    files.put(b"/no-value", None).unwrap();
    let map = EntryValue::file(
        BlobId {
            block_offset: 0,
            byte_offset: 0,
            block_length: 1,
            byte_length: 4,
            block_map: true,
        },
        false,
        None,
    );
    files.put(b"/bad-map", Some(&map.encode())).unwrap();
    drive
}

async fn check_hostile(drive: &Hyperdrive) {
    assert_eq!(
        drive.get("/good.txt").await.unwrap().as_deref(),
        Some(&b"good"[..])
    );
    // A strict listing refuses the drive; a lenient one gives only the well-formed entries.
    assert!(matches!(
        drive.list_with("/", ListOptions::default()).await,
        Err(DriveError::InvalidKey(_) | DriveError::Entry { .. })
    ));
    let lenient = ListOptions {
        recursive: true,
        skip_invalid: true,
    };
    let keys: Vec<String> = drive
        .list_with("/", lenient)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(keys.iter().all(|k| is_normalized(k)), "{keys:?}");
    assert!(keys.contains(&"/good.txt".to_owned()) && keys.contains(&"/z/also-good".to_owned()));
    assert!(!keys
        .iter()
        .any(|k| k.contains("..") || k.contains("utf8") || k.contains("abs")));
    let shallow = drive
        .list_with(
            "/",
            ListOptions {
                recursive: false,
                skip_invalid: true,
            },
        )
        .await
        .unwrap();
    assert!(shallow.iter().all(|e| is_normalized(&e.key)));
    // Paths that would escape are refused before any lookup.
    assert!(matches!(
        drive.entry("../evil").await,
        Err(DriveError::Path(_))
    ));
    assert!(matches!(
        drive.get("/a/../../etc/passwd").await,
        Err(DriveError::Path(_))
    ));
    // Bad values and bad pointers.
    assert!(matches!(
        drive.entry("/not-json").await,
        Err(DriveError::Entry { .. })
    ));
    assert!(matches!(
        drive.entry("/neg").await,
        Err(DriveError::Entry { .. })
    ));
    assert!(matches!(
        drive.entry("/no-value").await,
        Err(DriveError::Entry { .. })
    ));
    assert!(matches!(
        drive.get("/past-end").await,
        Err(DriveError::Blob(BlobError::OutOfBounds { .. }))
    ));
    assert!(matches!(
        drive.get("/huge").await,
        Err(DriveError::Blob(BlobError::Corrupt(_)))
    ));
    assert!(matches!(
        drive.get("/bad-map").await,
        Err(DriveError::Blob(BlobError::Corrupt(_)))
    ));
    // A range of the lying blob stops at what the blocks hold.
    assert!(drive
        .read_range(
            "/huge",
            ReadRange {
                start: Some(1 << 40),
                end: None,
                length: Some(10)
            }
        )
        .await
        .is_err());
    // Downloading a folder of good entries works; downloading the whole drive skips the entries it cannot
    // use (bad keys, bad values) and fails on the pointer past the end of the blobs core.
    assert!(drive.download("/z").await.is_ok());
    assert!(
        matches!(
            drive.download("/").await,
            Err(DriveError::Blob(BlobError::OutOfBounds { start: 1000, .. }))
        ),
        "a pointer past the blobs core must fail the download"
    );
}

#[tokio::test]
async fn hostile_entries_give_errors_locally() {
    let dir = tmp("local");
    let store = Corestore::open(&dir).unwrap();
    let drive = hostile_drive(&store).await;
    check_hostile(&drive).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_entries_give_errors_on_a_replica() {
    let wdir = tmp("writer");
    let wstore = Corestore::open(&wdir).unwrap();
    let writer = hostile_drive(&wstore).await;
    let rdir = tmp("reader");
    let rstore = Corestore::open(&rdir).unwrap();
    let mut o = DriveOptions::default();
    o.wait.timeout = Some(Duration::from_secs(5));
    let reader = Hyperdrive::open_key(&rstore, writer.key(), o).unwrap();
    let (a, b) = memory_pair();
    let hh = [7u8; 64];
    let _ma = Mux::new_with(a, |m| writer.replicate(m, true, &hh)).0;
    let _mb = Mux::new_with(b, |m| reader.replicate(m, false, &hh)).0;
    tokio::time::timeout(
        Duration::from_secs(30),
        reader.wait_for_version(writer.version()),
    )
    .await
    .unwrap()
    .unwrap();
    check_hostile(&reader).await;
    let _ = std::fs::remove_dir_all(&wdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

fn valid_entry() -> impl Strategy<Value = EntryValue> {
    (
        any::<bool>(),
        proptest::option::of("[a-z/.]{0,12}"),
        proptest::option::of((
            0u64..1 << 40,
            0u64..1 << 40,
            0u64..1000,
            0u64..1 << 30,
            any::<bool>(),
        )),
        proptest::option::of("[ -~]{0,16}"),
    )
        .prop_map(|(executable, linkname, blob, meta)| EntryValue {
            executable,
            linkname,
            blob: blob.map(|(o, b, l, n, m)| BlobId {
                block_offset: o,
                byte_offset: b,
                block_length: l,
                byte_length: n,
                block_map: m,
            }),
            metadata: meta.map(|s| serde_json::json!({ "s": s, "n": [1, 2.5, null] })),
        })
}

proptest! {
    #[test]
    fn entry_values_round_trip_and_mutations_never_panic(
        v in valid_entry(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let enc = v.encode();
        prop_assert_eq!(EntryValue::decode(&enc), Ok(v));
        let _ = EntryValue::decode(enc.get(..cut.index(enc.len())).unwrap_or_default());
        let mut m = enc.clone();
        for (i, x) in flips {
            let i = i.index(m.len());
            m[i] ^= x;
        }
        if let Ok(d) = EntryValue::decode(&m) {
            prop_assert_eq!(EntryValue::decode(&d.encode()), Ok(d));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = EntryValue::decode(&bytes);
        let _ = decode_block_map(&bytes);
        let s = String::from_utf8_lossy(&bytes);
        if let Ok(p) = normalize(&s) {
            prop_assert!(is_normalized(&p));
            prop_assert!(!p.split('/').any(|x| x == ".." || x == "."));
        }
    }

    #[test]
    fn paths_of_dots_and_slashes_never_escape(parts in proptest::collection::vec(
        prop_oneof![Just(".."), Just("."), Just(""), Just("a"), Just("ü"), Just("\\"), Just("c:")], 0..10)
    ) {
        let s = parts.join("/");
        if let Ok(p) = normalize(&s) {
            prop_assert!(p.starts_with('/'));
            prop_assert!(is_normalized(&p));
        }
    }
}

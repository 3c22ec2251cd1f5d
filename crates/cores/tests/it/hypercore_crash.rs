//! Crash safety: a writer process appending (and now and then truncating) is killed with SIGKILL at random
//! points, many times over the same core; after every kill the core must reopen whole: every block present and
//! intact, the tree rebuilt from the blocks equal to the stored one, the head signature valid, and nothing
//! that a returned append wrote lost. Also: a log cut at any byte reopens at a record boundary.
//!
//! The writer is `examples/hypercore_crash_writer.rs`; every other round it runs without fdatasync ([`Durability::Process`]), which a process kill must not be able to tell apart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use holepunch_cores::hypercore::tree::{Batch, TreeState};
use holepunch_cores::hypercore::Hypercore;
use holepunch_cores::hypercore::Verifier;
use rand::{Rng, SeedableRng};

use crate::crash_blocks::{block, key_pair};

/// The writer process (`examples/hypercore_crash_writer.rs`), built by `cargo test` beside this binary.
fn writer_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    // target/<profile>/deps/it-HASH -> target/<profile>/examples/hypercore_crash_writer
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .join("examples/hypercore_crash_writer");
    assert!(
        bin.is_file(),
        "{} is not built (cargo test -p holepunch-cores builds it)",
        bin.display()
    );
    bin
}

/// Checks everything about a reopened core; returns (length, fork).
fn check_core(dir: &Path) -> (u64, u64) {
    let core = Hypercore::open(dir).expect("reopen after crash");
    let length = core.length();
    let fork = core.fork();
    let mut batch = Batch::new(&TreeState::default());
    for i in 0..length {
        let b = core
            .get(i)
            .expect("read")
            .unwrap_or_else(|| panic!("block {i} of {length} missing"));
        let (idx, rest) = b.split_at(8);
        let (f, _) = rest.split_at(8);
        assert_eq!(u64::from_le_bytes(idx.try_into().expect("8")), i);
        let written_on = u64::from_le_bytes(f.try_into().expect("8"));
        assert!(written_on <= fork);
        assert_eq!(b, block(i, written_on), "block {i} damaged");
        batch.append(&b);
    }
    assert_eq!(core.get(length).expect("read"), None);
    let tree = core.tree();
    assert_eq!(
        batch.roots, tree.roots,
        "tree rebuilt from the blocks differs"
    );
    assert_eq!(batch.byte_length, core.byte_length());
    let kp = key_pair();
    let verifier = Verifier::new(&kp.public, None).expect("verifier");
    if length > 0 || fork > 0 {
        let sig = core.signature().expect("a signed head");
        assert!(
            verifier.verify(&tree.hash(), length, fork, &sig),
            "head signature invalid"
        );
    }
    (length, fork)
}

#[test]
fn kill_9_during_appends_never_loses_or_tears_data() {
    let exe = writer_exe();
    let dir = testkit::scratch_dir("hc-crash");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut last: Option<(u64, u64)> = None;
    let rounds = 40;
    let mut kills_mid_write = 0;
    for round in 0..rounds {
        let mut cmd = Command::new(&exe);
        cmd.arg(&dir);
        if round % 2 == 1 {
            cmd.env("HYPERCORE_CRASH_NOSYNC", "1");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() != Some("ok") {
                    continue;
                }
                let nums: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
                if let [len, fork] = nums[..] {
                    if tx.send((len, fork)).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it complete a random number of calls, then kill it a random moment later (most likely in the
        // middle of building or writing the next record).
        let want = rng.gen_range(1..40);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        let mut reported = last;
        while seen < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(state) => {
                    reported = Some(state);
                    seen += 1;
                }
                Err(e) => panic!("writer stalled in round {round}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        while let Ok(state) = rx.try_recv() {
            reported = Some(state);
        }
        let _ = reader.join();

        let (length, fork) = check_core(&dir);
        if let Some((rlen, rfork)) = reported {
            // Everything a returned call wrote survived: the head is the last reported one or a later one.
            assert!(
                fork > rfork || (fork == rfork && length >= rlen),
                "round {round}: reopened at ({length}, fork {fork}) but the writer had reported ({rlen}, fork {rfork})"
            );
            if (length, fork) != (rlen, rfork) {
                kills_mid_write += 1;
            }
        }
        last = Some((length, fork));
    }
    eprintln!("{rounds} kills, {kills_mid_write} landed after a record was written but before it was reported");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_cut_at_any_byte_reopens_at_a_record_boundary() {
    let dir = testkit::scratch_dir("hc-cut");
    let core = Hypercore::create(&dir, key_pair()).expect("create");
    let mut sizes = vec![0u64];
    for i in 0..6u64 {
        let blocks: Vec<Vec<u8>> = (0..3).map(|j| block(i * 3 + j, 0)).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        core.append(&refs).expect("append");
        sizes.push(std::fs::metadata(dir.join("log")).expect("log").len());
    }
    drop(core);
    let full = std::fs::read(dir.join("log")).expect("log");
    let copy = dir.join("copy");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut cuts: Vec<usize> = (0..60).map(|_| rng.gen_range(0..full.len())).collect();
    cuts.extend(sizes.iter().map(|s| *s as usize));
    for cut in cuts {
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).expect("copy dir");
        std::fs::copy(dir.join("meta"), copy.join("meta")).expect("meta");
        std::fs::write(copy.join("log"), &full[..cut]).expect("cut log");
        let (length, _) = check_core(&copy);
        // Whole records only: the length is that of the last record wholly inside the cut.
        let whole = sizes.iter().filter(|s| **s as usize <= cut).count() as u64 - 1;
        assert_eq!(length, whole * 3, "cut at {cut}");
        // The torn tail was cut off, so appending continues cleanly.
        let core = Hypercore::open(&copy).expect("reopen");
        core.append(&[&block(length, 0)])
            .expect("append after repair");
        drop(core);
        assert_eq!(check_core(&copy).0, length + 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

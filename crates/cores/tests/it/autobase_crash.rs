//! Crash safety of the apply: a one-writer base appending puts is killed with SIGKILL at random points, many
//! times over the same store; after every kill the base must reopen to a view holding exactly the puts of its
//! writer core (`k<n>` = `v<n>` for every block n), with the system's heads and indexer at the writer's length,
//! and nothing an append that returned wrote lost. The system and views are written without a sync per append
//! and truncated to the boot record's indexed length on reopen, so each kill exercises the re-apply.
//!
//! The writer is `examples/autobase_crash_writer.rs`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use holepunch_cores::autobase::base::{Autobase, AutobaseOptions};
use holepunch_cores::autobase::kv::Kv;
use holepunch_cores::autobase::messages::Checkout;
use holepunch_cores::corestore::Corestore;
use holepunch_cores::hyperbee::RangeOptions;
use rand::{Rng, SeedableRng};

fn writer_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .join("examples/autobase_crash_writer");
    assert!(
        bin.is_file(),
        "{} is not built (cargo test -p holepunch-cores builds it)",
        bin.display()
    );
    bin
}

/// Reopens the base and checks its view against its writer core; returns the writer's length.
fn check_base(dir: &Path) -> u64 {
    let store = Corestore::open_with_primary_key(dir, [1; 32]).unwrap();
    let mut base = Autobase::open(store, Kv, AutobaseOptions::default()).unwrap();
    base.update().unwrap();
    let length = base.local().length();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = (0..length)
        .map(|n| (format!("k{n}").into_bytes(), format!("v{n}").into_bytes()))
        .collect();
    want.sort();
    let got: Vec<(Vec<u8>, Vec<u8>)> = base
        .view()
        .range_vec(&RangeOptions::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(got, want, "the view after reopening at length {length}");
    if length > 0 {
        let me = Checkout {
            key: base.key(),
            length,
        };
        assert_eq!(base.system().heads, vec![me]);
        assert_eq!(base.system().indexers, vec![me]);
    }
    length
}

#[test]
fn kill_9_during_appends_reopens_to_the_writers_view() {
    let exe = writer_exe();
    let dir = testkit::scratch_dir("autobase-crash");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xab5e);
    let mut reported = 0;
    for round in 0..30 {
        let mut child = Command::new(&exe)
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(Ok(n)) = line.strip_prefix("ok ").map(str::parse::<u64>) {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        // let it return a random number of appends (more than one boot-record interval now and then), then
        // kill it a random moment later
        let want = rng.gen_range(1..100);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = 0;
        while seen < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(n) => {
                    reported = n;
                    seen += 1;
                }
                Err(e) => panic!("writer stalled in round {round}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        while let Ok(n) = rx.try_recv() {
            reported = n;
        }
        let _ = reader.join();
        let length = check_base(&dir);
        assert!(
            length >= reported,
            "round {round}: reopened at {length}, the writer had reported {reported}"
        );
    }
    assert!(
        reported > 100,
        "the rounds went past the boot record interval"
    );
}

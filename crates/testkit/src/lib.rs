//! Test support for every crate's tests that needs no node: scratch directories that a test process removes
//! when it exits. `interop` (the JS reference peers) re-exports it.

use std::path::PathBuf;

/// This test process's folder for scratch directories (see [`scratch_dir`]), removed when the process exits.
static SCRATCH_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

extern "C" fn remove_scratch_root() {
    if let Some(root) = SCRATCH_ROOT.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// A path for one test's files (not created), unique in this process, inside a folder of this test process
/// that is removed when the process exits, passed or failed (the JS peers' stores are hundreds of MB each:
/// a test run must not leave them behind in the temporary directory).
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = SCRATCH_ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("holepunch-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::create_dir_all(&root);
        // SAFETY: registers a plain `extern "C" fn` without arguments, as atexit expects; it runs once,
        // when the test harness exits the process.
        unsafe { libc::atexit(remove_scratch_root) };
        root
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    root.join(format!("{name}-{n}"))
}

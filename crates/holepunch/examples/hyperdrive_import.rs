//! Imports a folder into a new hyperdrive (what `drives mirror FOLDER KEY` does on an empty drive) and prints
//! `{"impl":"rust","seconds","files","bytes"}`. Used by `benches/hyperdrive-import.sh`.
//!
//! ```text
//! hyperdrive_import SRC STORE_DIR
//! ```
//!
//! Small files are read whole and put in one drive batch (one db append at the end); files over 1 MiB are
//! streamed into the blobs core without being held in memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use holepunch::corestore::Corestore;
use holepunch::drive::WriteOptions;
use holepunch::hyperdrive::{DriveOptions, Hyperdrive, ListOptions};

const STREAM_OVER: u64 = 1 << 20;

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf, u64, bool)>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            #[cfg(unix)]
            let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            #[cfg(not(unix))]
            let exec = false;
            out.push((format!("/{rel}"), path, meta.len(), exec));
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dir)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: hyperdrive_import SRC STORE_DIR");
    };
    let store = Corestore::open(&dir).context("opening the store")?;
    let drive = Hyperdrive::open(&store, DriveOptions::default())?;
    let start = Instant::now();
    let mut files = Vec::new();
    let src = PathBuf::from(src);
    walk(&src, &src, &mut files)?;
    files.sort();
    let mut batch = drive.new_batch()?;
    for (key, path, len, executable) in &files {
        let opts = WriteOptions {
            executable: *executable,
            metadata: None,
        };
        if *len > STREAM_OVER {
            // Streamed: read in chunks into a blob writer, the entry joins the batch.
            let mut f = std::fs::File::open(path)?;
            let mut w = batch.writer(key, opts).await?;
            let mut buf = vec![0u8; 4 << 20];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                w.write(buf.get(..n).unwrap_or_default())?;
            }
            batch.finish_writer(w)?;
        } else {
            let data = std::fs::read(path)?;
            batch.put(key, &data, opts).await?;
        }
    }
    batch.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    let listed = drive.list_with("/", ListOptions::default()).await?;
    let bytes: u64 = listed
        .iter()
        .filter_map(|e| e.blob)
        .map(|b| b.byte_length)
        .sum();
    println!(
        "{}",
        serde_json::json!({"impl": "rust", "seconds": seconds, "files": listed.len(), "bytes": bytes})
    );
    Ok(())
}
